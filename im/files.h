// FileStore: the files that messages share (docs/protocol.md, "Files"; IM.md, "Files and push").
//
// A client asks for an upload slot over the IM protocol (CreateSlot), uploads the bytes over HTTP with tus 1.0
// resumable uploads (files_http.h), then sends a message whose attachment names the file id. Downloads are
// authorised by a short-lived access token (Access) and by membership: the uploader, and the members of a
// conversation that holds a message referencing the file (kFileRefs rows at or after their join point).
//
// Storage: content-addressed. A complete file's bytes are the blob <dir>/blobs/<sha[0:2]>/<sha256>, one copy per
// content however many files (uploads) have it; an upload in progress is <dir>/uploads/<file_id>. Metadata is
// in the store's im.files* families (im/keys.h, docs/storage-format.md): the FileRecord, the files of each
// blob, the references, the GC schedule and each user's quota usage. Records are written synchronously.
//
// Garbage collection (CollectGarbage, every gc_interval on a thread of its own) looks at the kFileGc rows that
// are due: an upload not finished by its expiry is dropped; a complete file with no reference and no pin is
// deleted (the blob with it when no other file shares it). Rows come from CreateSlot (the expiry), the
// completion of an upload (completed + gc_grace: a file never shared goes) and ScheduleCheck (the writer
// dropped a reference).
//
// The writer's part (safety of GC): PinAttachments before a send, FileRefKey rows in the send's batch, Unpin
// once the batch is committed (or failed); FileRefKey rows deleted with ScheduleCheck in the batch that
// recalls or expires the message. GC runs under the FileStore's lock, skips pinned files and reads committed ref
// rows only, so a file being shared is never deleted.
//
// Threads: every public method is safe on any thread (the writer strand, the reader, the files HTTP thread, the
// GC thread). One mutex (mu_) guards the records' read-modify-write, the in-memory upload state and blob
// creation / deletion; upload bytes are written, synced and hashed outside it. Pins have a lock of their own
// (pins_mu_), so the writer strand never waits behind the disk syncs done under mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "broker/api/admin.h"
#include "im.pb.h"
#include "im/keys.h"
#include "storage/store.h"
#include "store.pb.h"

namespace parley::im {

namespace st = parley::im::store;

// The [files] configuration (docs/configuration.md).
struct FilesOptions {
  bool enabled = false;
  std::string dir;                        // <data_dir>/files: uploads/, blobs/xx/<sha256>, secret
  uint64_t max_file_size = 100ull << 20;
  uint64_t user_quota = 1ull << 30;       // bytes per user (complete files + created uploads at their declared
                                          // size); 0 = no quota
  std::vector<std::string> allowed_types; // "image/*", "application/pdf", "*/*"; empty = any
  std::chrono::seconds upload_expiry{24 * 3600};  // a slot / unfinished upload is dropped (bytes and quota
                                                  // freed) this long after the slot was issued
  std::chrono::seconds gc_grace{24 * 3600};       // a complete file no message references is deleted after this
  std::chrono::seconds gc_interval{600};
  std::chrono::seconds token_ttl{3600};           // download tokens (FileAccess)
  std::string public_url;  // prefix of the URLs handed to clients, e.g. "https://chat.example.com:8443";
                           // "" = relative URLs ("/files/v1/...")
};

struct FileError {
  v1::ErrorCode code = v1::OK;
  std::string message;
  uint32_t retry_after_ms = 0;  // ERR_RATE_LIMITED, ERR_UNAVAILABLE
  bool ok() const { return code == v1::OK; }
};

class FileStore {
 public:
  // Unfinished uploads one user may hold; one more slot is refused with ERR_RATE_LIMITED.
  static constexpr uint32_t kMaxOpenUploads = 100;

  // `store` and `clock` must outlive this. Nothing touches the disk before Open().
  FileStore(FilesOptions options, storage::Store* store, Families fam, const Clock& clock);
  ~FileStore();  // Stop()
  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;

  // Creates the directories and the HMAC secret (<dir>/secret: 32 random bytes, mode 0600, made once), removes
  // stray files from uploads/ and finishes the move of uploads completed just before a crash. Once, before
  // anything else; any thread.
  Status Open();
  // The GC thread: a pass every gc_interval. Stop joins it; idempotent. Any thread but the GC's own.
  void Start();
  void Stop();

  // ---- IM requests (the reader thread, or any) ----
  // Checks the name (1..255 bytes of UTF-8, no control characters), the size (1..max_file_size, else
  // ERR_TOO_LARGE), the content type (syntax: ERR_BAD_REQUEST; allowed_types: ERR_UNSUPPORTED), the sha256
  // (empty or 64 hex digits) and that the file fits the user's quota now (ERR_QUOTA_EXCEEDED); writes the
  // FileRecord (UPLOADING, offset 0) and a GC row due at its expiry; fills `out`.
  FileError CreateSlot(const std::string& user, const v1::CreateUploadReq& req, v1::UploadSlot* out);
  // A download token for `user`, valid token_ttl.
  v1::FileAccess Access(const std::string& user);

  // ---- The writer strand ----
  // Before a send: every attachment whose file_id has this server's form (ValidFileId) must name a COMPLETE
  // file `user` may share (they uploaded it, or they may download it); its size, content_type, sha256 and url
  // are overwritten from the record (name too, if empty). Those files are pinned (GC leaves them alone) until
  // Unpin; their ids are appended to *pinned. On an error nothing stays pinned and *pinned is as it was.
  // Attachments with another file_id, or none, are references to storage of the app's own: left alone.
  // Errors: ERR_NOT_FOUND (unknown, incomplete or not yours to share).
  FileError PinAttachments(const std::string& user, google::protobuf::RepeatedPtrField<v1::Attachment>* attachments,
                           std::vector<std::string>* pinned);
  void Unpin(const std::vector<std::string>& file_ids);
  // The writer removed a reference to `file_id` (a recall, retention) in batch `b`: adds a GC row due at
  // now + gc_grace to `b`.
  void ScheduleCheck(const std::string& file_id, storage::WriteBatch& b);

