// `parleyctl restore`: puts a backup (a RocksDB checkpoint plus parley-backup.json, written by
// POST /api/v1/backup) in place of a data dir, offline. docs/admin-api.md, "Jobs"; tools/README.md.
//
// What it guarantees: the data dir is either left as it was or replaced whole by a verified copy. Every file
// the manifest lists is copied into a temporary dir next to the target (<parent>/.<name>.restore-<pid>),
// each copy is read back and checked against the manifest's size and SHA-256, the files and the dir are
// fsynced, and only then is the temporary dir renamed into place (atomically exchanged with an existing dir,
// whose old contents are then removed). Any failure removes the temporary dir and leaves the target alone.
// While it works it holds the POSIX lock on <data dir>/LOCK that RocksDB uses, so a broker cannot open the
// old data dir in the meantime.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::ctl {

inline constexpr const char* kManifestName = "parley-backup.json";

struct ManifestFile {
  std::string name;  // a plain file name in the backup dir (no '/', not "." or "..")
  uint64_t bytes = 0;
  std::string sha256;  // 64 lowercase hex digits
};

struct Manifest {
  int format = 0;  // 1
  int64_t created_at_ms = 0;
  std::string version;  // parleyd's version that wrote it
  std::vector<ManifestFile> files;
  uint64_t total_bytes = 0;  // sum of files[].bytes
};

// Reads and checks BACKUP_DIR/parley-backup.json. Throws CtlError (exit 1) naming what is wrong.
Manifest ReadManifest(const std::string& backup_dir);

// The pid holding the POSIX (fcntl) lock on DATA_DIR/LOCK, as RocksDB takes it; -1 when a flock()-style lock
// is held (pid unknown); nullopt when the file does not exist or nobody holds a lock.
std::optional<pid_t> LockHolder(const std::string& data_dir);

// SHA-256 of a file as lowercase hex; `on_bytes` is called after each chunk read with its size.
// Throws CtlError (exit 1) if the file cannot be read.
std::string Sha256File(const std::string& path, const std::function<void(uint64_t)>& on_bytes = {});

struct RestoreOptions {
  std::string backup_dir;
  std::string data_dir;
  bool force = false;  // replace a non-empty data dir
};

struct RestoreResult {
  Manifest manifest;
  std::string data_dir;  // as given
};

// phase ("copying", "verifying"), done and total bytes of that phase.
using RestoreProgress = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

// Restores. Throws CtlError: exit 6 when the data dir is in use by a running broker, or is not empty
// without `force`; exit 1 for everything else (a bad manifest, a missing, short or damaged file, an I/O
// error), naming the file.
RestoreResult Restore(const RestoreOptions& options, const RestoreProgress& progress = {});

}  // namespace parley::ctl
