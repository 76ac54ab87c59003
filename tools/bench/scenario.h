// Scenarios: which clients a run has, what they publish and subscribe to, and the coordinator that moves
// the run through its phases (setup, publish, drain, close) and gathers the results.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "tools/bench/histogram.h"
#include "tools/bench/proc_stats.h"

namespace parley::bench {

struct Options {
  std::string scenario;          // durable | p2p | fanin | fanout | shared | conns | im-direct | im-group | im-sync
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  int qos = 1;
  uint32_t payload = 64;
  double duration = 10;          // seconds of publishing, at most
  uint64_t count = 0;            // messages to publish in all (split among publishers); 0 = no limit
  int mqtt_version = 5;          // 3 (= 3.1.1) or 5
  uint32_t inflight = 16;
  double rate = 0;               // messages/s over all publishers; 0 = as fast as possible
  bool json = false;
  uint32_t publishers = 1;
  uint32_t subscribers = 1;
  uint32_t threads = 1;
  double grace = 5;              // seconds after publishing for acks and deliveries to arrive
  double connect_timeout = 10;   // seconds for every client to connect and subscribe
  int broker_pid = 0;
  uint16_t keep_alive = 60;
  std::string source;            // --source: "a,b,c" or "127.0.0.1-8" (last octet range); "" = the kernel picks

  // conns: a connection ramp, then an idle hold.
  uint32_t connections = 1000;
  double ramp_rate = 2000;       // connections started per second (all threads); 0 = as fast as --inflight allows
  double hold = 10;              // seconds to hold every connection idle after the ramp
  bool subscribe = false;        // each connection subscribes to bench/conns/<i> at QoS 1

  // p2p, im-direct
  uint32_t pairs = 10;
  // IM scenarios (tools/README.md): users, devices and the backlog.
  uint32_t members = 100;        // im-group: group size
  uint32_t online = 0;           // im-group: members with a device online (0 = all, at most 100)
  uint32_t senders = 1;          // im-group: online members that send
  uint64_t backlog = 10'000;     // im-sync: messages preloaded for the offline reader
  uint32_t page = 200;           // im-sync: messages per conversation in a sync, and per history page
  double sync_timeout = 60;      // im-sync: seconds for the reader to be fully synced
};

bool IsImScenario(const std::string& scenario);

// Parses --source into addresses (and their text, for messages). An error message, or empty.
std::string ParseSources(const std::string& spec, std::vector<sockaddr_storage>* addrs,
                         std::vector<std::string>* names);

// Checks option combinations; an error message, or empty.
std::string Validate(const Options& o);

struct Report {
  Options opts;
  uint32_t run_id = 0;
  uint32_t window = 0;           // smallest effective per-publisher window (after the broker's Receive Maximum)
  double setup_s = 0, publish_s = 0, drain_s = 0;
  std::string stop_reason;       // duration | count | interrupted
  bool drained = false;          // every ack and delivery arrived before the grace period ended

  uint64_t sent = 0, acked = 0, rejected = 0, unacked = 0, unknown_acks = 0;
  uint8_t reject_code = 0;
  double sent_per_s = 0, acked_per_s = 0;
  double last_ack_s = 0, last_delivery_s = 0;  // since publishing started
  Histogram ack_latency;

  uint64_t expected = 0;         // deliveries owed: each acked message once per subscriber it matches
  uint64_t delivered = 0, duplicates = 0, reordered = 0, stale = 0, unexpected = 0;
  double delivered_per_s = 0;
  Histogram e2e_latency;
  uint64_t lost = 0;             // owed deliveries that did not arrive
  uint64_t lost_messages = 0;    // acked messages missing at one subscriber or more
  struct Missing {
    uint32_t publisher;
    uint64_t seq;
    std::string subscriber;
  };
  std::vector<Missing> missing_examples;  // the first few lost deliveries, for diagnosis
  int min_granted_qos = -1;

  bool has_broker = false;
  ProcSample broker_before, broker_after;
  double bench_cpu_s = 0;
  std::vector<std::string> warnings;

