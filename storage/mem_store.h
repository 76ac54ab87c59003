// MemStore: the Store contract held in memory, for tests of the layers above storage. Same ordering, same
// atomicity, same snapshot and iterator semantics as RocksStore (one test suite runs against both); no
// durability. Combine with FaultStore to test error paths.
//
// Implementation: one immutable std::map per family behind a shared_ptr. A writer copies a family's map
// only if a snapshot or iterator still holds it (copy-on-write), so snapshots and iterators are O(1) to
// make and writes are O(n) only while one is alive — fine for tests, not for production data.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "storage/store.h"

namespace parley::storage {

class MemStore final : public Store {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;

  // An empty store with the given caller families (names as for RocksStore: non-empty, unique, not
  // "default"). Any thread.
  static Result<std::unique_ptr<MemStore>> Open(std::vector<std::string> families);
  // A store with the contents of a checkpoint written by MemStore::Checkpoint. Families of the checkpoint
  // that are not in `families` are ignored; families not in the checkpoint start empty.
  static Result<std::unique_ptr<MemStore>> LoadCheckpoint(const std::string& dir,
                                                          std::vector<std::string> families);
  ~MemStore() override;  // aborts if snapshots or iterators are still alive

  uint32_t family_count() const override { return static_cast<uint32_t>(names_.size()); }
  const std::string& family_name(FamilyId family) const override;
  Status Write(const WriteBatch& batch, Sync sync) override;
  Result<std::optional<std::string>> Get(FamilyId family, std::string_view key,
                                         const Snapshot* snapshot = nullptr) override;
  std::unique_ptr<Iterator> NewIterator(FamilyId family, const IteratorOptions& options = {}) override;
  std::unique_ptr<Snapshot> GetSnapshot() override;
  Status Checkpoint(const std::string& dir) override;
  Status CompactRange(FamilyId family) override;
  uint64_t ApproximateSize(FamilyId family) override;
  Status SyncWal() override { return Status::Ok(); }

 private:
  class MemSnapshot;
  class MemIterator;
  explicit MemStore(std::vector<std::string> names);

  const std::vector<std::string> names_;
  mutable std::shared_mutex mu_;
  // Guarded by mu_ (the pointers; the maps they point to are immutable once shared).
  std::vector<std::shared_ptr<Map>> maps_;
  std::atomic<int64_t> live_objects_{0};  // snapshots + iterators not yet destroyed
};

}  // namespace parley::storage
