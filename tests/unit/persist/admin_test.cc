// Administration on the durable broker: a dropped session and a deleted retained message are gone from disk
// too (not back after a restart), WaitDurable waits for those deletions, and a session kicked during a drain
// is kept with its queued messages.
#include <doctest/doctest.h>

#include "tests/unit/persist/rig.h"

namespace parley::broker::persist {
namespace {

using broker::testing::As;
using broker::testing::MakeConnect;
using broker::testing::MakePublish;
using broker::testing::MakeSubscribe;
using broker::testing::Peer;
using broker::testing::Publishes;
using mqtt::Version;
using testing::Await;
using testing::Rig;

mqtt::Connect Persistent(std::string id, uint32_t expiry = 300) {
  mqtt::Connect c = MakeConnect(std::move(id), Version::kV5, /*clean=*/false);
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
  REQUIRE(As<mqtt::Connack>(out[0]).reason_code == 0);
  if (present) *present = As<mqtt::Connack>(out[0]).session_present;
  if (after) after->assign(out.begin() + 1, out.end());
  return p;
}

void Publish(Rig& rig, Peer& p, const std::string& topic, const std::string& payload, uint16_t id, bool retain) {
  p.Send(MakePublish(topic, payload, 1, id, retain));
  auto out = Await(p, 1);
  REQUIRE(out.size() == 1);
  (void)rig;
}

TEST_CASE("admin persist: a dropped session and a deleted retained message stay gone after a restart") {
  Rig rig;
  {
    auto keep = Connect(rig, Persistent("keep"));
    keep->Send(MakeSubscribe(1, "t", 1));
    REQUIRE(Await(*keep, 1).size() == 1);
    keep->client->OnClosed();
    auto drop = Connect(rig, Persistent("drop"));
    drop->Send(MakeSubscribe(1, "t", 1));
    REQUIRE(Await(*drop, 1).size() == 1);
    drop->client->OnClosed();
    auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
    Publish(rig, *pub, "t", "queued", 1, false);
    Publish(rig, *pub, "r/1", "one", 2, true);
    Publish(rig, *pub, "r/2", "two", 3, true);
    rig.Drain();
    CHECK(rig.Rows(Fam::kSessions) == 2);
    CHECK(rig.Rows(Fam::kRetained) == 2);

    CHECK(rig.broker->DropSession("drop").found);
    CHECK(rig.broker->DeleteRetained("r/1"));
    // The admin thread's deletions are durable once WaitDurable says so.
    CHECK(rig.broker->WaitDurable(std::chrono::seconds(5)));
    CHECK(rig.Rows(Fam::kSessions) == 1);
    CHECK(rig.Rows(Fam::kSubscriptions) == 1);
    CHECK(rig.Rows(Fam::kRetained) == 1);
    CHECK(rig.broker->WaitDurable(std::chrono::seconds(5)));  // nothing new: true at once
  }
  rig.Restart();
  CHECK(rig.broker->SessionCount() == 1);
  CHECK_FALSE(rig.broker->GetSession("drop"));
  auto kept = rig.broker->GetSession("keep");
  REQUIRE(kept);
  CHECK(kept->queued == 1);
  CHECK_FALSE(rig.broker->GetRetained("r/1"));
  REQUIRE(rig.broker->GetRetained("r/2"));
  rig.Drain();
  CHECK(rig.Rows(Fam::kMessages) == 1);  // the body "keep" still holds ("drop"'s reference went with it)

  bool present = true;
  auto again = Connect(rig, Persistent("drop"), &present);
  CHECK_FALSE(present);
}

TEST_CASE("admin persist: clients disconnected by a drain keep their sessions and queued messages") {
  Rig rig;
  {
    auto sub = Connect(rig, Persistent("sub"));
    sub->Send(MakeSubscribe(1, "q", 1));
    REQUIRE(Await(*sub, 1).size() == 1);
    rig.broker->SetDraining(true, "other:1883");
    sub->client->OnKick(mqtt::rc::kUseAnotherServer);
    auto out = sub->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Disconnect>(out[0]).props.server_reference == std::optional<std::string>("other:1883"));
    sub->client->OnClosed();
    rig.broker->SetDraining(false, "");
    auto pub = Connect(rig, MakeConnect("pub", Version::kV5));
    Publish(rig, *pub, "q", "while away", 1, false);
    rig.Drain();
  }
  rig.Restart();
  bool present = false;
  std::vector<mqtt::Packet> after;
  auto sub = Connect(rig, Persistent("sub"), &present, &after);
  CHECK(present);
  if (after.empty()) after = Await(*sub, 1);
  auto got = Publishes(after);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "while away");
}

}  // namespace
}  // namespace parley::broker::persist
