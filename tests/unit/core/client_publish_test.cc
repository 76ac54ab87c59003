// broker::Client: PUBLISH in both directions, QoS 1 and 2 flows, the outbound window, topic aliases,
// message expiry and Maximum Packet Size.
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

using std::chrono::seconds;

// ---------------------------------------------------------------- PUBLISH in

TEST_CASE("client: PUBLISH QoS 1 -> PUBACK") {
  Env env;
  SUBCASE("5.0 without subscribers: 0x10") {
    auto p = env.Connect("pub", Version::kV5);
    p->Send(MakePublish("nobody/here", "x", 1, 7));
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Ack>(out[0]);
    CHECK(ack.type == PacketType::kPuback);
    CHECK(ack.packet_id == 7);
    CHECK(ack.reason_code == rc::kNoMatchingSubscribers);
  }
  SUBCASE("5.0 with a subscriber: 0x00") {
    auto s = env.Connect("sub", Version::kV5);
    env.Subscribe(*s, "t", 0);
    auto p = env.Connect("pub", Version::kV5);
    p->Send(MakePublish("t", "x", 1, 8));
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kSuccess);
  }
  SUBCASE("3.1.1 has no reason code") {
    auto p = env.Connect("pub", Version::kV311);
    p->Send(MakePublish("nobody/here", "x", 1, 9));
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Ack>(out[0]);
    CHECK(ack.type == PacketType::kPuback);
    CHECK(ack.packet_id == 9);
    CHECK(ack.reason_code == 0);
  }
  SUBCASE("QoS 0 gets no ack") {
    auto p = env.Connect("pub", Version::kV5);
    p->Send(MakePublish("t", "x", 0));
    CHECK(p->Take().empty());
  }
}

TEST_CASE("client: subscribe, publish from another client, delivery after Pump") {
  for (bool bytewise : {false, true}) {
    for (Version v : {Version::kV311, Version::kV5}) {
      CAPTURE(bytewise);
      CAPTURE(static_cast<int>(v));
      Env env;
      auto sub = env.Connect(MakeConnect("sub", v), bytewise);
      auto pub = env.Connect(MakeConnect("pub", v), bytewise);
      sub->Send(MakeSubscribe(1, "sensors/+/temp", 1));
      auto out = sub->Take();
      REQUIRE(out.size() == 1);
      CHECK(As<mqtt::Suback>(out[0]).packet_id == 1);
      CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{1});

      const int wakes = sub->link->wakes.load();
      pub->Send(MakePublish("sensors/kitchen/temp", "21.5", 1, 5));
      pub->Send(MakePublish("sensors/kitchen/humidity", "40", 1, 6));  // not subscribed
      pub->Send(MakePublish("sensors/hall/temp", "19", 0));            // QoS 0 stays QoS 0
      pub->Send(MakePublish("sensors/attic/temp", "30", 2, 7));        // QoS 2 downgraded to 1
      auto acks = pub->Take();
      REQUIRE(acks.size() == 3);  // PUBACK 5, PUBACK 6, PUBREC 7
      CHECK(sub->link->wakes.load() == wakes + 1);  // one wake for the batch
      CHECK(sub->transport.out_.empty());           // nothing is written before Pump

      auto got = Publishes(sub->PumpTake());
      REQUIRE(got.size() == 3);
      CHECK(got[0].topic == "sensors/kitchen/temp");
      CHECK(got[0].payload == "21.5");
      CHECK(got[0].qos == 1);
      CHECK(got[0].packet_id == 1);
      CHECK_FALSE(got[0].dup);
      CHECK_FALSE(got[0].retain);
      CHECK(got[1].topic == "sensors/hall/temp");
      CHECK(got[1].qos == 0);
      CHECK(got[2].topic == "sensors/attic/temp");
      CHECK(got[2].qos == 1);
      CHECK(got[2].packet_id == 2);

      SessionPtr s = env.SessionOf(*sub);
      CHECK(env.InflightOf(s) == 2);
      sub->Send(MakeAck(PacketType::kPuback, 1));
      sub->Send(MakeAck(PacketType::kPuback, 2));
      sub->Send(MakeAck(PacketType::kPuback, 2));  // again: ignored
      CHECK(env.InflightOf(s) == 0);
      CHECK(sub->Take().empty());
      CHECK(sub->Unconsumed() == 0);
      CHECK(pub->Unconsumed() == 0);
    }
  }
}

