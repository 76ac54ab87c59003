#include "base/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

namespace parley::metrics {

// ---- Histogram

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // The first bound >= value: bucket i holds (bounds[i-1], bounds[i]]; past the last bound, the +Inf slot.
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  if (value > 0) sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(value * 1e6)), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

HistogramSample Histogram::Snapshot(Labels labels) const {
  HistogramSample h;
  h.labels = std::move(labels);
  h.bounds = bounds_;
  h.buckets.resize(bounds_.size());
  uint64_t in_buckets = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    const uint64_t n = buckets_[i].load(std::memory_order_relaxed);
    if (i < bounds_.size()) h.buckets[i] = n;
    in_buckets += n;
  }
  // Observe counts the bucket first: a racing snapshot may see it there and not yet in count_. Taking the
  // larger keeps the +Inf bucket (= count) at or above every cumulative bucket, as Prometheus requires.
  h.count = std::max(count_.load(std::memory_order_relaxed), in_buckets);
  h.sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
  return h;
}

std::vector<double> LatencyBounds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

// ---- Registry

namespace {

bool Contains(const Labels& labels, const Labels& match) {
  for (const auto& m : match) {
    bool found = false;
    for (const auto& l : labels) {
      if (l.first == m.first) {
        found = l.second == m.second;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

// Families with the same name folded into the first one, in order of first appearance.
std::vector<Family> Merge(std::vector<Family> in) {
  std::vector<Family> out;
  std::unordered_map<std::string, size_t> at;
  out.reserve(in.size());
  for (Family& f : in) {
    auto [it, fresh] = at.emplace(f.name, out.size());
    if (fresh) {
      out.push_back(std::move(f));
      continue;
    }
    Family& into = out[it->second];
    for (Sample& s : f.samples) into.samples.push_back(std::move(s));
    for (HistogramSample& h : f.histograms) into.histograms.push_back(std::move(h));
  }
  return out;
}

}  // namespace

void Registry::Add(Collector collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::vector<Family> Registry::Collect() const {
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;  // run them unlocked: a collector may take a while (it walks sessions)
  }
  std::vector<Family> all;
  for (const Collector& c : collectors) c(all);
  return Merge(std::move(all));
}

// ---- Text format

namespace {

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    // Integral values (counts, bytes) print as integers; the rest in the shortest form that reads back exactly.
    std::to_chars_result r = std::abs(v) < 9.0e15 && v == std::trunc(v)
                                 ? std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v))
                                 : std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
  }
}

void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"':
        if (quote) {
          out += "\\\"";
          break;
        }
        [[fallthrough]];
      default: out += c;
    }
  }
}

// {a="x",b="y"} (nothing for no labels), with `extra` (le) last.
void AppendLabels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    AppendEscaped(out, value, true);
    out += '"';
  };
  for (const auto& [name, value] : labels) one(name, value);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out += '}';
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string RenderPrometheus(const std::vector<Family>& in) {
  std::string out;
  out.reserve(4096);
  const std::vector<Family> families = Merge(in);
  for (const Family& f : families) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    AppendEscaped(out, f.help, false);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += TypeName(f.type);
    out += '\n';
    if (f.type != Type::kHistogram) {
      for (const Sample& s : f.samples) {
        out += f.name;
        AppendLabels(out, s.labels);
        out += ' ';
        AppendNumber(out, s.value);
        out += '\n';
      }
      continue;
    }
    for (const HistogramSample& h : f.histograms) {
      uint64_t cumulative = 0;
      std::string le;
      for (size_t i = 0; i < h.bounds.size(); ++i) {
        cumulative += i < h.buckets.size() ? h.buckets[i] : 0;
        le.clear();
        AppendNumber(le, h.bounds[i]);
        out += f.name;
        out += "_bucket";
        AppendLabels(out, h.labels, "le", le);
        out += ' ';
        AppendNumber(out, static_cast<double>(cumulative));
        out += '\n';
      }
      out += f.name;
      out += "_bucket";
      AppendLabels(out, h.labels, "le", "+Inf");
      out += ' ';
      AppendNumber(out, static_cast<double>(std::max(h.count, cumulative)));
      out += '\n';
      out += f.name;
      out += "_sum";
      AppendLabels(out, h.labels);
      out += ' ';
      AppendNumber(out, h.sum);
      out += '\n';
      out += f.name;
      out += "_count";
      AppendLabels(out, h.labels);
      out += ' ';
      AppendNumber(out, static_cast<double>(std::max(h.count, cumulative)));
      out += '\n';
    }
  }
  return out;
}

