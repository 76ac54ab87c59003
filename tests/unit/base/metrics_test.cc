#include "base/metrics.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "base/process_metrics.h"

namespace parley::metrics {
namespace {

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_CASE("a histogram puts a value in the first bucket whose bound is at least the value") {
  Histogram h({1, 2, 5});
  h.Observe(0.5);
  h.Observe(1);    // on the bound: that bucket (le="1")
  h.Observe(1.5);
  h.Observe(5);
  h.Observe(7);    // above every bound: only in count (the +Inf bucket)
  h.Observe(NAN);  // ignored
  const HistogramSample s = h.Snapshot({{"op", "x"}});
  CHECK(s.labels == Labels{{"op", "x"}});
  CHECK(s.bounds == std::vector<double>{1, 2, 5});
  CHECK(s.buckets == std::vector<uint64_t>{2, 1, 1});
  CHECK(s.count == 5);
  CHECK(s.sum == doctest::Approx(15.0));
}

TEST_CASE("a histogram observed from several threads at once loses nothing") {
  Histogram h(LatencyBounds());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Observe(t == 0 ? 0.00001 : t == 1 ? 0.003 : t == 2 ? 0.7 : 100.0);
    });
  }
  // Snapshots taken meanwhile are always valid histograms: count covers every bucket.
  for (int i = 0; i < 100; ++i) {
    const HistogramSample s = h.Snapshot();
    uint64_t in_buckets = 0;
    for (uint64_t b : s.buckets) in_buckets += b;
    CHECK(s.count >= in_buckets);
  }
  for (auto& t : threads) t.join();
  const HistogramSample s = h.Snapshot();
  CHECK(s.count == kThreads * kPerThread);
  const std::vector<double> bounds = LatencyBounds();
  auto bucket_of = [&](double v) {
    return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
  };
  CHECK(s.buckets[bucket_of(0.00001)] == kPerThread);
  CHECK(s.buckets[bucket_of(0.003)] == kPerThread);
  CHECK(s.buckets[bucket_of(0.7)] == kPerThread);
  uint64_t finite = 0;
  for (uint64_t b : s.buckets) finite += b;
  CHECK(s.count - finite == kPerThread);  // the 100 s observations: past the last bound
  CHECK(s.sum == doctest::Approx(kPerThread * (0.00001 + 0.003 + 0.7 + 100.0)).epsilon(1e-6));
}

TEST_CASE("latency bounds rise from 50 us to 10 s") {
  const std::vector<double> b = LatencyBounds();
  CHECK(b.front() == doctest::Approx(0.00005));
  CHECK(b.back() == doctest::Approx(10));
  CHECK(std::is_sorted(b.begin(), b.end()));
  CHECK(std::adjacent_find(b.begin(), b.end()) == b.end());
}

TEST_CASE("the text format: HELP and TYPE, labels escaped, integers as integers") {
  std::vector<Family> fams;
  Family c{"parley_things_total", "Things \\ counted\nso far.", Type::kCounter, {}, {}};
  c.samples.push_back(Sample{{{"reason", "quote\" back\\slash\nnewline"}}, 3});
  c.samples.push_back(Sample{{{"reason", "plain"}, {"listener", "default"}}, 12345678901.0});
  fams.push_back(c);
  fams.push_back(Family{"parley_ratio", "A ratio.", Type::kGauge, {Sample{{}, 0.25}}, {}});
  fams.push_back(Family{"parley_odd", "Odd values.", Type::kGauge,
                        {Sample{{{"v", "nan"}}, NAN}, Sample{{{"v", "inf"}}, INFINITY}, Sample{{{"v", "ninf"}}, -INFINITY}},
                        {}});
  const std::string text = RenderPrometheus(fams);
  CHECK(text.find("# HELP parley_things_total Things \\\\ counted\\nso far.\n") != std::string::npos);
  CHECK(text.find("# TYPE parley_things_total counter\n") != std::string::npos);
  CHECK(text.find("parley_things_total{reason=\"quote\\\" back\\\\slash\\nnewline\"} 3\n") != std::string::npos);
  CHECK(text.find("parley_things_total{reason=\"plain\",listener=\"default\"} 12345678901\n") != std::string::npos);
  CHECK(text.find("# TYPE parley_ratio gauge\nparley_ratio 0.25\n") != std::string::npos);
  CHECK(text.find("parley_odd{v=\"nan\"} NaN\n") != std::string::npos);
  CHECK(text.find("parley_odd{v=\"inf\"} +Inf\n") != std::string::npos);
  CHECK(text.find("parley_odd{v=\"ninf\"} -Inf\n") != std::string::npos);
  CHECK(text.back() == '\n');
}

