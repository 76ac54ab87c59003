// Broker administration (broker_admin.cc): session and subscription listings with paging, kicking and dropping
// sessions (with durable state), retained messages, and draining (CONNECT refused with 0x9C + Server
// Reference / 3.1.1 code 3; kicks carrying the reference).
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::Version;
using testing::As;
using testing::Env;
using testing::MakeConnect;
using testing::MakePublish;
using testing::Peer;
using testing::Publishes;
namespace rc = mqtt::rc;
namespace rc311 = mqtt::rc311;

mqtt::Connect Persistent(std::string id, uint32_t expiry = 300) {
  mqtt::Connect c = MakeConnect(std::move(id), Version::kV5, /*clean=*/false);
  c.props.session_expiry_interval = expiry;
  return c;
}

std::vector<std::string> Ids(const std::vector<SessionInfo>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(s.client_id);
  return out;
}

// Records what the broker reports to the Persistence port that the tests look at; the rest is accepted.
class RecordingPersistence final : public Persistence {
 public:
  void PutSession(const std::string& id, uint32_t, const std::optional<std::string>&, std::optional<int64_t>) override {
    sessions.insert(id);
  }
  void DeleteSession(const std::string& id, const std::vector<MessagePtr>& held) override {
    sessions.erase(id);
    deleted.push_back(id);
    held_at_delete += held.size();
  }
  void PutSubscription(const std::string&, const StoredSubscription&) override {}
  void DeleteSubscription(const std::string&, std::string_view) override {}
  void AddDelivery(const std::string&, uint64_t, const MessagePtr&, uint8_t, bool, const std::vector<uint32_t>&,
                   std::string_view) override {}
  void ReleaseDelivery(const std::string&, uint64_t, const MessagePtr&) override {}
  void RemoveDelivery(const std::string&, uint64_t, const MessagePtr&) override {}
  void AddIncomingQos2(const std::string&, uint16_t) override {}
  void RemoveIncomingQos2(const std::string&, uint16_t) override {}
  void PutWill(const std::string&, const mqtt::Will&) override {}
  void DeleteWill(const std::string&) override {}
  void PutRetained(const MessagePtr& msg) override {
    if (msg->payload.empty()) {
      retained.erase(msg->topic);
    } else {
      retained[msg->topic] = std::string(msg->payload);
    }
  }
  void BeginAtomic() override {}
  void EndAtomic() override {}
  bool Writable() const override { return true; }
  bool PendingWrites() const override { return false; }
  bool Barrier(std::function<void(bool)>) override { return false; }
  void Maintain() override {}

  std::set<std::string> sessions;
  std::vector<std::string> deleted;
  size_t held_at_delete = 0;
  std::map<std::string, std::string> retained;
};

TEST_CASE("admin: sessions are listed in client id order, paged, filtered by state, with their counts") {
  Env env;
  auto c = env.Connect(Persistent("c"));
  auto a = env.Connect(Persistent("a"));
  auto b = env.Connect(Persistent("b", 100));
  env.Subscribe(*b, "t/1", 1);
  env.Subscribe(*b, "t/2", 0);
  b.reset();  // the connection ends: "b" stays, offline, and expires in 100 s
  auto pub = env.Connect(MakeConnect("pub", Version::kV5));  // clean session, expiry 0: listed while connected
  pub->Send(MakePublish("t/1", "hello", 1, 1));
  pub->Take();
  env.clock.Advance(std::chrono::seconds(10));

  bool more = true;
  auto page = env.broker.ListSessions("", 2, SessionState::kAll, &more);
  CHECK(Ids(page) == std::vector<std::string>{"a", "b"});
  CHECK(more);
  page = env.broker.ListSessions("b", 2, SessionState::kAll, &more);
  CHECK(Ids(page) == std::vector<std::string>{"c", "pub"});
  CHECK_FALSE(more);
  page = env.broker.ListSessions("pub", 2, SessionState::kAll, &more);
  CHECK(page.empty());
  CHECK_FALSE(more);
  CHECK(env.broker.ListSessions("", SIZE_MAX, SessionState::kAll, &more).size() == 4);  // no limit
  CHECK_FALSE(more);

  CHECK(Ids(env.broker.ListSessions("", 100, SessionState::kOnline, &more)) ==
        std::vector<std::string>{"a", "c", "pub"});
  auto offline = env.broker.ListSessions("", 100, SessionState::kOffline, &more);
  REQUIRE(offline.size() == 1);
  const SessionInfo& s = offline[0];
  CHECK(s.client_id == "b");
  CHECK_FALSE(s.online);
  CHECK(s.expiry_interval == 100);
  REQUIRE(s.expires_in_seconds);
  CHECK(*s.expires_in_seconds == 90);
  CHECK(s.subscriptions == 2);
  CHECK(s.queued == 1);
  CHECK(s.queued_bytes > 5);
  CHECK(s.inflight == 0);

  auto online = env.broker.GetSession("a");
  REQUIRE(online);
  CHECK(online->online);
  CHECK_FALSE(online->expires_in_seconds);  // online: no countdown
  CHECK_FALSE(env.broker.GetSession("nobody"));
}

