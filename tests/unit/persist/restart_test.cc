// The broker with durable state: acks wait for the disk, and what was acknowledged is all there after a
// restart — sessions, subscriptions, queued and in-flight QoS 1/2 messages with their packet ids, QoS 2
// state in both directions, retained messages and wills. Plus the disk-full path (0x97).
#include <doctest/doctest.h>

#include "tests/unit/persist/rig.h"

namespace parley::broker::persist {
namespace {

using broker::testing::As;
using broker::testing::MakeAck;
using broker::testing::MakeConnect;
using broker::testing::MakePublish;
using broker::testing::MakeSubscribe;
using broker::testing::Peer;
using broker::testing::Publishes;
using mqtt::PacketType;
using mqtt::Version;
using testing::Await;
using testing::Rig;
namespace rc = mqtt::rc;

mqtt::Connect Persistent(std::string id, uint32_t expiry = 300, bool clean = false) {
  mqtt::Connect c = MakeConnect(std::move(id), Version::kV5, clean);
  c.props.session_expiry_interval = expiry;
  return c;
}

// Connects; what the broker sent right after the CONNACK (a resumed session's messages) goes to `after`.
std::unique_ptr<Peer> Connect(Rig& rig, const mqtt::Connect& c, bool* present = nullptr,
                              std::vector<mqtt::Packet>* after = nullptr) {
  auto p = std::make_unique<Peer>(*rig.broker, c.version);
  p->Send(c);
  auto out = p->Take();
  REQUIRE(!out.empty());
  const auto& ack = As<mqtt::Connack>(out[0]);
  REQUIRE(ack.reason_code == 0);
  if (present) *present = ack.session_present;
  if (after) after->assign(out.begin() + 1, out.end());
  return p;
}

void Subscribe(Peer& p, const std::string& filter, uint8_t qos, uint8_t expect) {
  p.Send(MakeSubscribe(1, filter, qos));
  auto out = Await(p, 1);
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{expect});
}

// Publishes and returns the ack (PUBACK or PUBREC) once storage has it.
mqtt::Ack PublishAcked(Peer& p, const std::string& topic, const std::string& payload, uint8_t qos, uint16_t id,
                       bool retain = false) {
  p.Send(MakePublish(topic, payload, qos, id, retain));
  auto out = Await(p, 1);
  REQUIRE(out.size() == 1);
  return As<mqtt::Ack>(out[0]);
}

TEST_CASE("restart: PUBACK goes out only once the message is on disk for every persistent receiver") {
  Rig rig;
  auto sub = Connect(rig, Persistent("sub"));
  Subscribe(*sub, "d/#", 1, 1);
  auto pub = Connect(rig, MakeConnect("pub", Version::kV5));

  rig.fault->DelayWrites(std::chrono::milliseconds(150));
  pub->Send(MakePublish("d/1", "one", 1, 1));
  pub->Send(MakePublish("nobody/listens", "two", 1, 2));  // no write of its own, but acked in order
  CHECK(pub->Take().empty());  // the write is still on its way
  auto acks = Await(*pub, 2);
  REQUIRE(acks.size() == 2);
  CHECK(As<mqtt::Ack>(acks[0]).packet_id == 1);
  CHECK(As<mqtt::Ack>(acks[0]).reason_code == rc::kSuccess);
  CHECK(As<mqtt::Ack>(acks[1]).packet_id == 2);
  CHECK(As<mqtt::Ack>(acks[1]).reason_code == rc::kNoMatchingSubscribers);
  rig.fault->DelayWrites(std::chrono::milliseconds(0));

  // Between clean sessions nothing is written: the ack is immediate.
  auto clean_sub = Connect(rig, MakeConnect("clean-sub", Version::kV5));
  clean_sub->Send(MakeSubscribe(1, "c/#", 1));
  auto suback = clean_sub->Take();
  REQUIRE(suback.size() == 1);
  pub->Send(MakePublish("c/1", "x", 1, 3));
  auto now = pub->Take();
  REQUIRE(now.size() == 1);
  CHECK(As<mqtt::Ack>(now[0]).packet_id == 3);
}

TEST_CASE("restart: queued and in-flight messages come back with their packet ids") {
  Rig rig;
  {
    auto sub = Connect(rig, Persistent("sub"));
    Subscribe(*sub, "q/#", 2, 2);
    auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
    for (uint16_t i = 1; i <= 4; ++i)
      CHECK(PublishAcked(*pub, "q/" + std::to_string(i), "m" + std::to_string(i), i % 2 ? 1 : 2, i).reason_code == 0);
    auto got = Publishes(Await(*sub, 4));
    REQUIRE(got.size() == 4);
    CHECK(got[0].packet_id == 1);
    CHECK(got[3].packet_id == 4);
    // m1 (QoS 1) acknowledged; m2 (QoS 2) received (PUBREC) and released; m3, m4 unacknowledged.
    sub->Send(MakeAck(PacketType::kPuback, 1));
    sub->Send(MakeAck(PacketType::kPubrec, 2));
    auto rel = Await(*sub, 1);
    REQUIRE(rel.size() == 1);
    CHECK(As<mqtt::Ack>(rel[0]).type == PacketType::kPubrel);
    // Another message arrives while the subscriber is gone.
    sub->client->OnClosed();
    CHECK(PublishAcked(*pub, "q/5", "m5", 1, 5).reason_code == 0);
    pub->client->OnClosed();
  }
  rig.Restart();  // what a kill -9 leaves: only what reached the store

  bool present = false;
  std::vector<mqtt::Packet> out;
  auto sub = Connect(rig, Persistent("sub"), &present, &out);
  CHECK(present);
  REQUIRE(out.size() == 4);
  // PUBREL for the released one first (in-flight state), then the rest in order under their old ids.
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrel);
  CHECK(As<mqtt::Ack>(out[0]).packet_id == 2);
  const auto& p3 = As<mqtt::Publish>(out[1]);
  CHECK(p3.payload == "m3");
  CHECK(p3.packet_id == 3);
  CHECK(p3.qos == 1);
  CHECK(p3.dup);  // it had been sent before the crash (DUP: "might be a re-delivery")
  CHECK(As<mqtt::Publish>(out[3]).dup);  // m5 never was; after a restart the broker cannot tell
  CHECK(As<mqtt::Publish>(out[2]).payload == "m4");
  CHECK(As<mqtt::Publish>(out[2]).packet_id == 4);
  CHECK(As<mqtt::Publish>(out[2]).qos == 2);
  CHECK(As<mqtt::Publish>(out[3]).payload == "m5");
  CHECK(As<mqtt::Publish>(out[3]).packet_id == 5);
  // The subscription came back too.
  auto pub = Connect(rig, MakeConnect("pub2", Version::kV5));
  CHECK(PublishAcked(*pub, "q/6", "m6", 1, 1).reason_code == 0);
  auto more = Publishes(Await(*sub, 1));
  REQUIRE(more.size() == 1);
  CHECK(more[0].payload == "m6");
  CHECK(more[0].packet_id == 6);
}