TEST_CASE("the text format: histograms as cumulative buckets, +Inf, _sum and _count") {
  Histogram h({0.001, 0.01, 0.1});
  for (double v : {0.0005, 0.0005, 0.005, 0.05, 0.05, 0.05, 3.0}) h.Observe(v);
  Family f{"parley_op_seconds", "How long.", Type::kHistogram, {}, {h.Snapshot({{"op", "send"}})}};
  const std::string text = RenderPrometheus({f});
  CHECK(text ==
        "# HELP parley_op_seconds How long.\n"
        "# TYPE parley_op_seconds histogram\n"
        "parley_op_seconds_bucket{op=\"send\",le=\"0.001\"} 2\n"
        "parley_op_seconds_bucket{op=\"send\",le=\"0.01\"} 3\n"
        "parley_op_seconds_bucket{op=\"send\",le=\"0.1\"} 6\n"
        "parley_op_seconds_bucket{op=\"send\",le=\"+Inf\"} 7\n"
        "parley_op_seconds_sum{op=\"send\"} 3.156\n"
        "parley_op_seconds_count{op=\"send\"} 7\n");
}

TEST_CASE("families of one name are merged: HELP and TYPE once, every sample kept") {
  std::vector<Family> fams;
  fams.push_back(Family{"parley_x_total", "X.", Type::kCounter, {Sample{{{"a", "1"}}, 1}}, {}});
  fams.push_back(Family{"parley_y", "Y.", Type::kGauge, {Sample{{}, 2}}, {}});
  fams.push_back(Family{"parley_x_total", "X again.", Type::kCounter, {Sample{{{"a", "2"}}, 5}}, {}});
  const std::string text = RenderPrometheus(fams);
  CHECK(Occurrences(text, "# HELP parley_x_total") == 1);
  CHECK(Occurrences(text, "# TYPE parley_x_total") == 1);
  CHECK(text.find("parley_x_total{a=\"1\"} 1\nparley_x_total{a=\"2\"} 5\n") != std::string::npos);
  CHECK(text.find("# HELP parley_x_total X.\n") != std::string::npos);  // the first one's help

  Registry r;
  r.Add([](std::vector<Family>& out) { out.push_back(Family{"parley_a", "A.", Type::kGauge, {Sample{{}, 1}}, {}}); });
  r.Add([](std::vector<Family>& out) {
    out.push_back(Family{"parley_b", "B.", Type::kGauge, {Sample{{}, 2}}, {}});
    out.push_back(Family{"parley_a", "A.", Type::kGauge, {Sample{{{"w", "1"}}, 3}}, {}});
  });
  const std::vector<Family> all = r.Collect();
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "parley_a");
  CHECK(all[0].samples.size() == 2);
  CHECK(all[1].name == "parley_b");
}

TEST_CASE("Sum and Max over matching samples; Find") {
  std::vector<Family> fams;
  fams.push_back(Family{"parley_conn", "C.", Type::kGauge,
                        {Sample{{{"listener", "a"}, {"version", "5.0"}}, 3}, Sample{{{"listener", "a"}, {"version", "3.1.1"}}, 4},
                         Sample{{{"listener", "b"}, {"version", "5.0"}}, 10}},
                        {}});
  CHECK(Find(fams, "parley_conn") == &fams[0]);
  CHECK(Find(fams, "parley_nope") == nullptr);
  CHECK(Sum(fams, "parley_conn") == 17);
  CHECK(Sum(fams, "parley_conn", {{"listener", "a"}}) == 7);
  CHECK(Sum(fams, "parley_conn", {{"listener", "a"}, {"version", "5.0"}}) == 3);
  CHECK_FALSE(Sum(fams, "parley_conn", {{"listener", "c"}}).has_value());
  CHECK_FALSE(Sum(fams, "parley_nope").has_value());
  CHECK(Max(fams, "parley_conn") == 10);
  CHECK(Max(fams, "parley_conn", {{"listener", "a"}}) == 4);
  CHECK_FALSE(Max(fams, "parley_nope").has_value());

  Histogram h({1});
  h.Observe(0.5);
  h.Observe(2);
  fams.push_back(Family{"parley_h", "H.", Type::kHistogram, {}, {h.Snapshot()}});
  CHECK(Sum(fams, "parley_h") == 2);  // a histogram's count
}