TEST_CASE("admin: a session that never expires has no countdown; one resumed and left again counts anew") {
  Env env;
  mqtt::Connect forever = MakeConnect("v3", Version::kV311, /*clean=*/false);
  env.Connect(forever).reset();
  auto s = env.broker.GetSession("v3");
  REQUIRE(s);
  CHECK(s->expiry_interval == 0xFFFFFFFFu);
  CHECK_FALSE(s->expires_in_seconds);

  env.Connect(Persistent("p", 50)).reset();
  env.clock.Advance(std::chrono::seconds(30));
  env.Connect(Persistent("p", 50)).reset();  // resumed at 30 s, gone again: a fresh 50 s
  env.clock.Advance(std::chrono::seconds(5));
  s = env.broker.GetSession("p");
  REQUIRE(s);
  REQUIRE(s->expires_in_seconds);
  CHECK(*s->expires_in_seconds == 45);
}

TEST_CASE("admin: subscriptions of a session, and all of them paged by whole sessions") {
  Env env;
  auto a = env.Connect(Persistent("a"));
  auto b = env.Connect(Persistent("b"));
  auto c = env.Connect(Persistent("c"));
  auto none = env.Connect(Persistent("ab-none"));
  env.Subscribe(*a, "x/#", 1, 7);
  env.Subscribe(*a, "$share/g/y/+", 0);
  env.Subscribe(*b, "z", 2);
  env.Subscribe(*c, "w", 0);
  mqtt::Subscribe opts = testing::MakeSubscribe(9, "o", 1);
  opts.subscriptions[0].opts.no_local = true;
  opts.subscriptions[0].opts.retain_as_published = true;
  opts.subscriptions[0].opts.retain_handling = 2;
  c->Send(opts);
  c->Take();

  std::vector<SubscriptionInfo> subs;
  REQUIRE(env.broker.GetSession("a", &subs));
  REQUIRE(subs.size() == 2);
  CHECK(subs[0].filter == "y/+");  // "$share/g/y/+" sorts first
  REQUIRE(subs[0].share_group);
  CHECK(*subs[0].share_group == "g");
  CHECK(subs[1].filter == "x/#");
  CHECK_FALSE(subs[1].share_group);
  CHECK(subs[1].opts.qos == 1);
  CHECK(subs[1].subscription_id == 7);

  bool more = false;
  // limit 1: the page ends after the first session with a subscription, whole.
  auto page = env.broker.ListSubscriptions("", "", 1, &more);
  REQUIRE(page.size() == 2);
  CHECK(page[0].client_id == "a");
  CHECK(page[1].client_id == "a");
  CHECK(more);
  page = env.broker.ListSubscriptions("", "a", 1, &more);  // "ab-none" has none: skipped
  REQUIRE(page.size() == 1);
  CHECK(page[0].client_id == "b");
  CHECK(more);
  page = env.broker.ListSubscriptions("", "b", 10, &more);
  REQUIRE(page.size() == 2);
  CHECK(page[0].filter == "o");
  CHECK(page[0].opts.no_local);
  CHECK(page[0].opts.retain_as_published);
  CHECK(page[0].opts.retain_handling == 2);
  CHECK(page[1].filter == "w");
  CHECK_FALSE(more);
  page = env.broker.ListSubscriptions("", "b", 1, &more);  // "c" is the last session with any
  CHECK(page.size() == 2);
  CHECK_FALSE(more);

  page = env.broker.ListSubscriptions("b", "", 100, &more);
  REQUIRE(page.size() == 1);
  CHECK(page[0].filter == "z");
  CHECK(page[0].opts.qos == 2);
  CHECK(env.broker.ListSubscriptions("nobody", "", 100, &more).empty());
}

