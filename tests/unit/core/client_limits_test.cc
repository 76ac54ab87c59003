// broker::Client: server limits and protocol errors (Maximum QoS, retain, topic depth, Receive Maximum
// for incoming QoS 2, subscription quota, AUTH).
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

TEST_CASE("client: server limits on PUBLISH") {
  BrokerOptions o = Quiet();
  o.max_qos = 1;
  o.retain_available = false;
  o.max_topic_levels = 3;
  Env env(o);
  SUBCASE("QoS above Maximum QoS") {
    auto p = env.Connect("c", Version::kV5);
    p->Send(MakePublish("t", "x", 2, 1));
    CHECK(DisconnectReason(*p) == rc::kQoSNotSupported);
  }
  SUBCASE("RETAIN when not available") {
    auto p = env.Connect("c", Version::kV5);
    p->Send(MakePublish("t", "x", 0, 0, /*retain=*/true));
    CHECK(DisconnectReason(*p) == rc::kRetainNotSupported);
    CHECK(env.broker.retained().Count() == 0);
  }
  SUBCASE("topic too deep") {
    auto p = env.Connect("c", Version::kV5);
    p->Send(MakePublish("a/b/c", "x", 0));
    CHECK(p->Take().empty());
    p->Send(MakePublish("a/b/c/d", "x", 0));
    CHECK(DisconnectReason(*p) == rc::kTopicNameInvalid);
  }
  SUBCASE("subscription identifier from a client") {
    auto p = env.Connect("c", Version::kV5);
    mqtt::Publish pub = MakePublish("t", "x", 0);
    pub.props.subscription_identifiers.push_back(5);
    p->Send(pub);
    CHECK(DisconnectReason(*p) == rc::kProtocolError);
  }
  SUBCASE("granted QoS is capped by Maximum QoS") {
    auto p = env.Connect("c", Version::kV5);
    p->Send(MakeSubscribe(1, "t", 2));
    auto out = p->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{1});
  }
}

TEST_CASE("client: QoS 2 messages awaiting PUBREL count against our Receive Maximum") {
  BrokerOptions o = Quiet();
  o.receive_maximum = 2;
  Env env(o);
  auto p = env.Connect("c", Version::kV5);
  CHECK(env.last_connack.props.receive_maximum == std::optional<uint16_t>(2));
  p->Send(MakePublish("t", "1", 2, 1));
  p->Send(MakePublish("t", "2", 2, 2));
  CHECK(p->Take().size() == 2);
  p->Send(MakeAck(PacketType::kPubrel, 1));  // completes one
  CHECK(p->Take().size() == 1);
  p->Send(MakePublish("t", "3", 2, 3));
  CHECK(p->Take().size() == 1);
  p->Send(MakePublish("t", "4", 2, 4));  // a third at once
  CHECK(DisconnectReason(*p) == rc::kReceiveMaximumExceeded);
}

TEST_CASE("client: subscription quota and refused filters") {
  BrokerOptions o = Quiet();
  o.max_subscriptions_per_client = 2;
  o.wildcard_subscriptions = false;
  Env env(o);
  auto p = env.Connect("c", Version::kV5);
  mqtt::Subscribe s;
  s.packet_id = 1;
  for (const char* f : {"a", "b", "a", "c", "d/+", "bad/#/x", "$share/g", "$share/g/x"})
    s.subscriptions.push_back(mqtt::Subscription{f, {}});
  p->Send(s);
  auto out = p->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Suback>(out[0]).reason_codes ==
        std::vector<uint8_t>{0, 0, 0, rc::kQuotaExceeded, rc::kWildcardSubscriptionsNotSupported,
                             rc::kTopicFilterInvalid, rc::kTopicFilterInvalid, rc::kQuotaExceeded});
  CHECK(env.broker.tree().SubscriptionCount() == 2);

  // 3.1.1 reports every refusal as 0x80.
  auto q = env.Connect("q", Version::kV311);
  q->Send(s);
  out = q->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80});
}

TEST_CASE("client: AUTH without an authentication method is a protocol error") {
  Env env;
  auto p = env.Connect("c", Version::kV5);
  p->Send(mqtt::Auth{rc::kReAuthenticate, {}});
  CHECK(DisconnectReason(*p) == rc::kProtocolError);
}

}  // namespace
}  // namespace parley::broker
