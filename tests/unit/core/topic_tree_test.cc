// TopicTree: MQTT 5 section 4.7 matching, merging of overlapping subscriptions (3.3.4), No Local,
// unsubscribe and pruning, share groups (4.8.2), and a randomized comparison with a brute-force matcher.
#include "broker/core/topic_tree.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "tests/unit/core/test_util.h"

namespace parley::broker {
namespace {

using testing::BruteMatch;
using testing::MakeSession;

mqtt::SubscribeOptions Qos(uint8_t qos, bool no_local = false, bool rap = false) {
  mqtt::SubscribeOptions o;
  o.qos = qos;
  o.no_local = no_local;
  o.retain_as_published = rap;
  return o;
}

std::vector<Match> Collect(const TopicTree& tree, std::string_view topic, std::string_view origin = "") {
  std::vector<Match> out;
  tree.Collect(topic, origin, &out);
  return out;
}

struct Case {
  const char* filter;
  const char* topic;
  bool matches;
};

// MQTT 5.0 section 4.7.1.2, 4.7.1.3, 4.7.2 and 4.7.3 examples, plus edges around them.
constexpr Case kSpecCases[] = {
    // 4.7.1.2 multi-level wildcard
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"#", "sport", true},
    {"#", "sport/tennis/player1", true},
    {"#", "/finance", true},
    {"#", "/", true},
    // 4.7.1.3 single-level wildcard
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/golf", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"+/+", "/", true},
    {"/", "/", true},
    {"+/#", "sport", true},
    {"+/+/#", "sport", false},
    // 4.7.2 topics beginning with '$'
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/monitor", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor", false},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/#", "a/$SYS", true},  // '$' only matters at the first level
    {"a/+", "a/$x", true},
    // 4.7.3 topic semantics: case sensitive, spaces are ordinary characters, empty levels count
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"/finance", "finance", false},
};

TEST_CASE("topic tree: MQTT 4.7 matching table") {
  for (const Case& c : kSpecCases) {
    CAPTURE(c.filter);
    CAPTURE(c.topic);
    // The reference matcher must agree with the spec table, or the randomized test proves nothing.
    CHECK(BruteMatch(c.filter, c.topic) == c.matches);
    TopicTree tree;
    auto s = MakeSession("c");
    CHECK_FALSE(tree.Subscribe(s, c.filter, Qos(1), 0));
    auto out = Collect(tree, c.topic);
    CHECK(out.size() == (c.matches ? 1u : 0u));
    if (!out.empty()) {
      CHECK(out[0].session == s);
      CHECK(out[0].qos == 1);
      CHECK(out[0].shared_group == nullptr);
    }
  }
}

TEST_CASE("topic tree: all table filters in one tree") {
  // The same cases with every filter subscribed at once, one session per filter: each topic must reach
  // exactly the sessions whose filter matches it.
  TopicTree tree;
  std::vector<SessionPtr> sessions;
  for (const Case& c : kSpecCases) {
    sessions.push_back(MakeSession(c.filter));
    tree.Subscribe(sessions.back(), c.filter, Qos(0), 0);
  }
  std::set<std::string> topics;
  for (const Case& c : kSpecCases) topics.insert(c.topic);
  for (const std::string& topic : topics) {
    CAPTURE(topic);
    std::set<const Session*> want;
    for (size_t i = 0; i < std::size(kSpecCases); ++i)
      if (BruteMatch(kSpecCases[i].filter, topic)) want.insert(sessions[i].get());
    std::set<const Session*> got;
    for (const Match& m : Collect(tree, topic)) CHECK(got.insert(m.session.get()).second);
    CHECK(got == want);
  }
}

