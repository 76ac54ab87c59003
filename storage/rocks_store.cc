#include "storage/rocks_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "base/check.h"
#include "storage/format.h"
#include "storage/internal.h"

namespace parley::storage {
namespace {

constexpr int64_t kResumeIntervalMs = 1000;
constexpr const char* kRestoreAdvice = "; restore it from a backup (parleyctl restore)";

bool Contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// RocksDB's info log, sent to Parley's log instead of a LOG file in the data dir. Two reasons: the
// Debian build of librocksdb keeps its assertions, and its file logger asserts when it writes again after
// a failed write — so a full disk (the data dir's own) would abort the process from a background thread;
// and a failed open then leaves the dir exactly as it was (no LOG rotation). RocksDB is chatty: its INFO
// lines go to debug, its WARN lines (mostly routine: stalls, checkpoint notes) to info, ERROR to error.
class SpdlogLogger final : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    spdlog::level::level_enum to = spdlog::level::debug;
    if (level == rocksdb::InfoLogLevel::DEBUG_LEVEL) to = spdlog::level::trace;
    if (level == rocksdb::InfoLogLevel::WARN_LEVEL) to = spdlog::level::info;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL && level < rocksdb::InfoLogLevel::HEADER_LEVEL) {
      to = spdlog::level::err;
    }
    if (!spdlog::should_log(to)) return;
    char buf[1024];
    const int n = std::vsnprintf(buf, sizeof buf, format, ap);
    if (n < 0) return;
    std::string_view line(buf, std::min<size_t>(n, sizeof buf - 1));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    spdlog::log(to, "rocksdb: {}", line);
  }
};

// A RocksDB status as ours. `what` says what was being done ("write to data dir '...'").
Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  std::string msg = what + ": " + s.ToString();
  // While a background flush or compaction error from a full disk is in effect, RocksDB can refuse writes with
  // that error wrapped in another code ("Result incomplete: IO error: No space left on device: ..."), without
  // the NoSpace subcode: the text is what identifies it then.
  if (s.IsNoSpace() || Contains(msg, "No space left on device")) return Status::NoSpace(std::move(msg));
  if (s.IsCorruption()) return Status::Corruption(std::move(msg));
  if (s.IsShutdownInProgress()) return Status::Shutdown(std::move(msg));
  if (s.IsBusy() || s.IsTryAgain()) return Status::Busy(std::move(msg));
  if (s.IsInvalidArgument() || s.IsNotSupported()) return Status::InvalidArgument(std::move(msg));
  if (s.IsNotFound()) return Status::NotFound(std::move(msg));
  if (Contains(msg, "Permission denied")) return Status::PermissionDenied(std::move(msg));
  return Status::Io(std::move(msg));
}

Status FromErrno(int e, const std::string& what) {
  std::string msg = what + ": " + std::strerror(e);
  switch (e) {
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(std::move(msg));
    case ENOSPC:
    case EDQUOT:
      return Status::NoSpace(std::move(msg));
    case ENOENT:
      return Status::NotFound(std::move(msg));
    case ENOTDIR:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::Io(std::move(msg));
  }
}

// An error while opening an existing database, in the words an operator needs.
Status OpenError(const rocksdb::Status& s, const std::string& where) {
  const std::string text = s.ToString();
  if (s.IsIOError() && Contains(text, "lock hold by current process")) {
    return Status::Busy(where + " is already open in this process");
  }
  if (s.IsIOError() && (Contains(text, "/LOCK") || Contains(text, "lock file"))) {
    return Status::Busy(where + " is in use by another process (LOCK held): " + text);
  }
  if (s.IsCorruption()) return Status::Corruption(where + " is corrupt (" + text + ")" + kRestoreAdvice);
  if (s.IsIOError() && Contains(text, "Permission denied")) {
    return Status::PermissionDenied(where + " cannot be read by this process: " + text);
  }
  if (s.IsIOError() && (s.IsPathNotFound() || Contains(text, "No such file"))) {
    return Status::Corruption(where + " is corrupt: a file it needs is missing (" + text + ")" +
                              kRestoreAdvice);
  }
  return FromRocks(s, "cannot open " + where);
}

// Data dirs open in this process (canonical paths). RocksDB refuses a second open itself, but our own
// checks run first and must not touch a dir this process already uses (see LockHolder).
std::mutex g_open_mu;
std::set<std::string>& OpenDirs() {
  static auto* dirs = new std::set<std::string>();  // never destroyed: used from destructors at exit
  return *dirs;
}