// ---- Queries

const Family* Find(const std::vector<Family>& families, std::string_view name) {
  for (const Family& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

namespace {

// Calls fn(value) for every matching series of every family named `name` (a histogram's value is its count).
template <typename Fn>
bool ForEachMatch(const std::vector<Family>& families, std::string_view name, const Labels& match, Fn fn) {
  bool any = false;
  for (const Family& f : families) {
    if (f.name != name) continue;
    for (const Sample& s : f.samples) {
      if (!Contains(s.labels, match)) continue;
      any = true;
      fn(s.value);
    }
    for (const HistogramSample& h : f.histograms) {
      if (!Contains(h.labels, match)) continue;
      any = true;
      fn(static_cast<double>(h.count));
    }
  }
  return any;
}

}  // namespace

std::optional<double> Sum(const std::vector<Family>& families, std::string_view name, const Labels& match) {
  double sum = 0;
  if (!ForEachMatch(families, name, match, [&](double v) { sum += v; })) return std::nullopt;
  return sum;
}

std::optional<double> Max(const std::vector<Family>& families, std::string_view name, const Labels& match) {
  std::optional<double> best;
  ForEachMatch(families, name, match, [&](double v) {
    if (!best || v > *best) best = v;
  });
  return best;
}

std::optional<double> Quantile(const HistogramSample& h, double q) {
  uint64_t finite = 0;
  for (uint64_t b : h.buckets) finite += b;
  const uint64_t count = std::max(h.count, finite);
  if (count == 0 || std::isnan(q)) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(count);
  uint64_t below = 0;  // observations in the buckets before i
  for (size_t i = 0; i < h.bounds.size() && i < h.buckets.size(); ++i) {
    const uint64_t n = h.buckets[i];
    if (n > 0 && static_cast<double>(below + n) >= rank) {
      // Prometheus' histogram_quantile: the first bucket's lower edge is 0 (unless its bound is not positive).
      const double lower = i == 0 ? std::min(0.0, h.bounds[0]) : h.bounds[i - 1];
      const double upper = h.bounds[i];
      return lower + (upper - lower) * ((rank - static_cast<double>(below)) / static_cast<double>(n));
    }
    below += n;
  }
  // In the +Inf bucket: the highest finite bound is the best estimate there is.
  if (h.bounds.empty()) return std::nullopt;
  return h.bounds.back();
}

HistogramSample Subtract(const HistogramSample& later, const HistogramSample& earlier) {
  // Other bounds, or a reset in between (the process restarted): everything in `later` is new.
  if (later.bounds != earlier.bounds || later.count < earlier.count) return later;
  HistogramSample d;
  d.labels = later.labels;
  d.bounds = later.bounds;
  d.buckets.resize(later.buckets.size());
  for (size_t i = 0; i < later.buckets.size(); ++i) {
    const uint64_t e = i < earlier.buckets.size() ? earlier.buckets[i] : 0;
    d.buckets[i] = later.buckets[i] > e ? later.buckets[i] - e : 0;
  }
  d.count = later.count - earlier.count;
  d.sum = std::max(0.0, later.sum - earlier.sum);
  return d;
}

std::optional<HistogramSample> MergedHistogram(const std::vector<Family>& families, std::string_view name,
                                               const Labels& match) {
  std::optional<HistogramSample> merged;
  for (const Family& f : families) {
    if (f.name != name) continue;
    for (const HistogramSample& h : f.histograms) {
      if (!Contains(h.labels, match)) continue;
      if (!merged) {
        merged = h;
        merged->labels = match;
        merged->buckets.resize(h.bounds.size());
        continue;
      }
      if (h.bounds != merged->bounds) continue;  // not comparable: left out
      for (size_t i = 0; i < merged->buckets.size() && i < h.buckets.size(); ++i) merged->buckets[i] += h.buckets[i];
      merged->count += h.count;
      merged->sum += h.sum;
    }
  }
  return merged;
}

}  // namespace parley::metrics
