// Micro-benchmarks of the subscription tree (broker/core/topic_tree.h, its public header only):
//   MatchPublish  receivers of one PUBLISH (TopicTree::Collect) in trees of 1,000 and 100,000
//                 subscriptions, one session each, filters mixed as in TopicSpace below; publish topics
//                 drawn from the same topic space
//   Churn         SUBSCRIBE then UNSUBSCRIBE of one more session in those trees (one item = the pair)
//   FanOut        one topic matched by 10,000 subscribers: all on one filter, or spread over an exact, a
//                 '+' and a '#' filter (Collect then merges overlaps: a sort of every hit); with and
//                 without a subscription identifier on each subscription (one small vector per receiver)
//   HotChurn      SUBSCRIBE + UNSUBSCRIBE on the topic those 10,000 share (the indexed subscriber list)
//
// Counters: items/s (publishes matched, or subscribe/unsubscribe pairs; FanOut: receivers), matches/op
// (receivers per publish, counted, not assumed) and allocs/op. Trees are built once per process and shared
// by the cases that use them; the churn cases check that they leave the tree as they found it. Run with
// scripts/microbench.sh.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "broker/core/session.h"
#include "broker/core/topic_tree.h"
#include "tests/unit/bench_util.h"

namespace parley::broker {
namespace {

using testing::AllocsPerOp;

SessionPtr NewSession(uint64_t n) {
  auto s = std::make_shared<Session>("client-" + std::to_string(n), n);
  s->online_.store(true);
  return s;
}

mqtt::SubscribeOptions Qos1() {
  mqtt::SubscribeOptions o;
  o.qos = 1;
  return o;
}

// The topic space: "site/<s>/dev/<d>/<metric>", 100 devices per site, 4 metrics, one device per two
// subscriptions. A tree of N subscriptions then has the same mix at every size, so a publish matches
// about as many subscribers in the 100,000 tree as in the 1,000 one and only the tree's size differs:
//   70 %  exact                 site/<s>/dev/<d>/<m>
//   10 %  '+' device level      site/<s>/dev/+/<m>
//    5 %  '+' site level        site/+/dev/<d>/<m>
//    5 %  '#' under a device    site/<s>/dev/<d>/#
//    5 %  '#' under a site      site/<s>/#
//    5 %  share group           $share/g<k>/site/<s>/dev/+/<m>   (4 groups)
class TopicSpace {
 public:
  explicit TopicSpace(size_t subscriptions)
      : devices_(std::max<size_t>(subscriptions / 2, 100)), sites_(devices_ / 100) {}

  std::string Topic(std::mt19937_64& rng) const { return Prefix(Site(rng), Device(rng)) + Metric(rng); }

  std::string Filter(std::mt19937_64& rng) const {
    const uint64_t kind = rng() % 100;
    const size_t s = Site(rng), d = Device(rng);
    const std::string m = Metric(rng);
    if (kind < 70) return Prefix(s, d) + m;
    if (kind < 80) return "site/" + std::to_string(s) + "/dev/+/" + m;
    if (kind < 85) return "site/+/dev/" + std::to_string(d) + "/" + m;
    if (kind < 90) return Prefix(s, d) + "#";
    if (kind < 95) return "site/" + std::to_string(s) + "/#";
    return "$share/g" + std::to_string(rng() % 4) + "/site/" + std::to_string(s) + "/dev/+/" + m;
  }

 private:
  size_t Site(std::mt19937_64& rng) const { return rng() % sites_; }
  size_t Device(std::mt19937_64& rng) const { return rng() % devices_; }
  static std::string Metric(std::mt19937_64& rng) {
    static const char* const kMetrics[] = {"temp", "hum", "state", "cmd"};
    return kMetrics[rng() % 4];
  }
  static std::string Prefix(size_t s, size_t d) {
    return "site/" + std::to_string(s) + "/dev/" + std::to_string(d) + "/";
  }

