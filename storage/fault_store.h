// FaultStore: a Store that forwards to another one and injects failures on demand, so the layers above
// can test what they do when the disk is full, an I/O error strikes, or storage is slow. A failed write is
// never applied. Also counts calls, so tests can check what reached the store (writes, synced writes,
// WAL syncs). Thread-safe like any Store; the controls may be called from any thread at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

#include "storage/store.h"

namespace parley::storage {

class FaultStore final : public Store {
 public:
  static constexpr int kForever = -1;

  // Wraps `base`, which must outlive this store.
  explicit FaultStore(Store* base) : base_(base) {}
  // Wraps and owns `base`.
  explicit FaultStore(std::unique_ptr<Store> base) : owned_(std::move(base)), base_(owned_.get()) {}

  // The next `count` Write calls (kForever: all until Heal) fail with `code` and change nothing.
  void FailWrites(Code code, int count = kForever);
  // The next `count` Get calls (kForever: all until Heal) fail with `code`.
  void FailReads(Code code, int count = kForever);
  // The next `count` SyncWal calls (kForever: all until Heal) fail with `code`.
  void FailSyncs(Code code, int count = kForever);
  // Every Write sleeps this long before it runs (zero: no delay).
  void DelayWrites(std::chrono::milliseconds delay) { delay_ms_.store(delay.count()); }
  // Clears every injected failure and delay.
  void Heal();

  uint64_t writes() const { return writes_.load(); }                // Write calls that were applied
  uint64_t synced_writes() const { return synced_writes_.load(); }  // ... of which with Sync::kSync
  uint64_t failed_writes() const { return failed_writes_.load(); }
  uint64_t wal_syncs() const { return wal_syncs_.load(); }  // SyncWal calls that succeeded

  uint32_t family_count() const override { return base_->family_count(); }
  const std::string& family_name(FamilyId family) const override { return base_->family_name(family); }
  Status Write(const WriteBatch& batch, Sync sync) override;
  Result<std::optional<std::string>> Get(FamilyId family, std::string_view key,
                                         const Snapshot* snapshot = nullptr) override;
  std::unique_ptr<Iterator> NewIterator(FamilyId family, const IteratorOptions& options = {}) override {
    return base_->NewIterator(family, options);
  }
  std::unique_ptr<Snapshot> GetSnapshot() override { return base_->GetSnapshot(); }
  Status Checkpoint(const std::string& dir) override { return base_->Checkpoint(dir); }
  Status CompactRange(FamilyId family) override { return base_->CompactRange(family); }
  uint64_t ApproximateSize(FamilyId family) override { return base_->ApproximateSize(family); }
  Status SyncWal() override;

 private:
  struct Fault {
    Code code = Code::kOk;
    int remaining = 0;  // kForever or a count
  };
  // A failure to inject now, consuming one from `f`; ok if none.
  Status Take(Fault* f, const char* what);

  std::unique_ptr<Store> owned_;
  Store* const base_;
  std::mutex mu_;
  Fault write_fault_;  // guarded by mu_
  Fault read_fault_;   // guarded by mu_
  Fault sync_fault_;   // guarded by mu_
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<uint64_t> writes_{0}, synced_writes_{0}, failed_writes_{0}, wal_syncs_{0};
};

}  // namespace parley::storage