class DirClaim {
 public:
  DirClaim() = default;
  explicit DirClaim(std::string path) {
    std::lock_guard lock(g_open_mu);
    if (OpenDirs().insert(path).second) path_ = std::move(path);
  }
  DirClaim(DirClaim&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  DirClaim& operator=(DirClaim&& o) noexcept {
    std::swap(path_, o.path_);
    return *this;
  }
  ~DirClaim() {
    if (path_.empty()) return;
    std::lock_guard lock(g_open_mu);
    OpenDirs().erase(path_);
  }
  bool held() const { return !path_.empty(); }

 private:
  std::string path_;
};

// The pid of another process holding RocksDB's lock on dir/LOCK (a POSIX fcntl lock), or 0.
// Only call this for a dir this process has not opened: closing any descriptor of a file drops every
// POSIX lock the process holds on it, so probing our own open database would silently unlock it.
pid_t LockHolder(const std::string& dir) {
  const int fd = ::open((dir + "/LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  pid_t holder = 0;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) holder = fl.l_pid;
  ::close(fd);
  return holder;
}

struct DirContents {
  bool has_current = false;
  bool has_db_files = false;  // MANIFEST, SST, WAL or blob files
  std::string unknown;        // the first file that RocksDB would not have made, if any
};

Status ListDir(const std::string& dir, const std::string& where, DirContents* out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return FromErrno(errno, where + " cannot be listed");
  auto ends_with = [](std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
  };
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name == "CURRENT") {
      out->has_current = true;
    } else if (name.starts_with("MANIFEST-") || ends_with(name, ".sst") || ends_with(name, ".ldb") ||
               ends_with(name, ".log") || ends_with(name, ".blob")) {
      out->has_db_files = true;
    } else if (name == "LOCK" || name == "IDENTITY" || name == "LOG" || name.starts_with("LOG.old.") ||
               name.starts_with("OPTIONS-") || ends_with(name, ".dbtmp") || name == "lost+found") {
      // Made by RocksDB before a database exists, or by mkfs: harmless.
    } else if (out->unknown.empty()) {
      out->unknown = std::string(name);
    }
  }
  ::closedir(d);
  return Status::Ok();
}

rocksdb::CompressionType PickCompression(std::initializer_list<rocksdb::CompressionType> prefs) {
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  for (auto c : prefs) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  }
  return rocksdb::kNoCompression;
}

struct Tuning {
  rocksdb::DBOptions db;
  rocksdb::ColumnFamilyOptions cf;
};

Tuning MakeTuning(const OpenOptions& o) {
  Tuning t;
  t.db.create_if_missing = true;  // the dir checks above decide whether creating is allowed
  t.db.create_missing_column_families = true;
  t.db.paranoid_checks = true;
  t.db.max_background_jobs = o.max_background_jobs;
  t.db.bytes_per_sync = 1 << 20;
  t.db.max_total_wal_size = static_cast<uint64_t>(o.max_total_wal_mb) << 20;
  t.db.db_write_buffer_size = o.total_write_buffer_mb << 20;
  t.db.info_log = std::make_shared<SpdlogLogger>();
  t.db.max_open_files = o.max_open_files;
  t.db.manifest_preallocation_size = 1 << 20;
  t.db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_mb << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  t.cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  t.cf.write_buffer_size = o.write_buffer_mb << 20;
  t.cf.compaction_style = rocksdb::kCompactionStyleLevel;
  t.cf.level_compaction_dynamic_level_bytes = true;
  t.cf.compression = PickCompression({rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  t.cf.bottommost_compression = PickCompression({rocksdb::kZSTD, rocksdb::kLZ4Compression});
  return t;
}

// Reads and checks the format version in the meta family. `version` is 0 when absent.
Status ReadFormatVersion(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, const std::string& where,
                         uint32_t* version) {
  std::string v;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kFormatVersionKey, &v);
  *version = 0;
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return OpenError(s, where);
  std::string_view in = v;
  if (!GetU32(&in, version) || !in.empty()) {
    return Status::Corruption(where + " has a malformed storage format version" + kRestoreAdvice);
  }
  if (*version > kFormatVersion) {
    return Status::Incompatible(where + " was written by a newer Parley (storage format " +
                                std::to_string(*version) + "; this build reads up to " +
                                std::to_string(kFormatVersion) + ")");
  }
  return Status::Ok();
}

// Opens an existing database read-only (which writes nothing to the dir: no lock, no info LOG, no WAL
// truncation) to find damage and version problems before the real open. Returns the families it has.
Status ValidateReadOnly(const std::string& dir, const std::string& where, const Tuning& t,
                        std::vector<std::string>* families) {
  rocksdb::Options opts(t.db, t.cf);
  opts.create_if_missing = false;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(opts, dir, families);
  if (!s.ok()) return OpenError(s, where);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : *families) descs.emplace_back(n, t.cf);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(opts, dir, descs, &handles, &raw);
  if (!s.ok()) return OpenError(s, where);
  std::unique_ptr<rocksdb::DB> db(raw);
  Status result = Status::Ok();
  for (size_t i = 0; i < families->size(); ++i) {
    if ((*families)[i] == kMetaFamilyName) {
      uint32_t version;
      result = ReadFormatVersion(db.get(), handles[i], where, &version);
    }
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  return result;
}

}  // namespace

