// Inbound publish rate limits: past its rate a client's input is left unread (the transport pauses reading)
// until the token buckets refill; nothing is dropped.
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker::testing {
namespace {

using mqtt::Version;

TEST_CASE("client: publish rate limit pauses reading, drops nothing") {
  BrokerOptions o = Quiet();
  o.publish_rate = 10;
  o.publish_burst = 3;
  Env env(o);
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "r/#", 0);
  auto pub = env.Connect("pub", Version::kV5);

  // Five PUBLISHes in one read: three pass (the burst), the rest stay unread.
  std::string bytes;
  for (int i = 0; i < 5; ++i) mqtt::Encode(MakePublish("r/x", std::to_string(i)), Version::kV5, &bytes);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t used = pub->client->OnData(std::span(data, bytes.size()));
  CHECK(pub->transport.pauses == 1);
  CHECK(used == bytes.size() / 5 * 3);
  CHECK(Publishes(sub->PumpTake()).size() == 3);
  // One token comes back every 100 ms: the transport is told when.
  CHECK(pub->transport.paused_until == env.clock.Now() + std::chrono::milliseconds(100));

  env.clock.Advance(std::chrono::milliseconds(100));
  size_t more = pub->client->OnData(std::span(data + used, bytes.size() - used));
  CHECK(more == bytes.size() / 5);  // one more, then paused again
  CHECK(pub->transport.pauses == 2);
  env.clock.Advance(std::chrono::milliseconds(100));
  used += more;
  more = pub->client->OnData(std::span(data + used, bytes.size() - used));
  CHECK(used + more == bytes.size());
  CHECK(Publishes(sub->PumpTake()).size() == 2);
}

TEST_CASE("client: byte rate limit lets a packet larger than the rate through, then waits") {
  BrokerOptions o = Quiet();
  o.max_packet_size = 4096;
  o.publish_byte_rate = 1000;  // burst: raised to max_packet_size
  Env env(o);
  auto pub = env.Connect("pub", Version::kV311);
  std::string bytes;
  mqtt::Encode(MakePublish("b", std::string(3000, 'x')), Version::kV311, &bytes);
  mqtt::Encode(MakePublish("b", std::string(3000, 'x')), Version::kV311, &bytes);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t used = pub->client->OnData(std::span(data, bytes.size()));
  CHECK(used == bytes.size());  // 4096 burst: the first leaves 1,000-odd tokens, the second runs into debt
  CHECK(pub->transport.pauses == 1);
  // The debt (about 1,900 bytes) plus one token, at 1,000 bytes a second.
  const auto wait = pub->transport.paused_until - env.clock.Now();
  CHECK(wait > std::chrono::milliseconds(1800));
  CHECK(wait < std::chrono::milliseconds(2100));
}

TEST_CASE("client: overloaded broker refuses CONNECT with 0x89 and sheds inbound QoS 0") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "o/#", 1);
  auto pub = env.Connect("pub", Version::kV5);
  env.broker.SetOverloaded(true);

  Peer late(env.broker, Version::kV5);
  late.Send(MakeConnect("late", Version::kV5));
  auto out = late.Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Connack>(out[0]).reason_code == mqtt::rc::kServerBusy);
  Peer late3(env.broker, Version::kV311);
  late3.Send(MakeConnect("late3", Version::kV311));
  out = late3.Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Connack>(out[0]).reason_code == mqtt::rc311::kServerUnavailable);

  pub->Send(MakePublish("o/a", "dropped", 0));
  pub->Send(MakePublish("o/a", "kept", 1, 7));
  CHECK(As<mqtt::Ack>(pub->Take().at(0)).reason_code == mqtt::rc::kSuccess);
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "kept");
  CHECK(env.broker.Stats().dropped[static_cast<int>(DropCause::kOverload)] == 1);

  env.broker.SetOverloaded(false);
  env.Connect("after", Version::kV5);
}

}  // namespace
}  // namespace parley::broker::testing
