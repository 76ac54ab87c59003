// broker::Client: CONNECT / CONNACK in both versions, refusals, keep alive and the CONNECT timeout.
// Packets are encoded with the codec and fed through OnData (whole and one byte at a time); replies are
// decoded from a fake Transport; time comes from a ManualClock (client_harness.h).
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------- CONNECT

TEST_CASE("client: CONNECT -> CONNACK, 3.1.1") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    Env env;
    Peer p(env.broker, Version::kV311, bytewise);
    CHECK_FALSE(p.client->connected());
    p.Send(MakeConnect("c311", Version::kV311));
    CHECK(p.Unconsumed() == 0);
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Connack>(out[0]);
    CHECK(ack.reason_code == mqtt::rc311::kAccepted);
    CHECK_FALSE(ack.session_present);
    CHECK(ack.props == mqtt::Properties{});  // 3.1.1 has none
    CHECK(p.client->connected());
    CHECK(p.client->client_id() == "c311");
    CHECK(p.client->version() == Version::kV311);
    CHECK(env.broker.SessionCount() == 1);
    CHECK(env.broker.Stats().clients_connected == 1);
    p.client->OnClosed();
    CHECK(env.broker.Stats().clients_connected == 0);
    CHECK(env.broker.SessionCount() == 0);  // clean session ends with the connection
  }
}

TEST_CASE("client: CONNACK capability properties, 5.0") {
  SUBCASE("defaults") {
    Env env;
    auto p = env.Connect("c5", Version::kV5);
    const auto& a = env.last_connack.props;
    CHECK(a.receive_maximum == std::optional<uint16_t>(64));
    CHECK_FALSE(a.maximum_qos.has_value());  // QoS 2 is the default; not sent
    CHECK(a.retain_available == std::optional<uint8_t>(1));
    CHECK(a.maximum_packet_size == std::optional<uint32_t>(1024 * 1024));
    CHECK(a.topic_alias_maximum == std::optional<uint16_t>(64));
    CHECK(a.wildcard_subscription_available == std::optional<uint8_t>(1));
    CHECK(a.subscription_identifier_available == std::optional<uint8_t>(1));
    CHECK(a.shared_subscription_available == std::optional<uint8_t>(1));
    CHECK_FALSE(a.server_keep_alive.has_value());
    CHECK_FALSE(a.session_expiry_interval.has_value());
    CHECK_FALSE(a.assigned_client_identifier.has_value());
  }
  SUBCASE("restricted server, assigned id, capped keep alive and expiry") {
    BrokerOptions o = Quiet();
    o.max_qos = 1;
    o.retain_available = false;
    o.wildcard_subscriptions = false;
    o.subscription_identifiers = false;
    o.shared_subscriptions = false;
    o.max_keep_alive = 30;
    o.max_session_expiry = 100;
    o.receive_maximum = 65535;
    o.max_packet_size = 4096;
    Env env(o);
    mqtt::Connect c = MakeConnect("", Version::kV5, true, /*keep_alive=*/0);
    c.props.session_expiry_interval = 1000;
    auto p = env.Connect(c);
    const auto& a = env.last_connack.props;
    CHECK_FALSE(a.receive_maximum.has_value());  // 65535 is the default
    CHECK(a.maximum_qos == std::optional<uint8_t>(1));
    CHECK(a.retain_available == std::optional<uint8_t>(0));
    CHECK(a.maximum_packet_size == std::optional<uint32_t>(4096));
    CHECK(a.wildcard_subscription_available == std::optional<uint8_t>(0));
    CHECK(a.subscription_identifier_available == std::optional<uint8_t>(0));
    CHECK(a.shared_subscription_available == std::optional<uint8_t>(0));
    CHECK(a.server_keep_alive == std::optional<uint16_t>(30));  // 0 (no keep alive) is not allowed
    CHECK(a.session_expiry_interval == std::optional<uint32_t>(100));
    REQUIRE(a.assigned_client_identifier.has_value());
    CHECK(a.assigned_client_identifier->rfind("parley-", 0) == 0);
    CHECK(p->client->client_id() == *a.assigned_client_identifier);
  }
}

