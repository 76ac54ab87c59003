#include "tools/bench/report.h"

#include <nlohmann/json.hpp>

#include <string>

namespace parley::bench {
namespace {

std::string Ms(uint64_t ns) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f ms", static_cast<double>(ns) / 1e6);
  return b;
}

void PrintLatency(const char* label, const Histogram& h, std::FILE* out) {
  if (h.count() == 0) {
    std::fprintf(out, "  %-12s (no samples)\n", label);
    return;
  }
  std::fprintf(out, "  %-12s p50 %s   p99 %s   p99.9 %s   max %s   (%llu samples)\n", label,
               Ms(h.Quantile(0.50)).c_str(), Ms(h.Quantile(0.99)).c_str(), Ms(h.Quantile(0.999)).c_str(),
               Ms(h.max()).c_str(), static_cast<unsigned long long>(h.count()));
}

nlohmann::ordered_json Latency(const Histogram& h) {
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  nlohmann::ordered_json j;
  j["count"] = h.count();
  j["min_us"] = us(h.min());
  j["mean_us"] = h.mean() / 1e3;
  j["p50_us"] = us(h.Quantile(0.50));
  j["p90_us"] = us(h.Quantile(0.90));
  j["p99_us"] = us(h.Quantile(0.99));
  j["p999_us"] = us(h.Quantile(0.999));
  j["max_us"] = us(h.max());
  return j;
}

std::string RateText(double rate) { return rate > 0 ? std::to_string(static_cast<long long>(rate)) + " msg/s" : "max"; }

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

void PrintBroker(const Report& r, std::FILE* out) {
  const Options& o = r.opts;
  if (r.has_broker) {
    double cpu = r.broker_after.cpu_s - r.broker_before.cpu_s;
    double per_m = r.acked > 0 ? cpu / static_cast<double>(r.acked) * 1e6 : 0;
    std::fprintf(out, "  %-12s pid %d: %.2f CPU s (%.2f per million acked), RSS %.1f MB (before %.1f, peak %.1f)\n",
                 "broker", o.broker_pid, cpu, per_m, r.broker_after.rss_mb, r.broker_before.rss_mb,
                 r.broker_after.hwm_mb);
  }
  std::fprintf(out, "  %-12s %.2f CPU s\n", "bench", r.bench_cpu_s);
  for (const std::string& w : r.warnings) std::fprintf(out, "  warning: %s\n", w.c_str());
}

void PrintMissing(const Report& r, std::FILE* out) {
  if (r.missing_examples.empty()) return;
  std::string ex;
  for (const auto& m : r.missing_examples) {
    ex += " " + m.subscriber + "<-sender" + std::to_string(m.publisher) + "#" + std::to_string(m.seq);
  }
  std::fprintf(out, "  %-12s first missing (receiving device <- sender # conversation seq):%s\n", "", ex.c_str());
}

void PrintImText(const Report& r, std::FILE* out) {
  const Options& o = r.opts;
  const Report::Im& im = *r.im;
  const char* v = o.mqtt_version == 5 ? "5" : "3.1.1";
  if (o.scenario == "im-sync") {
    std::fprintf(out, "parley-bench im-sync -> %s:%u  MQTT %s, backlog %llu messages of %u B text in one direct "
                 "conversation, preload window %u, pages of %u\n",
                 o.host.c_str(), o.port, v, U(o.backlog), o.payload, r.window, o.page);
    std::fprintf(out, "  %-12s %llu sent, %llu acked, %llu refused in %.2f s (%.0f acked/s; stop reason: %s)\n",
                 "preload", U(r.sent), U(r.acked), U(r.rejected), im.preload_s, r.acked_per_s, r.stop_reason.c_str());
    PrintLatency("ack latency", r.ack_latency, out);
    std::fprintf(out, "  %-12s CONNECT -> SUBACK %.1f ms; sync -> all held %.1f ms; total %.1f ms  (%s: %llu of %llu "
                 "messages)\n",
                 "reader", im.connect_ms, im.sync_ms, im.connect_ms + im.sync_ms,
                 im.synced ? "synced" : "NOT synced", U(r.delivered), U(im.backlog));
    std::fprintf(out, "  %-12s %llu sync + %llu history = %llu\n", "requests", U(im.sync_requests),
                 U(im.history_requests), U(im.sync_requests + im.history_requests));
    PrintLatency("request", im.request_latency, out);
    std::fprintf(out, "  %-12s %llu bytes read (%llu of them ServerFrame payloads), %llu entries, %llu duplicate\n",
                 "received", U(im.bytes_received), U(im.payload_bytes), U(im.messages_received), U(r.duplicates));
    std::fprintf(out, "  %-12s %llu acked messages missing after the sync\n", "lost", U(r.lost));
    PrintMissing(r, out);
    if (im.sync_broker_cpu_known) {
      std::fprintf(out, "  %-12s %.3f broker CPU s during the sync alone\n", "sync cpu", im.sync_broker_cpu_s);
    }
    PrintBroker(r, out);
    return;
  }
  if (o.scenario == "im-group") {
    std::fprintf(out, "parley-bench im-group -> %s:%u  MQTT %s, 1 group of %u members, %u online devices, %u sender%s, "
                 "window %u (end to end), %u B text, %u thread%s\n",
                 o.host.c_str(), o.port, v, im.members, im.online, im.senders, im.senders == 1 ? "" : "s", r.window,
                 o.payload, o.threads, o.threads == 1 ? "" : "s");
  } else {
    std::fprintf(out, "parley-bench im-direct -> %s:%u  MQTT %s, %u pairs in direct conversations, window %u sends, "
                 "%u B text, %u thread%s\n",
                 o.host.c_str(), o.port, v, o.pairs, r.window, o.payload, o.threads, o.threads == 1 ? "" : "s");
  }
  std::fprintf(out, "  %-12s setup %.2f s (%u conversation%s), sending %.2f s (stop reason: %s), drain %.2f s (%s)\n",
               "time", r.setup_s, im.conversations, im.conversations == 1 ? "" : "s", r.publish_s,
               r.stop_reason.c_str(), r.drain_s, r.drained ? "complete" : "incomplete");
  std::fprintf(out, "  %-12s %llu sent, %llu acked, %llu refused, %llu unanswered   %.0f acked/s\n", "sends", U(r.sent),
               U(r.acked), U(r.rejected), U(r.unacked), r.acked_per_s);
  PrintLatency("ack latency", r.ack_latency, out);
  std::fprintf(out,
               "  %-12s %llu of %llu owed, %llu duplicate, %llu reordered   %.0f delivered/s (%u receiving devices)\n",
               "deliveries", U(r.delivered), U(r.expected), U(r.duplicates), U(r.reordered), r.delivered_per_s,
               im.receivers);
  PrintLatency("e2e latency", r.e2e_latency, out);
  std::fprintf(out, "  %-12s %llu owed deliveries missing (%llu distinct messages)\n", "lost", U(r.lost),
               U(r.lost_messages));
  PrintMissing(r, out);
  std::fprintf(out, "  %-12s %llu other events (conversation summaries, membership entries, presence)\n", "other",
               U(im.other_events));
  PrintBroker(r, out);
}

// Broker memory per connection: the RSS it gained from before the ramp to the end of the hold, per
// connection established. Negative if the broker gave memory back meanwhile.
double RssBytesPerConn(const Report& r) {
  const Report::Conns& c = *r.conns;
  if (!r.has_broker || c.established == 0) return 0;
  return (r.broker_after.rss_mb - r.broker_before.rss_mb) * 1024.0 * 1024.0 / static_cast<double>(c.established);
}

std::string ByReason(const std::map<std::string, uint64_t>& m) {
  std::string out;
  for (const auto& [why, n] : m) out += (out.empty() ? "" : ", ") + why + ": " + std::to_string(n);
  return out;
}

void PrintConnsText(const Report& r, std::FILE* out) {
  const Options& o = r.opts;
  const Report::Conns& c = *r.conns;
  std::string rate = o.ramp_rate > 0 ? std::to_string(static_cast<long long>(o.ramp_rate)) + "/s" : "max";
  std::string src = o.source.empty() ? "kernel-chosen source address" : "sources " + o.source;
  std::fprintf(out, "parley-bench conns -> %s:%u  MQTT %s, %u connections, ramp %s (at most %u handshakes in flight), "
               "hold %g s, keep alive %u s, %s, %s, %u thread%s\n",
               o.host.c_str(), o.port, o.mqtt_version == 5 ? "5" : "3.1.1", c.connections, rate.c_str(), o.inflight,
               o.hold, o.keep_alive, o.subscribe ? "each subscribed at QoS 1" : "no subscriptions", src.c_str(),
               o.threads, o.threads == 1 ? "" : "s");
  std::fprintf(out, "  %-12s %u attempted, %u established, %u refused, %u never attempted in %.2f s (%s)\n", "ramp",
               c.attempted, c.established, c.refused, c.not_attempted, c.ramp_s,
               c.ramp_complete ? "complete" : "incomplete");
  std::fprintf(out, "  %-12s %.0f established/s, %.0f attempts/s\n", "ramp rate", c.established_rate, c.attempt_rate);
  if (!c.refusals.empty()) std::fprintf(out, "  %-12s %s\n", "refused", ByReason(c.refusals).c_str());
  PrintLatency("connect", c.connect_latency, out);
  if (o.subscribe) PrintLatency("subscribe", c.subscribe_latency, out);
  std::fprintf(out,
               "  %-12s %.2f s%s: %u dropped (and %u during the ramp); keep alive: %llu PINGREQ sent, "
               "%llu PINGRESP%s\n",
               "hold", c.hold_s, r.stop_reason == "interrupted" ? " (interrupted)" : "", c.dropped_hold,
               c.dropped_ramp, U(c.pings_sent), U(c.pingresps),
               o.keep_alive == 0 ? " (keep alive off)"
               : o.keep_alive / 2.0 > c.ramp_s + c.hold_s ? " (none due: keep alive / 2 > ramp + hold)" : "");
  if (!c.drops.empty()) std::fprintf(out, "  %-12s %s\n", "dropped", ByReason(c.drops).c_str());
  if (!c.per_source.empty()) std::fprintf(out, "  %-12s %s\n", "per source", ByReason(c.per_source).c_str());
  std::fprintf(out, "  %-12s %.2f s to DISCONNECT and close everything\n", "close", c.close_s);
  if (r.has_broker) {
    std::fprintf(out, "  %-12s pid %d: RSS %.1f MB before the ramp, %.1f MB after it, %.1f MB at the end of the hold "
                 "(peak %.1f)\n", "broker", o.broker_pid, r.broker_before.rss_mb, c.broker_ramp.rss_mb,
                 r.broker_after.rss_mb, r.broker_after.hwm_mb);
    std::fprintf(out, "  %-12s %.0f bytes per connection (RSS end of hold - before ramp, / %u established)\n", "",
                 RssBytesPerConn(r), c.established);
    std::fprintf(out, "  %-12s %.2f CPU s during the ramp, %.2f during the %.2f s hold\n", "",
                 c.broker_ramp.cpu_s - r.broker_before.cpu_s, r.broker_after.cpu_s - c.broker_ramp.cpu_s, c.hold_s);
  }
  std::fprintf(out, "  %-12s %.2f CPU s (ramp %.2f, hold %.2f)\n", "bench", r.bench_cpu_s, c.bench_cpu_ramp_s,
               c.bench_cpu_hold_s);
  for (const std::string& w : r.warnings) std::fprintf(out, "  warning: %s\n", w.c_str());
}

void PrintConnsJson(const Report& r, std::FILE* out) {
  const Options& o = r.opts;
  const Report::Conns& c = *r.conns;
  nlohmann::ordered_json j;
  j["scenario"] = o.scenario;
  j["host"] = o.host;
  j["port"] = o.port;
  j["mqtt_version"] = o.mqtt_version == 5 ? "5" : "3.1.1";
  j["connections"] = c.connections;
  j["ramp_rate"] = o.ramp_rate;
  j["inflight"] = o.inflight;
  j["hold"] = o.hold;
  j["keep_alive"] = o.keep_alive;
  j["subscribe"] = o.subscribe;
  j["source"] = o.source;
  j["threads"] = o.threads;
  j["run_id"] = r.run_id;
  j["stop_reason"] = r.stop_reason;
  j["attempted"] = c.attempted;
  j["established"] = c.established;
  j["refused"] = c.refused;
  j["not_attempted"] = c.not_attempted;
  j["refusals"] = c.refusals;
  j["ramp_complete"] = c.ramp_complete;
  j["ramp_s"] = c.ramp_s;
  j["established_per_s"] = c.established_rate;
  j["attempts_per_s"] = c.attempt_rate;
  j["connect_latency"] = Latency(c.connect_latency);
  j["subscribe_latency"] = o.subscribe ? Latency(c.subscribe_latency) : nlohmann::ordered_json(nullptr);
  j["hold_s"] = c.hold_s;
  j["dropped_hold"] = c.dropped_hold;
  j["dropped_ramp"] = c.dropped_ramp;
  j["drops"] = c.drops;
  j["pings_sent"] = c.pings_sent;
  j["pingresps"] = c.pingresps;
  j["per_source"] = c.per_source;
  j["close_s"] = c.close_s;
  if (r.has_broker) {
    nlohmann::ordered_json b;
    b["pid"] = o.broker_pid;
    b["rss_mb_before"] = r.broker_before.rss_mb;
    b["rss_mb_after_ramp"] = c.broker_ramp.rss_mb;
    b["rss_mb_end_of_hold"] = r.broker_after.rss_mb;
    b["rss_peak_mb"] = r.broker_after.hwm_mb;
    b["rss_bytes_per_connection"] = RssBytesPerConn(r);
    b["cpu_s_ramp"] = c.broker_ramp.cpu_s - r.broker_before.cpu_s;
    b["cpu_s_hold"] = r.broker_after.cpu_s - c.broker_ramp.cpu_s;
    j["broker"] = b;
  } else {
    j["broker"] = nullptr;
  }
  j["bench_cpu_s"] = r.bench_cpu_s;
  j["bench_cpu_ramp_s"] = c.bench_cpu_ramp_s;
  j["bench_cpu_hold_s"] = c.bench_cpu_hold_s;
  j["warnings"] = r.warnings;
  std::fprintf(out, "%s\n", j.dump().c_str());
}

}  // namespace