TEST_CASE("admin: listing many sessions without subscriptions still finds the ones after them") {
  Env env;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int i = 0; i < 300; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "s%03d", i);
    peers.push_back(env.Connect(Persistent(id)));
  }
  env.Subscribe(*peers.back(), "last", 0);
  bool more = true;
  auto page = env.broker.ListSubscriptions("", "", 5, &more);
  REQUIRE(page.size() == 1);
  CHECK(page[0].client_id == "s299");
  CHECK_FALSE(more);
  auto sessions = env.broker.ListSessions("s100", 1000, SessionState::kAll, &more);
  CHECK(sessions.size() == 199);
  CHECK(sessions.front().client_id == "s101");
  CHECK_FALSE(more);
}

TEST_CASE("admin: kicking a client keeps its session") {
  Env env;
  auto p = env.Connect(Persistent("k"));
  CHECK(env.broker.KickClient("k", rc::kAdministrativeAction));
  CHECK(p->link->Kicks() == std::vector<uint8_t>{rc::kAdministrativeAction});
  p->client->OnKick(rc::kAdministrativeAction);  // what the link's loop does
  CHECK(testing::DisconnectReason(*p) == rc::kAdministrativeAction);
  p.reset();
  CHECK(env.broker.GetSession("k"));
  CHECK_FALSE(env.broker.KickClient("k", rc::kAdministrativeAction));  // offline now
  CHECK_FALSE(env.broker.KickClient("nobody", rc::kAdministrativeAction));
}

TEST_CASE("admin: dropping a session kicks its connection and removes it with its durable state") {
  RecordingPersistence store;
  Env env;
  env.broker.SetPersistence(&store);
  auto online = env.Connect(Persistent("on"));
  env.Subscribe(*online, "t", 1);
  env.Connect(Persistent("off")).reset();
  auto off_sub = env.Connect(Persistent("off"));
  env.Subscribe(*off_sub, "t", 1);
  off_sub.reset();
  auto pub = env.Connect(MakeConnect("pub", Version::kV5));
  pub->Send(MakePublish("t", "m", 1, 1));
  pub->Take();
  CHECK(store.sessions.count("on"));
  CHECK(store.sessions.count("off"));

  DropResult r = env.broker.DropSession("off");
  CHECK(r.found);
  CHECK_FALSE(r.kicked);
  CHECK(store.deleted == std::vector<std::string>{"off"});
  CHECK(store.held_at_delete == 1);  // its queued QoS 1 message's body is released too
  CHECK_FALSE(env.broker.GetSession("off"));

  r = env.broker.DropSession("on");
  CHECK(r.found);
  CHECK(r.kicked);
  CHECK(online->link->Kicks() == std::vector<uint8_t>{rc::kAdministrativeAction});
  CHECK_FALSE(store.sessions.count("on"));
  CHECK_FALSE(env.broker.GetSession("on"));
  bool more = false;
  CHECK(env.broker.ListSubscriptions("", "", 100, &more).empty());
  // The kicked connection goes away later and finds its session ended: it leaves the registry alone.
  online->client->OnKick(rc::kAdministrativeAction);
  online.reset();
  CHECK_FALSE(env.broker.GetSession("on"));
  // Nothing is routed to the dropped sessions any more.
  pub->Send(MakePublish("t", "m2", 1, 2));
  auto out = pub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kNoMatchingSubscribers);

  CHECK_FALSE(env.broker.DropSession("nobody").found);
  // The client id starts afresh.
  auto again = env.Connect(Persistent("on"));
  CHECK_FALSE(env.last_connack.session_present);
  CHECK(env.broker.WaitDurable(std::chrono::milliseconds(10)));  // nothing pending here
}

TEST_CASE("admin: retained messages listed by filter in topic order, read, and deleted from memory and disk") {
  RecordingPersistence store;
  Env env;
  env.broker.SetPersistence(&store);
  auto pub = env.Connect(MakeConnect("pub", Version::kV5));
  for (const char* t : {"r/c", "r/a", "r/b", "other", "r/a/deep"}) {
    pub->Send(MakePublish(t, std::string("v-") + t, 1, 1, /*retain=*/true));
    pub->Take();
  }
  auto watcher = env.Connect(MakeConnect("watcher", Version::kV5));
  watcher->Send(testing::MakeSubscribe(1, "#", 0));
  CHECK(watcher->Take().size() == 1);       // SUBACK
  CHECK(watcher->PumpTake().size() == 5);   // the five retained messages

  bool more = false;
  auto page = env.broker.ListRetained("#", "", 3, &more);
  REQUIRE(page.size() == 3);
  CHECK(page[0]->topic == "other");
  CHECK(page[1]->topic == "r/a");
  CHECK(page[2]->topic == "r/a/deep");
  CHECK(more);
  page = env.broker.ListRetained("#", "r/a/deep", 3, &more);
  REQUIRE(page.size() == 2);
  CHECK(page[0]->topic == "r/b");
  CHECK(page[1]->topic == "r/c");
  CHECK_FALSE(more);
  page = env.broker.ListRetained("r/+", "", 10, &more);
  CHECK(page.size() == 3);

  auto m = env.broker.GetRetained("r/b");
  REQUIRE(m);
  CHECK(m->payload == "v-r/b");
  CHECK_FALSE(env.broker.GetRetained("r"));
  CHECK_FALSE(env.broker.GetRetained("nothing/here"));

  CHECK(store.retained.count("r/b"));
  CHECK(env.broker.DeleteRetained("r/b"));
  CHECK_FALSE(env.broker.GetRetained("r/b"));
  CHECK_FALSE(store.retained.count("r/b"));  // the empty retained message deletes its row
  CHECK_FALSE(env.broker.DeleteRetained("r/b"));
  CHECK(env.broker.retained().Count() == 4);
  CHECK(watcher->PumpTake().empty());  // clearing is not a publication: subscribers hear nothing
}