TEST_CASE("restart: an incoming QoS 2 message is not delivered twice") {
  Rig rig;
  {
    auto sub = Connect(rig, Persistent("sub"));
    Subscribe(*sub, "e/#", 2, 2);
    sub->client->OnClosed();
    auto pub = Connect(rig, Persistent("pub"));
    CHECK(PublishAcked(*pub, "e/1", "once", 2, 7).type == PacketType::kPubrec);
    pub->client->OnClosed();  // gone before PUBREL
  }
  rig.Restart();
  bool present = false;
  auto pub = Connect(rig, Persistent("pub"), &present);
  CHECK(present);
  mqtt::Publish again = MakePublish("e/1", "once", 2, 7);
  again.dup = true;
  pub->Send(again);  // the publisher resends: PUBREC again, not routed again
  auto out = Await(*pub, 1);
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrec);
  pub->Send(MakeAck(PacketType::kPubrel, 7));
  out = Await(*pub, 1);
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubcomp);
  CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kSuccess);

  std::vector<mqtt::Packet> after;
  auto sub = Connect(rig, Persistent("sub"), nullptr, &after);
  auto more = Await(*sub, 1);
  after.insert(after.end(), more.begin(), more.end());
  auto got = Publishes(after);
  REQUIRE(got.size() == 1);  // exactly once
  CHECK(got[0].payload == "once");
}

TEST_CASE("restart: a QoS 2 message's deliveries and packet id reach the disk in one write") {
  // Otherwise a crash between them could keep the deliveries and lose the id, and the publisher's resend
  // would be routed a second time.
  Rig rig;
  for (const char* id : {"s1", "s2"}) {
    auto s = Connect(rig, Persistent(id));
    Subscribe(*s, "x/#", 2, 2);
    s->client->OnClosed();
  }
  auto pub = Connect(rig, Persistent("pub"));
  // Routing pauses 20 ms before each receiver (a slow authorizer), long enough for the storage thread to
  // write the first receiver's row on its own if nothing held it back.
  struct SlowReads final : Authorizer {
    bool Allowed(const ClientIdentity&, std::string_view, Access access) const override {
      if (access == Access::kRead) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return true;
    }
  } slow;
  rig.broker->SetAuthorizer(&slow);
  rig.Drain();
  const uint64_t before = rig.fault->writes();
  CHECK(PublishAcked(*pub, "x/1", "m", 2, 5).type == PacketType::kPubrec);
  rig.Drain();
  CHECK(rig.fault->writes() - before == 1);  // two delivery rows, one body, one QoS 2 id: one batch
  CHECK(rig.Rows(Fam::kDeliveries) == 2);
  CHECK(rig.Rows(Fam::kIncomingQos2) == 1);
  rig.broker->SetAuthorizer(nullptr);  // `slow` goes out of scope before the peers
}

