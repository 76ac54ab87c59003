// Backup and compaction of the data dir, run as admin jobs (docs/admin-api.md "Jobs", docs/operations.md
// "Backup and restore").
//
// A backup is a RocksDB checkpoint (hard links to the immutable SST files when the target is on the same file
// system, copies otherwise, plus a copy of the live WAL and MANIFEST), taken while the broker serves, and a
// manifest `parley-backup.json` that lists every file with its size and SHA-256:
//
//   {"format": 1, "created_at_ms": 1764300000000, "version": "0.1.0",
//    "files": [{"name": "000012.sst", "bytes": 4096, "sha256": "9f86d0..."}, ...]}
//
// The manifest is written last (temporary file, fsync, rename, fsync of the dir): a backup without it is
// incomplete. `parleyctl restore` copies the files listed and checks each against it.
#pragma once

#include <string>

#include "base/status.h"
#include "broker/admin/jobs.h"
#include "storage/store.h"

namespace parley::admin {

inline constexpr const char* kBackupManifest = "parley-backup.json";

// Checks that `dir` can be a backup target: an absolute path that does not exist yet, whose parent does.
Status CheckBackupTarget(const std::string& dir);
// Checkpoints `store` into `dir` and writes the manifest; progress: phase "checkpoint", then "checksums" in
// bytes. On failure the partial `dir` is removed. The job's thread.
Status RunBackup(storage::Store& store, const std::string& dir, JobProgress& progress);
// Compacts every family of `store`, one after the other; progress in families. The job's thread.
Status RunCompaction(storage::Store& store, JobProgress& progress);

// The hex SHA-256 of a file, adding the bytes read to `progress` as it goes. For backups and tests.
Result<std::string> Sha256File(const std::string& path, JobProgress* progress);

}  // namespace parley::admin