struct RocksStore::Impl {
  std::string dir;
  std::string where;  // "data dir '<dir>'"
  DirClaim claim;
  std::vector<std::string> names;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> all_handles;  // owned; destroyed before db
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> families;  // caller FamilyId -> handle
  std::atomic<int64_t> live_objects{0};
  std::atomic<uint64_t> no_space_errors{0};
  std::atomic<int64_t> last_resume_ms{0};

  // After a failed WAL write, RocksDB's WAL file writer is in an error state until recovery replaces it,
  // and touching it again (SyncWAL, FlushWAL, or the memtable switch of a manual flush) trips an assertion
  // that Debian's librocksdb keeps: the process would abort. So writes hold wal_mu shared and record a
  // failure before releasing it; SyncWal, Checkpoint and the flush in CompactRange hold it exclusively and
  // first check that no write has failed since the last success (WalUsable).
  std::shared_mutex wal_mu;
  std::atomic<bool> write_failed{false};
  std::mutex error_mu;
  Status last_error;  // guarded by error_mu: why writes fail, while write_failed

  // Asks RocksDB to leave its read-only error state, at most once per kResumeIntervalMs across threads.
  // True if the database accepts writes again.
  bool TryResume() {
    int64_t last = last_resume_ms.load();
    const int64_t now = SteadyMs();
    if (now - last < kResumeIntervalMs || !last_resume_ms.compare_exchange_strong(last, now)) return false;
    // Busy while RocksDB's own recovery (SstFileManager) is pending: it will get there by itself.
    return db->Resume().ok();
  }

  // Called with wal_mu held (either way) after a write-path failure.
  void RecordWriteFailure(const Status& st) {
    {
      std::lock_guard lock(error_mu);
      last_error = st;
    }
    if (st.IsNoSpace()) no_space_errors.fetch_add(1);
    if (!write_failed.exchange(true)) {
      spdlog::error("storage: writes to {} fail{}: {}", where, st.IsNoSpace() ? " until space is freed" : "",
                    st.ToString());
    }
  }

  void RecordWriteSuccess() {
    if (write_failed.exchange(false)) spdlog::info("storage: writes to {} succeed again", where);
  }

  // Called with wal_mu held exclusively. Ok when the WAL may be touched: no write failed since the last
  // success, or RocksDB has recovered since.
  Status WalUsable() {
    if (!write_failed.load()) return Status::Ok();
    if (TryResume()) {
      RecordWriteSuccess();
      return Status::Ok();
    }
    return Refused();
  }

  // The error for an operation refused while writes fail.
  Status Refused() {
    std::lock_guard lock(error_mu);
    return Status(last_error.code(), "refused while writes to " + where + " fail: " + last_error.message());
  }
};

class RocksStore::RocksSnapshot final : public Snapshot {
 public:
  RocksSnapshot(RocksStore::Impl* owner, const rocksdb::Snapshot* snap) : owner_(owner), snap_(snap) {
    owner_->live_objects.fetch_add(1);
  }
  ~RocksSnapshot() override {
    owner_->db->ReleaseSnapshot(snap_);
    owner_->live_objects.fetch_sub(1);
  }
  const RocksStore::Impl* owner() const { return owner_; }
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  RocksStore::Impl* const owner_;
  const rocksdb::Snapshot* const snap_;
};

