// DurableState on an in-memory store: what it writes, what Load reads back, shared message bodies,
// orphans and corruption, barriers and the disk-full path.
#include <doctest/doctest.h>

#include "tests/unit/persist/rig.h"

namespace parley::broker::persist {
namespace {

using testing::Rig;

MessagePtr Msg(std::string topic, std::string payload, uint8_t qos = 1) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  return m;
}

// Load() on a fresh DurableState over the same store.
LoadedState Reload(Rig& rig) {
  rig.Drain();
  DurableState fresh(rig.fault.get(), rig.exec.get(), rig.clock);
  auto r = fresh.Load();
  REQUIRE(r.ok());
  return std::move(r.value());
}

const StoredSession* Find(const LoadedState& s, const std::string& id) {
  for (const auto& x : s.sessions)
    if (x.client_id == id) return &x;
  return nullptr;
}

TEST_CASE("durable state: everything written comes back") {
  Rig rig;
  DurableState& st = *rig.state;
  st.PutSession("a", 60, std::string("alice"), std::nullopt);
  st.PutSession("b", 0xFFFFFFFFu, std::nullopt, int64_t{1'700'000'000'000});
  mqtt::SubscribeOptions o;
  o.qos = 2;
  st.PutSubscription("a", StoredSubscription{"x/#", o, 7});
  st.PutSubscription("a", StoredSubscription{"$share/g/y", o, 0});
  MessagePtr m = Msg("x/1", "hello", 2);
  st.AddDelivery("a", 1, m, 2, true, {7}, {});
  st.AddDelivery("a", 2, Msg("y", "shared"), 1, false, {}, "$share/g/y");
  st.AddDelivery("b", 1, m, 1, false, {}, {});
  st.AddIncomingQos2("a", 42);
  mqtt::Will w;
  w.topic = "will/a";
  w.payload = "bye";
  st.PutWill("a", w);
  st.PutRetained(Msg("r/1", "kept"));

  LoadedState l = Reload(rig);
  REQUIRE(l.sessions.size() == 2);
  const StoredSession* a = Find(l, "a");
  REQUIRE(a);
  CHECK(a->expiry_interval == 60);
  CHECK(a->username == std::optional<std::string>("alice"));
  CHECK_FALSE(a->disconnected_at_ms);
  REQUIRE(a->subscriptions.size() == 2);
  REQUIRE(a->deliveries.size() == 2);
  CHECK(a->deliveries[0].seq == 1);
  CHECK(a->deliveries[0].qos == 2);
  CHECK(a->deliveries[0].retain);
  CHECK(a->deliveries[0].sub_ids == std::vector<uint32_t>{7});
  CHECK(a->deliveries[0].msg->payload == "hello");
  CHECK(a->deliveries[1].shared_group == "$share/g/y");
  CHECK(a->incoming_qos2 == std::vector<uint16_t>{42});
  REQUIRE(a->will);
  CHECK(a->will->topic == "will/a");
  const StoredSession* b = Find(l, "b");
  REQUIRE(b);
  CHECK(b->disconnected_at_ms == std::optional<int64_t>(1'700'000'000'000));
  REQUIRE(b->deliveries.size() == 1);
  // One body for the message both sessions hold, shared again after the load.
  CHECK(b->deliveries[0].msg.get() == a->deliveries[0].msg.get());
  CHECK(l.bodies == 2);
  REQUIRE(l.retained.size() == 1);
  CHECK(l.retained[0]->payload == "kept");
}

TEST_CASE("durable state: a body is stored once and deleted with its last reference") {
  Rig rig;
  DurableState& st = *rig.state;
  MessagePtr m = Msg("t", std::string(1000, 'x'));
  for (const char* id : {"s1", "s2", "s3"}) {
    st.PutSession(id, 60, std::nullopt, std::nullopt);
    st.AddDelivery(id, 1, m, 1, false, {}, {});
  }
  rig.Drain();
  CHECK(rig.Rows(Fam::kMessages) == 1);
  CHECK(rig.Rows(Fam::kDeliveries) == 3);
  st.RemoveDelivery("s1", 1, m);
  st.ReleaseDelivery("s2", 1, m);  // PUBREC seen: the row stays, without the body
  rig.Drain();
  CHECK(rig.Rows(Fam::kMessages) == 1);
  st.DeleteSession("s3", {m});
  rig.Drain();
  CHECK(rig.Rows(Fam::kMessages) == 0);
  CHECK(st.BodyCount() == 0);
  CHECK(rig.Rows(Fam::kDeliveries) == 1);  // s2's released entry
  // Queued again later (a retained message to a new subscriber): written again, under a new id.
  st.AddDelivery("s1", 2, m, 1, false, {}, {});
  LoadedState l = Reload(rig);
  const StoredSession* s1 = Find(l, "s1");
  REQUIRE(s1);
  REQUIRE(s1->deliveries.size() == 1);
  CHECK(s1->deliveries[0].msg->payload == m->payload);
  const StoredSession* s2 = Find(l, "s2");
  REQUIRE(s2);
  REQUIRE(s2->deliveries.size() == 1);
  CHECK_FALSE(s2->deliveries[0].msg);  // released
}

TEST_CASE("durable state: deleting a session removes only its rows") {
  Rig rig;
  DurableState& st = *rig.state;
  for (const char* id : {"a", "ab", "a\x01"}) {
    st.PutSession(id, 60, std::nullopt, std::nullopt);
    st.PutSubscription(id, StoredSubscription{"t", {}, 0});
    st.AddDelivery(id, 1, Msg("t", id), 1, false, {}, {});
    st.AddIncomingQos2(id, 1);
    st.PutWill(id, mqtt::Will{});
  }
  rig.Drain();
  LoadedState before = Reload(rig);
  std::vector<MessagePtr> held;
  for (auto& d : Find(before, "a")->deliveries) held.push_back(d.msg);
  // The held list names loaded messages; a DurableState that loaded them knows their ids.
  DurableState& loaded = *rig.state;
  loaded.DeleteSession("a", {});
  LoadedState l = Reload(rig);
  CHECK(l.sessions.size() == 2);
  CHECK_FALSE(Find(l, "a"));
  for (const char* id : {"ab", "a\x01"}) {
    const StoredSession* s = Find(l, id);
    REQUIRE(s);
    CHECK(s->subscriptions.size() == 1);
    CHECK(s->deliveries.size() == 1);
    CHECK(s->incoming_qos2.size() == 1);
    CHECK(s->will);
  }
  // The body of "a"'s delivery was not released through `held`: the next load finds it unreferenced.
  CHECK(l.orphans_removed == 1);
}

TEST_CASE("durable state: load removes orphans and expired retained messages") {
  Rig rig;
  {
    storage::WriteBatch b;
    std::string v;
    EncodeDelivery(99, 1, false, {}, {}, &v);
    b.Put(Fam::kDeliveries, DeliveryKey("ghost", 1), v);      // no such session
    b.Put(Fam::kSubscriptions, SubscriptionKey("ghost", "t"), "\x01\x01\x00");
    rig.state->PutSession("live", 60, std::nullopt, std::nullopt);
    rig.Drain();
    b.Put(Fam::kDeliveries, DeliveryKey("live", 1), v);       // body 99 does not exist
    REQUIRE(rig.mem->Write(b, storage::Sync::kSync).ok());
  }
  auto expiring = std::make_shared<Message>();
  expiring->topic = "r/old";
  expiring->payload = "x";
  expiring->expires_at = rig.clock.Now() + std::chrono::seconds(5);
  rig.state->PutRetained(expiring);
  rig.Drain();
  rig.clock.Advance(std::chrono::seconds(10));
  LoadedState l = Reload(rig);
  CHECK(l.orphans_removed == 3);
  CHECK(l.expired_removed == 1);
  CHECK(l.retained.empty());
  REQUIRE(l.sessions.size() == 1);
  CHECK(l.sessions[0].deliveries.empty());
  // And they are gone from disk.
  CHECK(rig.Rows(Fam::kDeliveries) == 0);
  CHECK(rig.Rows(Fam::kSubscriptions) == 0);
  CHECK(rig.Rows(Fam::kRetained) == 0);
}

TEST_CASE("durable state: an undecodable row stops the load with a clear error") {
  Rig rig;
  rig.state->PutSession("ok", 60, std::nullopt, std::nullopt);
  rig.Drain();
  storage::WriteBatch b;
  b.Put(Fam::kSessions, "bad", "\x01");  // truncated
  REQUIRE(rig.mem->Write(b, storage::Sync::kSync).ok());
  DurableState fresh(rig.fault.get(), rig.exec.get(), rig.clock);
  auto r = fresh.Load();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().IsCorruption());
  CHECK(r.status().message().find("mqtt.sessions") != std::string::npos);
  CHECK(r.status().message().find("626164") != std::string::npos);  // the key, in hex
  CHECK(rig.Rows(Fam::kSessions) == 2);                             // nothing was touched
}