TEST_CASE("client: several packets in one read, and a packet split across reads") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "t/#", 0);

  Peer pub(env.broker, Version::kV5);
  std::string bytes;
  mqtt::Encode(MakeConnect("pub", Version::kV5), Version::kV5, &bytes);
  for (int i = 0; i < 5; ++i) mqtt::Encode(MakePublish("t/" + std::to_string(i), "p", 1, 10 + i), Version::kV5, &bytes);
  mqtt::Encode(mqtt::Pingreq{}, Version::kV5, &bytes);
  // Feed in uneven chunks: each OnData must consume only whole packets.
  size_t pos = 0;
  for (size_t chunk : {3u, 20u, 1u, 7u, 64u, 1000u}) {
    if (pos >= bytes.size()) break;
    const size_t n = std::min(chunk, bytes.size() - pos);
    pub.Feed(bytes.substr(pos, n));
    pos += n;
  }
  CHECK(pub.Unconsumed() == 0);
  auto out = pub.Take();
  REQUIRE(out.size() == 7);
  CHECK(As<mqtt::Connack>(out[0]).reason_code == 0);
  for (int i = 0; i < 5; ++i) CHECK(As<mqtt::Ack>(out[1 + i]).packet_id == 10 + i);
  CHECK(std::holds_alternative<mqtt::Pingresp>(out[6]));
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(got[i].topic == "t/" + std::to_string(i));
}

// ---------------------------------------------------------------- QoS 2

TEST_CASE("client: QoS 2 inbound flow, and a duplicate is not routed twice") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    Env env;
    auto sub = env.Connect(MakeConnect("sub", Version::kV5), bytewise);
    env.Subscribe(*sub, "q2", 2);
    auto pub = env.Connect(MakeConnect("pub", Version::kV5), bytewise);

    pub->Send(MakePublish("q2", "once", 2, 42));
    auto out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrec);
    CHECK(As<mqtt::Ack>(out[0]).packet_id == 42);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kSuccess);

    // The publisher did not see the PUBREC and sends the message again, DUP set.
    mqtt::Publish again = MakePublish("q2", "once", 2, 42);
    again.dup = true;
    pub->Send(again);
    out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrec);
    CHECK(As<mqtt::Ack>(out[0]).packet_id == 42);

    auto got = Publishes(sub->PumpTake());
    REQUIRE(got.size() == 1);  // routed once
    CHECK(got[0].payload == "once");
    CHECK(got[0].qos == 2);

    pub->Send(MakeAck(PacketType::kPubrel, 42));
    out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubcomp);
    CHECK(As<mqtt::Ack>(out[0]).packet_id == 42);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kSuccess);

    // PUBREL for an id we do not hold.
    pub->Send(MakeAck(PacketType::kPubrel, 42));
    out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kPacketIdentifierNotFound);

    // After PUBCOMP the id is free: the same id is a new message.
    pub->Send(MakePublish("q2", "second", 2, 42));
    pub->Take();
    got = Publishes(sub->PumpTake());
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "second");
  }
}

TEST_CASE("client: QoS 2 outbound flow") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "q2", 2);
  SessionPtr s = env.SessionOf(*sub);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("q2", "m", 2, 1));
  pub->Take();

  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  const uint16_t id = got[0].packet_id;
  CHECK(id != 0);
  CHECK(got[0].qos == 2);
  CHECK(env.InflightOf(s) == 1);

  // A PUBCOMP before PUBREC does not complete it.
  sub->Send(MakeAck(PacketType::kPubcomp, id));
  CHECK(env.InflightOf(s) == 1);

  sub->Send(MakeAck(PacketType::kPubrec, id));
  auto out = sub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrel);
  CHECK(As<mqtt::Ack>(out[0]).packet_id == id);
  CHECK(env.InflightOf(s) == 1);
  {
    std::lock_guard lock(s->mu_);
    CHECK(s->inflight_[0].state == Inflight::State::kAwaitPubcomp);
    CHECK(s->inflight_[0].delivery.msg == nullptr);  // the message is released after PUBREC
  }
  // PUBREC again (our PUBREL was lost): PUBREL again.
  sub->Send(MakeAck(PacketType::kPubrec, id));
  out = sub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrel);

  sub->Send(MakeAck(PacketType::kPubcomp, id));
  CHECK(env.InflightOf(s) == 0);
  CHECK(sub->Take().empty());

  // PUBREC for an unknown id: PUBREL 0x92.
  sub->Send(MakeAck(PacketType::kPubrec, 999));
  out = sub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrel);
  CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kPacketIdentifierNotFound);

  // PUBREC with an error reason ends the exchange without PUBREL.
  pub->Send(MakePublish("q2", "refused", 2, 2));
  pub->Take();
  got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  sub->Send(MakeAck(PacketType::kPubrec, got[0].packet_id, rc::kUnspecifiedError));
  CHECK(sub->Take().empty());
  CHECK(env.InflightOf(s) == 0);
}

