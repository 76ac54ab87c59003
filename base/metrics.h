// Metrics: what /metrics exposes in the Prometheus text format (docs/metrics.md) and what alert rules read.
//
// There is no global registry of live metric objects. Each module keeps its numbers where they are cheapest
// to update (per-worker Counters blocks, the storage executor, the IM writer) and registers a Collector that,
// when asked, reads them into plain Family values. A scrape, an alert evaluation or the admin API's JSON view
// all call Registry::Collect() and see the same families. Only latency distributions need a live object
// here: Histogram, a fixed-bucket lock-free histogram that any thread may observe into.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;  // name -> value, in output order

enum class Type : uint8_t { kCounter, kGauge, kHistogram };

struct Sample {
  Labels labels;
  double value = 0;
};

// One histogram series. `buckets[i]` counts observations <= bounds[i] and > bounds[i-1] (not cumulative;
// rendering accumulates); observations above the last bound are count - sum(buckets).
struct HistogramSample {
  Labels labels;
  std::vector<double> bounds;  // ascending upper bounds (the +Inf bucket is implied)
  std::vector<uint64_t> buckets;
  uint64_t count = 0;
  double sum = 0;
};

struct Family {
  std::string name;  // "parley_connections"; counters end in "_total", as Prometheus expects
  std::string help;  // one line
  Type type = Type::kGauge;
  std::vector<Sample> samples;               // kCounter, kGauge
  std::vector<HistogramSample> histograms;  // kHistogram
};

// A latency (or size) histogram with fixed bounds. Observe: any thread, lock-free (relaxed atomics: a
// concurrent snapshot may see an observation in `count` before its bucket). Snapshot: any thread.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  HistogramSample Snapshot(Labels labels = {}) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last one is +Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum * 1e6, so it can be one atomic integer
};

// Bounds for latencies in seconds: 50 µs .. 10 s, about three per decade.
std::vector<double> LatencyBounds();

// The modules' collectors. Add before serving; Collect from any thread (collectors must be thread-safe).
class Registry {
 public:
  using Collector = std::function<void(std::vector<Family>& out)>;
  void Add(Collector collector);
  // Every family of every collector, in registration order; families with the same name are merged.
  std::vector<Family> Collect() const;

 private:
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
};

// The Prometheus text exposition format 0.0.4: HELP and TYPE lines, label values escaped (\\, \", \n),
// histograms as cumulative _bucket{le=...}, _sum and _count. Content-Type: kPrometheusContentType.
std::string RenderPrometheus(const std::vector<Family>& families);
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// For alert rules and the admin API. The family named `name`, or null.
const Family* Find(const std::vector<Family>& families, std::string_view name);
// The sum of the family's samples whose labels include every pair of `match` (an empty match: all); for a
// histogram, the sum of its counts. nullopt when the family is absent or no sample matches.
std::optional<double> Sum(const std::vector<Family>& families, std::string_view name, const Labels& match = {});
// The largest matching sample value (e.g. the worst worker's loop lag).
std::optional<double> Max(const std::vector<Family>& families, std::string_view name, const Labels& match = {});
// Quantile q (0..1) of a histogram's observations, by linear interpolation within the bucket it falls in
// (Prometheus' histogram_quantile); `h` may be a difference of two snapshots (see Subtract). nullopt when empty.
std::optional<double> Quantile(const HistogramSample& h, double q);
// `later` - `earlier` bucket by bucket (the observations in between); same bounds required.
HistogramSample Subtract(const HistogramSample& later, const HistogramSample& earlier);
// The matching histogram series of family `name` merged into one (bucket counts added), or nullopt.
std::optional<HistogramSample> MergedHistogram(const std::vector<Family>& families, std::string_view name,
                                               const Labels& match = {});

}  // namespace parley::metrics
