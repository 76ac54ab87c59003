// DurableState: the broker's Persistence port on storage/ (RocksDB in production, MemStore in tests).
//
// Every call turns into one small WriteBatch submitted to the WriteExecutor, which group-commits them (one
// WAL append and, under the fsync policy, one fsync for everything queued). Calls never block on disk.
//
// Message bodies are stored once (family kMessages, by a message id) however many sessions hold the
// message, and referenced from each delivery row. The reference counts live in memory (rebuilt at load):
// the first delivery of a message writes its body, the last removal deletes it. Count changes and the
// submission of their batches happen under one mutex, so "put body" always reaches the executor before
// the rows that reference it and "delete body" after the last of them.
//
// Failures: a write that fails with kNoSpace turns Writable() false; Maintain() then probes with a tiny
// write until one succeeds. While the disk is full, writes that do happen (acks removing rows) can fail
// too, so after a crash in that window some QoS 1/2 messages already delivered may be delivered again
// (docs/reliability.md).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "broker/api/persistence.h"
#include "broker/persist/records.h"
#include "storage/executor.h"
#include "storage/store.h"

namespace parley::broker::persist {

struct LoadedState {
  std::vector<StoredSession> sessions;
  std::vector<MessagePtr> retained;
  // What the load found and did, for the log.
  size_t deliveries = 0;
  size_t bodies = 0;
  size_t orphans_removed = 0;  // rows whose session or body was missing, and unreferenced bodies
  size_t expired_removed = 0;  // retained messages past their expiry
};

class DurableState final : public Persistence {
 public:
  // `store` and `executor` (which writes to `store`) must outlive this object.
  DurableState(storage::Store* store, storage::WriteExecutor* executor, const Clock& clock);
  ~DurableState() override;

  // Reads the whole state back. Call once, before any write and before serving. Rows that cannot be
  // decoded make it fail (kCorruption, naming the family and key); rows that reference a missing session
  // or body are removed with a warning. Blocks on disk (startup).
  storage::Result<LoadedState> Load();

  // Persistence
  void PutSession(const std::string& client_id, uint32_t expiry_interval, const std::optional<std::string>& username,
                  std::optional<int64_t> disconnected_at_ms) override;
  void DeleteSession(const std::string& client_id, const std::vector<MessagePtr>& held) override;
  void PutSubscription(const std::string& client_id, const StoredSubscription& sub) override;
  void DeleteSubscription(const std::string& client_id, std::string_view filter) override;
  void AddDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg, uint8_t qos, bool retain,
                   const std::vector<uint32_t>& sub_ids, std::string_view shared_group) override;
  void ReleaseDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) override;
  void RemoveDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) override;
  void AddIncomingQos2(const std::string& client_id, uint16_t packet_id) override;
  void RemoveIncomingQos2(const std::string& client_id, uint16_t packet_id) override;
  void PutWill(const std::string& client_id, const mqtt::Will& will) override;
  void DeleteWill(const std::string& client_id) override;
  void PutRetained(const MessagePtr& msg) override;
  bool Writable() const override { return writable_.load(std::memory_order_acquire); }
  void BeginAtomic() override;
  void EndAtomic() override;
  bool PendingWrites() const override;
  bool Barrier(std::function<void(bool ok)> done) override;
  void Maintain() override;

  // Message bodies referenced now (tests, stats). Any thread.
  size_t BodyCount() const;
  uint64_t FailedWrites() const { return failed_writes_.load(std::memory_order_relaxed); }

 private:
  struct Body {
    MessagePtr keep;  // holds the Message so its address (the map key) cannot be reused while counted
    uint64_t id = 0;
    uint32_t refs = 0;
  };

  // Submits `batch` (already holding mu_ when `locked`), tracking failure for the calling thread's Barrier.
  void Submit(storage::WriteBatch batch);
  void SubmitLocked(storage::WriteBatch batch);
  // One more / one fewer delivery row references `msg`; adds the body's Put / Delete to `batch`. Return the
  // message id. Caller holds mu_.
  uint64_t RefLocked(const MessagePtr& msg, storage::WriteBatch* batch);
  void UnrefLocked(const Message* msg, storage::WriteBatch* batch);
  void OnWriteFailed(const storage::Status& st);
  TimeBase Now() const;

  storage::Store* const store_;
  storage::WriteExecutor* const executor_;
  const Clock& clock_;
  const uint64_t instance_;  // unique per process: keys the calling thread's barrier scope

  mutable std::mutex mu_;
  std::unordered_map<const Message*, Body> bodies_;  // guarded by mu_
  uint64_t next_message_id_ = 1;                      // guarded by mu_

  std::atomic<bool> writable_{true};
  std::atomic<bool> probing_{false};
  std::atomic<uint64_t> failed_writes_{0};
  std::atomic<int64_t> last_error_log_{0};
};

}  // namespace parley::broker::persist
