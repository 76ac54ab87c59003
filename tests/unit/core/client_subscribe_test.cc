// broker::Client: SUBSCRIBE / UNSUBSCRIBE, retained messages on subscribe, subscription identifiers,
// No Local and share groups.
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

TEST_CASE("client: retained message delivered on subscribe") {
  Env env;
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("r/1", "kept", 1, 1, /*retain=*/true));
  CHECK(As<mqtt::Ack>(pub->Take().at(0)).reason_code == rc::kNoMatchingSubscribers);
  CHECK(env.broker.retained().Count() == 1);

  auto sub = env.Connect("sub", Version::kV5);
  sub->Send(MakeSubscribe(3, "r/#", 1));
  auto out = sub->Take();
  REQUIRE(out.size() == 1);
  CHECK(std::holds_alternative<mqtt::Suback>(out[0]));  // the SUBACK comes first
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].topic == "r/1");
  CHECK(got[0].payload == "kept");
  CHECK(got[0].retain);
  CHECK(got[0].qos == 1);

  // A live message to the same topic carries RETAIN 0 (no Retain As Published).
  pub->Send(MakePublish("r/1", "live", 0, 0, /*retain=*/true));
  got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "live");
  CHECK_FALSE(got[0].retain);

  // An empty retained message clears the topic.
  pub->Send(MakePublish("r/1", "", 0, 0, /*retain=*/true));
  CHECK(env.broker.retained().Count() == 0);
}

// ---------------------------------------------------------------- subscription options

TEST_CASE("client: subscription identifiers and No Local") {
  Env env;
  auto a = env.Connect("a", Version::kV5);
  mqtt::Subscribe s = MakeSubscribe(1, "n/+", 1, /*sub_id=*/77);
  s.subscriptions[0].opts.no_local = true;
  a->Send(s);
  a->Send(MakeSubscribe(2, "n/#", 0));  // no identifier
  auto out = a->Take();
  REQUIRE(out.size() == 2);
  CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{1});
  CHECK(As<mqtt::Suback>(out[1]).reason_codes == std::vector<uint8_t>{0});

  auto b = env.Connect("b", Version::kV5);
  b->Send(MakePublish("n/x", "from-b", 1, 1));
  auto got = Publishes(a->PumpTake());
  REQUIRE(got.size() == 1);  // two subscriptions, one copy at the higher QoS
  CHECK(got[0].qos == 1);
  CHECK(got[0].props.subscription_identifiers == std::vector<uint32_t>{77});

  a->Send(MakePublish("n/x", "from-a", 1, 2));  // No Local on n/+ only: n/# still delivers
  got = Publishes(a->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].qos == 0);
  CHECK(got[0].props.subscription_identifiers.empty());
}

TEST_CASE("client: unsubscribe") {
  Env env;
  auto a = env.Connect("a", Version::kV5);
  env.Subscribe(*a, "u/1", 0);
  a->Send(mqtt::Unsubscribe{9, {"u/1", "u/2"}, {}});
  auto out = a->Take();
  REQUIRE(out.size() == 1);
  const auto& ack = As<mqtt::Unsuback>(out[0]);
  CHECK(ack.packet_id == 9);
  CHECK(ack.reason_codes == std::vector<uint8_t>{rc::kSuccess, rc::kNoSubscriptionExisted});
  CHECK(env.broker.tree().SubscriptionCount() == 0);
  auto b = env.Connect("b", Version::kV5);
  b->Send(MakePublish("u/1", "x", 1, 1));
  CHECK(As<mqtt::Ack>(b->Take().at(0)).reason_code == rc::kNoMatchingSubscribers);
}

TEST_CASE("client: share group members split the messages") {
  Env env;
  auto m1 = env.Connect("m1", Version::kV5);
  auto m2 = env.Connect("m2", Version::kV5);
  env.Subscribe(*m1, "$share/g/jobs/#", 1);
  env.Subscribe(*m2, "$share/g/jobs/#", 1);
  auto pub = env.Connect("pub", Version::kV5);
  for (int i = 0; i < 10; ++i) pub->Send(MakePublish("jobs/" + std::to_string(i), "j", 1, static_cast<uint16_t>(i + 1)));
  const auto a = Publishes(m1->PumpTake()).size();
  const auto b = Publishes(m2->PumpTake()).size();
  CHECK(a + b == 10);
  CHECK(a == 5);  // round robin
  CHECK(b == 5);

  // m2 leaves the group with messages queued: they move to m1.
  for (int i = 0; i < 4; ++i) pub->Send(MakePublish("jobs/x", "k", 1, static_cast<uint16_t>(20 + i)));
  m2->Send(mqtt::Unsubscribe{5, {"$share/g/jobs/#"}, {}});
  m2->Take();
  CHECK(Publishes(m1->PumpTake()).size() == 4);
  CHECK(Publishes(m2->PumpTake()).empty());
}

}  // namespace
}  // namespace parley::broker