TEST_CASE("client: CONNECT refusals") {
  Env env;
  SUBCASE("3.1.1 empty client id with clean session 0") {
    Peer p(env.broker, Version::kV311);
    p.Send(MakeConnect("", Version::kV311, /*clean=*/false));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == mqtt::rc311::kIdentifierRejected);
    CHECK(p.transport.close_calls == 1);
    CHECK_FALSE(p.client->connected());
    CHECK(env.broker.SessionCount() == 0);
  }
  SUBCASE("first packet not CONNECT: closed without a reply") {
    Peer p(env.broker, Version::kV311);
    p.Send(mqtt::Pingreq{});
    CHECK(p.Take().empty());
    CHECK(p.transport.close_calls == 1);
    // Further input is ignored.
    p.Send(MakeConnect("late", Version::kV311));
    CHECK(p.Take().empty());
    CHECK(env.broker.SessionCount() == 0);
  }
  SUBCASE("second CONNECT is a protocol error") {
    auto p = env.Connect("twice", Version::kV5);
    p->Send(MakeConnect("twice", Version::kV5));
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kProtocolError);
    CHECK(p->client->closing());
  }
}

// ---------------------------------------------------------------- timers

TEST_CASE("client: keep alive timeout") {
  SUBCASE("5.0: DISCONNECT 0x8D after one and a half keep alive periods") {
    Env env;
    auto p = env.Connect(MakeConnect("ka", Version::kV5, true, /*keep_alive=*/10));
    env.clock.Advance(seconds(14));
    p->Send(mqtt::Pingreq{});  // activity resets the timer
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    CHECK(std::holds_alternative<mqtt::Pingresp>(out[0]));
    env.clock.Advance(seconds(15));
    p->client->OnTick();
    CHECK(p->Take().empty());
    CHECK(p->transport.close_calls == 0);
    env.clock.Advance(milliseconds(1));
    p->client->OnTick();
    out = p->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Disconnect>(out[0]).reason_code == rc::kKeepAliveTimeout);
    CHECK(p->transport.close_calls == 1);
    CHECK(p->client->closing());
    p->client->OnTick();  // closing: nothing more
    CHECK(p->Take().empty());
  }
  SUBCASE("3.1.1: closed without DISCONNECT") {
    Env env;
    auto p = env.Connect(MakeConnect("ka", Version::kV311, true, /*keep_alive=*/2));
    env.clock.Advance(milliseconds(3001));
    p->client->OnTick();
    CHECK(p->Take().empty());
    CHECK(p->transport.close_calls == 1);
  }
  SUBCASE("keep alive 0: never") {
    Env env;
    auto p = env.Connect(MakeConnect("ka", Version::kV5, true, 0));
    env.clock.Advance(seconds(100000));
    p->client->OnTick();
    CHECK(p->transport.close_calls == 0);
  }
  SUBCASE("server keep alive is enforced") {
    BrokerOptions o = Quiet();
    o.max_keep_alive = 5;
    Env env(o);
    auto p = env.Connect(MakeConnect("ka", Version::kV5, true, /*keep_alive=*/60));
    CHECK(env.last_connack.props.server_keep_alive == std::optional<uint16_t>(5));
    env.clock.Advance(milliseconds(7501));
    p->client->OnTick();
    CHECK(p->transport.close_calls == 1);
  }
}

TEST_CASE("client: CONNECT timeout") {
  BrokerOptions o = Quiet();
  o.connect_timeout = milliseconds(5000);
  Env env(o);
  Peer p(env.broker, Version::kV5);
  env.clock.Advance(milliseconds(5000));
  p.client->OnTick();
  CHECK(p.transport.close_calls == 0);
  env.clock.Advance(milliseconds(1));
  p.client->OnTick();
  CHECK(p.transport.close_calls == 1);
  CHECK(p.Take().empty());
  CHECK(p.client->closing());

  // A partial CONNECT does not count as connected.
  Peer q(env.broker, Version::kV5);
  std::string bytes;
  mqtt::Encode(MakeConnect("slow", Version::kV5), Version::kV5, &bytes);
  q.Feed(bytes.substr(0, bytes.size() - 1));
  env.clock.Advance(milliseconds(5001));
  q.client->OnTick();
  CHECK(q.transport.close_calls == 1);
}

}  // namespace
}  // namespace parley::broker
