#include "tools/ctl/restore.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc >= 2.28)
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "tools/ctl/api.h"
#include "tools/ctl/json_util.h"

namespace parley::ctl {
namespace fs = std::filesystem;
namespace {

constexpr size_t kChunk = 1 << 20;

[[noreturn]] void Fail(const std::string& message) {
  throw CtlError(kExitFailed, message);
}
[[noreturn]] void FailErrno(const std::string& what) {
  Fail(what + ": " + std::strerror(errno));
}

// Closes a descriptor at scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

bool ValidName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos && n != kManifestName;
}

bool ValidSha(std::string& h) {
  if (h.size() != 64) return false;
  for (char& c : h) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) FailErrno("cannot write " + path);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void FsyncPath(const std::string& path, bool dir) {
  Fd fd(::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC));
  if (fd.get() < 0) FailErrno("cannot open " + path);
  if (::fsync(fd.get()) != 0) FailErrno("cannot fsync " + path);
}

// Removes the temporary dir unless disarmed.
class TempDir {
 public:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

// Takes RocksDB's lock on DATA_DIR/LOCK (fcntl, and flock for other lockers) for the restore's duration.
// Throws CtlError (exit 6) if a broker holds it. `held` keeps the descriptor (and so the lock) open.
void LockDataDir(const std::string& data_dir, Fd* held) {
  const std::string lock = data_dir + "/LOCK";
  Fd fd(::open(lock.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return;  // no broker ever ran there (or the dir is not a data dir)
    FailErrno("cannot open " + lock);
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool posix_ok = ::fcntl(fd.get(), F_SETLK, &fl) == 0;
  const bool flock_ok = posix_ok && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
  if (!posix_ok || !flock_ok) {
    const auto holder = LockHolder(data_dir);
    throw CtlError(kExitConflict,
                   "data dir '" + data_dir + "' is in use by a running broker" +
                       (holder && *holder > 0 ? " (LOCK held by pid " + std::to_string(*holder) + ")"
                                              : std::string(" (LOCK is held)")) +
                       "; stop it first");
  }
  held->Reset(fd.Release());  // kept open: closing any descriptor of the file drops the POSIX lock
}

// Copies src to dst (created, must not exist), checking the source against the expected size first.
void CopyFile(const std::string& src, const std::string& dst, const ManifestFile& f,
              const std::function<void(uint64_t)>& on_bytes) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    if (errno == ENOENT) Fail("backup file " + f.name + " is missing (listed in " + kManifestName + ")");
    FailErrno("cannot open backup file " + src);
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) FailErrno("cannot stat " + src);
  if (!S_ISREG(st.st_mode)) Fail("backup file " + f.name + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) != f.bytes) {
    Fail("backup file " + f.name + " has " + std::to_string(st.st_size) + " bytes, the manifest says " +
         std::to_string(f.bytes));
  }
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.get() < 0) FailErrno("cannot create " + dst);
  std::unique_ptr<char[]> buf(new char[kChunk]);
  while (true) {
    const ssize_t n = ::read(in.get(), buf.get(), kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno("cannot read " + src);
    if (n == 0) break;
    WriteAll(out.get(), buf.get(), static_cast<size_t>(n), dst);
    if (on_bytes) on_bytes(static_cast<uint64_t>(n));
  }
  if (::fsync(out.get()) != 0) FailErrno("cannot fsync " + dst);
}

bool DirIsEmpty(const std::string& dir) {
  std::error_code ec;
  return fs::directory_iterator(dir, ec) == fs::directory_iterator();
}

}  // namespace

Manifest ReadManifest(const std::string& backup_dir) {
  const std::string path = backup_dir + "/" + kManifestName;
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path + ": " + std::strerror(errno) + " (is it a backup dir?)");
  std::stringstream ss;
  ss << in.rdbuf();
  const Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) Fail(path + " is not a JSON object");
  Manifest m;
  const auto format = Int(j, {"format"});
  if (!format) Fail(path + ": no \"format\"");
  if (*format != 1)
    Fail(path + ": format " + std::to_string(*format) + " is not supported (this parleyctl reads 1)");
  m.format = 1;
  m.created_at_ms = Int(j, {"created_at_ms"}).value_or(0);
  m.version = Text(j, {"version"});
  const Json& files = Array(j, "files");
  if (files.empty()) Fail(path + ": no \"files\"");
  std::set<std::string> seen;
  for (const Json& f : files) {
    ManifestFile mf;
    mf.name = Text(f, {"name"});
    if (!ValidName(mf.name)) Fail(path + ": bad file name '" + mf.name + "'");
    if (!seen.insert(mf.name).second) Fail(path + ": " + mf.name + " is listed twice");
    const auto bytes = Int(f, {"bytes"});
    if (!bytes || *bytes < 0) Fail(path + ": " + mf.name + " has no valid \"bytes\"");
    mf.bytes = static_cast<uint64_t>(*bytes);
    mf.sha256 = Text(f, {"sha256"});
    if (!ValidSha(mf.sha256)) Fail(path + ": " + mf.name + " has no valid \"sha256\" (64 hex digits)");
    m.total_bytes += mf.bytes;
    m.files.push_back(std::move(mf));
  }
  return m;
}

