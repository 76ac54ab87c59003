// tus PATCH: a chunk of an upload streamed to <dir>/uploads/<file_id> at its offset, and the completion that
// turns a finished upload into a content blob.
//
// Durability: the record's offset only ever names synced bytes. A PATCH that ends (Finish) or loses its client
// (Abort) fdatasyncs the file, then records the new offset, so HEAD after a reconnection tells the client where
// to resume. A crash in between leaves bytes past the recorded offset: the next PATCH cuts them off.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "im/files_http.h"

namespace parley::im {

using broker::AdminRequest;
using broker::AdminResponse;
using broker::StreamStart;
using files_detail::FileExists;
using files_detail::MakeDir;
using files_detail::SyncDir;

namespace {

// A PATCH that has received nothing for this long may be taken over by a new request for the same upload: its
// client most likely lost its link, and the server has not noticed yet (that takes request_timeout).
constexpr auto kQuietTakeOver = std::chrono::seconds(2);
constexpr size_t kReadChunk = 1 << 16;

bool WriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, int* err) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      *err = w < 0 ? errno : EIO;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return true;
}

// Feeds bytes [from, to) of the file into `sha`.
bool HashRange(int fd, uint64_t from, uint64_t to, Sha256& sha) {
  std::vector<uint8_t> buf(kReadChunk);
  while (from < to) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - from));
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sha.Update(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    from += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

// One PATCH's body. Created by Http::Patch, which has marked the upload busy for it; every method runs on the
// HTTP thread. It releases the upload exactly once: when the body ends (Finish), the client goes (Abort), a
// new request takes the upload over (TakeOverLocked), or, failing all three, when it is destroyed.
class FileStore::UploadSink final : public broker::RequestBodySink {
 public:
  UploadSink(FileStore& fs, std::string id, Upload* u, int fd, uint64_t start, const st::FileRecord& rec,
             std::optional<std::string> chunk_digest)
      : fs_(fs),
        id_(std::move(id)),
        u_(u),
        fd_(fd),
        start_(start),
        size_(rec.size()),
        declared_sha_(rec.sha256()),
        expires_ts_(rec.expires_ts()),
        chunk_digest_(std::move(chunk_digest)),
        last_(fs.clock_.Now()) {
    at_start_.CopyFrom(u_->sha);
  }
  ~UploadSink() override {
    if (!settled_) Settle(/*finished=*/false, /*locked=*/false);
  }

  bool Write(std::span<const uint8_t> bytes) override {
    if (settled_ || fail_ != 0) return false;
    last_ = fs_.clock_.Now();
    if (bytes.size() > size_ - start_ - written_) {
      fail_ = 413;
      return false;
    }
    if (!WriteAll(fd_, bytes.data(), bytes.size(), start_ + written_, &errno_)) {
      fail_ = 500;
      return false;
    }
    u_->sha.Update(bytes);
    u_->hashed += bytes.size();
    if (chunk_digest_) chunk_sha_.Update(bytes);
    written_ += bytes.size();
    return true;
  }

  AdminResponse Finish() override {
    if (settled_)
      return FileStore::Http::Fail(409, "conflict", "this PATCH was superseded by a newer request for the upload");
    return Settle(/*finished=*/true, /*locked=*/false);
  }

  void Abort() override {
    if (!settled_) Settle(/*finished=*/false, /*locked=*/false);
  }

  bool Quiet(SteadyTime now) const { return now - last_ >= kQuietTakeOver; }

  // A new request takes the upload over: what arrived is kept as on Abort. Caller holds fs_.mu_.
  void TakeOverLocked() {
    if (!settled_) Settle(/*finished=*/false, /*locked=*/true);
  }

 private:
  // Ends this PATCH: keeps the bytes received (synced first) or drops them (the file is cut back to start_),
  // records the offset, completes the upload when every byte is in, and releases it. The response is for
  // Finish; the other callers drop it.
  AdminResponse Settle(bool finished, bool locked) {
    settled_ = true;
    int status = fail_;  // 0: keep
    std::string code, message;
    if (status == 413) {
      code = "too_large";
      message = "the body goes past the upload's length";
    } else if (status == 0 && chunk_digest_ && (!finished || chunk_sha_.Digest() != *chunk_digest_)) {
      status = 460;  // a checksummed chunk counts whole or not at all
      code = "checksum_mismatch";
      message = "Checksum Mismatch: the chunk does not hash to its Upload-Checksum";
    } else if (status == 0 && written_ > 0 && ::fdatasync(fd_) != 0) {
      status = 500;
      errno_ = errno;
    }
    uint64_t offset = start_ + written_;
    if (status != 0) {
      if (::ftruncate(fd_, static_cast<off_t>(start_)) != 0)
        spdlog::warn("files: cannot cut {} back to {}: {}", id_, start_, std::strerror(errno));
      u_->sha.CopyFrom(at_start_);
      u_->hashed = start_;
      offset = start_;
    }

    std::string sha;
    if (status == 0 && offset == size_) {
      sha = HexEncode(u_->sha.Digest());
      if (!declared_sha_.empty() && sha != declared_sha_) {
        // The whole file is not what the slot announced: start again from zero.
        if (::ftruncate(fd_, 0) != 0 || ::fdatasync(fd_) != 0)
          spdlog::warn("files: cannot empty {}: {}", id_, std::strerror(errno));
        u_->sha.Reset();
        u_->hashed = 0;
        offset = 0;
        sha.clear();
        status = 460;
        code = "checksum_mismatch";
        message = "Checksum Mismatch: the upload does not hash to the slot's sha256; it starts again at offset 0";
        fs_.stats_->uploads[Stats::kChecksumMismatch].fetch_add(1);
      }
    }
    ::close(fd_);
    fd_ = -1;

    std::unique_lock lock(fs_.mu_, std::defer_lock);
    if (!locked) lock.lock();
    st::FileRecord rec;
    storage::Status err;
    bool completed = false;
    if (!fs_.ReadRecord(id_, &rec, &err)) {
      // Nothing removes a busy upload; only a storage error gets here.
      if (status == 0 || status == 460) status = err.ok() ? 404 : 500;
    } else {
      if (rec.offset() != offset) {
        rec.set_offset(offset);
        storage::WriteBatch b;
        b.Put(fs_.fam_(Fam::kFiles), FileKey(id_), rec.SerializeAsString());
        err = fs_.WriteSync(b);
      }
      if (!err.ok()) {
        status = 500;  // the bytes are on disk, the offset is not: the client resumes from the old one
      } else if (!sha.empty()) {
        err = fs_.CompleteLocked(id_, rec, sha);
        completed = err.ok();
        if (!err.ok()) status = 500;  // still UPLOADING at offset == size: an empty PATCH completes it
      }
    }
    if (!err.ok()) spdlog::warn("files: upload {}: {}", id_, err.ToString());
    u_->busy = false;
    u_->sink = nullptr;
    if (completed) fs_.uploads_.erase(id_);  // u_ dangles from here on
    u_ = nullptr;

    AdminResponse r;
    if (status == 0) {
      r.status = 204;
      r.content_type.clear();
    } else if (status == 500 && errno_ != 0) {
      r = FileStore::Http::DiskError(errno_);
    } else if (status == 500 || status == 404) {
      r = FileStore::Http::Fail(status, status == 404 ? "not_found" : "internal",
                                status == 404 ? "unknown upload" : "cannot record the upload: " + err.ToString());
    } else {
      r = FileStore::Http::Fail(status, code, message);
    }
    r.headers.emplace_back("Upload-Offset", std::to_string(offset));
    if (!completed) r.headers.emplace_back("Upload-Expires", files_detail::HttpDate(expires_ts_));
    return FileStore::Http::Decorate(std::move(r));
  }

  FileStore& fs_;
  const std::string id_;
  Upload* u_;  // owned by fs_.uploads_; ours while it is busy for us
  int fd_;
  const uint64_t start_;
  const uint64_t size_;
  const std::string declared_sha_;
  const int64_t expires_ts_;
  const std::optional<std::string> chunk_digest_;  // Upload-Checksum (raw sha256), if sent
  Sha256 chunk_sha_;
  Sha256 at_start_;  // u_->sha as it was at start_, to roll back to
  uint64_t written_ = 0;
  int fail_ = 0;  // 413 or 500 once Write refused
  int errno_ = 0;
  SteadyTime last_;
  bool settled_ = false;
};

storage::Status FileStore::CompleteLocked(const std::string& file_id, st::FileRecord rec, const std::string& sha) {
  const std::string sub = options_.dir + "/blobs/" + sha.substr(0, 2);
  if (Status s = MakeDir(sub); !s.ok()) return storage::Status::Io(s.message());
  const int64_t now = NowMs();
  const int64_t expiry_row = rec.expires_ts();
  rec.set_state(st::FileRecord::COMPLETE);
  rec.set_sha256(sha);
  rec.set_offset(rec.size());
  rec.set_completed_ts(now);
  rec.set_reserved(true);
  storage::WriteBatch b;
  b.Put(fam_(Fam::kFiles), FileKey(file_id), rec.SerializeAsString());
  b.Put(fam_(Fam::kFileBlobs), FileBlobKey(sha, file_id), "");
  b.Delete(fam_(Fam::kFileGc), FileGcKey(expiry_row, file_id));
  b.Put(fam_(Fam::kFileGc), FileGcKey(now + static_cast<int64_t>(options_.gc_grace.count()) * 1000, file_id), "");
  if (storage::Status s = WriteSync(b); !s.ok()) return s;

  // The record is durable first: a crash from here on leaves a COMPLETE record whose bytes are still in
  // uploads/, which Open moves. Blob creation and deletion (GC) both hold mu_, so the check below holds.
  const std::string upload = UploadPath(file_id);
  const std::string blob = BlobPath(sha);
  const bool dedup = FileExists(blob);
  if (dedup) {
    ::unlink(upload.c_str());
  } else if (::rename(upload.c_str(), blob.c_str()) != 0) {
    spdlog::error("files: cannot move {} to {}: {} (retried at the next start)", upload, blob, std::strerror(errno));
  }
  SyncDir(sub);
  SyncDir(options_.dir + "/uploads");
  UploadClosedLocked(rec.uploader());
  stats_->uploading.fetch_sub(1);
  stats_->complete_files.fetch_add(1);
  stats_->complete_bytes.fetch_add(static_cast<int64_t>(rec.size()));
  if (!dedup) {
    stats_->blobs.fetch_add(1);
    stats_->blob_bytes.fetch_add(static_cast<int64_t>(rec.size()));
  }
  stats_->uploads[dedup ? Stats::kDeduplicated : Stats::kCompleted].fetch_add(1);
  return storage::Status::Ok();
}

bool FileStore::Http::TakeOverLocked(const std::string& id) {
  auto it = fs_.uploads_.find(id);
  if (it == fs_.uploads_.end() || !it->second->busy) return true;
  UploadSink* sink = it->second->sink;
  if (!sink || !sink->Quiet(fs_.clock_.Now())) return false;
  spdlog::debug("files: upload {}: a new request takes over from a quiet PATCH", id);
  sink->TakeOverLocked();
  return true;
}

StreamStart FileStore::Http::Patch(const AdminRequest& r) {
  using files_detail::ParseUint;
  StreamStart out;
  auto refuse = [&out](AdminResponse resp) {
    out.response = Decorate(std::move(resp));
    return std::move(out);
  };
  const auto version = r.Header("Tus-Resumable");
  if (!version || *version != "1.0.0") {
    return refuse(Fail(412, "precondition_failed", "Tus-Resumable: 1.0.0 is required"));  // Fail adds Tus-Version
  }
  const std::string id(r.Param("id"));
  if (!ValidFileId(id)) return refuse(Fail(404, "not_found", "unknown upload"));
  FileToken token;
  AdminResponse refusal;
  if (!AuthUpload(r, id, &token, &refusal)) return refuse(std::move(refusal));

  std::string type;
  const auto ct = r.Header("Content-Type");
  if (!ct || !files_detail::NormalizeContentType(*ct, &type) ||
      files_detail::BareType(type) != "application/offset+octet-stream")
    return refuse(Fail(415, "unsupported_media_type", "Content-Type must be application/offset+octet-stream"));
  uint64_t offset = 0;
  const auto offset_h = r.Header("Upload-Offset");
  if (!offset_h || !ParseUint(*offset_h, &offset))
    return refuse(Fail(400, "bad_request", "Upload-Offset must be a non-negative integer"));
  std::optional<std::string> chunk_digest;
  if (const auto ck = r.Header("Upload-Checksum")) {
    const size_t sp = ck->find(' ');
    std::string raw;
    if (sp == std::string_view::npos || ck->substr(0, sp) != "sha256")
      return refuse(Fail(400, "bad_request", "Upload-Checksum: only sha256 is supported"));
    if (!Base64Decode(ck->substr(sp + 1), &raw) || raw.size() != 32)
      return refuse(Fail(400, "bad_request", "Upload-Checksum: not a base64 sha256 digest"));
    chunk_digest = std::move(raw);
  }
  std::optional<uint64_t> length;
  if (const auto cl = r.Header("Content-Length"); cl) {
    uint64_t v = 0;
    if (ParseUint(*cl, &v)) length = v;
  }

  Upload* u = nullptr;
  st::FileRecord rec;
  {
    std::lock_guard lock(fs_.mu_);
    if (!TakeOverLocked(id)) return refuse(Fail(409, "conflict", "another PATCH of this upload is in progress"));
    if (!UploadRecordLocked(id, token, /*need_created=*/true, &rec, &refusal)) return refuse(std::move(refusal));
    const uint64_t current = rec.state() == st::FileRecord::COMPLETE ? rec.size() : rec.offset();
    if (offset != current) {
      AdminResponse resp = Fail(409, "conflict", "Upload-Offset is not the upload's offset " + std::to_string(current));
      resp.headers.emplace_back("Upload-Offset", std::to_string(current));
      return refuse(std::move(resp));
    }
    if ((length && *length > rec.size() - offset) ||
        (rec.state() == st::FileRecord::COMPLETE && length.value_or(1) > 0))
      return refuse(Fail(413, "too_large", "the body goes past the upload's length " + std::to_string(rec.size())));
    if (rec.state() == st::FileRecord::COMPLETE) {  // every byte is in already: an empty PATCH is a no-op
      AdminResponse resp;
      resp.status = 204;
      resp.content_type.clear();
      resp.headers.emplace_back("Upload-Offset", std::to_string(offset));
      return refuse(std::move(resp));
    }
    std::unique_ptr<Upload>& slot = fs_.uploads_[id];
    if (!slot) slot = std::make_unique<Upload>();
    u = slot.get();
    u->busy = true;
  }
  // The upload is ours until the sink settles it; every way out before that releases it.
  auto release = [&](AdminResponse resp) {
    std::lock_guard lock(fs_.mu_);
    u->busy = false;
    return refuse(std::move(resp));
  };

  const std::string path = fs_.UploadPath(id);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return release(Http::DiskError(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return release(Http::DiskError(e));
  }
  const auto on_disk = static_cast<uint64_t>(st.st_size);
  if (on_disk > offset && ::ftruncate(fd, static_cast<off_t>(offset)) != 0) {  // unsynced bytes of a crash
    const int e = errno;
    ::close(fd);
    return release(Http::DiskError(e));
  }
  if (on_disk < offset) {
    // Bytes the record promises are gone (the file was lost): resume from what is there.
    ::close(fd);
    std::lock_guard lock(fs_.mu_);
    u->busy = false;
    u->sha.Reset();
    u->hashed = 0;
    rec.set_offset(on_disk);
    storage::WriteBatch b;
    b.Put(fs_.fam_(Fam::kFiles), FileKey(id), rec.SerializeAsString());
    if (storage::Status s = fs_.WriteSync(b); !s.ok()) return refuse(Fail(500, "internal", s.ToString()));
    spdlog::warn("files: upload {} had {} bytes on disk, {} recorded: resuming from {}", id, on_disk, offset, on_disk);
    AdminResponse resp = Fail(409, "conflict", "the upload continues from offset " + std::to_string(on_disk));
    resp.headers.emplace_back("Upload-Offset", std::to_string(on_disk));
    return refuse(std::move(resp));
  }
  if (u->hashed != offset) {  // after a restart (or a dropped chunk): hash what is on disk
    if (u->hashed > offset) {
      u->sha.Reset();
      u->hashed = 0;
    }
    if (!HashRange(fd, u->hashed, offset, u->sha)) {
      ::close(fd);
      u->sha.Reset();
      u->hashed = 0;
      return release(Fail(500, "internal", "cannot read the partial upload"));
    }
    u->hashed = offset;
  }

  auto sink = std::make_unique<UploadSink>(fs_, id, u, fd, offset, rec, std::move(chunk_digest));
  {
    std::lock_guard lock(fs_.mu_);
    u->sink = sink.get();
  }
  out.sink = std::move(sink);
  return out;
}

}  // namespace parley::im
