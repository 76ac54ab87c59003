// Store: the typed key-value interface every storage user programs against. Two implementations share one
// contract (and one test suite): RocksStore (RocksDB, the real one) and MemStore (in memory, for tests of
// the layers above); FaultStore wraps either to inject failures.
//
// Model: a fixed set of column families ("families"), named by the caller at open and addressed by
// FamilyId (the index of the name). Each family is a sorted map from byte-string keys to byte-string
// values, ordered by unsigned bytes. Writes are atomic batches across families. Reads see either the latest
// state or a Snapshot. Key encodings live in storage/format.h and docs/storage-format.md.
//
// Threads: every method of Store is safe to call from any thread. But a call may block on disk (RocksDB
// reads that miss the cache, fsync on writes), so event-loop threads must not call it: writes go through a
// WriteExecutor, and reads that may touch disk are posted to it (WriteExecutor::Post) or to another
// storage thread, never run on a loop.
//
// Lifetimes: Snapshots and Iterators hold resources of the store that made them and must be destroyed
// before it (checked: a store destroyed with live ones aborts).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "storage/status.h"
#include "storage/write_batch.h"

namespace parley::storage {

enum class Sync : uint8_t {
  kSync,    // the write is in the WAL and the WAL is fsync'ed before Write returns
  kNoSync,  // the write is in the WAL (in the OS page cache) when Write returns: survives a process crash,
            // not an OS crash or power loss until the next synced write or SyncWal()
};

// A consistent read-only view of every family at one moment. Release by destroying it. Any thread.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
};

struct IteratorOptions {
  const Snapshot* snapshot = nullptr;      // nullptr: an implicit snapshot taken when the iterator is made
  std::optional<std::string> lower_bound;  // inclusive
  std::optional<std::string> upper_bound;  // exclusive
  // Non-empty: only keys that start with it (the bounds become [prefix, PrefixSuccessor(prefix)),
  // intersected with the bounds above).
  std::string prefix;
};

// A cursor over one family in key order, restricted to its bounds. An iterator sees the state at the moment
// it was made (or its snapshot), never later writes. Not thread-safe: one thread at a time.
// key(), value(), Next() and Prev() require Valid(). key() and value() stay valid until the next move.
class Iterator {
 public:
  virtual ~Iterator() = default;
  virtual bool Valid() const = 0;
  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // The first key >= target (targets below the lower bound act as the lower bound).
  virtual void Seek(std::string_view target) = 0;
  // The last key <= target (targets at or above the upper bound act as "the last key in bounds").
  virtual void SeekForPrev(std::string_view target) = 0;
  virtual void Next() = 0;
  virtual void Prev() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Not ok if an I/O error or corruption stopped the iteration (Valid() is then false).
  virtual Status status() const = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The number of caller families; valid FamilyIds are [0, family_count()).
  virtual uint32_t family_count() const = 0;
  // The name a family was opened with.
  virtual const std::string& family_name(FamilyId family) const = 0;

  // Applies every operation of the batch atomically: all or none. Errors: kInvalidArgument (unknown family;
  // nothing applied), kNoSpace (disk full: nothing applied, later writes refused until space returns, reads
  // keep working), kIo, kShutdown. Any thread; blocks on disk.
  virtual Status Write(const WriteBatch& batch, Sync sync) = 0;

  // The value of `key`, or nullopt if absent. `snapshot` (optional) must come from this store. Any thread.
  virtual Result<std::optional<std::string>> Get(FamilyId family, std::string_view key,
                                                 const Snapshot* snapshot = nullptr) = 0;

  // An iterator over one family, initially not Valid(): call a Seek method first. Never null; an unknown
  // family gives an iterator whose status() is kInvalidArgument. Any thread.
  virtual std::unique_ptr<Iterator> NewIterator(FamilyId family, const IteratorOptions& options = {}) = 0;

  // A view of the current state of every family. Any thread.
  virtual std::unique_ptr<Snapshot> GetSnapshot() = 0;

  // Writes a consistent, openable copy of the whole store to `dir`, which must not exist (its parent must).
  // RocksStore: a RocksDB checkpoint (SST files hard-linked when on the same filesystem) that
  // RocksStore::Open can open. MemStore: a dump file that MemStore::LoadCheckpoint reads. Any thread.
  virtual Status Checkpoint(const std::string& dir) = 0;

  // Compacts a whole family (reclaims space of deleted keys). Slow; any thread.
  virtual Status CompactRange(FamilyId family) = 0;

  // Approximate bytes a family uses (files on disk plus memtables), or 0 for an unknown family. Any thread.
  virtual uint64_t ApproximateSize(FamilyId family) = 0;

  // Makes every write made so far durable (fsync of the WAL). Any thread; blocks on disk.
  virtual Status SyncWal() = 0;
};

}  // namespace parley::storage