void PrintText(const Report& r, std::FILE* out) {
  if (r.im) return PrintImText(r, out);
  if (r.conns) return PrintConnsText(r, out);
  const Options& o = r.opts;
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::fprintf(out, "parley-bench %s -> %s:%u  MQTT %s, QoS %d, %u B payload, %u publisher%s, %u subscriber%s, "
               "window %u, rate %s, %u thread%s\n",
               o.scenario.c_str(), o.host.c_str(), o.port, o.mqtt_version == 5 ? "5" : "3.1.1", o.qos, o.payload,
               o.publishers, o.publishers == 1 ? "" : "s", o.subscribers, o.subscribers == 1 ? "" : "s",
               r.window, RateText(o.rate).c_str(), o.threads, o.threads == 1 ? "" : "s");
  std::fprintf(out, "  %-12s setup %.2f s, publishing %.2f s (stop reason: %s), drain %.2f s (%s)\n", "time", r.setup_s,
               r.publish_s, r.stop_reason.c_str(), r.drain_s, r.drained ? "complete" : "incomplete");
  std::fprintf(out, "  %-12s %llu sent, %llu acked, %llu refused, %llu unacked   %.0f acked/s\n", "publishes", u(r.sent),
               u(r.acked), u(r.rejected), u(r.unacked), r.acked_per_s);
  if (o.qos > 0) PrintLatency("ack latency", r.ack_latency, out);
  std::fprintf(out, "  %-12s %llu of %llu owed%s, %llu duplicate, %llu reordered, %llu stale   %.0f deliveries/s\n",
               "deliveries", u(r.delivered), u(r.expected), r.shared ? " (once per message, to the group)" : "",
               u(r.duplicates), u(r.reordered), u(r.stale), r.delivered_per_s);
  if (r.shared) {
    const Report::Shared& sh = *r.shared;
    std::fprintf(out, "  %-12s $share/%s, %u members: %llu to %llu messages per member; %llu copies reached a "
                 "second member\n", "group", sh.group.c_str(), o.subscribers, u(sh.min), u(sh.max),
                 u(sh.duplicates_across));
  }
  PrintLatency("e2e latency", r.e2e_latency, out);
  if (r.shared) {
    std::fprintf(out, "  %-12s %llu acked messages no member received%s\n", "lost", u(r.lost),
                 o.qos == 0 ? " — QoS 0: counted against messages sent" : "");
  } else {
    std::fprintf(out, "  %-12s %llu owed deliveries missing (%llu distinct messages)%s\n", "lost", u(r.lost),
                 u(r.lost_messages), o.qos == 0 ? " — QoS 0: counted against messages sent" : "");
  }
  if (!r.missing_examples.empty()) {
    std::string ex;
    for (const auto& m : r.missing_examples) {
      ex += " " + m.subscriber + "<-pub" + std::to_string(m.publisher) + "#" + std::to_string(m.seq);
    }
    std::fprintf(out, "  %-12s first missing (sequence numbers of %llu sent per publisher on average):%s\n", "",
                 u(r.sent / (o.publishers ? o.publishers : 1)), ex.c_str());
  }
  if (r.has_broker) {
    double cpu = r.broker_after.cpu_s - r.broker_before.cpu_s;
    double per_m = r.acked > 0 ? cpu / static_cast<double>(r.acked) * 1e6 : 0;
    std::fprintf(out, "  %-12s pid %d: %.2f CPU s (%.2f per million acked), RSS %.1f MB (before %.1f, peak %.1f)\n",
                 "broker", o.broker_pid, cpu, per_m, r.broker_after.rss_mb, r.broker_before.rss_mb,
                 r.broker_after.hwm_mb);
  }
  std::fprintf(out, "  %-12s %.2f CPU s\n", "bench", r.bench_cpu_s);
  for (const std::string& w : r.warnings) std::fprintf(out, "  warning: %s\n", w.c_str());
}

