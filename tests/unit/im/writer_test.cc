// The IM writer through its hooks: acks after durability, idempotent sends, no seq holes after a failed
// write, state that survives a restart, authorisation of topics.
#include <doctest/doctest.h>

#include <set>
#include <thread>

#include "im/ids.h"
#include "im/summary.h"
#include "rig.h"

namespace parley::im {
namespace {

using testing::Rig;

TEST_CASE("a send is acked with its seq only after it is stored, then delivered to the other devices") {
  auto mem = Rig::NewStore();
  storage::FaultStore store(mem.get());
  Rig rig(&store);
  rig.Connect("alice", "a1");
  rig.Connect("alice", "a2");
  rig.Connect("bob", "b1");
  const v1::Conversation conv = rig.OpenDirect("alice", "a1", "bob");
  CHECK(conv.conv_id() == DirectConvId("alice", "bob"));
  CHECK(conv.max_seq() == 1);  // the creation entry

  const uint64_t writes_before = store.writes();
  const v1::Ack ack = rig.Send("alice", "a1", conv.conv_id(), "hello", "m1");
  CHECK(ack.seq() == 2);
  CHECK(ack.msg_id() == conv.conv_id() + ":2");
  CHECK_FALSE(ack.duplicate());
  CHECK(store.writes() > writes_before);  // the ack came after a write reached the store

  // Every other device got the entry; the sending device only its ack.
  auto hello = [](const v1::Event& e) { return e.has_message() && e.message().text() == "hello"; };
  CHECK(rig.broker().WaitEvent("b1", hello));
  CHECK(rig.broker().WaitEvent("a2", hello));
  // a1 and a2 are served by the same PushEvent call: had a1 been sent a copy, it would be there by now.
  for (const v1::Event& e : rig.broker().Events("a1")) CHECK_FALSE(hello(e));
  CHECK(rig.broker().AllTransient());  // never copied into durable MQTT session queues
}

TEST_CASE("the same client_msg_id creates one message, even when the copies are in flight together") {
  auto mem = Rig::NewStore();
  storage::FaultStore store(mem.get());
  store.DelayWrites(std::chrono::milliseconds(50));  // keep the first copy in flight while the others arrive
  Rig rig(&store);
  rig.Connect("alice", "a1");
  const std::string conv = rig.OpenDirect("alice", "a1", "bob").conv_id();
  v1::Request req;
  req.mutable_send()->set_conv_id(conv);
  req.mutable_send()->set_text("once");
  req.mutable_send()->set_client_msg_id("dup");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    req.set_req_id("d" + std::to_string(i));
    ids.push_back(req.req_id());
    rig.Publish("alice", i == 2 ? "a2" : "a1", req);  // the third from another device of the same user
  }
  std::set<uint64_t> seqs;
  int duplicates = 0;
  for (int i = 0; i < 3; ++i) {
    const v1::Response r = rig.broker().WaitResponse(i == 2 ? "a2" : "a1", ids[i]);
    REQUIRE(r.has_ack());
    seqs.insert(r.ack().seq());
    duplicates += r.ack().duplicate();
  }
  CHECK(seqs == std::set<uint64_t>{2});
  CHECK(duplicates == 2);
  // Later, from the store.
  CHECK(rig.Send("alice", "a1", conv, "once", "dup").duplicate());
  CHECK(rig.Sync("bob", "b1").convs(0).conversation().max_seq() == 2);
}

TEST_CASE("a failed write leaves no hole in the stream: the conversation reloads from disk") {
  auto mem = Rig::NewStore();
  storage::FaultStore store(mem.get());
  Rig rig(&store);
  rig.Connect("alice", "a1");
  const std::string conv = rig.OpenDirect("alice", "a1", "bob").conv_id();
  CHECK(rig.Send("alice", "a1", conv, "one", "c1").seq() == 2);

  store.FailWrites(storage::Code::kNoSpace, 1);
  v1::Request req;
  req.mutable_send()->set_conv_id(conv);
  req.mutable_send()->set_text("lost");
  req.mutable_send()->set_client_msg_id("c2");
  const v1::Response failed = rig.Call("alice", "a1", req);
  REQUIRE(failed.has_error());
  CHECK(failed.error().code() == v1::ERR_UNAVAILABLE);
  CHECK(failed.error().retry_after_ms() > 0);

  // The retry (same client_msg_id) is a new message at the next seq: 3, not 4.
  const v1::Response retried = rig.Call("alice", "a1", req);
  REQUIRE(retried.has_ack());
  CHECK(retried.ack().seq() == 3);
  CHECK_FALSE(retried.ack().duplicate());
  v1::Request range;
  range.mutable_range()->set_conv_id(conv);
  range.mutable_range()->set_from_seq(1);
  range.mutable_range()->set_to_seq(10);
  const v1::Response r = rig.Call("alice", "a1", range);
  REQUIRE(r.has_messages());
  std::vector<uint64_t> seqs;
  for (const v1::Message& m : r.messages().messages()) seqs.push_back(m.seq());
  CHECK(seqs == std::vector<uint64_t>{1, 2, 3});
  CHECK(r.messages().messages(2).text() == "lost");
}

TEST_CASE("a write into a conversation whose creation is not stored yet is refused, then works") {
  auto mem = Rig::NewStore();
  storage::FaultStore store(mem.get());
  store.DelayWrites(std::chrono::milliseconds(100));  // keep the creation in flight
  Rig rig(&store);
  v1::Request open;
  open.set_req_id("open");
  open.mutable_open_direct()->set_peer("bob");
  rig.Publish("alice", "a1", open);
  v1::Request send;
  send.set_req_id("early");
  send.mutable_send()->set_conv_id(DirectConvId("alice", "bob"));  // computable before the answer comes
  send.mutable_send()->set_text("too soon");
  send.mutable_send()->set_client_msg_id("e1");
  rig.Publish("alice", "a1", send);
  const v1::Response early = rig.broker().WaitResponse("a1", "early");
  REQUIRE(early.has_error());
  CHECK(early.error().code() == v1::ERR_UNAVAILABLE);
  CHECK(rig.broker().WaitResponse("a1", "open").has_conversation());
  store.DelayWrites(std::chrono::milliseconds(0));
  CHECK(rig.Send("alice", "a1", DirectConvId("alice", "bob"), "now", "e1").seq() == 2);
}

TEST_CASE("seq, dedup, read state and unread survive a restart") {
  auto store = Rig::NewStore();
  std::string conv;
  uint64_t cursor = 0;
  {
    Rig rig(store.get());
    rig.Connect("alice", "a1");
    conv = rig.OpenDirect("alice", "a1", "bob").conv_id();
    for (int i = 0; i < 5; ++i) rig.Send("alice", "a1", conv, "m" + std::to_string(i), "k" + std::to_string(i));
    cursor = rig.Sync("bob", "b1").cursor();
    v1::Request read;
    read.mutable_mark_read()->set_conv_id(conv);
    read.mutable_mark_read()->set_seq(3);
    const v1::Response r = rig.Call("bob", "b1", read);
    CHECK(r.read().unread() == 3);  // seqs 4, 5, 6 (seq 1 is the creation entry, not counted)
  }
  Rig rig(store.get());
  const v1::Ack again = rig.Send("alice", "a1", conv, "m0", "k0");
  CHECK(again.duplicate());
  CHECK(again.seq() == 2);
  CHECK(rig.Send("alice", "a1", conv, "after", "k9").seq() == 7);
  const v1::SyncResp s = rig.Sync("bob", "b1", cursor);
  CHECK_FALSE(s.full());
  REQUIRE(s.convs_size() == 1);
  CHECK(s.convs(0).conversation().read_seq() == 3);
  CHECK(s.convs(0).conversation().unread() == 4);  // 4, 5, 6, 7
  CHECK(s.total_unread() == 4);
}

TEST_CASE("topic authorisation: own device topics only, requests only on the request topics") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  ImService& svc = rig.service();
  const std::string alice = "alice";
  const broker::ClientIdentity a{"phone", std::string_view(alice)};
  const broker::ClientIdentity anon{"phone", std::nullopt};
  using broker::Access;
  using broker::HookAccess;
  CHECK(svc.OnAuthorize(a, "some/topic", Access::kRead) == HookAccess::kNoOpinion);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/phone/pb", Access::kRead) == HookAccess::kAllow);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/phone/#", Access::kRead) == HookAccess::kAllow);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/other/pb", Access::kRead) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/+/pb", Access::kRead) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(a, "$im/#", Access::kRead) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/phone", Access::kRead) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(a, "$im/v1/req/json", Access::kWrite) == HookAccess::kAllow);
  CHECK(svc.OnAuthorize(a, "$im/v1/d/phone/pb", Access::kWrite) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(anon, "$im/v1/req", Access::kWrite) == HookAccess::kDeny);
  CHECK(svc.OnAuthorize(anon, "$im/v1/d/phone/pb", Access::kRead) == HookAccess::kDeny);
}