TEST_CASE("Quantile interpolates within the bucket, as histogram_quantile does") {
  HistogramSample h;
  h.bounds = {0.1, 0.2, 0.4};
  h.buckets = {10, 10, 0};
  h.count = 20;
  CHECK(Quantile(h, 0.5) == doctest::Approx(0.1));
  CHECK(Quantile(h, 0.25) == doctest::Approx(0.05));  // the first bucket starts at 0
  CHECK(Quantile(h, 0.75) == doctest::Approx(0.15));
  CHECK(Quantile(h, 1.0) == doctest::Approx(0.2));
  h.count = 40;  // 20 more above the last bound: the highest bound is the estimate there
  CHECK(Quantile(h, 0.99) == doctest::Approx(0.4));
  HistogramSample empty;
  empty.bounds = {1};
  empty.buckets = {0};
  CHECK_FALSE(Quantile(empty, 0.5).has_value());
}

TEST_CASE("Subtract gives the observations between two snapshots; MergedHistogram adds series") {
  Histogram h({0.01, 0.1, 1});
  for (int i = 0; i < 100; ++i) h.Observe(0.005);
  const HistogramSample before = h.Snapshot();
  for (int i = 0; i < 10; ++i) h.Observe(0.5);
  const HistogramSample after = h.Snapshot();
  const HistogramSample d = Subtract(after, before);
  CHECK(d.count == 10);
  CHECK(d.buckets == std::vector<uint64_t>{0, 0, 10});
  CHECK(d.sum == doctest::Approx(5.0));
  CHECK(Quantile(d, 0.99).value() > 0.1);  // the recent ones only: the old fast ones do not hide them
  CHECK(Quantile(after, 0.5).value() < 0.01);
  // A reset (fewer observations later): the later snapshot counts whole.
  CHECK(Subtract(before, after).count == before.count);

  Histogram a({1, 2}), b({1, 2}), other({5});
  a.Observe(0.5);
  b.Observe(1.5);
  b.Observe(1.5);
  other.Observe(3);
  std::vector<Family> fams;
  fams.push_back(Family{"parley_h", "H.", Type::kHistogram, {},
                        {a.Snapshot({{"w", "0"}}), b.Snapshot({{"w", "1"}}), other.Snapshot({{"w", "2"}})}});
  const auto m = MergedHistogram(fams, "parley_h");
  REQUIRE(m.has_value());
  CHECK(m->buckets == std::vector<uint64_t>{1, 2});
  CHECK(m->count == 3);  // "other" has other bounds: left out
  const auto only = MergedHistogram(fams, "parley_h", {{"w", "1"}});
  REQUIRE(only.has_value());
  CHECK(only->count == 2);
  CHECK_FALSE(MergedHistogram(fams, "parley_none").has_value());
}

TEST_CASE("process metrics read this process") {
  const ProcessStats s = ReadProcessStats();
  CHECK(s.resident_bytes > 0);
  CHECK(s.open_fds >= 3);  // stdin, stdout, stderr at least
  CHECK(s.cpu_seconds >= 0);
  std::vector<Family> out;
  CollectProcess(out);
  CHECK(Sum(out, "parley_process_resident_memory_bytes").value() > 0);
  CHECK(Sum(out, "parley_process_open_fds").value() >= 3);
  CHECK(Find(out, "parley_process_max_fds") != nullptr);
  REQUIRE(Find(out, "parley_process_cpu_seconds_total") != nullptr);
  CHECK(Find(out, "parley_process_cpu_seconds_total")->type == Type::kCounter);
}

}  // namespace
}  // namespace parley::metrics
