// The file store's HTTP side (docs/protocol.md, "Files"), on the files listener, all on its one thread:
//
//   OPTIONS /files/v1/uploads[/<id>]   tus discovery (and CORS preflight): 204, Tus-Version, Tus-Extension
//   POST    /files/v1/uploads          tus creation, with the slot's upload token: 201 + Location
//   HEAD    /files/v1/uploads/<id>     the offset to resume from: 200 + Upload-Offset
//   PATCH   /files/v1/uploads/<id>     bytes at Upload-Offset, streamed to disk: 204 + Upload-Offset
//   DELETE  /files/v1/uploads/<id>     tus termination: 204
//   GET     /files/v1/<id>             download (HEAD too), with an access token: 200 / 206 / 304 / 416
//
// Statuses of refusals: 400 malformed, 401 bad token (WWW-Authenticate: Bearer), 403 not yours, 404 unknown,
// 409 wrong offset or another PATCH running, 410 the slot expired, 412 no Tus-Resumable 1.0.0, 413 too large or
// over quota, 415 not application/offset+octet-stream, 460 checksum mismatch, 500/507 disk trouble. Each with
// the JSON body of AdminResponse::Error.
//
// This header is the files implementation's own (files.cc, files_upload.cc, files_http.cc and their tests):
// the in-memory upload state, the handlers, and the pure header helpers.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "broker/api/admin.h"
#include "im/files.h"
#include "im/files_crypto.h"

namespace parley::im {

namespace files_detail {

// Decimal digits only (no sign, no space), at most UINT64_MAX.
bool ParseUint(std::string_view s, uint64_t* out);

// A media type "type/subtype" with optional "; name=value" parameters (RFC 9110 tokens, quoted values), at
// most 255 bytes: *out is it with type and subtype lower-cased. False if malformed.
bool NormalizeContentType(std::string_view in, std::string* out);
// The type and subtype (lower-case) of a normalized content type.
std::string_view BareType(std::string_view normalized);
// `type` (bare, lower-case) matches one of `patterns` ("image/*", "application/pdf", "*/*"); empty = any.
bool TypeAllowed(std::string_view type, const std::vector<std::string>& patterns);
// The record's type if still valid, else "application/octet-stream" (a download never carries a header a
// client could have forged).
std::string SafeContentType(std::string_view type);

// "attachment; filename*=UTF-8''<percent-encoded name>" (RFC 6266 / 8187).
std::string ContentDisposition(std::string_view name);

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};
enum class RangeResult { kWhole, kPartial, kUnsatisfiable };
// A Range header for a body of `size` bytes (size > 0): "bytes=a-b", "bytes=a-", "bytes=-n". Several ranges,
// another unit or a malformed value: kWhole (the header is ignored, RFC 9110 14.2). a >= size or "-0":
// kUnsatisfiable. b past the end is clamped.
RangeResult ParseRange(std::string_view header, uint64_t size, ByteRange* out);
// Whether an If-None-Match value ("*", or a list of entity tags, weak ones included) matches `etag`
// (quoted). Weak comparison, as RFC 9110 13.1.2 wants for If-None-Match.
bool NoneMatchHits(std::string_view header, std::string_view etag);
// Whether an If-Range value is the strong entity tag `etag` (a date never matches: we send no Last-Modified).
bool IfRangeHits(std::string_view header, std::string_view etag);

// The token of "Authorization: Bearer <token>", else of "?token=", else "".
std::string BearerToken(const broker::AdminRequest& r);
// An HTTP date (RFC 9110 5.6.7, "Sun, 06 Nov 1994 08:49:37 GMT") for ms since the Unix epoch.
std::string HttpDate(int64_t unix_ms);

// Disk helpers. MakeDir: mkdir 0700, an existing directory is fine. SyncDir: fsync of a directory (after a
// rename or unlink in it), failures logged.
Status MakeDir(const std::string& path);
void SyncDir(const std::string& path);
bool FileExists(const std::string& path);

}  // namespace files_detail