// ---------------------------------------------------------------- flow control

TEST_CASE("client: outbound window respects the client's Receive Maximum") {
  Env env;
  mqtt::Connect c = MakeConnect("slow", Version::kV5);
  c.props.receive_maximum = 2;
  auto sub = env.Connect(c);
  env.Subscribe(*sub, "w", 1);
  auto pub = env.Connect("pub", Version::kV5);
  for (int i = 0; i < 5; ++i) pub->Send(MakePublish("w", std::to_string(i), 1, static_cast<uint16_t>(i + 1)));
  pub->Take();

  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 2);
  CHECK(got[0].payload == "0");
  CHECK(got[1].payload == "1");
  CHECK(Publishes(sub->PumpTake()).empty());  // the window is full

  sub->Send(MakeAck(PacketType::kPuback, got[0].packet_id));  // frees one slot: the next goes out
  auto more = Publishes(sub->Take());
  REQUIRE(more.size() == 1);
  CHECK(more[0].payload == "2");

  sub->Send(MakeAck(PacketType::kPuback, got[1].packet_id));
  sub->Send(MakeAck(PacketType::kPuback, more[0].packet_id));
  more = Publishes(sub->Take());
  REQUIRE(more.size() == 2);
  CHECK(more[0].payload == "3");
  CHECK(more[1].payload == "4");
}

TEST_CASE("client: the broker's max_inflight caps the window too") {
  BrokerOptions o = Quiet();
  o.max_inflight = 3;
  Env env(o);
  auto sub = env.Connect("sub", Version::kV311);  // 3.1.1: no Receive Maximum
  env.Subscribe(*sub, "w", 1);
  auto pub = env.Connect("pub", Version::kV311);
  for (int i = 0; i < 6; ++i) pub->Send(MakePublish("w", std::to_string(i), 1, static_cast<uint16_t>(i + 1)));
  CHECK(Publishes(sub->PumpTake()).size() == 3);
}

TEST_CASE("client: output high-water mark pauses delivery") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "w", 0);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("w", "a", 0));
  sub->transport.extra_pending = 1 << 20;  // the kernel is not taking bytes
  sub->client->Pump();
  CHECK(sub->client->output_blocked());
  CHECK(sub->Take().empty());
  sub->transport.extra_pending = 0;  // drained: the transport pumps again
  auto got = Publishes(sub->PumpTake());
  CHECK_FALSE(sub->client->output_blocked());
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "a");
}

// ---------------------------------------------------------------- topic aliases

TEST_CASE("client: topic alias from the client") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "alias/#", 0);
  auto pub = env.Connect("pub", Version::kV5);

  mqtt::Publish set = MakePublish("alias/long/topic/name", "1");
  set.props.topic_alias = 3;
  pub->Send(set);
  mqtt::Publish use = MakePublish("", "2");
  use.props.topic_alias = 3;
  pub->Send(use);
  mqtt::Publish remap = MakePublish("alias/other", "3");
  remap.props.topic_alias = 3;
  pub->Send(remap);
  pub->Send(use);  // now means alias/other
  CHECK(pub->Take().empty());
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 4);
  CHECK(got[0].topic == "alias/long/topic/name");
  CHECK(got[1].topic == "alias/long/topic/name");
  CHECK(got[1].payload == "2");
  CHECK(got[2].topic == "alias/other");
  CHECK(got[3].topic == "alias/other");
  for (auto& g : got) CHECK_FALSE(g.props.topic_alias.has_value());  // sub did not allow aliases

  SUBCASE("unknown alias") {
    mqtt::Publish unknown = MakePublish("", "x");
    unknown.props.topic_alias = 4;
    pub->Send(unknown);
    auto out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kProtocolError);
  }
  SUBCASE("alias above the maximum we announced") {
    mqtt::Publish big = MakePublish("alias/x", "x");
    big.props.topic_alias = 65;  // Topic Alias Maximum is 64
    pub->Send(big);
    auto out = pub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kTopicAliasInvalid);
  }
}