  size_t devices_;
  size_t sites_;
};

constexpr size_t kTopics = 4096;  // publish topics (and churn filters) cycled through by each case

struct MixedTree {
  TopicTree tree;
  std::vector<SessionPtr> sessions;
  std::vector<std::string> topics;         // to publish to
  std::vector<std::string> churn_filters;  // to subscribe and unsubscribe
};

// The tree of `n` subscriptions, built on first use and kept for the process.
MixedTree& Mixed(size_t n) {
  static std::map<size_t, std::unique_ptr<MixedTree>> trees;
  auto& slot = trees[n];
  if (slot) return *slot;
  slot = std::make_unique<MixedTree>();
  const TopicSpace space(n);
  std::mt19937_64 rng(n);  // fixed seed per size: the same tree every run
  slot->sessions.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    slot->sessions.push_back(NewSession(i));
    slot->tree.Subscribe(slot->sessions.back(), space.Filter(rng), Qos1(), 0);
  }
  for (size_t i = 0; i < kTopics; ++i) slot->topics.push_back(space.Topic(rng));
  for (size_t i = 0; i < kTopics; ++i) slot->churn_filters.push_back(space.Filter(rng));
  return *slot;
}

void MatchPublish(benchmark::State& state) {
  MixedTree& m = Mixed(static_cast<size_t>(state.range(0)));
  std::vector<Match> out;
  size_t i = 0, matches = 0;
  AllocsPerOp allocs;
  for (auto _ : state) {
    out.clear();
    m.tree.Collect(m.topics[i++ % kTopics], "publisher", &out);
    matches += out.size();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  allocs.Report(state);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["matches/op"] =
      benchmark::Counter(static_cast<double>(matches), benchmark::Counter::kAvgIterations);
}
BENCHMARK(MatchPublish)->ArgName("subs")->Arg(1000)->Arg(100000);

void Churn(benchmark::State& state) {
  MixedTree& m = Mixed(static_cast<size_t>(state.range(0)));
  std::vector<SessionPtr> pool;  // sessions not otherwise in the tree
  for (uint64_t k = 0; k < 64; ++k) pool.push_back(NewSession(1'000'000'000 + k));
  const size_t before = m.tree.SubscriptionCount();
  size_t i = 0;
  AllocsPerOp allocs;
  for (auto _ : state) {
    const SessionPtr& s = pool[i % pool.size()];
    const std::string& f = m.churn_filters[i++ % kTopics];
    bool existed = m.tree.Subscribe(s, f, Qos1(), 0);
    bool removed = m.tree.Unsubscribe(s.get(), f);
    benchmark::DoNotOptimize(existed);
    if (existed || !removed) {
      state.SkipWithError("subscribe/unsubscribe pair misbehaved");
      break;
    }
  }
  allocs.Report(state);
  if (m.tree.SubscriptionCount() != before) state.SkipWithError("churn left the tree changed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(Churn)->ArgName("subs")->Arg(1000)->Arg(100000);

// --- one topic, 10,000 subscribers ---

constexpr size_t kFanOut = 10'000;
constexpr const char* kBroadcast = "broadcast/eu-west/all";

struct FanOutTree {
  TopicTree tree;
  std::vector<SessionPtr> sessions;
};

// spread 0: every subscriber on kBroadcast. spread 1: a third each on kBroadcast, "broadcast/+/all" and
// "broadcast/#". sub_ids: each subscription carries an identifier (5.0), so each receiver gets a list.
FanOutTree& FanOutOf(bool spread, bool sub_ids) {
  static std::map<int, std::unique_ptr<FanOutTree>> trees;
  auto& slot = trees[spread * 2 + sub_ids];
  if (slot) return *slot;
  slot = std::make_unique<FanOutTree>();
  const char* const filters[] = {kBroadcast, "broadcast/+/all", "broadcast/#"};
  for (size_t i = 0; i < kFanOut; ++i) {
    slot->sessions.push_back(NewSession(i));
    slot->tree.Subscribe(slot->sessions.back(), spread ? filters[i % 3] : kBroadcast, Qos1(),
                         sub_ids ? static_cast<uint32_t>(i % 1000 + 1) : 0);
  }
  return *slot;
}

void FanOut(benchmark::State& state) {
  FanOutTree& f = FanOutOf(state.range(0) != 0, state.range(1) != 0);
  std::vector<Match> out;
  size_t matches = 0;
  AllocsPerOp allocs;
  for (auto _ : state) {
    out.clear();
    f.tree.Collect(kBroadcast, "publisher", &out);
    matches += out.size();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  allocs.Report(state);
  if (state.iterations() && matches != state.iterations() * kFanOut)
    state.SkipWithError("wrong receiver count");
  state.SetItemsProcessed(static_cast<int64_t>(matches));
  state.counters["matches/op"] =
      benchmark::Counter(static_cast<double>(matches), benchmark::Counter::kAvgIterations);
}
BENCHMARK(FanOut)
    ->ArgNames({"spread", "subid"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

void HotChurn(benchmark::State& state) {
  FanOutTree& f = FanOutOf(false, false);
  std::vector<SessionPtr> pool;
  for (uint64_t k = 0; k < 64; ++k) pool.push_back(NewSession(2'000'000'000 + k));
  size_t i = 0;
  AllocsPerOp allocs;
  for (auto _ : state) {
    const SessionPtr& s = pool[i++ % pool.size()];
    bool existed = f.tree.Subscribe(s, kBroadcast, Qos1(), 0);
    bool removed = f.tree.Unsubscribe(s.get(), kBroadcast);
    benchmark::DoNotOptimize(existed);
    if (existed || !removed) {
      state.SkipWithError("subscribe/unsubscribe pair misbehaved");
      break;
    }
  }
  allocs.Report(state);
  if (f.tree.SubscriptionCount() != kFanOut) state.SkipWithError("churn left the tree changed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(HotChurn);

}  // namespace
}  // namespace parley::broker