TEST_CASE("unread arithmetic: counters, recalls, deletions, retention") {
  st::ConvRecord conv;
  st::MemberRecord m;
  m.set_read_seq(10);
  m.set_read_count(6);
  // 10 countable messages in the stream, 4 after the read position (seqs 12, 13, 15, 16, say).
  CHECK(ComputeUnread(conv, 10, m).unread == 4);
  conv.add_recalled(5);   // before the read position: no effect
  conv.add_recalled(13);  // unread, recalled: stops counting
  CHECK(ComputeUnread(conv, 10, m).unread == 3);
  m.add_hidden_unread(15);
  m.add_hidden_unread(13);  // hidden and recalled: counted once
  CHECK(ComputeUnread(conv, 10, m).unread == 2);
  m.add_mentions(12);
  m.add_mentions(13);  // recalled
  m.add_mentions(15);  // hidden
  m.add_mentions(16);
  CHECK(ComputeUnread(conv, 10, m).mentions == 2);
  // Retention removed everything up to seq 14 (8 countable): only what is still there counts.
  conv.set_min_seq(15);
  conv.set_min_count(8);
  m.clear_hidden_unread();
  CHECK(ComputeUnread(conv, 10, m).unread == 2);
  CHECK(VisibleFrom(conv, m) == 15);
}

}  // namespace
}  // namespace parley::im