TEST_CASE("client: topic alias to the client") {
  Env env;
  mqtt::Connect c = MakeConnect("sub", Version::kV5);
  c.props.topic_alias_maximum = 2;
  auto sub = env.Connect(c);
  env.Subscribe(*sub, "t/#", 0);
  auto pub = env.Connect("pub", Version::kV5);
  for (const char* t : {"t/1", "t/1", "t/2", "t/3", "t/2", "t/3"}) pub->Send(MakePublish(t, t));
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 6);
  // First use: topic and alias together; later: alias alone; no alias left for t/3.
  CHECK(got[0].topic == "t/1");
  CHECK(got[0].props.topic_alias == std::optional<uint16_t>(1));
  CHECK(got[1].topic.empty());
  CHECK(got[1].props.topic_alias == std::optional<uint16_t>(1));
  CHECK(got[2].topic == "t/2");
  CHECK(got[2].props.topic_alias == std::optional<uint16_t>(2));
  CHECK(got[3].topic == "t/3");
  CHECK_FALSE(got[3].props.topic_alias.has_value());
  CHECK(got[4].topic.empty());
  CHECK(got[4].props.topic_alias == std::optional<uint16_t>(2));
  CHECK(got[5].topic == "t/3");
  CHECK_FALSE(got[5].props.topic_alias.has_value());
  // The payload tells which topic an alias stood for.
  CHECK(got[1].payload == "t/1");
  CHECK(got[4].payload == "t/2");
}

// ---------------------------------------------------------------- expiry and size

TEST_CASE("client: message expiry") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "x/#", 1);
  auto pub = env.Connect("pub", Version::kV5);
  mqtt::Publish p = MakePublish("x/short", "short", 1, 1);
  p.props.message_expiry_interval = 5;
  pub->Send(p);
  p = MakePublish("x/long", "long", 1, 2);
  p.props.message_expiry_interval = 10;
  pub->Send(p);
  pub->Send(MakePublish("x/never", "never", 1, 3));
  pub->Take();

  env.clock.Advance(seconds(5));  // the first expires exactly now
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 2);
  CHECK(got[0].payload == "long");
  CHECK(got[0].props.message_expiry_interval == std::optional<uint32_t>(5));  // what is left
  CHECK(got[1].payload == "never");
  CHECK_FALSE(got[1].props.message_expiry_interval.has_value());
  CHECK(env.broker.Stats().dropped[static_cast<int>(DropCause::kExpired)] == 1);

  // Expired retained messages are not sent on subscribe.
  p = MakePublish("x/ret", "ret", 0, 0, /*retain=*/true);
  p.props.message_expiry_interval = 1;
  pub->Send(p);
  sub->PumpTake();
  env.clock.Advance(seconds(2));
  auto late = env.Connect("late", Version::kV5);
  env.Subscribe(*late, "x/#", 1);
  CHECK(Publishes(late->PumpTake()).empty());
}

TEST_CASE("client: the client's Maximum Packet Size is respected") {
  Env env;
  mqtt::Connect c = MakeConnect("small", Version::kV5);
  c.props.maximum_packet_size = 64;
  auto sub = env.Connect(c);
  env.Subscribe(*sub, "m", 1);
  SessionPtr s = env.SessionOf(*sub);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("m", std::string(100, 'x'), 1, 1));
  pub->Send(MakePublish("m", "fits", 1, 2));
  pub->Take();

  const std::string raw_before = sub->transport.out_;
  CHECK(raw_before.empty());
  sub->client->Pump();
  const size_t bytes = sub->transport.out_.size();
  auto got = Publishes(sub->Take());
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "fits");
  CHECK(bytes <= 64);
  CHECK(env.InflightOf(s) == 1);  // the dropped one holds no packet id
  CHECK(env.broker.Stats().dropped[static_cast<int>(DropCause::kTooLarge)] == 1);
}

TEST_CASE("client: our own maximum packet size") {
  BrokerOptions o = Quiet();
  o.max_packet_size = 128;
  Env env(o);
  auto p = env.Connect("big", Version::kV5);
  p->Send(MakePublish("t", std::string(200, 'x'), 0));
  auto out = p->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kPacketTooLarge);
  CHECK(p->client->closing());
}

}  // namespace
}  // namespace parley::broker