TEST_CASE("topic tree: overlapping subscriptions of one session merge into one match") {
  TopicTree tree;
  auto s = MakeSession("s");
  auto t = MakeSession("t");
  tree.Subscribe(s, "a/+", Qos(0), 1);
  tree.Subscribe(s, "a/#", Qos(2), 2);
  tree.Subscribe(s, "a/b", Qos(1), 0);  // no subscription id
  tree.Subscribe(s, "#", Qos(1, false, true), 3);
  tree.Subscribe(t, "a/b", Qos(1), 7);
  CHECK(tree.SubscriptionCount() == 5);

  auto out = Collect(tree, "a/b");
  REQUIRE(out.size() == 2);
  const Match& ms = out[0].session == s ? out[0] : out[1];
  const Match& mt = out[0].session == s ? out[1] : out[0];
  REQUIRE(ms.session == s);
  REQUIRE(mt.session == t);
  CHECK(ms.qos == 2);                      // the highest QoS of the matching subscriptions
  CHECK(ms.retain_as_published);           // any of them asked for it
  std::vector<uint32_t> ids = ms.sub_ids;  // every identifier, none for the one without
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint32_t>{1, 2, 3});
  CHECK(mt.qos == 1);
  CHECK(mt.sub_ids == std::vector<uint32_t>{7});
  CHECK_FALSE(mt.retain_as_published);

  // A topic only some of them match.
  out = Collect(tree, "a");
  REQUIRE(out.size() == 1);  // "a/#" and "#"
  CHECK(out[0].qos == 2);
  ids = out[0].sub_ids;
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint32_t>{2, 3});
}

TEST_CASE("topic tree: subscribing again replaces options") {
  TopicTree tree;
  auto s = MakeSession("s");
  CHECK_FALSE(tree.Subscribe(s, "a/b", Qos(0), 1));
  CHECK(tree.Subscribe(s, "a/b", Qos(2), 9));  // existed
  CHECK(tree.SubscriptionCount() == 1);
  auto out = Collect(tree, "a/b");
  REQUIRE(out.size() == 1);
  CHECK(out[0].qos == 2);
  CHECK(out[0].sub_ids == std::vector<uint32_t>{9});
}

TEST_CASE("topic tree: No Local skips only the publisher's own subscriptions") {
  TopicTree tree;
  auto me = MakeSession("me");
  auto other = MakeSession("other");
  tree.Subscribe(me, "a/+", Qos(1, /*no_local=*/true), 1);
  tree.Subscribe(other, "a/+", Qos(1, /*no_local=*/true), 2);

  auto out = Collect(tree, "a/b", "me");
  REQUIRE(out.size() == 1);
  CHECK(out[0].session == other);

  out = Collect(tree, "a/b", "someone-else");
  CHECK(out.size() == 2);

  // An overlapping subscription without No Local still delivers, with only its own identifier.
  tree.Subscribe(me, "a/b", Qos(0), 5);
  out = Collect(tree, "a/b", "me");
  REQUIRE(out.size() == 2);
  const Match& mm = out[0].session == me ? out[0] : out[1];
  REQUIRE(mm.session == me);
  CHECK(mm.qos == 0);
  CHECK(mm.sub_ids == std::vector<uint32_t>{5});
}

