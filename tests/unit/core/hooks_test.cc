// Plugin hooks (broker/api/hooks.h): connect / disconnect notifications, a plugin taking PUBLISHes over and
// acknowledging them later (from another thread), acks keeping their order behind it, refusals.
#include <doctest/doctest.h>

#include <mutex>
#include <thread>

#include "tests/unit/core/client_harness.h"

namespace parley::broker {
namespace {

using mqtt::PacketType;
using mqtt::Version;
using namespace testing;  // NOLINT(google-build-using-namespace)
namespace rc = mqtt::rc;

// Takes every PUBLISH under "im/" and keeps its completion for the test to answer.
class TakesIm final : public Hooks {
 public:
  void OnConnected(const ClientIdentity& who) override {
    std::lock_guard lock(mu);
    events.push_back("up " + std::string(who.client_id) + (who.username ? " as " + std::string(*who.username) : ""));
  }
  void OnDisconnected(const ClientIdentity& who, bool graceful) override {
    std::lock_guard lock(mu);
    events.push_back("down " + std::string(who.client_id) + (graceful ? " graceful" : " lost"));
  }
  HookResult OnPublish(const ClientIdentity& who, const MessagePtr& msg, const PublishCompletionPtr& done) override {
    if (!msg->topic.starts_with("im/")) return HookResult::kContinue;
    std::lock_guard lock(mu);
    taken.push_back(msg);
    pending.push_back(done);
    if (answer_now && done) done->Complete(*answer_now);
    return HookResult::kHandled;
  }
  void OnTick() override { ticks.fetch_add(1); }
  void OnStart(BrokerServices& b) override { services = &b; }

  std::mutex mu;
  std::vector<std::string> events;
  std::vector<MessagePtr> taken;
  std::vector<PublishCompletionPtr> pending;
  std::optional<uint8_t> answer_now;
  std::atomic<int> ticks{0};
  BrokerServices* services = nullptr;
};

// What a Wake() would make the network layer do: pump, then read what was written.
std::vector<mqtt::Packet> AfterWake(Peer& p) {
  REQUIRE(p.link->wakes.exchange(0) > 0);
  return p.PumpTake();
}

TEST_CASE("hooks: connect and disconnect notifications") {
  Env env;
  TakesIm plugin;
  env.broker.AddHooks(&plugin);
  mqtt::Connect c = MakeConnect("a", Version::kV5);
  c.username = "alice";
  auto a = env.Connect(c);
  auto b = env.Connect("b", Version::kV311);
  a->Send(mqtt::Disconnect{});
  a->client->OnClosed();
  b->client->OnClosed();  // the network went away
  env.broker.Tick(0);
  std::lock_guard lock(plugin.mu);
  CHECK(plugin.events == std::vector<std::string>{"up a as alice", "up b", "down a graceful", "down b lost"});
  CHECK(plugin.ticks.load() == 1);
}

TEST_CASE("hooks: a taken QoS 1 PUBLISH is acked when the plugin completes it, not routed") {
  Env env;
  TakesIm plugin;
  env.broker.AddHooks(&plugin);
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "#", 1);
  auto pub = env.Connect("pub", Version::kV5);

  pub->Send(MakePublish("im/send", "hello", 1, 7));
  CHECK(pub->Take().empty());  // no PUBACK yet
  pub->Send(MakePublish("plain/topic", "routed", 1, 8));
  CHECK(pub->Take().empty());  // its PUBACK waits behind the first (acks keep their order)
  // Only the plain message reached the subscriber.
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].topic == "plain/topic");

  std::thread([&] { plugin.pending[0]->Complete(rc::kSuccess); }).join();  // from another thread
  auto acks = AfterWake(*pub);
  REQUIRE(acks.size() == 2);
  CHECK(As<mqtt::Ack>(acks[0]).packet_id == 7);
  CHECK(As<mqtt::Ack>(acks[0]).reason_code == rc::kSuccess);
  CHECK(As<mqtt::Ack>(acks[1]).packet_id == 8);
  plugin.pending[0]->Complete(rc::kUnspecifiedError);  // a second call is ignored
  CHECK(pub->PumpTake().empty());
  REQUIRE(plugin.taken.size() == 1);
  CHECK(plugin.taken[0]->payload == "hello");
  CHECK(plugin.taken[0]->origin_client_id == "pub");
}