class RocksStore::RocksIterator final : public Iterator {
 public:
  RocksIterator(RocksStore::Impl* owner, rocksdb::ColumnFamilyHandle* family, const rocksdb::Snapshot* snap,
                internal::Bounds bounds)
      : owner_(owner), bounds_(std::move(bounds)) {
    owner_->live_objects.fetch_add(1);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    if (bounds_.lower) {
      lower_ = *bounds_.lower;
      ro.iterate_lower_bound = &lower_;
    }
    if (bounds_.upper) {
      upper_ = *bounds_.upper;
      ro.iterate_upper_bound = &upper_;
    }
    it_.reset(owner_->db->NewIterator(ro, family));
  }
  ~RocksIterator() override {
    it_.reset();
    owner_->live_objects.fetch_sub(1);
  }

  bool Valid() const override { return it_->Valid(); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  void SeekToLast() override { it_->SeekToLast(); }
  void Seek(std::string_view target) override {
    if (!bounds_.AboveLower(target)) target = *bounds_.lower;
    it_->Seek(rocksdb::Slice(target.data(), target.size()));
  }
  void SeekForPrev(std::string_view target) override {
    if (!bounds_.BelowUpper(target)) return it_->SeekToLast();
    it_->SeekForPrev(rocksdb::Slice(target.data(), target.size()));
  }
  void Next() override {
    PARLEY_DCHECK(it_->Valid());
    it_->Next();
  }
  void Prev() override {
    PARLEY_DCHECK(it_->Valid());
    it_->Prev();
  }
  std::string_view key() const override {
    PARLEY_DCHECK(it_->Valid());
    const rocksdb::Slice k = it_->key();
    return {k.data(), k.size()};
  }
  std::string_view value() const override {
    PARLEY_DCHECK(it_->Valid());
    const rocksdb::Slice v = it_->value();
    return {v.data(), v.size()};
  }
  Status status() const override { return FromRocks(it_->status(), "iterator over " + owner_->where); }

 private:
  RocksStore::Impl* const owner_;
  const internal::Bounds bounds_;
  rocksdb::Slice lower_, upper_;  // point into bounds_, which outlives it_
  std::unique_ptr<rocksdb::Iterator> it_;
};

Result<std::unique_ptr<RocksStore>> RocksStore::Open(const std::string& dir, OpenOptions options) {
  if (Status s = internal::ValidateFamilyNames(options.families); !s.ok()) return s;
  const std::string where = "data dir '" + dir + "'";

  // 1. The dir itself.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    if (e != ENOENT) return FromErrno(e, where + " cannot be examined");
    if (!options.create_if_missing) return Status::NotFound(where + " does not exist");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return FromErrno(ec.value(), "cannot create " + where);
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(where + " is not a directory");
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return FromErrno(errno, where + " is not readable and writable by this process (uid " +
                                std::to_string(::geteuid()) + ")");
  }

  // 2. Not already open here; this also makes the lock probe below safe.
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(dir, ec).string();
  if (ec) return FromErrno(ec.value(), where + " cannot be resolved");
  DirClaim claim(canonical);
  if (!claim.held()) return Status::Busy(where + " is already open in this process");

  // 3. What the dir holds decides between creating, refusing and validating.
  DirContents contents;
  if (Status s = ListDir(dir, where, &contents); !s.ok()) return s;
  const Tuning tuning = MakeTuning(options);
  std::vector<std::string> existing;
  if (!contents.has_current) {
    if (contents.has_db_files) {
      return Status::Corruption(where + " holds database files but no CURRENT file, so it is corrupt" +
                                kRestoreAdvice);
    }
    if (!contents.unknown.empty()) {
      return Status::InvalidArgument(where + " is not empty (it has '" + contents.unknown +
                                     "') and holds no Parley store; use an empty or new dir");
    }
    if (!options.create_if_missing) return Status::NotFound(where + " holds no store (no CURRENT file)");
  } else {
    if (const pid_t holder = LockHolder(dir); holder != 0) {
      return Status::Busy(where + " is in use by another process (LOCK held by pid " +
                          std::to_string(holder) + ")");
    }
    if (Status s = ValidateReadOnly(dir, where, tuning, &existing); !s.ok()) return s;
  }

