// broker::Client and Broker sessions: takeover, resume (in-flight resend with DUP, within the new
// Receive Maximum), session expiry, wills and will delay.
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

using std::chrono::seconds;

// ---------------------------------------------------------------- sessions

TEST_CASE("client: takeover kicks the first connection with 0x8E") {
  Env env;
  mqtt::Connect persistent = MakeConnect("same", Version::kV5, /*clean=*/false);
  persistent.props.session_expiry_interval = 60;  // expiry 0 would end the session with the connection
  auto first = env.Connect(persistent);
  env.Subscribe(*first, "keep/me", 1);
  mqtt::Connect c = MakeConnect("same", Version::kV5, /*clean=*/false);
  auto second = env.Connect(c);
  CHECK(env.last_connack.session_present);
  CHECK(first->link->Kicks() == std::vector<uint8_t>{rc::kSessionTakenOver});
  CHECK(second->link->Kicks().empty());

  // The network layer reacts to the kick.
  first->client->OnKick(rc::kSessionTakenOver);
  auto out = first->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kSessionTakenOver);
  CHECK(first->transport.close_calls == 1);
  first->client->OnClosed();
  CHECK(env.broker.SessionCount() == 1);  // the session now belongs to the second connection

  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("keep/me", "hi", 1, 1));
  auto got = Publishes(second->PumpTake());
  REQUIRE(got.size() == 1);  // the subscription came along
  CHECK(got[0].payload == "hi");
  CHECK(Publishes(first->PumpTake()).empty());
}

TEST_CASE("client: takeover of a session with expiry 0 starts a fresh one") {
  Env env;
  auto first = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/false));  // expiry 0
  env.Subscribe(*first, "gone/too", 1);
  auto second = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/false));
  CHECK_FALSE(env.last_connack.session_present);
  CHECK(first->link->Kicks() == std::vector<uint8_t>{rc::kSessionTakenOver});
  CHECK(env.broker.tree().SubscriptionCount() == 0);
}

TEST_CASE("client: takeover with clean start replaces the session") {
  Env env;
  auto first = env.Connect(MakeConnect("same", Version::kV311, /*clean=*/false));
  env.Subscribe(*first, "gone", 1);
  CHECK(env.broker.tree().SubscriptionCount() == 1);
  auto second = env.Connect(MakeConnect("same", Version::kV311, /*clean=*/true));
  CHECK_FALSE(env.last_connack.session_present);
  CHECK(first->link->Kicks() == std::vector<uint8_t>{rc::kSessionTakenOver});
  first->client->OnKick(rc::kSessionTakenOver);
  CHECK(first->Take().empty());  // 3.1.1: no DISCONNECT from the server
  first->client->OnClosed();
  CHECK(env.broker.tree().SubscriptionCount() == 0);
  CHECK(env.broker.SessionCount() == 1);
}

TEST_CASE("regression: SUBSCRIBE on a connection whose session a clean start already ended") {
  // The takeover happens on another thread; the old connection may handle packets it had already read
  // before its loop acts on the Kick. A SUBSCRIBE then must not put the ended session back in the tree,
  // where nothing would ever remove it (and every matching message would be counted as dropped).
  Env env;
  auto first = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/false));
  auto second = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/true));
  CHECK(first->link->Kicks() == std::vector<uint8_t>{rc::kSessionTakenOver});
  first->Send(MakeSubscribe(1, "leak/#", 1));  // read before the kick was acted on
  first->Take();
  first->client->OnKick(rc::kSessionTakenOver);
  first->client->OnClosed();
  CHECK(env.broker.tree().SubscriptionCount() == 0);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("leak/x", "x", 1, 1));
  CHECK(As<mqtt::Ack>(pub->Take().at(0)).reason_code == rc::kNoMatchingSubscribers);
  CHECK(env.broker.Stats().dropped_total == 0);
}

TEST_CASE("regression: SUBSCRIBE on a connection whose session was taken over") {
  // Same with a resuming takeover: the stale connection must not change the session the new
  // connection now owns.
  Env env;
  auto first = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/false));
  auto second = env.Connect(MakeConnect("same", Version::kV5, /*clean=*/false));
  first->Send(MakeSubscribe(1, "stale/#", 1));
  first->Take();
  CHECK(env.broker.tree().SubscriptionCount() == 0);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("stale/x", "x", 0));
  CHECK(Publishes(second->PumpTake()).empty());
}

