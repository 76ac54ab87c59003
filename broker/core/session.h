// An MQTT session: the state that outlives a connection (subscriptions, queued and in-flight messages,
// QoS 2 packet ids, will). Shared by reference between the registry, the subscription tree and the
// connection bound to it. Every mutable member is guarded by mu_: publishers on any thread enqueue,
// the bound connection's loop thread drains.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "broker/api/auth.h"
#include "broker/api/message.h"
#include "broker/codec/packets.h"
#include "broker/core/ring_queue.h"
#include "broker/core/transport.h"

namespace parley::broker {

// A message on its way to one session. `qos` is already downgraded to the subscription's QoS.
struct Delivery {
  MessagePtr msg;
  uint8_t qos = 0;
  bool retain = false;                // RETAIN flag as this receiver sees it
  std::vector<uint32_t> sub_ids;      // subscription identifiers of every matching subscription
  std::shared_ptr<const std::string> shared_group;  // "$share/g/filter" when routed via a share group
  // QoS 1/2: the session's sequence number for it, assigned when queued (0 until then, and for QoS 0).
  // The packet id derives from it (PacketIdFor), so it survives a restart without a write per send.
  uint64_t seq = 0;
  // Loaded from disk at a restart: it may have been sent before the broker stopped, so it goes out with
  // DUP set (MQTT-3.3.1-1: DUP = 1 when this "might be re-delivery of an earlier attempt").
  bool maybe_sent = false;
};

// The packet id of a QoS 1/2 delivery: its sequence number counted round 1..65535. Deterministic, so the
// ids of messages in flight when the broker stopped are the same after the restart (QoS 2 exactly once
// depends on it); a queued message whose id is still in flight waits for that ack (Client::Pump).
inline uint16_t PacketIdFor(uint64_t seq) { return static_cast<uint16_t>((seq - 1) % 65535 + 1); }

// An outgoing QoS 1/2 message awaiting the receiver's ack.
struct Inflight {
  enum class State : uint8_t { kAwaitPuback, kAwaitPubrec, kAwaitPubcomp };
  uint16_t packet_id = 0;
  State state = State::kAwaitPuback;
  // Unacknowledged on an earlier connection and not yet sent again on this one: the client's Receive
  // Maximum was reached on resume. Pump() resends it (DUP, same id) as acks make room.
  bool resend = false;
  Delivery delivery;  // msg is kept until PUBACK / PUBCOMP (kAwaitPubcomp needs only the id)
};

struct SubscriptionRecord {
  mqtt::SubscribeOptions opts;
  uint32_t sub_id = 0;  // 0 = none
};

// Why messages were dropped instead of queued (counted per broker; docs/architecture.md "Queues").
// kStorage: refused for a persisted session because storage refuses writes (disk full); the publisher
// hears 0x97.
// Why a message was not delivered: a full queue, expiry, over the client's maximum packet size, QoS 0 for an
// offline session, a storage failure, or inbound QoS 0 shed while the broker is overloaded.
enum class DropCause : uint8_t { kQueueFull, kExpired, kTooLarge, kQoS0Offline, kStorage, kOverload, kCount };

struct EnqueueResult {
  bool queued = false;
  bool wake = false;    // caller should Wake() the link (outside the lock)
  uint32_t dropped_other = 0;  // older QoS 0 messages dropped to make room
  DropCause cause = DropCause::kQueueFull;
};

class Session {
 public:
  Session(std::string client_id, uint64_t id) : client_id_(std::move(client_id)), id_(id) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& client_id() const { return client_id_; }
  // Unique for the life of the process; distinguishes a new session from an old one with the same id.
  uint64_t id() const { return id_; }

  // Fields are ordered small-first so padding stays low: an idle process holds one Session per connection.

  // True while a connection is bound. Written under mu_, read without it (share-group member choice).
  std::atomic<bool> online_{false};
  // ---- guarded by mu_ (the small ones here, beside online_, to share its padding) ----
  bool ended_ = false;                 // removed from the registry; no further use
  // Written to the Persistence port: a store is configured and the expiry interval is > 0. Every change of
  // its persistent state is then reported there, under mu_ (so disk order follows memory order).
  bool persisted_ = false;
  bool wake_pending_ = false;          // a Wake() is in flight; avoids one post per message
  uint32_t expiry_interval_ = 0;       // seconds; 0xFFFFFFFF = never

  std::mutex mu_;
  // ---- guarded by mu_ ----
  std::shared_ptr<SessionLink> link_;  // connection bound now; null when offline
  uint64_t link_generation_ = 0;       // bumped on every bind, so a stale connection knows it lost the session
  RingQueue<Delivery> queue_;          // not yet sent (no packet id yet)
  uint64_t queued_bytes_ = 0;
  std::vector<Inflight> inflight_;     // sent, awaiting ack; in send order
  uint64_t next_seq_ = 1;              // sequence number of the next QoS 1/2 delivery (Delivery::seq)
  uint32_t inflight_resend_ = 0;       // entries of inflight_ with `resend` set (at most 65,535)
  // QoS 2 PUBLISH received, PUBREC sent, PUBREL not yet. At most Receive Maximum ids (v5), usually a
  // handful: a flat vector is smaller than a hash set (idle sessions count) and as fast at this size.
  std::vector<uint16_t> incoming_qos2_;
  std::map<std::string, SubscriptionRecord, std::less<>> subscriptions_;  // by full filter incl. $share/
  std::optional<std::string> username_;  // of the connection that last bound it (ACL at delivery)
  std::shared_ptr<const Authorizer> credential_acl_;  // that connection's credential permissions, or null

  // Queues `d` subject to the limits. Caller holds mu_.
  EnqueueResult EnqueueLocked(Delivery d, uint32_t max_messages, uint64_t max_bytes, bool queue_qos0_offline);
  Inflight* FindInflightLocked(uint16_t packet_id);
  bool HasIncomingQos2Locked(uint16_t id) const {
    for (uint16_t x : incoming_qos2_)
      if (x == id) return true;
    return false;
  }
  void AddIncomingQos2Locked(uint16_t id) {
    if (!HasIncomingQos2Locked(id)) incoming_qos2_.push_back(id);
  }
  bool EraseIncomingQos2Locked(uint16_t id) {
    for (size_t i = 0; i < incoming_qos2_.size(); ++i) {
      if (incoming_qos2_[i] != id) continue;
      incoming_qos2_[i] = incoming_qos2_.back();
      incoming_qos2_.pop_back();
      return true;
    }
    return false;
  }
  void EraseInflightLocked(uint16_t packet_id);

 private:
  const std::string client_id_;
  const uint64_t id_;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace parley::broker