TEST_CASE("restart: a share group's queued message survives, and moves on when its holder leaves") {
  Rig rig;
  for (const char* id : {"m1", "m2"}) {
    auto s = Connect(rig, Persistent(id));
    Subscribe(*s, "$share/g/jobs/#", 1, 1);
    s->client->OnClosed();
  }
  {
    auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
    CHECK(PublishAcked(*pub, "jobs/1", "job", 1, 1).reason_code == rc::kSuccess);
    pub->client->OnClosed();
  }
  rig.Restart();
  rig.Drain();
  REQUIRE(rig.Rows(Fam::kDeliveries) == 1);  // queued for one member, with its share group
  // Both members come back; whichever holds the job ends its session with a clean start: the job must go
  // to the other member (in memory and on disk), not vanish.
  std::vector<mqtt::Packet> a_after, b_after;
  auto a = Connect(rig, Persistent("m1"), nullptr, &a_after);
  auto b = Connect(rig, Persistent("m2"), nullptr, &b_after);
  const bool a_holds = !Publishes(a_after).empty();
  CHECK(a_holds != !Publishes(b_after).empty());  // exactly one of them got it
  auto& holder = a_holds ? a : b;
  auto& other = a_holds ? b : a;
  const std::string holder_id = a_holds ? "m1" : "m2";
  holder->client->OnClosed();
  holder.reset();
  auto fresh = Connect(rig, Persistent(holder_id, 300, /*clean=*/true));
  auto got = Publishes(Await(*other, 1));
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "job");
  other->Send(MakeAck(PacketType::kPuback, got[0].packet_id));
  rig.Drain();
  CHECK(rig.Rows(Fam::kDeliveries) == 0);
  CHECK(rig.Rows(Fam::kMessages) == 0);
}

TEST_CASE("restart: retained messages, and sessions that expired while the broker was down") {
  Rig rig;
  {
    auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
    CHECK(PublishAcked(*pub, "r/a", "A", 1, 1, /*retain=*/true).reason_code == rc::kNoMatchingSubscribers);
    CHECK(PublishAcked(*pub, "r/b", "B", 1, 2, true).reason_code == rc::kNoMatchingSubscribers);
    CHECK(PublishAcked(*pub, "r/b", "", 1, 3, true).reason_code == rc::kNoMatchingSubscribers);  // cleared
    auto brief = Connect(rig, Persistent("brief", 10));
    Subscribe(*brief, "x", 1, 1);
    brief->client->OnClosed();
    auto lasting = Connect(rig, Persistent("lasting", 1000));
    lasting->client->OnClosed();
    rig.Drain();
  }
  rig.Stop();
  rig.clock.Advance(std::chrono::seconds(60));  // down for a minute: "brief" (10 s) expired meanwhile
  rig.Start();
  CHECK(rig.broker->SessionCount() == 1);
  rig.Drain();
  CHECK(rig.Rows(Fam::kSessions) == 1);
  CHECK(rig.Rows(Fam::kSubscriptions) == 0);

  auto s = Connect(rig, MakeConnect("reader", Version::kV5));
  s->Send(MakeSubscribe(1, "r/#", 1));
  auto out = Await(*s, 2);
  REQUIRE(out.size() == 2);
  auto got = Publishes(out);
  REQUIRE(got.size() == 1);
  CHECK(got[0].topic == "r/a");
  CHECK(got[0].retain);
}