// An upload's in-memory state, created on its first PATCH and dropped when it completes or goes. Guarded by
// FileStore::mu_, except `sha` and `hashed`, which only the PATCH that holds `busy` touches.
struct FileStore::Upload {
  bool busy = false;             // a PATCH owns the upload
  UploadSink* sink = nullptr;    // that PATCH's body, once it streams (the HTTP thread only)
  Sha256 sha;                    // SHA-256 of bytes [0, hashed) of the upload file
  uint64_t hashed = 0;
};

struct FileStore::Stats {
  enum Outcome { kCompleted, kDeduplicated, kChecksumMismatch, kTerminated, kExpired, kOutcomes };
  enum Download { k200, k206, k304, k401, k403, k404, k416, kOther, kDownloads };
  static Download DownloadIndex(int status);

  // Gauges, from the scan at Open, then kept up to date.
  std::atomic<int64_t> complete_files{0};
  std::atomic<int64_t> complete_bytes{0};  // the complete files' sizes (a shared blob counted per file)
  std::atomic<int64_t> uploading{0};       // records in UPLOADING (slots included)
  std::atomic<int64_t> blobs{0};
  std::atomic<int64_t> blob_bytes{0};      // bytes on disk in blobs/
  std::atomic<uint64_t> uploads[kOutcomes] = {};
  std::atomic<uint64_t> downloads[kDownloads] = {};
  std::atomic<uint64_t> gc_files{0};
  std::atomic<uint64_t> gc_uploads{0};
  std::atomic<uint64_t> gc_blobs{0};
};

// The handlers. They run on the files listener's thread (one at a time), so only the state shared with other
// threads (the records, FileStore::mu_) needs care.
class FileStore::Http {
 public:
  explicit Http(FileStore& fs) : fs_(fs) {}
  void AddRoutes(broker::AdminRouter& router);

  broker::AdminResponse Options(const broker::AdminRequest& r);
  broker::AdminResponse Create(const broker::AdminRequest& r);
  broker::AdminResponse Head(const broker::AdminRequest& r);
  broker::StreamStart Patch(const broker::AdminRequest& r);  // files_upload.cc
  broker::AdminResponse Terminate(const broker::AdminRequest& r);
  broker::AdminResponse Download(const broker::AdminRequest& r);

  // Adds the CORS headers every files response has; Decorate adds Tus-Resumable too (the tus routes).
  static broker::AdminResponse Cors(broker::AdminResponse r);
  static broker::AdminResponse Decorate(broker::AdminResponse r);
  static broker::AdminResponse Fail(int status, std::string_view code, std::string_view message);
  // 507 for a full disk (or quota), else 500 naming the error.
  static broker::AdminResponse DiskError(int err);

 private:
  // The upload token of `r` for `path_id` ("" for POST: the token names the upload). Sets *refusal (401 bad
  // token, 410 expired slot, 403 another upload's token) and returns false when it does not do.
  bool AuthUpload(const broker::AdminRequest& r, std::string_view path_id, FileToken* token,
                  broker::AdminResponse* refusal);
  // Reads the upload's record for a tus request; false (with *refusal: 404 unknown or not created, 410
  // expired, 403 not the token's user, 500) when the request cannot go on. Caller holds fs_.mu_.
  bool UploadRecordLocked(const std::string& id, const FileToken& token, bool need_created, st::FileRecord* rec,
                          broker::AdminResponse* refusal);
  // Frees an upload from a PATCH whose client has gone quiet (a lost link the server has not noticed yet), so
  // that the client's reconnection can resume at once. False if a live PATCH holds it. Caller holds fs_.mu_.
  bool TakeOverLocked(const std::string& id);
  broker::AdminResponse CountDownload(broker::AdminResponse r);

  FileStore& fs_;
};

}  // namespace parley::im