TEST_CASE("durable state: barriers") {
  Rig rig;
  DurableState& st = *rig.state;
  // Nothing written by this thread: nothing to wait for.
  CHECK_FALSE(st.Barrier([](bool) { FAIL("must not be called"); }));

  std::promise<bool> p1;
  st.PutSession("a", 60, std::nullopt, std::nullopt);
  REQUIRE(st.Barrier([&](bool ok) { p1.set_value(ok); }));
  CHECK(p1.get_future().get());
  CHECK_FALSE(st.Barrier([](bool) { FAIL("must not be called"); }));  // consumed

  // Another thread's writes are its own.
  std::thread([&] { st.PutSession("b", 60, std::nullopt, std::nullopt); }).join();
  CHECK_FALSE(st.Barrier([](bool) {}));
  rig.Drain();  // b's write is done before the disk "fills": only the next one fails

  // A failed write fails the barrier, and a full disk makes the store unwritable until a probe succeeds.
  rig.fault->FailWrites(storage::Code::kNoSpace);
  std::promise<bool> p2;
  st.PutSession("c", 60, std::nullopt, std::nullopt);
  REQUIRE(st.Barrier([&](bool ok) { p2.set_value(ok); }));
  CHECK_FALSE(p2.get_future().get());
  CHECK_FALSE(st.Writable());
  CHECK(st.FailedWrites() == 1);
  st.Maintain();  // the probe fails too
  rig.Drain();
  CHECK_FALSE(st.Writable());
  rig.fault->Heal();
  for (int i = 0; i < 100 && !st.Writable(); ++i) {
    st.Maintain();
    rig.Drain();
  }
  CHECK(st.Writable());
}

}  // namespace
}  // namespace parley::broker::persist