std::optional<pid_t> LockHolder(const std::string& data_dir) {
  Fd fd(::open((data_dir + "/LOCK").c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd.get(), F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) return fl.l_pid;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) return -1;
  ::flock(fd.get(), LOCK_UN);
  return std::nullopt;
}

std::string Sha256File(const std::string& path, const std::function<void(uint64_t)>& on_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) FailErrno("cannot open " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) Fail("OpenSSL: cannot start SHA-256");
  std::unique_ptr<char[]> buf(new char[kChunk]);
  while (true) {
    const ssize_t n = ::read(fd.get(), buf.get(), kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno("cannot read " + path);
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.get(), static_cast<size_t>(n));
    if (on_bytes) on_bytes(static_cast<uint64_t>(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) Fail("OpenSSL: cannot finish SHA-256");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += kHex[md[i] >> 4], hex += kHex[md[i] & 15];
  return hex;
}

RestoreResult Restore(const RestoreOptions& o, const RestoreProgress& progress) {
  RestoreResult result;
  result.data_dir = o.data_dir;
  result.manifest = ReadManifest(o.backup_dir);
  const Manifest& m = result.manifest;

  // The target: absent, or a dir that no broker holds and that is empty unless --force.
  // Symbolic links are followed (a data dir linked to another disk is restored where it really is).
  std::error_code ec;
  fs::path target = fs::weakly_canonical(fs::absolute(o.data_dir), ec);
  if (ec) Fail("cannot resolve '" + o.data_dir + "': " + ec.message());
  if (!target.has_filename()) target = target.parent_path();  // "dir/" -> "dir"
  const std::string target_s = target.string();
  const auto st = fs::status(target, ec);
  const bool exists = !ec && fs::exists(st);
  Fd lock;
  if (exists) {
    if (!fs::is_directory(st)) Fail("'" + o.data_dir + "' exists and is not a directory");
    LockDataDir(target_s, &lock);
    if (!o.force && !DirIsEmpty(target_s)) {
      throw CtlError(kExitConflict,
                     "data dir '" + o.data_dir + "' is not empty; --force replaces its contents");
    }
  }
  const fs::path parent = target.parent_path();
  fs::create_directories(parent, ec);
  if (ec) Fail("cannot create " + parent.string() + ": " + ec.message());
  if (fs::equivalent(fs::absolute(o.backup_dir), target, ec))
    Fail("the backup dir and the data dir are the same");

  // Copy into a temporary dir beside the target (same file system, so the final rename is atomic).
  TempDir tmp(
      (parent / ("." + target.filename().string() + ".restore-" + std::to_string(::getpid()))).string());
  fs::remove_all(tmp.path(), ec);
  if (::mkdir(tmp.path().c_str(), 0700) != 0) FailErrno("cannot create " + tmp.path());

  uint64_t done = 0;
  for (const ManifestFile& f : m.files) {
    CopyFile(o.backup_dir + "/" + f.name, tmp.path() + "/" + f.name, f, [&](uint64_t n) {
      done += n;
      if (progress) progress("copying", done, m.total_bytes);
    });
  }
  // Read every copy back: what is checked is what will be used.
  done = 0;
  for (const ManifestFile& f : m.files) {
    const std::string copy = tmp.path() + "/" + f.name;
    struct stat cst {};
    if (::stat(copy.c_str(), &cst) != 0) FailErrno("cannot stat " + copy);
    if (static_cast<uint64_t>(cst.st_size) != f.bytes) {
      Fail("the copy of " + f.name + " has " + std::to_string(cst.st_size) + " bytes, the manifest says " +
           std::to_string(f.bytes));
    }
    const std::string sha = Sha256File(copy, [&](uint64_t n) {
      done += n;
      if (progress) progress("verifying", done, m.total_bytes);
    });
    if (sha != f.sha256) {
      Fail("backup file " + f.name + " is damaged: its SHA-256 is " + sha + ", the manifest says " +
           f.sha256);
    }
  }
  FsyncPath(tmp.path(), true);

  // Into place: exchanged atomically with an existing dir (whose old contents are then removed), or renamed.
  if (exists) {
    if (::renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, target_s.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS) FailErrno("cannot move the restored files into " + target_s);
      // No RENAME_EXCHANGE on this file system: move the old dir aside, the new one in, then drop the old.
      const std::string aside = tmp.path() + ".old";
      if (::rename(target_s.c_str(), aside.c_str()) != 0) FailErrno("cannot move " + target_s + " aside");
      if (::rename(tmp.path().c_str(), target_s.c_str()) != 0) {
        const int err = errno;
        ::rename(aside.c_str(), target_s.c_str());
        errno = err;
        FailErrno("cannot move the restored files into " + target_s);
      }
      fs::remove_all(aside, ec);
    }
    // tmp now holds the old contents: the TempDir guard removes them.
  } else {
    if (::rename(tmp.path().c_str(), target_s.c_str()) != 0)
      FailErrno("cannot move the restored files into " + target_s);
    tmp.Release();
  }
  FsyncPath(parent.string(), true);
  return result;
}

}  // namespace parley::ctl
