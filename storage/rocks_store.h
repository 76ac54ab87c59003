// RocksStore: the Store contract on RocksDB, one RocksDB database per data dir.
//
// Opening is careful not to damage a dir it cannot use: it checks the dir, refuses a dir that another
// process has locked, and validates an existing database read-only (CURRENT, MANIFEST, SST file set, WAL
// replay and the storage format version) before the real open writes anything. Each failure has its own
// Code and a message that names the dir (see docs/storage-format.md, "Failure behaviour").
//
// A full disk: the failing write returns kNoSpace and RocksDB stops accepting writes (reads keep working).
// RocksDB's SstFileManager polls free space every 5 s and resumes by itself once there is room; every
// refused write also nudges recovery with DB::Resume() (at most once a second). So writes start to succeed
// again within about 5 s of space returning, with no restart. While writes fail, SyncWal, Checkpoint and
// CompactRange are refused too (see Impl::wal_mu in the .cc for why).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "storage/store.h"

namespace parley::storage {

struct OpenOptions {
  // The caller's column families; FamilyId(i) is families[i]. Missing families are created. Families that
  // exist in the dir but are not listed are kept (opened, untouched, invisible to the caller).
  std::vector<std::string> families;
  // Create the dir (and parents) and a new database if the dir has none. Never applies to a dir holding
  // database files without a CURRENT file: that is corruption, not emptiness.
  bool create_if_missing = true;
  // Tuning for a broker on a small machine.
  size_t block_cache_mb = 32;         // one LRU block cache shared by all families
  size_t write_buffer_mb = 16;        // memtable size per family
  size_t total_write_buffer_mb = 64;  // memtables of all families together
  size_t max_total_wal_mb = 64;       // past this, the families holding the oldest WAL are flushed
  int max_open_files = 512;           // SST file descriptors kept open (-1: all)
  int max_background_jobs = 2;        // flushes + compactions
  // RocksDB's own info log goes to Parley's log (its INFO lines at debug level), not to a LOG file.
};

class RocksStore final : public Store {
 public:
  // Opens (or creates) the store in `dir`. Errors, each naming the dir:
  //   kBusy              locked by another process ("... in use by another process (LOCK held by pid N)")
  //                      or already open in this one;
  //   kPermissionDenied  the dir or a file in it is not readable/writable by this process;
  //   kCorruption        CURRENT, MANIFEST, an SST or WAL file is damaged or missing (the message names the
  //                      file when RocksDB does) — restore from a backup;
  //   kIncompatible      written by a newer storage format (kFormatVersion);
  //   kNotFound          no store there and create_if_missing is false;
  //   kInvalidArgument   not a directory, a non-empty dir that holds no store, or bad options;
  //   kNoSpace / kIo     as they come.
  // A dir that is locked, unreadable, corrupt or too new is left exactly as it was. Any thread; blocks on
  // disk.
  static Result<std::unique_ptr<RocksStore>> Open(const std::string& dir, OpenOptions options);

  // Syncs the WAL and closes. Aborts if snapshots or iterators of this store are still alive.
  ~RocksStore() override;

  uint32_t family_count() const override;
  const std::string& family_name(FamilyId family) const override;
  Status Write(const WriteBatch& batch, Sync sync) override;
  Result<std::optional<std::string>> Get(FamilyId family, std::string_view key,
                                         const Snapshot* snapshot = nullptr) override;
  std::unique_ptr<Iterator> NewIterator(FamilyId family, const IteratorOptions& options = {}) override;
  std::unique_ptr<Snapshot> GetSnapshot() override;
  Status Checkpoint(const std::string& dir) override;
  Status CompactRange(FamilyId family) override;
  uint64_t ApproximateSize(FamilyId family) override;
  Status SyncWal() override;

  const std::string& dir() const;
  // Writes refused with kNoSpace since open. Any thread.
  uint64_t no_space_errors() const;

 private:
  struct Impl;
  class RocksSnapshot;
  class RocksIterator;
  explicit RocksStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::storage