  // 4. The real open: every family that exists, plus the meta family and the caller's.
  std::vector<std::string> open_names = {std::string(kMetaFamilyName)};
  for (const std::string& n : existing) {
    if (n != kMetaFamilyName) open_names.push_back(n);
  }
  for (const std::string& n : options.families) {
    if (std::find(open_names.begin(), open_names.end(), n) == open_names.end()) open_names.push_back(n);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : open_names) descs.emplace_back(n, tuning.cf);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(tuning.db, dir, descs, &handles, &raw);
  if (!rs.ok()) return OpenError(rs, where);

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->where = where;
  impl->claim = std::move(claim);
  impl->names = options.families;
  impl->db.reset(raw);
  impl->all_handles = handles;
  impl->meta = handles[0];
  for (const std::string& n : options.families) {
    const size_t i = std::find(open_names.begin(), open_names.end(), n) - open_names.begin();
    impl->families.push_back(handles[i]);
  }
  std::unique_ptr<RocksStore> store(new RocksStore(std::move(impl)));

  // 5. A new store records its format version (synced) before anything else is written.
  uint32_t version;
  if (Status s = ReadFormatVersion(store->impl_->db.get(), store->impl_->meta, where, &version); !s.ok()) {
    return s;
  }
  if (version == 0) {
    std::string v;
    PutU32(&v, kFormatVersion);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rs = store->impl_->db->Put(wo, store->impl_->meta, kFormatVersionKey, v);
    if (!rs.ok()) return FromRocks(rs, "cannot record the format version in " + where);
  }
  spdlog::info("storage: opened {} ({} families, format {})", where, options.families.size(), kFormatVersion);
  return store;
}

RocksStore::RocksStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RocksStore::~RocksStore() {
  // A live snapshot or iterator would point into the closed database.
  PARLEY_CHECK(impl_->live_objects.load() == 0);
  {
    std::unique_lock wal(impl_->wal_mu);
    if (impl_->WalUsable().ok()) {
      if (rocksdb::Status s = impl_->db->FlushWAL(/*sync=*/true); !s.ok()) {
        spdlog::warn("storage: syncing the WAL of {} at close failed: {}", impl_->where, s.ToString());
      }
    }
  }
  for (auto* h : impl_->all_handles) impl_->db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  impl_->db->Close().PermitUncheckedError();
  impl_->db.reset();
}

uint32_t RocksStore::family_count() const {
  return static_cast<uint32_t>(impl_->names.size());
}

const std::string& RocksStore::family_name(FamilyId family) const {
  PARLEY_CHECK(family.index() < impl_->names.size());
  return impl_->names[family.index()];
}

const std::string& RocksStore::dir() const {
  return impl_->dir;
}
uint64_t RocksStore::no_space_errors() const {
  return impl_->no_space_errors.load();
}

