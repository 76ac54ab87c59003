// Session: queue limits and the drop policy (docs/architecture.md "Queues and what is dropped"),
// wake coalescing, and outgoing packet id allocation.
#include "broker/core/session.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/core/test_util.h"

namespace parley::broker {
namespace {

using testing::Msg;

struct NullLink : SessionLink {
  void Wake() override {}
  void Kick(uint8_t) override {}
};

Delivery D(const std::string& payload, uint8_t qos, size_t size = 1) {
  Delivery d;
  d.msg = Msg("t", payload + std::string(size > payload.size() ? size - payload.size() : 0, '.'), qos);
  d.qos = qos;
  return d;
}

// Payload prefixes of what is queued, in order.
std::vector<std::string> Queued(Session& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.queue_.size(); ++i) {
    const std::string& p = s.queue_[i].msg->payload;
    out.push_back(p.substr(0, p.find('.')));
  }
  return out;
}

uint64_t Bytes(Session& s) {
  uint64_t n = 0;
  for (size_t i = 0; i < s.queue_.size(); ++i) n += s.queue_[i].msg->Footprint();
  return n;
}

using V = std::vector<std::string>;

struct Fixture {
  Session s{"c", 1};
  Fixture() { s.link_ = std::make_shared<NullLink>(); }
};

TEST_CASE("session: message limit and the drop policy") {
  Fixture f;
  Session& s = f.s;
  std::lock_guard lock(s.mu_);
  constexpr uint32_t kMax = 3;
  CHECK(s.EnqueueLocked(D("a0", 0), kMax, 0, false).queued);
  CHECK(s.EnqueueLocked(D("b1", 1), kMax, 0, false).queued);
  CHECK(s.EnqueueLocked(D("c0", 0), kMax, 0, false).queued);
  CHECK(Queued(s) == V{"a0", "b1", "c0"});

  // Full. A new QoS 0 message is dropped.
  EnqueueResult r = s.EnqueueLocked(D("d0", 0), kMax, 0, false);
  CHECK_FALSE(r.queued);
  CHECK(r.dropped_other == 0);
  CHECK(r.cause == DropCause::kQueueFull);
  CHECK(Queued(s) == V{"a0", "b1", "c0"});

  // A new QoS 1 message evicts the oldest QoS 0 message.
  r = s.EnqueueLocked(D("e1", 1), kMax, 0, false);
  CHECK(r.queued);
  CHECK(r.dropped_other == 1);
  CHECK(Queued(s) == V{"b1", "c0", "e1"});

  // So does QoS 2.
  r = s.EnqueueLocked(D("f2", 2), kMax, 0, false);
  CHECK(r.queued);
  CHECK(r.dropped_other == 1);
  CHECK(Queued(s) == V{"b1", "e1", "f2"});

  // No QoS 0 left: the new message is dropped and nothing else is.
  r = s.EnqueueLocked(D("g1", 1), kMax, 0, false);
  CHECK_FALSE(r.queued);
  CHECK(r.dropped_other == 0);
  CHECK(r.cause == DropCause::kQueueFull);
  CHECK(Queued(s) == V{"b1", "e1", "f2"});
  CHECK(s.queued_bytes_ == Bytes(s));

  // Room again after the head is taken.
  s.queued_bytes_ -= s.queue_.front().msg->Footprint();
  s.queue_.pop_front();
  CHECK(s.EnqueueLocked(D("h0", 0), kMax, 0, false).queued);
  CHECK(Queued(s) == V{"e1", "f2", "h0"});
  CHECK(s.queued_bytes_ == Bytes(s));
}

TEST_CASE("session: zero limits mean unlimited") {
  Fixture f;
  std::lock_guard lock(f.s.mu_);
  for (int i = 0; i < 5000; ++i) REQUIRE(f.s.EnqueueLocked(D("m", static_cast<uint8_t>(i % 3)), 0, 0, false).queued);
  CHECK(f.s.queue_.size() == 5000);
  CHECK(f.s.queued_bytes_ == Bytes(f.s));
}

TEST_CASE("session: byte limit") {
  Fixture f;
  Session& s = f.s;
  std::lock_guard lock(s.mu_);
  const uint64_t unit = D("x", 0, 100).msg->Footprint();
  const uint64_t max_bytes = 3 * unit;
  CHECK(s.EnqueueLocked(D("a1", 1, 100), 0, max_bytes, false).queued);
  CHECK(s.EnqueueLocked(D("b0", 0, 100), 0, max_bytes, false).queued);
  CHECK(s.EnqueueLocked(D("c1", 1, 100), 0, max_bytes, false).queued);
  CHECK(s.queued_bytes_ == max_bytes);

  EnqueueResult r = s.EnqueueLocked(D("d0", 0, 100), 0, max_bytes, false);
  CHECK_FALSE(r.queued);
  CHECK(r.cause == DropCause::kQueueFull);

  // A smaller message does not fit either while the queue is at the limit.
  CHECK_FALSE(s.EnqueueLocked(D("s0", 0, 1), 0, max_bytes, false).queued);

  r = s.EnqueueLocked(D("e1", 1, 100), 0, max_bytes, false);  // evicts b0, which makes exactly enough room
  CHECK(r.queued);
  CHECK(r.dropped_other == 1);
  CHECK(Queued(s) == V{"a1", "c1", "e1"});
  CHECK(s.queued_bytes_ == Bytes(s));
  CHECK(s.queued_bytes_ == max_bytes);

  // A message bigger than the whole limit is never queued, even into an empty queue.
  Session empty{"e", 2};
  std::lock_guard lock2(empty.mu_);
  empty.link_ = std::make_shared<NullLink>();
  r = empty.EnqueueLocked(D("big", 1, 1000), 0, 500, false);
  CHECK_FALSE(r.queued);
  CHECK(empty.queued_bytes_ == 0);
}

TEST_CASE("session: a QoS 0 message is not evicted when that would not make room") {
  // Byte limit; the queue holds one small QoS 0 and one QoS 1 message. A big QoS 1 message would not
  // fit even after evicting the QoS 0 one, so it is dropped alone: the QoS 0 message must not be lost
  // for nothing.
  Fixture f;
  Session& s = f.s;
  std::lock_guard lock(s.mu_);
  const uint64_t small = D("x", 0, 10).msg->Footprint();
  const uint64_t big = D("x", 0, 400).msg->Footprint();
  const uint64_t max_bytes = small + big + 20;  // room for the big message only next to the small one...
  CHECK(s.EnqueueLocked(D("a0", 0, 10), 0, max_bytes, false).queued);
  CHECK(s.EnqueueLocked(D("b1", 1, 400), 0, max_bytes, false).queued);
  EnqueueResult r = s.EnqueueLocked(D("c1", 1, 400), 0, max_bytes, false);
  CHECK_FALSE(r.queued);
  CHECK(r.dropped_other == 0);
  CHECK(Queued(s) == V{"a0", "b1"});
  CHECK(s.queued_bytes_ == Bytes(s));
}

TEST_CASE("session: several QoS 0 messages are evicted when one is not enough") {
  // Byte limit with many small QoS 0 messages queued: a QoS 1 message that needs the room of three of
  // them evicts the three oldest (QoS 0 goes first), and is queued.
  Fixture f;
  Session& s = f.s;
  std::lock_guard lock(s.mu_);
  const uint64_t small = D("x", 0, 10).msg->Footprint();
  const uint64_t max_bytes = 6 * small;
  for (int i = 0; i < 6; ++i) REQUIRE(s.EnqueueLocked(D("q" + std::to_string(i), 0, 10), 0, max_bytes, false).queued);
  // Footprint grows by one per payload byte: a payload of 10 + 2 * small needs three small slots.
  const size_t payload = 10 + 2 * small;
  EnqueueResult r = s.EnqueueLocked(D("n1", 1, payload), 0, max_bytes, false);
  CHECK(r.queued);
  CHECK(r.dropped_other == 3);
  CHECK(Queued(s) == V{"q3", "q4", "q5", "n1"});
  CHECK(s.queued_bytes_ == Bytes(s));
  CHECK(s.queued_bytes_ <= max_bytes);
}

TEST_CASE("session: offline sessions") {
  Session s{"c", 1};  // no link: offline
  std::lock_guard lock(s.mu_);
  EnqueueResult r = s.EnqueueLocked(D("a0", 0), 10, 0, /*queue_qos0_offline=*/false);
  CHECK_FALSE(r.queued);
  CHECK(r.cause == DropCause::kQoS0Offline);
  CHECK(s.queue_.empty());

  r = s.EnqueueLocked(D("b1", 1), 10, 0, false);
  CHECK(r.queued);
  CHECK_FALSE(r.wake);  // nobody to wake

  r = s.EnqueueLocked(D("c0", 0), 10, 0, /*queue_qos0_offline=*/true);
  CHECK(r.queued);
  CHECK_FALSE(r.wake);
  CHECK(Queued(s) == V{"b1", "c0"});
}

TEST_CASE("session: an ended session queues nothing") {
  Fixture f;
  std::lock_guard lock(f.s.mu_);
  f.s.ended_ = true;
  CHECK_FALSE(f.s.EnqueueLocked(D("a1", 1), 0, 0, true).queued);
  CHECK(f.s.queue_.empty());
}

TEST_CASE("session: one wake per batch") {
  Fixture f;
  Session& s = f.s;
  std::lock_guard lock(s.mu_);
  CHECK(s.EnqueueLocked(D("a", 1), 0, 0, false).wake);
  CHECK_FALSE(s.EnqueueLocked(D("b", 1), 0, 0, false).wake);  // a wake is already pending
  CHECK(s.wake_pending_);
  s.wake_pending_ = false;  // the connection pumped
  CHECK(s.EnqueueLocked(D("c", 0), 0, 0, false).wake);
  // A dropped message wakes nobody.
  s.wake_pending_ = false;
  CHECK_FALSE(s.EnqueueLocked(D("d", 1), 1, 0, false).wake);
}

TEST_CASE("session: packet ids derive from the delivery sequence") {
  // 1..65535, never 0, wrapping; consecutive sequence numbers get consecutive ids.
  CHECK(PacketIdFor(1) == 1);
  CHECK(PacketIdFor(2) == 2);
  CHECK(PacketIdFor(65535) == 65535);
  CHECK(PacketIdFor(65536) == 1);
  CHECK(PacketIdFor(65535ull * 3 + 7) == 7);
  for (uint64_t seq = 1; seq < 200'000; seq += 997) {
    CHECK(PacketIdFor(seq) != 0);
    CHECK(PacketIdFor(seq + 65535) == PacketIdFor(seq));
  }

  // Only QoS 1/2 deliveries take a sequence number, in enqueue order.
  Session s{"c", 1};
  std::lock_guard lock(s.mu_);
  s.link_ = std::make_shared<NullLink>();
  REQUIRE(s.EnqueueLocked(D("a", 1), 0, 0, false).queued);
  REQUIRE(s.EnqueueLocked(D("b", 0), 0, 0, false).queued);
  REQUIRE(s.EnqueueLocked(D("c", 2), 0, 0, false).queued);
  CHECK(s.queue_[0].seq == 1);
  CHECK(s.queue_[1].seq == 0);
  CHECK(s.queue_[2].seq == 2);
  CHECK(s.next_seq_ == 3);

  // Find and erase in-flight entries by packet id.
  for (uint16_t id : {4, 5, 7}) {
    Inflight f;
    f.packet_id = id;
    s.inflight_.push_back(std::move(f));
  }
  REQUIRE(s.FindInflightLocked(5) != nullptr);
  CHECK(s.FindInflightLocked(6) == nullptr);
  s.EraseInflightLocked(5);
  s.EraseInflightLocked(6);  // absent: no effect
  CHECK(s.inflight_.size() == 2);
  CHECK(s.FindInflightLocked(5) == nullptr);
}

}  // namespace
}  // namespace parley::broker
