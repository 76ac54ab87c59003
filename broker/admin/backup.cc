#include "broker/admin/backup.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "broker/core/version.h"

namespace parley::admin {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what) { return Status::Error(what + ": " + std::strerror(errno)); }

Status FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync " + path);
  return Status::Ok();
}

}  // namespace

Status CheckBackupTarget(const std::string& dir) {
  const fs::path p(dir);
  if (dir.empty() || !p.is_absolute()) return Status::Error("the backup dir must be an absolute path");
  std::error_code ec;
  if (fs::exists(p, ec)) return Status::Error(dir + " already exists: choose a new directory");
  const fs::path parent = p.parent_path();
  if (!fs::is_directory(parent, ec)) return Status::Error("the parent directory " + parent.string() + " does not exist");
  return Status::Ok();
}

Result<std::string> Sha256File(const std::string& path, JobProgress* progress) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    ::close(fd);
    return Status::Error("SHA-256 is not available");
  }
  std::unique_ptr<char[]> buf(new char[1 << 20]);
  for (;;) {
    const ssize_t n = ::read(fd, buf.get(), 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const Status st = Errno("cannot read " + path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.get(), static_cast<size_t>(n));
    if (progress) progress->Add(static_cast<uint64_t>(n));
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

Status RunBackup(storage::Store& store, const std::string& dir, JobProgress& progress) {
  std::error_code ec;
  auto fail = [&](Status st) {
    fs::remove_all(dir, ec);  // never leave a backup that looks usable but is not
    return st;
  };
  progress.Phase("checkpoint", 1);
  if (auto st = store.Checkpoint(dir); !st.ok()) return fail(Status::Error("checkpoint failed: " + st.ToString()));
  progress.Add(1);

  struct File {
    std::string name;
    uint64_t bytes;
  };
  std::vector<File> files;
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    const uint64_t size = e.file_size();
    files.push_back({fs::relative(e.path(), dir).string(), size});
    total += size;
  }
  if (ec) return fail(Status::Error("cannot list " + dir + ": " + ec.message()));
  std::sort(files.begin(), files.end(), [](const File& a, const File& b) { return a.name < b.name; });

  progress.Phase("checksums", total);
  nlohmann::json manifest;
  manifest["format"] = 1;
  manifest["created_at_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  manifest["version"] = broker::kParleyVersion;
  manifest["files"] = nlohmann::json::array();
  for (const File& f : files) {
    const std::string path = dir + "/" + f.name;
    auto sum = Sha256File(path, &progress);
    if (!sum.ok()) return fail(sum.status());
    if (auto st = FsyncPath(path, false); !st.ok()) return fail(st);
    manifest["files"].push_back({{"name", f.name}, {"bytes", f.bytes}, {"sha256", sum.value()}});
  }
  if (auto st = ReplaceFileAtomically(dir + "/" + kBackupManifest, manifest.dump(2) + "\n", 0644); !st.ok())
    return fail(st);
  progress.SetResult({{"dir", dir}, {"files", files.size()}, {"bytes", total}});
  return Status::Ok();
}

Status RunCompaction(storage::Store& store, JobProgress& progress) {
  const uint32_t n = store.family_count();
  progress.Phase("compacting", n);
  uint64_t before = 0, after = 0;
  for (uint32_t f = 0; f < n; ++f) before += store.ApproximateSize(storage::FamilyId(f));
  for (uint32_t f = 0; f < n; ++f) {
    if (auto st = store.CompactRange(storage::FamilyId(f)); !st.ok())
      return Status::Error("compaction of " + store.family_name(storage::FamilyId(f)) + " failed: " + st.ToString());
    progress.Add(1);
  }
  for (uint32_t f = 0; f < n; ++f) after += store.ApproximateSize(storage::FamilyId(f));
  progress.SetResult({{"families", n}, {"bytes_before", before}, {"bytes_after", after}});
  return Status::Ok();
}

}  // namespace parley::admin
