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

}  // namespace

void PrintText(const Report& r, std::FILE* out) {
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
  std::fprintf(out, "  %-12s %llu of %llu owed, %llu duplicate, %llu reordered, %llu stale   %.0f deliveries/s\n",
               "deliveries", u(r.delivered), u(r.expected), u(r.duplicates), u(r.reordered), u(r.stale),
               r.delivered_per_s);
  PrintLatency("e2e latency", r.e2e_latency, out);
  std::fprintf(out, "  %-12s %llu owed deliveries missing (%llu distinct messages)%s\n", "lost", u(r.lost),
               u(r.lost_messages), o.qos == 0 ? " — QoS 0: counted against messages sent" : "");
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
  j["warnings"] = r.warnings;
  std::fprintf(out, "%s\n", j.dump().c_str());
}

}  // namespace parley::bench