TEST_CASE("client: session resume resends in-flight messages with DUP") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CAPTURE(static_cast<int>(v));
    Env env;
    mqtt::Connect c = MakeConnect("persistent", v, /*clean=*/false);
    if (v == Version::kV5) c.props.session_expiry_interval = 100;
    auto sub = env.Connect(c);
    env.Subscribe(*sub, "q1", 1);
    env.Subscribe(*sub, "q2", 2);
    auto pub = env.Connect("pub", v);
    pub->Send(MakePublish("q1", "first", 1, 1));
    pub->Send(MakePublish("q2", "second", 2, 2));
    pub->Take();
    auto got = Publishes(sub->PumpTake());
    REQUIRE(got.size() == 2);
    const uint16_t id1 = got[0].packet_id, id2 = got[1].packet_id;
    sub->Send(MakeAck(PacketType::kPubrec, id2));  // QoS 2 half done
    REQUIRE(sub->Take().size() == 1);              // PUBREL
    sub->client->OnClosed();                       // gone without acking the QoS 1 message
    CHECK(env.broker.SessionCount() == 2);

    pub->Send(MakePublish("q1", "while-away", 1, 3));
    pub->Send(MakePublish("q1", "qos0-while-away", 0));  // not queued for an offline session
    CHECK(As<mqtt::Ack>(pub->Take().at(0)).reason_code == rc::kSuccess);

    auto again = env.Connect(c);
    CHECK(env.last_connack.session_present);
    const auto& out = env.last_after_connack;  // resent right after CONNACK
    REQUIRE(out.size() == 3);
    const auto& p1 = As<mqtt::Publish>(out[0]);
    CHECK(p1.packet_id == id1);
    CHECK(p1.dup);
    CHECK(p1.payload == "first");
    CHECK(p1.qos == 1);
    const auto& rel = As<mqtt::Ack>(out[1]);
    CHECK(rel.type == PacketType::kPubrel);
    CHECK(rel.packet_id == id2);
    const auto& p3 = As<mqtt::Publish>(out[2]);
    CHECK(p3.payload == "while-away");
    CHECK_FALSE(p3.dup);
    CHECK(p3.packet_id != id1);
    CHECK(p3.packet_id != id2);

    SessionPtr s = env.SessionOf(*again);
    CHECK(env.InflightOf(s) == 3);
    again->Send(MakeAck(PacketType::kPuback, id1));
    again->Send(MakeAck(PacketType::kPubcomp, id2));
    again->Send(MakeAck(PacketType::kPuback, p3.packet_id));
    CHECK(env.InflightOf(s) == 0);
  }
}

TEST_CASE("client: resume resends only as much as the new Receive Maximum allows") {
  Env env;
  mqtt::Connect c = MakeConnect("resumer", Version::kV5, /*clean=*/false);
  c.props.session_expiry_interval = 100;
  c.props.receive_maximum = 10;
  auto sub = env.Connect(c);
  env.Subscribe(*sub, "rw2", 2);
  env.Subscribe(*sub, "rw", 1);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("rw2", "q2", 2, 1));
  for (int i = 0; i < 5; ++i) pub->Send(MakePublish("rw", std::to_string(i), 1, static_cast<uint16_t>(10 + i)));
  pub->Take();
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 6);
  std::vector<uint16_t> ids;
  for (auto& g : got) ids.push_back(g.packet_id);
  sub->Send(MakeAck(PacketType::kPubrec, ids[0]));  // the QoS 2 one now awaits PUBCOMP
  REQUIRE(sub->Take().size() == 1);
  sub->client->OnClosed();
  pub->Send(MakePublish("rw", "queued", 1, 20));  // queued while offline

  c.props.receive_maximum = 2;
  auto again = env.Connect(c);
  CHECK(env.last_connack.session_present);
  // The PUBREL counts against the window (MQTT 5 4.9), so only one PUBLISH goes out with it.
  auto out = env.last_after_connack;
  REQUIRE(out.size() == 2);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrel);
  CHECK(As<mqtt::Ack>(out[0]).packet_id == ids[0]);
  CHECK(As<mqtt::Publish>(out[1]).packet_id == ids[1]);
  CHECK(As<mqtt::Publish>(out[1]).dup);
  CHECK(again->PumpTake().empty());  // window full

  // Each ack lets the next held-back message out, in order, DUP and with its old id.
  again->Send(MakeAck(PacketType::kPubcomp, ids[0]));
  auto p = Publishes(again->Take());
  REQUIRE(p.size() == 1);
  CHECK(p[0].packet_id == ids[2]);
  CHECK(p[0].dup);
  CHECK(p[0].payload == "1");
  again->Send(MakeAck(PacketType::kPuback, ids[1]));
  again->Send(MakeAck(PacketType::kPuback, ids[2]));
  p = Publishes(again->Take());
  REQUIRE(p.size() == 2);
  CHECK(p[0].packet_id == ids[3]);
  CHECK(p[1].packet_id == ids[4]);
  CHECK((p[0].dup && p[1].dup));
  again->Send(MakeAck(PacketType::kPuback, ids[3]));
  p = Publishes(again->Take());
  REQUIRE(p.size() == 1);
  CHECK(p[0].packet_id == ids[5]);
  CHECK(p[0].dup);
  again->Send(MakeAck(PacketType::kPuback, ids[4]));
  p = Publishes(again->Take());
  REQUIRE(p.size() == 1);  // then the message queued while offline, as a new one
  CHECK(p[0].payload == "queued");
  CHECK_FALSE(p[0].dup);
  again->Send(MakeAck(PacketType::kPuback, ids[5]));
  again->Send(MakeAck(PacketType::kPuback, p[0].packet_id));
  CHECK(again->Take().empty());
  CHECK(env.InflightOf(env.SessionOf(*again)) == 0);
}