  // Registers the tus upload and the download endpoints (files_http.h) under /files/v1/ on the files listener
  // (no bearer_token of its own: the handlers check their tokens). Before the server starts; the server must be
  // stopped (its sinks aborted) before this store is destroyed.
  void AddRoutes(broker::AdminRouter& router);

  // One GC pass now (tests, and the GC thread): returns how many files and uploads it deleted. Any thread.
  size_t CollectGarbage();
  // parley_files{state} (complete, uploading), parley_files_bytes{kind} (logical, stored), parley_files_blobs,
  // parley_files_uploads_total{outcome}, parley_files_downloads_total{status},
  // parley_files_gc_deleted_total{kind} (file, upload, blob). Any thread.
  void CollectMetrics(std::vector<metrics::Family>& out) const;
  const FilesOptions& options() const { return options_; }

  // "f_" + 32 lower-case hex digits: the only ids the store hands out (and so the only ones it accepts).
  static bool ValidFileId(std::string_view id);

 private:
  class Http;        // the HTTP handlers (files_http.h, files_http.cc, files_upload.cc)
  class UploadSink;  // one PATCH's body (files_upload.cc)
  struct Upload;     // an upload's in-memory state (files_http.h)
  struct Stats;

  // Checks one attachment, fills it from the record and pins its file. Takes pins_mu_ only, never mu_: the
  // writer strand calls it. On an error the pin it took is released.
  FileError PinOne(const std::string& user, v1::Attachment* a);
  // Record helpers; the caller holds mu_ (reads do not need it, but a read-modify-write does).
  bool ReadRecord(const std::string& file_id, st::FileRecord* rec, storage::Status* err);
  storage::Status WriteSync(const storage::WriteBatch& b);
  uint64_t QuotaUsed(const std::string& user, storage::Status* err);
  void PutQuota(const std::string& user, uint64_t used, storage::WriteBatch& b);
  // Whether `user` may download the complete file `file_id` (uploader, or a member who can see a message that
  // references it). Reads committed state; no lock needed.
  bool MayRead(const std::string& user, const std::string& file_id, const st::FileRecord& rec);
  // Deletes a complete file that has no reference (the caller checked refs and pins): record, blob row, quota,
  // GC rows it knows of, then the blob itself if no other file shares it. Caller holds mu_.
  storage::Status DeleteCompleteLocked(const std::string& file_id, const st::FileRecord& rec,
                                       const std::string& gc_key, bool* blob_freed = nullptr);
  // Deletes an unfinished upload (record, GC row, quota, partial bytes). Caller holds mu_.
  storage::Status DeleteUploadLocked(const std::string& file_id, const st::FileRecord& rec,
                                     const std::string& gc_key);
  // Marks the upload COMPLETE with content `sha` (hex): the record, the blob row, the GC row of a file not
  // shared yet; then moves the bytes into the blob, or drops them when the blob exists. Caller holds mu_.
  storage::Status CompleteLocked(const std::string& file_id, st::FileRecord rec, const std::string& sha);
  bool HasRefs(const std::string& file_id, storage::Status* err);
  // What one GC pass deleted.
  struct GcCounts {
    size_t files = 0;
    size_t uploads = 0;
    size_t blobs = 0;
  };
  // One kFileGc row: what GC does with it; counts what it deletes in *counts. Takes mu_.
  void CollectOne(const std::string& gc_key, const std::string& file_id, int64_t now_ms, GcCounts* counts);
  void GcLoop();

  std::string UploadPath(const std::string& file_id) const;
  std::string BlobPath(const std::string& sha) const;
  std::string UrlPrefix() const;  // public_url without a trailing '/', or ""
  std::string DownloadUrl(const std::string& file_id) const;
  int64_t NowMs() const { return clock_.UnixMillis(); }

  const FilesOptions options_;
  storage::Store* const store_;  // not owned
  const Families fam_;
  const Clock& clock_;
  std::string secret_;  // the HMAC key, set by Open

  mutable std::mutex mu_;
  // Pins and deletions in progress, under their own lock (taken after mu_, never before it): the writer strand
  // pins without mu_, so a send never waits behind the disk syncs mu_ is held across (upload completion, GC).
  // A complete file is deleted only after BeginDelete succeeded (not pinned; from then on PinOne refuses it)
  // AND a check of its committed references made after that (a pin is released only once the send's
  // reference is committed, so a send that pinned and unpinned before BeginDelete left its row).
  std::mutex pins_mu_;
  std::unordered_map<std::string, uint32_t> pins_;  // guarded by pins_mu_: file_id -> pin count
  std::unordered_set<std::string> deleting_;        // guarded by pins_mu_
  bool BeginDelete(const std::string& file_id);      // false if pinned
  void EndDelete(const std::string& file_id);
  std::unordered_map<std::string, std::unique_ptr<Upload>> uploads_;  // guarded by mu_
  // Unfinished uploads (UPLOADING records) per user, at most kMaxOpenUploads each: slots cost nothing
  // against the quota until their tus creation, so this is what bounds them. Guarded by mu_; built by Open.
  std::unordered_map<std::string, uint32_t> open_uploads_;
  void UploadClosedLocked(const std::string& user);

  std::unique_ptr<Stats> stats_;
  std::unique_ptr<Http> http_;

  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  bool gc_stop_ = false;  // guarded by gc_mu_
  std::thread gc_thread_;
};

}  // namespace parley::im