TEST_CASE("topic tree: unsubscribe removes and prunes") {
  TopicTree tree;
  auto s = MakeSession("s");
  auto t = MakeSession("t");
  const char* filters[] = {"a/b", "a/b/c", "a/+", "a/#", "#", "+", "+/+/c", "/x", "$SYS/#"};
  for (const char* f : filters) tree.Subscribe(s, f, Qos(0), 0);
  tree.Subscribe(t, "a/b", Qos(0), 0);
  CHECK(tree.SubscriptionCount() == std::size(filters) + 1);

  CHECK_FALSE(tree.Unsubscribe(s.get(), "a/c"));     // never subscribed: no node
  CHECK_FALSE(tree.Unsubscribe(s.get(), "a/b/c/d"));  // deeper than any node
  CHECK_FALSE(tree.Unsubscribe(t.get(), "a/+"));     // node exists, but not t's
  CHECK(tree.SubscriptionCount() == std::size(filters) + 1);

  // Removing a prefix keeps the deeper filter; removing the deeper one keeps the prefix of another session.
  CHECK(tree.Unsubscribe(s.get(), "a/b"));
  CHECK_FALSE(tree.Unsubscribe(s.get(), "a/b"));  // only once
  CHECK(tree.Unsubscribe(s.get(), "a/b/c"));
  auto out = Collect(tree, "a/b");
  std::set<const Session*> got;
  for (auto& m : out) got.insert(m.session.get());
  CHECK(got == std::set<const Session*>{s.get(), t.get()});  // s still via a/+, a/#, #

  for (const char* f : filters) {
    if (std::string_view(f) == "a/b" || std::string_view(f) == "a/b/c") continue;
    CAPTURE(f);
    CHECK(tree.Unsubscribe(s.get(), f));
  }
  CHECK(tree.Unsubscribe(t.get(), "a/b"));
  CHECK(tree.SubscriptionCount() == 0);
  for (const char* topic : {"a/b", "a/b/c", "x", "/x", "$SYS/x", "q/r/c"}) CHECK(Collect(tree, topic).empty());

  // The pruned tree is fully usable again.
  tree.Subscribe(t, "a/b/c", Qos(1), 0);
  CHECK(Collect(tree, "a/b/c").size() == 1);
  CHECK(Collect(tree, "a/b").empty());
  CHECK(tree.Unsubscribe(t.get(), "a/b/c"));
  CHECK(tree.SubscriptionCount() == 0);
}

TEST_CASE("ParseSharedFilter") {
  struct P {
    const char* in;
    bool shared;
    bool valid;
    const char* group;
    const char* filter;
  };
  const P cases[] = {
      {"a/b", false, false, "", ""},
      {"$share", false, false, "", ""},
      {"$sharex/g/a", false, false, "", ""},
      {"$SHARE/g/a", false, false, "", ""},  // case sensitive
      {"share/g/a", false, false, "", ""},
      {"$share/g/a/b", true, true, "g", "a/b"},
      {"$share/g/#", true, true, "g", "#"},
      {"$share/group-1/+/x/#", true, true, "group-1", "+/x/#"},
      {"$share/g//", true, true, "g", "/"},
      {"$share/", true, false, "", ""},
      {"$share/g", true, false, "", ""},
      {"$share/g/", true, false, "g", ""},
      {"$share//a", true, false, "", "a"},
      {"$share/+/a", true, false, "+", "a"},
      {"$share/g#/a", true, false, "g#", "a"},
      {"$share/a+b/a", true, false, "a+b", "a"},
  };
  for (const P& c : cases) {
    CAPTURE(c.in);
    SharedFilter sf;
    CHECK(ParseSharedFilter(c.in, &sf) == c.shared);
    if (!c.shared) continue;
    CHECK(sf.valid == c.valid);
    if (c.valid) {
      CHECK(sf.group == c.group);
      CHECK(sf.filter == c.filter);
    }
  }
}