TEST_CASE("client: session expiry") {
  Env env;
  mqtt::Connect c = MakeConnect("exp", Version::kV5, /*clean=*/false);
  c.props.session_expiry_interval = 10;
  {
    auto p = env.Connect(c);
    env.Subscribe(*p, "e", 1);
  }  // closed
  CHECK(env.broker.SessionCount() == 1);
  CHECK(env.broker.tree().SubscriptionCount() == 1);

  SUBCASE("expires after the interval") {
    env.clock.Advance(seconds(9));
    env.broker.Tick(0);
    CHECK(env.broker.SessionCount() == 1);
    env.clock.Advance(seconds(1));
    env.broker.Tick(0);
    CHECK(env.broker.SessionCount() == 0);
    CHECK(env.broker.tree().SubscriptionCount() == 0);
    env.Connect(c);
    CHECK_FALSE(env.last_connack.session_present);
  }
  SUBCASE("resumed in time: the old timer does not end it") {
    env.clock.Advance(seconds(5));
    auto p = env.Connect(c);
    CHECK(env.last_connack.session_present);
    env.clock.Advance(seconds(20));
    env.broker.Tick(0);
    CHECK(env.broker.SessionCount() == 1);
    CHECK(env.broker.tree().SubscriptionCount() == 1);
  }
  SUBCASE("DISCONNECT can shorten the interval") {
    auto p = env.Connect(c);
    mqtt::Disconnect d;
    d.props.session_expiry_interval = 0;
    p->Send(d);
    CHECK(p->transport.close_calls == 1);
    p->client->OnClosed();
    CHECK(env.broker.SessionCount() == 0);
  }
}

TEST_CASE("client: DISCONNECT cannot make a session persistent") {
  Env env;
  auto p = env.Connect("eph", Version::kV5);  // expiry 0
  mqtt::Disconnect d;
  d.props.session_expiry_interval = 60;
  p->Send(d);
  auto out = p->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kProtocolError);
  p->client->OnClosed();
  CHECK(env.broker.SessionCount() == 0);
}

// ---------------------------------------------------------------- wills