  // IM scenarios only. Above, "publishes" are SendReqs (acked = answered with an Ack), "deliveries" are
  // message events (or, for im-sync, messages the reader holds after syncing), keyed by (conv_id, seq).
  struct Im {
    uint32_t senders = 0, receivers = 0;       // devices that send / devices that must receive
    uint32_t members = 0, online = 0;          // im-group
    uint32_t conversations = 0;                // conversations opened (or created) during setup
    uint64_t duplicate_acks = 0;               // Acks flagged duplicate (never expected: client_msg_ids are unique)
    std::map<std::string, uint64_t> refusals;  // error responses to sends, by error code name
    std::string last_refusal;                  // its message
    uint64_t received_unacked = 0;             // messages received whose Ack never came back
    uint64_t other_events = 0;                 // events that are not this run's text messages (summaries, ...)
    uint64_t e2e_stalls = 0;                   // im-group: the end-to-end window was written off
    // im-sync
    uint64_t backlog = 0;                      // messages the reader must end up with (acked in the preload)
    double preload_s = 0;                      // first send to last ack
    bool synced = false;                       // the reader held every acked message before --sync-timeout
    double connect_ms = 0;                     // reader: CONNECT written -> SUBACK
    double sync_ms = 0;                        // reader: first SyncReq written -> the last message held
    uint64_t sync_requests = 0, history_requests = 0;
    uint64_t bytes_received = 0;               // reader: bytes read from its socket while syncing
    uint64_t payload_bytes = 0;                // of which ServerFrame payloads
    uint64_t messages_received = 0;            // entries in the answers (all types, duplicates included)
    double sync_broker_cpu_s = 0;              // broker CPU seconds during the sync alone
    bool sync_broker_cpu_known = false;
    Histogram request_latency;                 // reader: each sync / history request, written -> answer read
  };
  std::optional<Im> im;

  // shared only: each acked message is owed once to the group (expected = acked). Above, `delivered` is the
  // number of distinct messages some member received, `duplicates` the extra copies (a message two members
  // got, or one member twice), `lost` = `lost_messages` the acked messages no member got.
  struct Shared {
    std::string group = "bench";
    std::vector<uint64_t> per_subscriber;   // distinct messages each member received, by subscriber index
    uint64_t min = 0, max = 0;              // spread of per_subscriber
    uint64_t duplicates_across = 0;         // copies received by a second (third, ...) member
  };
  std::optional<Shared> shared;

  // conns only (conns_scenario.cc). broker_before is sampled before the ramp, broker_after at the end of the
  // hold (before DISCONNECT); ack/e2e fields above are unused.
  struct Conns {
    uint32_t connections = 0;               // --connections
    uint32_t attempted = 0, established = 0, refused = 0, not_attempted = 0;
    uint32_t dropped_ramp = 0, dropped_hold = 0;  // established, then lost before we disconnected
    std::map<std::string, uint64_t> refusals;     // by reason: CONNACK code, errno name, "timeout", ...
    std::map<std::string, uint64_t> drops;        // by reason
    bool ramp_complete = false;             // every attempt concluded (ready or refused) before the deadline
    double ramp_s = 0;                      // first connect started -> last attempt concluded
    double hold_s = 0, close_s = 0;
    double attempt_rate = 0;                // connections started per second over the ramp
    double established_rate = 0;            // established per second: ramp start -> last CONNACK (SUBACK)
    Histogram connect_latency;              // TCP connect start -> CONNACK
    Histogram subscribe_latency;            // SUBSCRIBE written -> SUBACK (--subscribe)
    uint64_t pings_sent = 0, pingresps = 0, unexpected = 0;
    std::map<std::string, uint64_t> per_source;  // established connections by --source address
    ProcSample broker_ramp;                 // after the ramp
    double bench_cpu_ramp_s = 0, bench_cpu_hold_s = 0;
  };
  std::optional<Conns> conns;
};

struct RunConfig;
// Shared by the scenario runners: resolves --host/--port into cfg->addr and cfg->target, and --source into
// cfg->sources (same address family as the host).
Status Resolve(const Options& o, RunConfig* cfg);
// Raises the open-file soft limit to the hard limit if `conns` connections (plus the tool's own files) need
// more than the soft limit; an error naming the most connections the hard limit allows if that is not enough.
// With --broker-pid, the broker's sample before the run (rep->broker_before, rep->has_broker); an error if its
// /proc entries cannot be read. Without it, nothing.
Status SampleBrokerBefore(const Options& o, Report* rep);
Status EnsureFiles(size_t conns, size_t threads = 1);
// `conns` connections to one broker over `sources` source addresses (0 = the kernel picks one) must fit the
// ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range) per source address.
Status CheckPorts(size_t conns, size_t sources);

// Set by the SIGINT/SIGTERM handler: 1 = stop publishing and report, 2+ = abandon the run.
extern std::atomic<int> g_interrupts;

// Runs one scenario to completion. Errors (connection refused, CONNACK refusal, a broker disconnect, a
// client that never got ready) end the run and come back as an error Status. Never blocks longer than
// connect_timeout + duration + grace + a few seconds.
Result<Report> RunScenario(const Options& o);
// The same for the IM scenarios (im_scenarios.cc).
Result<Report> RunImScenario(const Options& o);
// The conns scenario (conns_scenario.cc): never blocks longer than (--connections / --ramp-rate) +
// --connect-timeout + --hold + a few seconds.
Result<Report> RunConnsScenario(const Options& o);

}  // namespace parley::bench