Status RocksStore::Write(const WriteBatch& batch, Sync sync) {
  if (batch.FamilyLimit() > family_count()) {
    return Status::InvalidArgument("write batch uses unknown column family index " +
                                   std::to_string(batch.FamilyLimit() - 1));
  }
  rocksdb::WriteBatch wb(batch.ByteSize() + 32);
  WriteBatch::Reader reader(batch);
  WriteBatch::Op op;
  while (reader.Next(&op)) {
    rocksdb::ColumnFamilyHandle* h = impl_->families[op.family.index()];
    const rocksdb::Slice key(op.key.data(), op.key.size());
    const rocksdb::Slice value(op.value.data(), op.value.size());
    rocksdb::Status s;
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
        s = wb.Put(h, key, value);
        break;
      case WriteBatch::OpKind::kDelete:
        s = wb.Delete(h, key);
        break;
      case WriteBatch::OpKind::kDeleteRange:
        if (op.key < op.value)
          s = wb.DeleteRange(h, key, value);  // an empty range is a no-op, as in MemStore
        break;
    }
    if (!s.ok()) return FromRocks(s, "write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync == Sync::kSync;
  std::shared_lock wal(impl_->wal_mu);
  rocksdb::Status s = impl_->db->Write(wo, &wb);
  if (s.IsNoSpace() && impl_->TryResume()) s = impl_->db->Write(wo, &wb);
  if (s.ok()) {
    impl_->RecordWriteSuccess();
    return Status::Ok();
  }
  Status st = FromRocks(s, "write to " + impl_->where);
  impl_->RecordWriteFailure(st);
  return st;
}

Result<std::optional<std::string>> RocksStore::Get(FamilyId family, std::string_view key,
                                                   const Snapshot* snapshot) {
  if (family.index() >= family_count()) return Status::InvalidArgument("unknown column family index");
  rocksdb::ReadOptions ro;
  if (snapshot != nullptr) {
    auto* snap = dynamic_cast<const RocksSnapshot*>(snapshot);
    if (snap == nullptr || snap->owner() != impl_.get()) {
      return Status::InvalidArgument("snapshot belongs to another store");
    }
    ro.snapshot = snap->get();
  }
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(ro, impl_->families[family.index()], rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "read from " + impl_->where);
  return std::optional<std::string>(std::move(value));
}

std::unique_ptr<Iterator> RocksStore::NewIterator(FamilyId family, const IteratorOptions& options) {
  if (family.index() >= family_count()) {
    return std::make_unique<internal::ErrorIterator>(Status::InvalidArgument("unknown column family index"));
  }
  const rocksdb::Snapshot* snap = nullptr;
  if (options.snapshot != nullptr) {
    auto* s = dynamic_cast<const RocksSnapshot*>(options.snapshot);
    if (s == nullptr || s->owner() != impl_.get()) {
      return std::make_unique<internal::ErrorIterator>(
          Status::InvalidArgument("snapshot belongs to another store"));
    }
    snap = s->get();
  }
  internal::Bounds bounds = internal::ResolveBounds(options);
  if (bounds.Empty()) return std::make_unique<internal::ErrorIterator>(Status::Ok());
  return std::make_unique<RocksIterator>(impl_.get(), impl_->families[family.index()], snap,
                                         std::move(bounds));
}

std::unique_ptr<Snapshot> RocksStore::GetSnapshot() {
  return std::make_unique<RocksSnapshot>(impl_.get(), impl_->db->GetSnapshot());
}

Status RocksStore::Checkpoint(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0)
    return Status::InvalidArgument("checkpoint dir '" + dir + "' already exists");
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(impl_->db.get(), &raw);
  if (!s.ok()) return FromRocks(s, "checkpoint of " + impl_->where);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  // Flushes memtables and the WAL: see Impl::wal_mu. Writes wait meanwhile (hard links make it short).
  std::unique_lock wal(impl_->wal_mu);
  if (Status usable = impl_->WalUsable(); !usable.ok()) return usable;
  s = cp->CreateCheckpoint(dir);
  return FromRocks(s, "checkpoint of " + impl_->where + " to '" + dir + "'");
}

Status RocksStore::CompactRange(FamilyId family) {
  if (family.index() >= family_count()) return Status::InvalidArgument("unknown column family index");
  rocksdb::ColumnFamilyHandle* h = impl_->families[family.index()];
  {
    // Flush first with writes held off (see Impl::wal_mu), so that the compaction below finds little or
    // nothing to flush itself. It still flushes what writes arrive in between: a WAL write failing in that
    // window of milliseconds is the one case this guard does not cover.
    std::unique_lock wal(impl_->wal_mu);
    if (Status usable = impl_->WalUsable(); !usable.ok()) return usable;
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    if (rocksdb::Status s = impl_->db->Flush(fo, h); !s.ok()) return FromRocks(s, "flush of " + impl_->where);
  }
  std::shared_lock wal(impl_->wal_mu);
  if (impl_->write_failed.load()) return impl_->Refused();
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  return FromRocks(impl_->db->CompactRange(o, h, nullptr, nullptr), "compaction of " + impl_->where);
}

uint64_t RocksStore::ApproximateSize(FamilyId family) {
  if (family.index() >= family_count()) return 0;
  rocksdb::ColumnFamilyHandle* h = impl_->families[family.index()];
  uint64_t sst = 0, mem = 0;
  impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
  impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
  return sst + mem;
}

Status RocksStore::SyncWal() {
  std::unique_lock wal(impl_->wal_mu);
  if (Status usable = impl_->WalUsable(); !usable.ok()) return usable;
  Status st = FromRocks(impl_->db->SyncWAL(), "WAL sync of " + impl_->where);
  if (!st.ok()) impl_->RecordWriteFailure(st);
  return st;
}

}  // namespace parley::storage