TEST_CASE("hooks: the plugin's reason code reaches a v5 publisher; a 3.1.1 refusal closes the connection") {
  Env env;
  TakesIm plugin;
  env.broker.AddHooks(&plugin);
  plugin.answer_now = rc::kNotAuthorized;  // answered inside OnPublish
  auto v5 = env.Connect("v5", Version::kV5);
  v5->Send(MakePublish("im/send", "x", 1, 1));
  auto out = v5->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kNotAuthorized);

  // QoS 2 refused: PUBREC carries it and no PUBREL is expected (the id is free again).
  v5->Send(MakePublish("im/send", "y", 2, 2));
  out = v5->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrec);
  CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kNotAuthorized);
  plugin.answer_now = rc::kSuccess;
  v5->Send(MakePublish("im/send", "z", 2, 2));  // the same id again: a new message, not a duplicate
  CHECK(plugin.taken.size() == 3);

  plugin.answer_now = rc::kNotAuthorized;
  auto old = env.Connect("old", Version::kV311);
  old->Send(MakePublish("im/send", "x", 1, 1));
  CHECK(old->Take().empty());  // no PUBACK: 3.1.1 cannot carry a refusal
  CHECK(old->client->closing());

  // QoS 0: taken, nothing to acknowledge.
  plugin.answer_now.reset();
  auto q0 = env.Connect("q0", Version::kV5);
  q0->Send(MakePublish("im/typing", "t", 0));
  CHECK(q0->Take().empty());
  CHECK(plugin.taken.back()->payload == "t");
  CHECK(plugin.pending.back() == nullptr);
}

TEST_CASE("hooks: a QoS 2 duplicate of a taken message is not offered again") {
  Env env;
  TakesIm plugin;
  env.broker.AddHooks(&plugin);
  plugin.answer_now = rc::kSuccess;
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("im/send", "once", 2, 9));
  auto out = pub->Take();
  REQUIRE(out.size() == 1);
  mqtt::Publish dup = MakePublish("im/send", "once", 2, 9);
  dup.dup = true;
  pub->Send(dup);
  out = pub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubrec);
  CHECK(plugin.taken.size() == 1);
  pub->Send(MakeAck(PacketType::kPubrel, 9));
  out = pub->Take();
  REQUIRE(out.size() == 1);
  CHECK(As<mqtt::Ack>(out[0]).type == PacketType::kPubcomp);
}

TEST_CASE("hooks: a plugin publishes through the broker") {
  Env env;
  TakesIm plugin;
  env.broker.AddHooks(&plugin);
  REQUIRE(plugin.services == &env.broker);
  auto sub = env.Connect("sub", Version::kV5);
  env.Subscribe(*sub, "inbox/#", 1);
  auto m = std::make_shared<Message>();
  m->topic = "inbox/bob";
  m->payload = "delivered";
  m->qos = 1;
  CHECK(plugin.services->PublishFromPlugin(m) == 1);
  auto im = std::make_shared<Message>();
  im->topic = "im/loop";  // not offered to OnPublish again (no plugin loops)
  CHECK(plugin.services->PublishFromPlugin(im) == 0);
  CHECK(plugin.taken.empty());
  auto got = Publishes(sub->PumpTake());
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "delivered");
}

// Owns "own/...": allows subscriptions below "own/<client id>/", refuses the rest of "own/"; no opinion elsewhere.
class OwnsTopics final : public Hooks {
 public:
  HookAccess OnAuthorize(const ClientIdentity& who, std::string_view topic, Access access) override {
    if (!topic.starts_with("own/")) return HookAccess::kNoOpinion;
    const std::string mine = "own/" + std::string(who.client_id) + "/";
    return topic.starts_with(mine) ? HookAccess::kAllow : HookAccess::kDeny;
  }
  void OnSubscription(const ClientIdentity& who, std::string_view filter, bool added) override {
    std::lock_guard lock(mu);
    notices.push_back(std::string(added ? "+" : "-") + std::string(who.client_id) + " " + std::string(filter));
  }
  std::mutex mu;
  std::vector<std::string> notices;
};

class DenyAll final : public Authorizer {
 public:
  bool Allowed(const ClientIdentity&, std::string_view, Access) const override { return false; }
};

TEST_CASE("hooks: a plugin decides for its topics before the ACL, and hears of subscriptions") {
  Env env;
  DenyAll acl;
  env.broker.SetAuthorizer(&acl);
  OwnsTopics plugin;
  env.broker.AddHooks(&plugin);
  auto a = env.Connect("a", Version::kV5);
  a->Send(MakeSubscribe(1, "own/a/inbox", 1));
  a->Send(MakeSubscribe(2, "own/b/inbox", 1));  // someone else's
  a->Send(MakeSubscribe(3, "plain/topic", 1));  // the plugin has no opinion: the ACL refuses
  auto out = a->Take();
  REQUIRE(out.size() == 3);
  CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{1});
  CHECK(As<mqtt::Suback>(out[1]).reason_codes == std::vector<uint8_t>{rc::kUnspecifiedError});
  CHECK(As<mqtt::Suback>(out[2]).reason_codes == std::vector<uint8_t>{rc::kUnspecifiedError});

  // Deliveries to the plugin's topics pass the ACL too (the plugin answers for them).
  auto m = std::make_shared<Message>();
  m->topic = "own/a/inbox";
  m->payload = "for a";
  m->qos = 1;
  CHECK(env.broker.PublishFromPlugin(m) == 1);
  CHECK(Publishes(a->PumpTake()).size() == 1);

  a->Send(mqtt::Unsubscribe{4, {"own/a/inbox"}, {}});
  a->Take();
  std::lock_guard lock(plugin.mu);
  CHECK(plugin.notices == std::vector<std::string>{"+a own/a/inbox", "-a own/a/inbox"});
}

}  // namespace
}  // namespace parley::broker