TEST_CASE("share groups: one member per group per message, round robin") {
  TopicTree tree;
  auto a = MakeSession("a");
  auto b = MakeSession("b");
  auto c = MakeSession("c");
  auto d = MakeSession("d");
  auto plain = MakeSession("plain");
  tree.Subscribe(a, "$share/g/s/+", Qos(1), 11);
  tree.Subscribe(b, "$share/g/s/+", Qos(2), 0);
  tree.Subscribe(c, "$share/g/s/+", Qos(0), 0);
  tree.Subscribe(d, "$share/h/s/#", Qos(1), 0);  // another group, another filter
  tree.Subscribe(plain, "s/x", Qos(0), 0);
  CHECK(tree.SubscriptionCount() == 5);
  CHECK(Collect(tree, "t/x").empty());

  std::map<const Session*, int> hits_g;
  std::vector<const Session*> order;
  for (int i = 0; i < 30; ++i) {
    auto out = Collect(tree, "s/x");
    REQUIRE(out.size() == 3);  // plain + one of group g + d of group h
    int plain_n = 0, g_n = 0, h_n = 0;
    for (const Match& m : out) {
      if (!m.shared_group) {
        CHECK(m.session == plain);
        ++plain_n;
      } else if (*m.shared_group == "$share/g/s/+") {
        ++g_n;
        ++hits_g[m.session.get()];
        order.push_back(m.session.get());
        // The member's own options.
        if (m.session == a) {
          CHECK(m.qos == 1);
          CHECK(m.sub_ids == std::vector<uint32_t>{11});
        } else if (m.session == b) {
          CHECK(m.qos == 2);
          CHECK(m.sub_ids.empty());
        } else {
          CHECK(m.session == c);
          CHECK(m.qos == 0);
        }
      } else {
        CHECK(*m.shared_group == "$share/h/s/#");
        CHECK(m.session == d);
        ++h_n;
      }
    }
    CHECK(plain_n == 1);
    CHECK(g_n == 1);
    CHECK(h_n == 1);
  }
  // Round robin: evenly spread, and never the same member twice in a row.
  CHECK(hits_g[a.get()] == 10);
  CHECK(hits_g[b.get()] == 10);
  CHECK(hits_g[c.get()] == 10);
  for (size_t i = 1; i < order.size(); ++i) CHECK(order[i] != order[i - 1]);
}

TEST_CASE("share groups: online members are preferred") {
  TopicTree tree;
  auto a = MakeSession("a", /*online=*/true);
  auto b = MakeSession("b", /*online=*/false);
  auto c = MakeSession("c", /*online=*/true);
  for (auto& s : {a, b, c}) tree.Subscribe(s, "$share/g/t", Qos(1), 0);

  std::map<const Session*, int> hits;
  for (int i = 0; i < 40; ++i) {
    auto out = Collect(tree, "t");
    REQUIRE(out.size() == 1);
    ++hits[out[0].session.get()];
  }
  CHECK(hits[b.get()] == 0);
  // The rotation continues after the member chosen, so skipping offline b does not give c b's turns too.
  CHECK(hits[a.get()] == 20);
  CHECK(hits[c.get()] == 20);

  // Nobody online: still exactly one member (the message is queued for an offline session).
  a->online_ = false;
  c->online_ = false;
  hits.clear();
  for (int i = 0; i < 30; ++i) {
    auto out = Collect(tree, "t");
    REQUIRE(out.size() == 1);
    ++hits[out[0].session.get()];
  }
  CHECK(hits[a.get()] == 10);
  CHECK(hits[b.get()] == 10);
  CHECK(hits[c.get()] == 10);
}

TEST_CASE("share groups: PickSharedMember") {
  TopicTree tree;
  auto a = MakeSession("a");
  auto b = MakeSession("b", /*online=*/false);
  auto c = MakeSession("c");
  const std::string key = "$share/g/x/+";
  tree.Subscribe(a, key, Qos(1), 0);
  tree.Subscribe(b, key, Qos(1), 0);
  tree.Subscribe(c, key, Qos(1), 0);

  for (int i = 0; i < 10; ++i) CHECK(tree.PickSharedMember(key, a.get()) == c);  // b is offline
  c->online_ = false;
  // Only offline members besides a: one of them, never a.
  for (int i = 0; i < 10; ++i) {
    auto p = tree.PickSharedMember(key, a.get());
    CHECK((p == b || p == c));
  }
  a->online_ = false;  // nobody online: the fallback rotates
  std::set<const Session*> any;
  for (int i = 0; i < 9; ++i) any.insert(tree.PickSharedMember(key, nullptr).get());
  CHECK(any.size() == 3);  // with no exclusion, everyone takes a turn

  CHECK(tree.PickSharedMember("$share/other/x/+", nullptr) == nullptr);  // unknown group
  CHECK(tree.PickSharedMember("$share/g/y", nullptr) == nullptr);        // unknown filter
  CHECK(tree.PickSharedMember("$share/g/x", nullptr) == nullptr);        // a prefix node, no group
  CHECK(tree.PickSharedMember("x/+", nullptr) == nullptr);               // not a share key
  CHECK(tree.PickSharedMember("$share/g", nullptr) == nullptr);          // invalid

  CHECK(tree.Unsubscribe(b.get(), key));
  CHECK(tree.Unsubscribe(c.get(), key));
  CHECK(tree.PickSharedMember(key, a.get()) == nullptr);  // only the excluded member is left
  CHECK(tree.PickSharedMember(key, nullptr) == a);
}