TEST_CASE("client: will published when the connection ends without DISCONNECT") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CAPTURE(static_cast<int>(v));
    Env env;
    auto watcher = env.Connect("watcher", Version::kV5);
    env.Subscribe(*watcher, "wills/#", 1);

    SUBCASE("network drop: published") {
      auto p = env.Connect(WithWill(MakeConnect("dying", v), "wills/dying", "bye"));
      p->client->OnClosed();
      auto got = Publishes(watcher->PumpTake());
      REQUIRE(got.size() == 1);
      CHECK(got[0].topic == "wills/dying");
      CHECK(got[0].payload == "bye");
      CHECK(got[0].qos == 1);
      p->client->OnClosed();  // idempotent: not twice
      CHECK(Publishes(watcher->PumpTake()).empty());
    }
    SUBCASE("protocol error: published") {
      auto p = env.Connect(WithWill(MakeConnect("bad", v), "wills/bad", "bye"));
      p->Send(MakeConnect("bad", v));  // second CONNECT
      CHECK(p->client->closing());
      p->client->OnClosed();
      CHECK(Publishes(watcher->PumpTake()).size() == 1);
    }
    SUBCASE("normal DISCONNECT: not published") {
      auto p = env.Connect(WithWill(MakeConnect("polite", v), "wills/polite", "bye"));
      p->Send(mqtt::Disconnect{});
      CHECK(p->transport.close_calls == 1);
      p->client->OnClosed();
      CHECK(Publishes(watcher->PumpTake()).empty());
    }
    if (v == Version::kV5) {
      SUBCASE("DISCONNECT 0x04: published") {
        auto p = env.Connect(WithWill(MakeConnect("withwill", v), "wills/withwill", "bye"));
        p->Send(mqtt::Disconnect{rc::kDisconnectWithWill, {}});
        p->client->OnClosed();
        CHECK(Publishes(watcher->PumpTake()).size() == 1);
      }
    }
    SUBCASE("server shutdown: not published") {
      auto p = env.Connect(WithWill(MakeConnect("shut", v), "wills/shut", "bye"));
      p->client->OnShutdown();
      auto out = p->Take();
      if (v == Version::kV5) {
        REQUIRE(out.size() == 1);
        CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kServerShuttingDown);
      } else {
        CHECK(out.empty());
      }
      p->client->OnClosed();
      CHECK(Publishes(watcher->PumpTake()).empty());
    }
  }
}

TEST_CASE("client: will delay") {
  Env env;
  auto watcher = env.Connect("watcher", Version::kV5);
  env.Subscribe(*watcher, "w", 1);
  mqtt::Connect c = WithWill(MakeConnect("delayed", Version::kV5, /*clean=*/false), "w", "late", /*delay=*/10);
  c.props.session_expiry_interval = 100;

  SUBCASE("published after the delay") {
    env.Connect(c)->client->OnClosed();
    CHECK(Publishes(watcher->PumpTake()).empty());
    env.clock.Advance(seconds(9));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).empty());
    env.clock.Advance(seconds(1));
    env.broker.Tick(0);
    auto got = Publishes(watcher->PumpTake());
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "late");
    env.clock.Advance(seconds(10));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).empty());  // once
    CHECK(env.broker.SessionCount() == 2);           // the session itself lives on
  }
  SUBCASE("cancelled when the session resumes in time") {
    env.Connect(c)->client->OnClosed();
    env.clock.Advance(seconds(5));
    mqtt::Connect back = MakeConnect("delayed", Version::kV5, /*clean=*/false);
    back.props.session_expiry_interval = 100;
    auto p = env.Connect(back);
    CHECK(env.last_connack.session_present);
    env.clock.Advance(seconds(20));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).empty());
  }
  SUBCASE("published at once when the session ends first (clean start takes it over)") {
    env.Connect(c)->client->OnClosed();
    env.clock.Advance(seconds(2));
    auto p = env.Connect(MakeConnect("delayed", Version::kV5, /*clean=*/true));
    auto got = Publishes(watcher->PumpTake());
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "late");
    env.clock.Advance(seconds(20));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).empty());  // not again from the old timer
  }
  SUBCASE("the session expiry interval bounds the delay") {
    c.props.session_expiry_interval = 4;
    env.Connect(c)->client->OnClosed();
    env.clock.Advance(seconds(3));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).empty());
    env.clock.Advance(seconds(1));
    env.broker.Tick(0);
    CHECK(Publishes(watcher->PumpTake()).size() == 1);
    CHECK(env.broker.SessionCount() == 1);  // the delayed session expired too
  }
  SUBCASE("a will message expiry counts from when it is published") {
    c.will->props.message_expiry_interval = 30;
    env.Connect(c)->client->OnClosed();
    env.clock.Advance(seconds(10));
    env.broker.Tick(0);
    auto got = Publishes(watcher->PumpTake());
    REQUIRE(got.size() == 1);
    CHECK(got[0].props.message_expiry_interval == std::optional<uint32_t>(30));
  }
}

}  // namespace
}  // namespace parley::broker
