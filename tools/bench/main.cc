// parley-bench: an MQTT load generator. One process, one libuv loop per --threads, many connections;
// every run is bounded by --duration (and --count) and stops by itself. See tools/README.md.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace {

using parley::bench::Options;

void OnSignal(int) { parley::bench::g_interrupts.fetch_add(1); }

// Options every scenario has.
void AddShared(CLI::App* sc, Options& o) {
  // The last occurrence wins, so scripts can append overrides to a fixed command line.
  sc->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  sc->add_option("--host", o.host, "broker address (the only host connected to)")->capture_default_str();
  sc->add_option("--port", o.port, "broker port")->capture_default_str();
  sc->add_option("--mqtt-version", o.mqtt_version, "3 (= 3.1.1) or 5")->check(CLI::IsMember({3, 5}))
      ->capture_default_str();
  sc->add_option("--threads", o.threads, "event loops (threads); clients are spread over them")->capture_default_str();
  sc->add_option("--grace", o.grace, "seconds after publishing stops for outstanding acks and deliveries")
      ->capture_default_str();
  sc->add_option("--connect-timeout", o.connect_timeout, "seconds for all clients to connect and subscribe")
      ->capture_default_str();
  sc->add_option("--keep-alive", o.keep_alive, "MQTT keep alive, seconds")->capture_default_str();
  sc->add_option("--broker-pid", o.broker_pid, "report this process's CPU seconds and RSS (from /proc)");
  sc->add_option("--source", o.source,
                 "local addresses to connect from, round-robin: a,b,c or a range 127.0.0.1-8 "
                 "(default: the kernel picks)");
  sc->add_flag("--json", o.json, "print one JSON object instead of the text report");
}

// The MQTT scenarios' options.
void AddCommon(CLI::App* sc, Options& o) {
  AddShared(sc, o);
  sc->add_option("--qos", o.qos, "publish and subscribe QoS")->check(CLI::Range(0, 2))->capture_default_str();
  sc->add_option("--payload", o.payload, "payload bytes (>= 24: publisher, sequence, send time)")
      ->capture_default_str();
  sc->add_option("--duration", o.duration, "seconds of publishing, at most")->capture_default_str();
  sc->add_option("--count", o.count, "messages to publish in all, split among publishers (0 = no limit)")
      ->capture_default_str();
  sc->add_option("--inflight", o.inflight, "per-publisher window of unacknowledged QoS 1/2 messages")
      ->check(CLI::Range(1, 65535))->capture_default_str();
  sc->add_option("--rate", o.rate, "messages/s over all publishers, each sending on a timer (0 = as fast as possible)")
      ->capture_default_str();
}