TEST_CASE("share groups: unsubscribe and group removal") {
  TopicTree tree;
  auto a = MakeSession("a");
  auto b = MakeSession("b");
  tree.Subscribe(a, "$share/g/t", Qos(1), 0);
  tree.Subscribe(b, "$share/g/t", Qos(1), 0);
  tree.Subscribe(a, "t", Qos(0), 0);  // same session, non-shared: a separate receiver
  CHECK(tree.SubscriptionCount() == 3);
  CHECK_FALSE(tree.Subscribe(a, "$share/h/t", Qos(0), 0));  // a second group on the same node
  CHECK(tree.Subscribe(a, "$share/g/t", Qos(2), 0));        // re-subscribe replaces
  CHECK(tree.SubscriptionCount() == 4);

  CHECK(Collect(tree, "t").size() == 3);  // a (plain), one of g, a (h)

  CHECK_FALSE(tree.Unsubscribe(a.get(), "$share/x/t"));  // no such group
  CHECK_FALSE(tree.Unsubscribe(a.get(), "$share//t"));   // invalid
  CHECK(tree.Unsubscribe(a.get(), "$share/g/t"));
  for (int i = 0; i < 5; ++i) {
    int from_g = 0;
    for (auto& m : Collect(tree, "t")) {
      if (m.shared_group && *m.shared_group == "$share/g/t") {
        CHECK(m.session == b);
        ++from_g;
      }
    }
    CHECK(from_g == 1);
  }
  CHECK(tree.Unsubscribe(b.get(), "$share/g/t"));
  CHECK(tree.Unsubscribe(a.get(), "$share/h/t"));
  auto out = Collect(tree, "t");
  REQUIRE(out.size() == 1);
  CHECK(out[0].shared_group == nullptr);
  CHECK(tree.Unsubscribe(a.get(), "t"));
  CHECK(tree.SubscriptionCount() == 0);
  CHECK(Collect(tree, "t").empty());
  CHECK(tree.PickSharedMember("$share/g/t", nullptr) == nullptr);
}

// Random filters and topics over a small alphabet (so matches are common), compared with BruteMatch.
std::string RandomTopic(std::mt19937& rng) {
  static const char* kLevels[] = {"a", "b", "c", "", "$x", "$SYS"};
  const int n = 1 + static_cast<int>(rng() % 4);
  std::string t;
  for (int i = 0; i < n; ++i) {
    if (i) t += '/';
    // '$' levels anywhere; they only matter first.
    t += kLevels[rng() % std::size(kLevels)];
  }
  return t;
}

std::string RandomFilter(std::mt19937& rng) {
  static const char* kLevels[] = {"a", "b", "c", "", "$x", "$SYS", "+", "+"};
  const int n = 1 + static_cast<int>(rng() % 4);
  std::string f;
  for (int i = 0; i < n; ++i) {
    if (i) f += '/';
    if (i == n - 1 && rng() % 4 == 0) {
      f += '#';
    } else {
      f += kLevels[rng() % std::size(kLevels)];
    }
  }
  return f;
}