TEST_CASE("admin: while draining, CONNECT is refused with 0x9C and the Server Reference (3.1.1: code 3)") {
  Env env;
  env.broker.SetDraining(true, "node-b:1883");
  CHECK(env.broker.draining());
  {
    Peer p(env.broker, Version::kV5);
    p.Send(MakeConnect("v5", Version::kV5));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Connack>(out[0]);
    CHECK(ack.reason_code == rc::kUseAnotherServer);
    REQUIRE(ack.props.server_reference);
    CHECK(*ack.props.server_reference == "node-b:1883");
    CHECK(p.client->closing());
  }
  {
    Peer p(env.broker, Version::kV311);
    p.Send(MakeConnect("v3", Version::kV311));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc311::kServerUnavailable);
    CHECK(p.client->closing());
  }
  env.broker.SetDraining(true, "");  // no reference: 0x9C alone
  {
    Peer p(env.broker, Version::kV5);
    p.Send(MakeConnect("v5", Version::kV5));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kUseAnotherServer);
    CHECK_FALSE(As<mqtt::Connack>(out[0]).props.server_reference);
  }
  CHECK(env.broker.SessionCount() == 0);
  env.broker.SetDraining(false, "ignored");
  CHECK_FALSE(env.broker.draining());
  CHECK(env.broker.server_reference().empty());
  env.Connect(MakeConnect("v5", Version::kV5));  // accepted again
}

TEST_CASE("admin: a kick with 0x9C or 0x9D carries the Server Reference to v5 clients") {
  Env env;
  auto v5 = env.Connect(Persistent("v5"));
  auto moved = env.Connect(Persistent("moved"));
  auto other = env.Connect(Persistent("other"));
  auto v3 = env.Connect(MakeConnect("v3", Version::kV311, /*clean=*/false));
  env.broker.SetDraining(true, "node-b:1883");

  v5->client->OnKick(rc::kUseAnotherServer);
  auto out = v5->Take();
  REQUIRE(out.size() == 1);
  const auto& d = As<mqtt::Disconnect>(out[0]);
  CHECK(d.reason_code == rc::kUseAnotherServer);
  REQUIRE(d.props.server_reference);
  CHECK(*d.props.server_reference == "node-b:1883");
  CHECK(v5->client->closing());

  moved->client->OnKick(rc::kServerMoved);
  out = moved->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kServerMoved);
  CHECK(As<mqtt::Disconnect>(out[0]).props.server_reference == std::optional<std::string>("node-b:1883"));

  other->client->OnKick(rc::kAdministrativeAction);  // another reason: no reference
  out = other->Take();
  REQUIRE(out.size() == 1);
  CHECK_FALSE(As<mqtt::Disconnect>(out[0]).props.server_reference);

  v3->client->OnKick(rc::kUseAnotherServer);  // 3.1.1: closed without a packet
  CHECK(v3->Take().empty());
  CHECK(v3->client->closing());
  CHECK(v3->transport.close_calls == 1);

  // The sessions stay: a kick is a disconnect like any other.
  v5.reset();
  moved.reset();
  other.reset();
  v3.reset();
  CHECK(env.broker.SessionCount() == 4);
  bool more = false;
  CHECK(env.broker.ListSessions("", 10, SessionState::kOffline, &more).size() == 4);

  env.broker.SetDraining(false, "");
  auto back = env.Connect(MakeConnect("v5", Version::kV5, /*clean=*/false));
  CHECK(env.last_connack.session_present);
}

}  // namespace
}  // namespace parley::broker