void PrintJson(const Report& r, std::FILE* out) {
  if (r.conns) return PrintConnsJson(r, out);
  const Options& o = r.opts;
  nlohmann::ordered_json j;
  j["scenario"] = o.scenario;
  j["host"] = o.host;
  j["port"] = o.port;
  j["mqtt_version"] = o.mqtt_version == 5 ? "5" : "3.1.1";
  j["qos"] = o.qos;
  j["payload_bytes"] = o.payload;
  j["publishers"] = o.publishers;
  j["subscribers"] = o.subscribers;
  j["inflight"] = o.inflight;
  j["window"] = r.window;
  j["rate"] = o.rate;
  j["threads"] = o.threads;
  j["source"] = o.source;
  j["run_id"] = r.run_id;
  j["setup_s"] = r.setup_s;
  j["publish_s"] = r.publish_s;
  j["drain_s"] = r.drain_s;
  j["stop_reason"] = r.stop_reason;
  j["drained"] = r.drained;
  j["sent"] = r.sent;
  j["acked"] = r.acked;
  j["refused"] = r.rejected;
  j["unacked"] = r.unacked;
  j["sent_per_s"] = r.sent_per_s;
  j["acked_per_s"] = r.acked_per_s;
  j["last_ack_s"] = r.last_ack_s;
  j["ack_latency"] = Latency(r.ack_latency);
  j["owed"] = r.expected;
  j["delivered"] = r.delivered;
  j["duplicates"] = r.duplicates;
  j["reordered"] = r.reordered;
  j["stale"] = r.stale;
  j["unexpected"] = r.unexpected;
  j["delivered_per_s"] = r.delivered_per_s;
  j["last_delivery_s"] = r.last_delivery_s;
  j["e2e_latency"] = Latency(r.e2e_latency);
  j["lost"] = r.lost;
  j["lost_messages"] = r.lost_messages;
  nlohmann::ordered_json ex = nlohmann::ordered_json::array();
  for (const auto& m : r.missing_examples) {
    ex.push_back({{"subscriber", m.subscriber}, {"publisher", m.publisher}, {"seq", m.seq}});
  }
  j["missing_examples"] = ex;
  if (r.shared) {
    const Report::Shared& sh = *r.shared;
    nlohmann::ordered_json g;
    g["group"] = sh.group;
    g["members"] = o.subscribers;
    g["per_subscriber_min"] = sh.min;
    g["per_subscriber_max"] = sh.max;
    g["duplicates_across_members"] = sh.duplicates_across;
    g["per_subscriber"] = sh.per_subscriber;
    j["shared"] = g;
  }
  if (r.has_broker) {
    double cpu = r.broker_after.cpu_s - r.broker_before.cpu_s;
    nlohmann::ordered_json b;
    b["pid"] = o.broker_pid;
    b["cpu_s"] = cpu;
    b["cpu_s_per_million"] = r.acked > 0 ? cpu / static_cast<double>(r.acked) * 1e6 : 0.0;
    b["rss_mb_before"] = r.broker_before.rss_mb;
    b["rss_mb"] = r.broker_after.rss_mb;
    b["rss_peak_mb"] = r.broker_after.hwm_mb;
    j["broker"] = b;
  } else {
    j["broker"] = nullptr;
  }
  j["bench_cpu_s"] = r.bench_cpu_s;
  if (r.im) {
    const Report::Im& im = *r.im;
    nlohmann::ordered_json m;
    m["senders"] = im.senders;
    m["receivers"] = im.receivers;
    m["conversations"] = im.conversations;
    if (o.scenario == "im-direct") m["pairs"] = o.pairs;
    if (o.scenario == "im-group") {
      m["members"] = im.members;
      m["online"] = im.online;
    }
    m["duplicate_acks"] = im.duplicate_acks;
    m["refusals"] = im.refusals;
    m["received_unacked"] = im.received_unacked;
    m["other_events"] = im.other_events;
    m["e2e_stalls"] = im.e2e_stalls;
    if (o.scenario == "im-sync") {
      m["backlog"] = im.backlog;
      m["page"] = o.page;
      m["preload_s"] = im.preload_s;
      m["synced"] = im.synced;
      m["connect_ms"] = im.connect_ms;
      m["sync_ms"] = im.sync_ms;
      m["total_ms"] = im.connect_ms + im.sync_ms;
      m["sync_requests"] = im.sync_requests;
      m["history_requests"] = im.history_requests;
      m["requests"] = im.sync_requests + im.history_requests;
      m["bytes_received"] = im.bytes_received;
      m["payload_bytes"] = im.payload_bytes;
      m["entries_received"] = im.messages_received;
      m["request_latency"] = Latency(im.request_latency);
      if (im.sync_broker_cpu_known) {
        m["sync_broker_cpu_s"] = im.sync_broker_cpu_s;
      } else {
        m["sync_broker_cpu_s"] = nullptr;
      }
    }
    j["im"] = m;
  }
  j["warnings"] = r.warnings;
  std::fprintf(out, "%s\n", j.dump().c_str());
}

}  // namespace parley::bench
