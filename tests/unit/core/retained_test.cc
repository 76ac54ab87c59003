// MemoryRetainedStore: set / replace / clear, pruning, wildcard matching (MQTT 4.7 with '$' rules),
// the message limit, and a randomized comparison with a brute-force matcher.
#include "broker/core/retained.h"

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "tests/unit/core/test_util.h"

namespace parley::broker {
namespace {

using testing::BruteMatch;
using testing::Msg;

// topic -> payload of every retained message matching `filter`; fails on a topic reported twice.
std::map<std::string, std::string> Matching(const MemoryRetainedStore& store, std::string_view filter) {
  std::map<std::string, std::string> out;
  store.Match(filter, [&](const MessagePtr& m) { CHECK(out.emplace(m->topic, m->payload).second); });
  return out;
}

using M = std::map<std::string, std::string>;

TEST_CASE("retained: set, replace, clear") {
  MemoryRetainedStore store;
  CHECK(store.Count() == 0);
  CHECK(Matching(store, "#").empty());

  CHECK(store.Set(Msg("a/b", "1")));
  CHECK(store.Count() == 1);
  CHECK(Matching(store, "a/b") == M{{"a/b", "1"}});

  CHECK(store.Set(Msg("a/b", "2")));  // replace
  CHECK(store.Count() == 1);
  CHECK(Matching(store, "a/b") == M{{"a/b", "2"}});

  // The stored message is the one passed in (shared, not copied), with its QoS.
  auto m = Msg("q", "x", 2, true);
  CHECK(store.Set(m));
  int seen = 0;
  store.Match("q", [&](const MessagePtr& got) {
    CHECK(got == m);
    CHECK(got->qos == 2);
    ++seen;
  });
  CHECK(seen == 1);

  CHECK(store.Set(Msg("a/b", "")));  // an empty payload clears
  CHECK(store.Count() == 1);
  CHECK(Matching(store, "a/b").empty());
  CHECK(Matching(store, "#") == M{{"q", "x"}});

  // Clearing what is not there changes nothing.
  CHECK(store.Set(Msg("a/b", "")));
  CHECK(store.Set(Msg("never/set", "")));
  CHECK(store.Set(Msg("q/deeper", "")));
  CHECK(store.Count() == 1);
  CHECK(Matching(store, "q") == M{{"q", "x"}});
}

TEST_CASE("retained: clearing prunes only what is empty") {
  MemoryRetainedStore store;
  store.Set(Msg("a/b", "ab"));
  store.Set(Msg("a/b/c", "abc"));
  store.Set(Msg("a/b/c/d", "abcd"));
  CHECK(store.Count() == 3);

  store.Set(Msg("a/b/c", ""));  // interior node: keeps its child
  CHECK(store.Count() == 2);
  CHECK(Matching(store, "#") == M{{"a/b", "ab"}, {"a/b/c/d", "abcd"}});
  CHECK(Matching(store, "a/b/c/#") == M{{"a/b/c/d", "abcd"}});

  store.Set(Msg("a/b/c/d", ""));  // leaf: its empty parents go, "a/b" stays
  CHECK(store.Count() == 1);
  CHECK(Matching(store, "#") == M{{"a/b", "ab"}});
  CHECK(Matching(store, "a/b/#") == M{{"a/b", "ab"}});
  CHECK(Matching(store, "a/b/+").empty());
  CHECK(Matching(store, "a/b/+/+").empty());

  store.Set(Msg("a/b", ""));
  CHECK(store.Count() == 0);
  CHECK(Matching(store, "#").empty());
  CHECK(Matching(store, "+/+").empty());

  // Pruned paths can be used again.
  store.Set(Msg("a/b/c/d", "again"));
  CHECK(Matching(store, "a/+/c/#") == M{{"a/b/c/d", "again"}});
  CHECK(store.Count() == 1);
}

TEST_CASE("retained: wildcard matching") {
  MemoryRetainedStore store;
  for (const char* t : {"a", "a/b", "a/c", "a/b/c", "b/b", "/x", "/", "a//c", "$SYS/x", "$SYS", "x/$y"})
    store.Set(Msg(t, t));

  CHECK(Matching(store, "a") == M{{"a", "a"}});
  CHECK(Matching(store, "a/b") == M{{"a/b", "a/b"}});
  CHECK(Matching(store, "nope").empty());
  CHECK(Matching(store, "a/b/c/d").empty());

  CHECK(Matching(store, "+") == M{{"a", "a"}});
  CHECK(Matching(store, "a/+") == M{{"a/b", "a/b"}, {"a/c", "a/c"}});
  CHECK(Matching(store, "+/b") == M{{"a/b", "a/b"}, {"b/b", "b/b"}});
  CHECK(Matching(store, "+/+") ==
        M{{"a/b", "a/b"}, {"a/c", "a/c"}, {"b/b", "b/b"}, {"/x", "/x"}, {"/", "/"}, {"x/$y", "x/$y"}});
  CHECK(Matching(store, "/+") == M{{"/x", "/x"}, {"/", "/"}});
  CHECK(Matching(store, "a/+/c") == M{{"a/b/c", "a/b/c"}, {"a//c", "a//c"}});

  // "a/#" matches "a" itself and everything below.
  CHECK(Matching(store, "a/#") == M{{"a", "a"}, {"a/b", "a/b"}, {"a/c", "a/c"}, {"a/b/c", "a/b/c"}, {"a//c", "a//c"}});
  CHECK(Matching(store, "a/b/#") == M{{"a/b", "a/b"}, {"a/b/c", "a/b/c"}});
  CHECK(Matching(store, "+/#").size() == 9);  // all but the two '$SYS' topics

  // '$' topics: not matched by a leading wildcard, matched by an explicit first level.
  auto all = Matching(store, "#");
  CHECK(all.size() == 9);
  CHECK(all.count("$SYS/x") == 0);
  CHECK(all.count("$SYS") == 0);
  CHECK(all.count("x/$y") == 1);  // only the first level counts
  CHECK(Matching(store, "+/x") == M{{"/x", "/x"}});
  CHECK(Matching(store, "$SYS/#") == M{{"$SYS", "$SYS"}, {"$SYS/x", "$SYS/x"}});
  CHECK(Matching(store, "$SYS/+") == M{{"$SYS/x", "$SYS/x"}});
  CHECK(Matching(store, "$SYS") == M{{"$SYS", "$SYS"}});
}

TEST_CASE("retained: max_messages refuses new topics but allows replacing and clearing") {
  MemoryRetainedStore store(2);
  CHECK(store.Set(Msg("a", "1")));
  CHECK(store.Set(Msg("b/c", "1")));
  CHECK_FALSE(store.Set(Msg("c", "1")));  // full
  CHECK_FALSE(store.Set(Msg("b/c/d", "1")));
  CHECK(store.Count() == 2);
  CHECK(Matching(store, "c").empty());
  CHECK(Matching(store, "#") == M{{"a", "1"}, {"b/c", "1"}});

  CHECK(store.Set(Msg("a", "2")));  // replacing an existing topic is fine when full
  CHECK(Matching(store, "a") == M{{"a", "2"}});
  CHECK(store.Count() == 2);
  CHECK(store.Set(Msg("zzz", "")));  // clearing an absent topic is not refused

  CHECK(store.Set(Msg("a", "")));  // clearing frees a slot
  CHECK(store.Count() == 1);
  CHECK(store.Set(Msg("c", "1")));
  CHECK(store.Count() == 2);
  CHECK(Matching(store, "#") == M{{"b/c", "1"}, {"c", "1"}});
}

TEST_CASE("retained: randomized comparison with a brute-force matcher") {
  std::mt19937 rng(4242);
  static const char* kLevels[] = {"a", "b", "c", "", "$x", "$SYS"};
  auto random_topic = [&] {
    const int n = 1 + static_cast<int>(rng() % 4);
    std::string t;
    for (int i = 0; i < n; ++i) {
      if (i) t += '/';
      t += kLevels[rng() % std::size(kLevels)];
    }
    return t;
  };
  auto random_filter = [&] {
    const int n = 1 + static_cast<int>(rng() % 4);
    std::string f;
    for (int i = 0; i < n; ++i) {
      if (i) f += '/';
      const unsigned r = rng() % 10;
      if (i == n - 1 && r < 2) {
        f += '#';
      } else if (r < 5) {
        f += '+';
      } else {
        f += kLevels[rng() % std::size(kLevels)];
      }
    }
    return f;
  };

  constexpr uint32_t kMax = 60;
  MemoryRetainedStore store(kMax);
  std::map<std::string, std::string> model;
  for (int step = 0; step < 4000; ++step) {
    const std::string topic = random_topic();
    if (rng() % 3 == 0) {
      CHECK(store.Set(Msg(topic, "")));
      model.erase(topic);
    } else {
      const std::string payload = std::to_string(step);
      const bool fits = model.count(topic) || model.size() < kMax;
      CHECK(store.Set(Msg(topic, payload)) == fits);
      if (fits) model[topic] = payload;
    }
    REQUIRE(store.Count() == model.size());
    if (step % 10 == 0) {
      const std::string filter = random_filter();
      CAPTURE(filter);
      M want;
      for (auto& [t, p] : model)
        if (BruteMatch(filter, t)) want.emplace(t, p);
      REQUIRE(Matching(store, filter) == want);
    }
  }
}

}  // namespace
}  // namespace parley::broker