TEST_CASE("restart: the will of a client connected at the crash goes out after the restart") {
  Rig rig;
  {
    auto watcher = Connect(rig, Persistent("watcher"));
    Subscribe(*watcher, "will/#", 1, 1);
    watcher->client->OnClosed();
    mqtt::Connect c = broker::testing::WithWill(Persistent("dies"), "will/dies", "gone");
    auto dies = Connect(rig, c);
    mqtt::Connect polite = broker::testing::WithWill(Persistent("polite"), "will/polite", "gone");
    auto p = Connect(rig, polite);
    p->Send(mqtt::Disconnect{});  // normal DISCONNECT: its will is void
    p->client->OnClosed();
    rig.Drain();
    // "dies" is still connected when the broker is killed.
  }
  rig.Restart();
  rig.broker->Tick(0);
  std::vector<mqtt::Packet> after;
  auto watcher = Connect(rig, Persistent("watcher"), nullptr, &after);
  auto more = Await(*watcher, 1);
  after.insert(after.end(), more.begin(), more.end());
  auto got = Publishes(after);
  REQUIRE(got.size() == 1);
  CHECK(got[0].topic == "will/dies");
  rig.Drain();
  CHECK(rig.Rows(Fam::kWills) == 0);  // published: not again after another restart
}

TEST_CASE("restart: clean start and expiry 0 remove a session's rows") {
  Rig rig;
  auto a = Connect(rig, Persistent("a"));
  Subscribe(*a, "t", 1, 1);
  a->client->OnClosed();
  rig.Drain();
  CHECK(rig.Rows(Fam::kSessions) == 1);
  bool present = true;
  auto again = Connect(rig, Persistent("a", 300, /*clean=*/true), &present);
  CHECK_FALSE(present);
  rig.Drain();
  CHECK(rig.Rows(Fam::kSessions) == 1);  // the new session
  CHECK(rig.Rows(Fam::kSubscriptions) == 0);
  again->Send(mqtt::Disconnect{});
  again->client->OnClosed();
  auto zero = Connect(rig, Persistent("a", 0), &present);
  rig.Drain();
  CHECK(rig.Rows(Fam::kSessions) == 0);  // resumed with expiry 0: nothing of it survives a restart
}

TEST_CASE("restart: a full disk refuses persistent work with 0x97 and recovers by itself") {
  Rig rig;
  auto sub = Connect(rig, Persistent("sub"));
  Subscribe(*sub, "f/#", 1, 1);
  auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
  rig.fault->FailWrites(storage::Code::kNoSpace);

  // The first write fails on the disk: the publisher hears 0x97.
  CHECK(PublishAcked(*pub, "f/1", "x", 1, 1).reason_code == rc::kQuotaExceeded);
  CHECK_FALSE(rig.state->Writable());
  // Then persistent work is refused up front; the broker keeps serving everything else.
  CHECK(PublishAcked(*pub, "f/2", "x", 1, 2).reason_code == rc::kQuotaExceeded);
  // (f/1 reached the online subscriber from memory before the write failed.)
  CHECK(Publishes(sub->PumpTake()).size() == 1);
  Subscribe(*sub, "g/#", 1, rc::kQuotaExceeded);
  auto clean = Connect(rig, MakeConnect("clean", Version::kV5));
  Subscribe(*clean, "h/#", 1, 1);
  CHECK(PublishAcked(*pub, "h/1", "x", 1, 3).reason_code == rc::kSuccess);
  // A 3.1.1 publisher cannot be told: it is disconnected without an ack and will retry.
  auto old = Connect(rig, MakeConnect("old", Version::kV311));
  old->Send(MakePublish("f/3", "x", 1, 9));
  CHECK(old->Take().empty());
  CHECK(old->client->closing());

  rig.fault->Heal();
  for (int i = 0; i < 200 && !rig.state->Writable(); ++i) {
    rig.broker->Tick(0);  // Maintain() probes
    rig.Drain();
  }
  REQUIRE(rig.state->Writable());
  CHECK(PublishAcked(*pub, "f/4", "x", 1, 4).reason_code == rc::kSuccess);
}

TEST_CASE("restart: a transient message reaches a persistent session but is never written") {
  Rig rig;
  auto sub = Connect(rig, Persistent("sub"));
  Subscribe(*sub, "t/#", 1, 1);
  rig.Drain();
  const uint64_t writes = rig.fault->writes();
  auto m = std::make_shared<Message>();
  m->topic = "t/live";
  m->payload = "only in memory";
  m->qos = 1;
  m->transient = true;  // the IM layer's live deliveries: its own store is the truth
  CHECK(rig.broker->PublishFromPlugin(m) == 1);
  auto got = Await(*sub, 1);
  REQUIRE(got.size() == 1);
  sub->Send(mqtt::Ack{mqtt::PacketType::kPuback, As<mqtt::Publish>(got[0]).packet_id, 0, {}});
  rig.Drain();
  CHECK(rig.fault->writes() == writes);
  CHECK(rig.Rows(Fam::kDeliveries) == 0);
  CHECK(rig.Rows(Fam::kMessages) == 0);
}

}  // namespace
}  // namespace parley::broker::persist