TEST_CASE("topic tree: randomized comparison with a brute-force matcher") {
  std::mt19937 rng(20240601);
  TopicTree tree;
  struct Sub {
    std::string filter;
    uint8_t qos;
    uint32_t id;
    bool no_local;
  };
  constexpr int kSessions = 12;
  std::vector<SessionPtr> sessions;
  // Per session: filter -> subscription (what the tree should hold).
  std::vector<std::map<std::string, Sub>> model(kSessions);
  for (int i = 0; i < kSessions; ++i) sessions.push_back(MakeSession("s" + std::to_string(i)));

  auto check_all = [&](int topics) {
    size_t total = 0;
    for (auto& m : model) total += m.size();
    REQUIRE(tree.SubscriptionCount() == total);
    for (int k = 0; k < topics; ++k) {
      const std::string topic = RandomTopic(rng);
      const int origin = static_cast<int>(rng() % (kSessions + 1));  // kSessions = a client with no subs
      const std::string origin_id = origin < kSessions ? sessions[origin]->client_id() : "nobody";
      CAPTURE(topic);
      CAPTURE(origin_id);
      // Expected: per session, max QoS and sorted ids over matching, non-No-Local-excluded subscriptions.
      std::map<const Session*, std::pair<uint8_t, std::vector<uint32_t>>> want;
      for (int i = 0; i < kSessions; ++i) {
        for (auto& [f, sub] : model[i]) {
          if (!BruteMatch(f, topic)) continue;
          if (sub.no_local && i == origin) continue;
          auto [it, fresh] = want.try_emplace(sessions[i].get(), sub.qos, std::vector<uint32_t>{});
          it->second.first = std::max(it->second.first, sub.qos);
          if (sub.id) it->second.second.push_back(sub.id);
        }
      }
      for (auto& [s, v] : want) std::sort(v.second.begin(), v.second.end());
      std::map<const Session*, std::pair<uint8_t, std::vector<uint32_t>>> got;
      for (Match& m : Collect(tree, topic, origin_id)) {
        CHECK(m.shared_group == nullptr);
        std::sort(m.sub_ids.begin(), m.sub_ids.end());
        const bool fresh = got.emplace(m.session.get(), std::make_pair(m.qos, m.sub_ids)).second;
        CHECK(fresh);  // one match per session
      }
      REQUIRE(got == want);
    }
  };

  uint32_t next_id = 1;
  for (int round = 0; round < 6; ++round) {
    // Subscribe a batch (some re-subscribe existing filters with new options).
    for (int k = 0; k < 150; ++k) {
      const int i = static_cast<int>(rng() % kSessions);
      Sub sub{RandomFilter(rng), static_cast<uint8_t>(rng() % 3), rng() % 3 ? next_id++ : 0, rng() % 5 == 0};
      const bool existed = model[i].count(sub.filter) > 0;
      REQUIRE(tree.Subscribe(sessions[i], sub.filter, Qos(sub.qos, sub.no_local), sub.id) == existed);
      model[i][sub.filter] = sub;
    }
    check_all(300);
    // Unsubscribe about half, plus some filters that are not subscribed.
    for (int i = 0; i < kSessions; ++i) {
      for (auto it = model[i].begin(); it != model[i].end();) {
        if (rng() % 2) {
          REQUIRE(tree.Unsubscribe(sessions[i].get(), it->first));
          it = model[i].erase(it);
        } else {
          ++it;
        }
      }
      for (int k = 0; k < 5; ++k) {
        const std::string f = RandomFilter(rng);
        REQUIRE(tree.Unsubscribe(sessions[i].get(), f) == (model[i].erase(f) > 0));
      }
    }
    check_all(300);
  }
  // Everything out: the tree is empty again.
  for (int i = 0; i < kSessions; ++i)
    for (auto& [f, sub] : model[i]) REQUIRE(tree.Unsubscribe(sessions[i].get(), f));
  for (auto& m : model) m.clear();
  check_all(50);
  CHECK(tree.SubscriptionCount() == 0);
}