// The IM scenarios' options (requests are QoS 1 PUBLISHes; devices subscribe to their topic at QoS 1).
void AddIm(CLI::App* sc, Options& o) {
  AddShared(sc, o);
  sc->add_option("--payload", o.payload, "bytes of text per message (>= 24: send time, then filler)")
      ->capture_default_str();
  sc->add_option("--inflight", o.inflight, "per-sender window of sends not yet answered with an Ack")
      ->check(CLI::Range(1, 65535))->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"parley-bench: MQTT 3.1.1/5.0 load generator. Every run stops by itself (--duration, --count)."};
  app.require_subcommand(1, 1);

  std::vector<Options> opts(9);
  opts[0].scenario = "durable";
  opts[0].publishers = 4;
  opts[0].subscribers = 1;
  CLI::App* durable = app.add_subcommand(
      "durable", "P publishers (QoS 1/2, --inflight window each) -> S persistent subscribers on bench/durable/#");
  AddCommon(durable, opts[0]);
  durable->add_option("--publishers", opts[0].publishers, "publishers")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  durable->add_option("--subscribers", opts[0].subscribers, "persistent subscribers bench-sub-N")
      ->check(CLI::Range(1, 100000))->capture_default_str();

  opts[1].scenario = "p2p";
  opts[1].publishers = opts[1].subscribers = 10;
  CLI::App* p2p = app.add_subcommand("p2p", "N publisher/subscriber pairs, each on its own topic");
  AddCommon(p2p, opts[1]);
  p2p->add_option("--pairs", opts[1].pairs, "pairs")->check(CLI::Range(1, 50000))->capture_default_str();

  opts[2].scenario = "fanin";
  opts[2].publishers = 10;
  opts[2].subscribers = 1;
  CLI::App* fanin = app.add_subcommand("fanin", "N publishers -> 1 subscriber (bench/fanin/#)");
  AddCommon(fanin, opts[2]);
  fanin->add_option("--publishers", opts[2].publishers, "publishers")->check(CLI::Range(1, 100000))
      ->capture_default_str();

  opts[3].scenario = "fanout";
  opts[3].publishers = 1;
  opts[3].subscribers = 10;
  CLI::App* fanout = app.add_subcommand("fanout", "1 publisher -> N subscribers (bench/fanout)");
  AddCommon(fanout, opts[3]);
  fanout->add_option("--subscribers", opts[3].subscribers, "subscribers")->check(CLI::Range(1, 100000))
      ->capture_default_str();

  opts[7].scenario = "shared";
  opts[7].publishers = 4;
  opts[7].subscribers = 4;
  CLI::App* shared = app.add_subcommand(
      "shared", "P publishers (bench/shared/<p>) -> S subscribers in one shared subscription group "
                "($share/bench/bench/shared/#): each message owed once to the group");
  AddCommon(shared, opts[7]);
  shared->add_option("--publishers", opts[7].publishers, "publishers")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  shared->add_option("--subscribers", opts[7].subscribers, "members of the shared subscription group")
      ->check(CLI::Range(1, 100000))->capture_default_str();

  opts[8].scenario = "conns";
  opts[8].inflight = 128;
  CLI::App* conns = app.add_subcommand(
      "conns", "connection ramp (N connections at --ramp-rate), idle hold (--hold s, keep alive only), DISCONNECT: "
               "connect latency, refusals, drops, broker RSS per connection and idle CPU");
  AddShared(conns, opts[8]);
  conns->remove_option(conns->get_option("--grace"));  // nothing is published: no drain
  conns->get_option("--connect-timeout")
      ->description("seconds a handshake (connect to CONNACK / SUBACK) may take; the ramp ends at most this long "
                    "after its schedule (--connections / --ramp-rate)");
  conns->add_option("--connections", opts[8].connections, "connections to open")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  conns->add_option("--ramp-rate", opts[8].ramp_rate,
                    "connections started per second, over all threads (0 = as fast as --inflight allows)")
      ->capture_default_str();
  conns->add_option("--inflight", opts[8].inflight, "handshakes (connect to CONNACK / SUBACK) in flight at most")
      ->check(CLI::Range(1, 65535))->capture_default_str();
  conns->add_option("--hold", opts[8].hold, "seconds to hold every connection idle after the ramp")
      ->capture_default_str();
  conns->add_flag("--subscribe", opts[8].subscribe, "each connection subscribes to bench/conns/<i> at QoS 1");

  opts[4].scenario = "im-direct";
  opts[4].pairs = 50;
  CLI::App* im_direct = app.add_subcommand(
      "im-direct", "IM: N user pairs, each in a direct conversation; one device of each sends text messages, "
                   "the peer's device receives them");
  AddIm(im_direct, opts[4]);
  im_direct->add_option("--pairs", opts[4].pairs, "user pairs (direct conversations)")->check(CLI::Range(1, 25000))
      ->capture_default_str();
  im_direct->add_option("--duration", opts[4].duration, "seconds of sending, at most")->capture_default_str();
  im_direct->add_option("--count", opts[4].count, "messages to send in all, split among senders (0 = no limit)")
      ->capture_default_str();

  opts[5].scenario = "im-group";
  CLI::App* im_group = app.add_subcommand(
      "im-group", "IM: one group of M members, K of them online with one device each; S of those send, every "
                  "other online device receives (end-to-end window: --inflight messages not yet everywhere)");
  AddIm(im_group, opts[5]);
  im_group->add_option("--members", opts[5].members, "group members")->check(CLI::Range(2, 1000000))
      ->capture_default_str();
  im_group->add_option("--online", opts[5].online, "members with a device online (0 = all, at most 100)")
      ->capture_default_str();
  im_group->add_option("--senders", opts[5].senders, "online members that send")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  im_group->add_option("--duration", opts[5].duration, "seconds of sending, at most")->capture_default_str();
  im_group->add_option("--count", opts[5].count, "messages to send in all, split among senders (0 = no limit)")
      ->capture_default_str();

  opts[6].scenario = "im-sync";
  opts[6].inflight = 64;
  opts[6].duration = 120;
  CLI::App* im_sync = app.add_subcommand(
      "im-sync", "IM: preload B messages into a direct conversation with an offline user, then time that user's "
                 "device from CONNECT to holding them all (sync from cursor 0, then history pages)");
  AddIm(im_sync, opts[6]);
  im_sync->add_option("--backlog", opts[6].backlog, "messages preloaded")->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  im_sync->add_option("--page", opts[6].page, "messages per conversation in the sync, and per history page")
      ->check(CLI::Range(1, 200))->capture_default_str();
  im_sync->add_option("--duration", opts[6].duration, "seconds the preload may take, at most")->capture_default_str();
  im_sync->add_option("--sync-timeout", opts[6].sync_timeout, "seconds the reader may take to be synced, at most")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  Options o;
  CLI::App* chosen = app.get_subcommands().front();
  for (size_t i = 0; i < opts.size(); ++i) {
    if (opts[i].scenario == chosen->get_name()) o = opts[i];
  }
  if (o.scenario == "p2p") o.publishers = o.subscribers = o.pairs;
  if (o.scenario == "im-direct") o.publishers = o.subscribers = o.pairs;
  if (o.scenario == "im-group") {
    if (o.online == 0) o.online = std::min<uint32_t>(o.members, 100);
    o.publishers = o.senders;
    o.subscribers = o.online;
  }
  if (o.scenario == "im-sync") o.publishers = o.subscribers = 1;
  if (std::string e = parley::bench::Validate(o); !e.empty()) {
    std::fprintf(stderr, "parley-bench: %s\n", e.c_str());
    return 1;
  }

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto result = parley::bench::IsImScenario(o.scenario) ? parley::bench::RunImScenario(o)
                : o.scenario == "conns"                   ? parley::bench::RunConnsScenario(o)
                                                          : parley::bench::RunScenario(o);
  if (!result.ok()) {
    std::fprintf(stderr, "parley-bench: error: %s\n", result.status().message().c_str());
    return 2;
  }
  if (o.json) {
    parley::bench::PrintJson(*result, stdout);
  } else {
    parley::bench::PrintText(*result, stdout);
  }
  return result->stop_reason == "interrupted" ? 130 : 0;
}
