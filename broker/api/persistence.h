// Port: durable broker state. broker/core reports every change of persistent state here as it makes it in
// memory; broker/persist implements it on storage/ (RocksDB) and loads it all back at start. Without a
// Persistence the broker keeps everything in memory only.
//
// What is persistent: sessions with an expiry interval > 0 (3.1.1: clean session = false), their
// subscriptions, their QoS 1/2 deliveries (queued or in flight, including "released": PUBREC seen, PUBCOMP
// not yet), the QoS 2 packet ids they received and have not seen PUBREL for, their will, and retained
// messages. QoS 0 deliveries are not: at most once means a crash may lose them.
//
// Ordering: writes are applied in the order of the calls. broker/core makes every call about one session
// while holding that session's lock, so a session's rows on disk change in the same order as in memory.
//
// Threads: every method may be called from any thread and never blocks on disk (writes are queued to a
// storage thread). Calls are cheap: one small write batch each, group-committed by the storage thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/api/message.h"
#include "broker/codec/packets.h"

namespace parley::broker {

// One QoS 1/2 message held for a persistent session: a queue entry, or an in-flight one.
struct StoredDelivery {
  uint64_t seq = 0;      // per session, strictly increasing in enqueue order; the packet id derives from it
  MessagePtr msg;        // null when released (PUBREC seen: only the packet id matters until PUBCOMP)
  uint8_t qos = 1;       // after the subscription's downgrade: 1 or 2
  bool retain = false;   // RETAIN as this receiver sees it
  std::vector<uint32_t> sub_ids;
  std::string shared_group;  // "$share/g/filter" when routed through a share group; empty otherwise
};

struct StoredSubscription {
  std::string filter;  // as subscribed, including any "$share/g/" prefix
  mqtt::SubscribeOptions opts;
  uint32_t sub_id = 0;
};

// A session as loaded at start.
struct StoredSession {
  std::string client_id;
  uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF = never
  std::optional<std::string> username;
  // Wall clock (ms since the Unix epoch) when its connection ended; nullopt if it was connected when the
  // broker stopped (or crashed): it counts as disconnected at the restart.
  std::optional<int64_t> disconnected_at_ms;
  std::vector<StoredSubscription> subscriptions;
  std::vector<StoredDelivery> deliveries;  // in seq order
  std::vector<uint16_t> incoming_qos2;
  // The will of the connection last bound to it, if that connection had one and did not end with a normal
  // DISCONNECT: published after its delay once the broker is back, unless the client returns first.
  std::optional<mqtt::Will> will;
};

class Persistence {
 public:
  virtual ~Persistence() = default;

  // ---- Sessions ------------------------------------------------------------------------------------------
  virtual void PutSession(const std::string& client_id, uint32_t expiry_interval,
                          const std::optional<std::string>& username, std::optional<int64_t> disconnected_at_ms) = 0;
  // Removes the session and everything it holds. `held` lists the messages of its stored deliveries that
  // still carry one (so their bodies can be released).
  virtual void DeleteSession(const std::string& client_id, const std::vector<MessagePtr>& held) = 0;
  virtual void PutSubscription(const std::string& client_id, const StoredSubscription& sub) = 0;
  virtual void DeleteSubscription(const std::string& client_id, std::string_view filter) = 0;

  // ---- Deliveries (QoS 1/2 only) -------------------------------------------------------------------------
  // A delivery was queued (seq, message, QoS after downgrade, RETAIN as seen, subscription ids, share group).
  virtual void AddDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg, uint8_t qos,
                           bool retain, const std::vector<uint32_t>& sub_ids, std::string_view shared_group) = 0;
  // PUBREC seen: the message body is no longer needed for this session.
  virtual void ReleaseDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) = 0;
  // Done (PUBACK / PUBCOMP), expired, dropped or handed to another session. `msg` null if released.
  virtual void RemoveDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) = 0;

  // ---- Incoming QoS 2 packet ids awaiting PUBREL ---------------------------------------------------------
  virtual void AddIncomingQos2(const std::string& client_id, uint16_t packet_id) = 0;
  virtual void RemoveIncomingQos2(const std::string& client_id, uint16_t packet_id) = 0;

  // ---- Wills ---------------------------------------------------------------------------------------------
  virtual void PutWill(const std::string& client_id, const mqtt::Will& will) = 0;
  virtual void DeleteWill(const std::string& client_id) = 0;

  // ---- Retained messages ---------------------------------------------------------------------------------
  // Stores `msg` as its topic's retained message (an empty payload deletes it).
  virtual void PutRetained(const MessagePtr& msg) = 0;

  // ---- Atomicity -----------------------------------------------------------------------------------------
  // The writes the calling thread makes between BeginAtomic and EndAtomic reach the disk together or not at
  // all (a QoS 2 PUBLISH: its deliveries and its packet id, so that a crash cannot keep the deliveries and
  // lose the id, which would route the publisher's resend a second time). Nestable. Writes by any thread
  // that follow the first one wait for EndAtomic: keep the span short and never block inside it.
  virtual void BeginAtomic() = 0;
  virtual void EndAtomic() = 0;

  // ---- Durability ----------------------------------------------------------------------------------------
  // False while new writes are being refused (the disk is full); the broker then refuses new persistent
  // work with 0x97 Quota exceeded. Turns true again by itself once a write succeeds (see Maintain).
  virtual bool Writable() const = 0;
  // True if the calling thread made writes since its previous Barrier (cheap: lets callers skip Barrier).
  virtual bool PendingWrites() const = 0;
  // If the calling thread made writes since its previous Barrier: arranges for `done(ok)` to run once they
  // (and every write made before this call, by any thread) are durable under the configured policy, `ok`
  // false if one of them failed, and returns true. Otherwise returns false and never calls `done`: there is
  // nothing to wait for. `done` runs on the storage thread: it must only hand the result over and return.
  virtual bool Barrier(std::function<void(bool ok)> done) = 0;
  // Periodic upkeep (the broker calls it from its tick): probes whether the disk has room again.
  virtual void Maintain() = 0;
};

}  // namespace parley::broker