TEST_CASE("topic tree: randomized share groups always yield one member of each matching group") {
  std::mt19937 rng(777);
  TopicTree tree;
  std::vector<SessionPtr> sessions;
  for (int i = 0; i < 8; ++i) sessions.push_back(MakeSession("m" + std::to_string(i), rng() % 2 == 0));
  // group key -> members
  std::map<std::string, std::set<const Session*>> groups;
  for (int k = 0; k < 60; ++k) {
    const std::string key = "$share/g" + std::to_string(rng() % 4) + "/" + RandomFilter(rng);
    auto& s = sessions[rng() % sessions.size()];
    tree.Subscribe(s, key, Qos(1), 0);
    groups[key].insert(s.get());
  }
  for (int k = 0; k < 500; ++k) {
    const std::string topic = RandomTopic(rng);
    CAPTURE(topic);
    std::map<std::string, int> want;
    for (auto& [key, members] : groups) {
      SharedFilter sf;
      REQUIRE(ParseSharedFilter(key, &sf));
      if (BruteMatch(sf.filter, topic)) want[key] = 0;
    }
    std::map<std::string, int> got;
    for (const Match& m : Collect(tree, topic)) {
      REQUIRE(m.shared_group != nullptr);
      ++got[*m.shared_group];
      CHECK(groups[*m.shared_group].count(m.session.get()) == 1);
      // An offline member only when the group has no online one.
      if (!m.session->online_) {
        for (const Session* s : groups[*m.shared_group]) CHECK_FALSE(s->online_.load());
      }
    }
    for (auto& [key, n] : got) CHECK(n == 1);
    for (auto& [key, n] : want) CHECK(got.count(key) == 1);
    CHECK(got.size() == want.size());
  }
}

TEST_CASE("topic tree: thousands of sessions on one topic subscribe and unsubscribe") {
  // Past a few dozen subscribers a node indexes them; behaviour must not change across that threshold.
  TopicTree tree;
  std::vector<SessionPtr> sessions;
  mqtt::SubscribeOptions o;
  o.qos = 1;
  for (int i = 0; i < 3000; ++i) {
    sessions.push_back(MakeSession("s" + std::to_string(i)));
    CHECK_FALSE(tree.Subscribe(sessions.back(), "all/x", o, 0));
    CHECK_FALSE(tree.Subscribe(sessions.back(), "$share/g/all/x", o, 0));
  }
  CHECK(tree.SubscriptionCount() == 6000);
  o.qos = 2;
  CHECK(tree.Subscribe(sessions[1234], "all/x", o, 9));  // replaces, does not add
  CHECK(tree.SubscriptionCount() == 6000);
  // Remove all but every 100th (down through the threshold, so the index goes away again).
  for (int i = 0; i < 3000; ++i) {
    if (i % 100 == 0) continue;
    CHECK(tree.Unsubscribe(sessions[i].get(), "all/x"));
    CHECK(tree.Unsubscribe(sessions[i].get(), "$share/g/all/x"));
    CHECK_FALSE(tree.Unsubscribe(sessions[i].get(), "all/x"));
  }
  CHECK(tree.SubscriptionCount() == 60);
  std::vector<Match> m;
  tree.Collect("all/x", "", &m);
  std::set<const Session*> got;
  size_t shared = 0;
  for (const Match& x : m) {
    if (x.shared_group) {
      ++shared;
      continue;
    }
    got.insert(x.session.get());
  }
  CHECK(shared == 1);  // one member of the group
  REQUIRE(got.size() == 30);
  for (int i = 0; i < 3000; i += 100) CHECK(got.count(sessions[i].get()) == 1);
  // Re-subscribing after the index was dropped still finds the existing entry.
  CHECK(tree.Subscribe(sessions[0], "all/x", o, 0));
  CHECK(tree.SubscriptionCount() == 60);
}

}  // namespace
}  // namespace parley::broker
