// The files listener's routes: tus discovery, creation, offset and termination, and downloads (PATCH is in
// files_upload.cc). See files_http.h for the statuses.
#include "im/files_http.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace parley::im {

using broker::AdminRequest;
using broker::AdminResponse;
using broker::StreamStart;

namespace files_detail {

namespace {

bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!IsTchar(c)) return false;
  return true;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Digits only; saturates at UINT64_MAX instead of failing on overflow (a range past any size).
bool ParseSaturating(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *out = v;
  return true;
}

// A quoted-string's text (between the quotes), or a token: false if neither.
bool ValidParamValue(std::string_view v) {
  if (IsToken(v)) return true;
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return false;
  for (size_t i = 1; i + 1 < v.size(); ++i) {
    const auto c = static_cast<uint8_t>(v[i]);
    if (c == '\\') {
      if (++i + 1 >= v.size()) return false;
      const auto q = static_cast<uint8_t>(v[i]);
      if (q != '\t' && (q < 0x20 || q > 0x7e)) return false;
    } else if (c == '"' || (c != '\t' && (c < 0x20 || c > 0x7e))) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool ParseUint(std::string_view s, uint64_t* out) {
  uint64_t v = 0;
  if (s.empty() || s.size() > 20 || !ParseSaturating(s, &v) || v == UINT64_MAX) return false;
  *out = v;
  return true;
}

bool NormalizeContentType(std::string_view in, std::string* out) {
  if (in.empty() || in.size() > 255) return false;
  const size_t semi = in.find(';');
  const std::string_view bare = Trim(in.substr(0, semi));
  const size_t slash = bare.find('/');
  if (slash == std::string_view::npos || !IsToken(bare.substr(0, slash)) || !IsToken(bare.substr(slash + 1)))
    return false;
  std::string result = LowerCopy(bare);
  std::string_view rest = semi == std::string_view::npos ? std::string_view() : in.substr(semi + 1);
  while (semi != std::string_view::npos) {
    // Parameters: name=value pairs separated by ';' (a ';' inside a quoted value is not a separator).
    size_t end = 0;
    bool quoted = false;
    for (; end < rest.size(); ++end) {
      if (rest[end] == '"') quoted = !quoted;
      if (rest[end] == '\\' && quoted && ++end >= rest.size()) break;  // an escape at the very end: malformed
      if (rest[end] == ';' && !quoted) break;
    }
    end = std::min(end, rest.size());
    const std::string_view param = Trim(rest.substr(0, end));
    if (!param.empty()) {
      const size_t eq = param.find('=');
      if (eq == std::string_view::npos || !IsToken(param.substr(0, eq)) || !ValidParamValue(param.substr(eq + 1)))
        return false;
      result += "; " + LowerCopy(param.substr(0, eq)) + "=" + std::string(param.substr(eq + 1));
    }
    if (end >= rest.size()) break;
    rest.remove_prefix(end + 1);
  }
  *out = std::move(result);
  return true;
}

std::string_view BareType(std::string_view normalized) { return normalized.substr(0, normalized.find(';')); }

bool TypeAllowed(std::string_view type, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return true;
  for (const std::string& raw : patterns) {
    const std::string p = LowerCopy(Trim(raw));
    if (p == "*/*" || p == "*") return true;
    if (p.size() > 2 && p.ends_with("/*")) {
      if (type.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (p == type) {
      return true;
    }
  }
  return false;
}

std::string SafeContentType(std::string_view type) {
  std::string out;
  return NormalizeContentType(type, &out) ? out : "application/octet-stream";
}

std::string ContentDisposition(std::string_view name) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string ascii, encoded;
  for (char ch : name) {
    const auto c = static_cast<uint8_t>(ch);
    const bool attr_char = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                           std::string_view("!#$&+-.^_`|~").find(ch) != std::string_view::npos;
    if (attr_char) {
      encoded.push_back(ch);
    } else {
      encoded.push_back('%');
      encoded.push_back(kHex[c >> 4]);
      encoded.push_back(kHex[c & 15]);
    }
    // The legacy parameter for old clients: printable ASCII without quotes, backslashes or '%'.
    ascii.push_back(c >= 0x20 && c < 0x7f && ch != '"' && ch != '\\' && ch != '%' ? ch : '_');
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

RangeResult ParseRange(std::string_view header, uint64_t size, ByteRange* out) {
  header = Trim(header);
  if (header.size() < 6 || LowerCopy(header.substr(0, 6)) != "bytes=" || size == 0) return RangeResult::kWhole;
  const std::string_view set = header.substr(6);
  if (set.find(',') != std::string_view::npos) return RangeResult::kWhole;  // several ranges: the whole file
  const std::string_view spec = Trim(set);
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeResult::kWhole;
  uint64_t a = 0, b = 0;
  if (dash == 0) {  // suffix: the last n bytes
    if (!ParseSaturating(spec.substr(1), &b)) return RangeResult::kWhole;
    if (b == 0) return RangeResult::kUnsatisfiable;
    *out = {b >= size ? 0 : size - b, size - 1};
    return RangeResult::kPartial;
  }
  if (!ParseSaturating(spec.substr(0, dash), &a)) return RangeResult::kWhole;
  if (dash + 1 == spec.size()) {
    b = UINT64_MAX;
  } else if (!ParseSaturating(spec.substr(dash + 1), &b) || b < a) {
    return RangeResult::kWhole;  // malformed: ignored
  }
  if (a >= size) return RangeResult::kUnsatisfiable;
  *out = {a, std::min(b, size - 1)};
  return RangeResult::kPartial;
}

bool NoneMatchHits(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header == "*") return true;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view tag = Trim(header.substr(0, comma));
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

bool IfRangeHits(std::string_view header, std::string_view etag) { return Trim(header) == etag; }

std::string BearerToken(const AdminRequest& r) {
  if (const auto auth = r.Header("Authorization")) {
    const std::string_view v = Trim(*auth);
    if (v.size() > 7 && LowerCopy(v.substr(0, 7)) == "bearer ") return std::string(Trim(v.substr(7)));
    return {};
  }
  if (const auto q = r.Query("token")) return std::string(*q);
  return {};
}

std::string HttpDate(int64_t unix_ms) {
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const time_t t = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  if (!gmtime_r(&t, &tm)) return {};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace files_detail

using namespace files_detail;

namespace {

constexpr std::string_view kTusExtensions = "creation,termination,checksum,expiration";
constexpr std::string_view kExposed =
    "Location, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Tus-Checksum-Algorithm, Content-Range, Content-Disposition, ETag, Accept-Ranges";

// A response read from a file descriptor opened when the request came (it keeps working if GC unlinks the
// blob meanwhile). Owns the descriptor.
class FdBody final : public broker::ResponseBody {
 public:
  explicit FdBody(int fd) : fd_(fd) {}
  ~FdBody() override { ::close(fd_); }
  void set_base(uint64_t base) { base_ = base; }
  size_t Read(uint64_t offset, std::span<uint8_t> out) override {
    while (true) {
      const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(base_ + offset));
      if (n < 0 && errno == EINTR) continue;
      return n > 0 ? static_cast<size_t>(n) : 0;
    }
  }

 private:
  const int fd_;
  uint64_t base_ = 0;  // the first byte sent (a Range)
};

AdminResponse Empty(int status) {
  AdminResponse r;
  r.status = status;
  r.content_type.clear();
  return r;
}

bool TusVersionOk(const AdminRequest& r) {
  const auto v = r.Header("Tus-Resumable");
  return v && *v == "1.0.0";
}

}  // namespace

AdminResponse FileStore::Http::Fail(int status, std::string_view code, std::string_view message) {
  AdminResponse r = AdminResponse::Error(status, code, message);
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"parley-files\", error=\"invalid_token\"");
  if (status == 412) r.headers.emplace_back("Tus-Version", "1.0.0");
  return r;
}

AdminResponse FileStore::Http::DiskError(int err) {
  return err == ENOSPC || err == EDQUOT
             ? Fail(507, "insufficient_storage", "the server's disk is full")
             : Fail(500, "internal", std::string("cannot store the upload: ") + std::strerror(err));
}

AdminResponse FileStore::Http::Cors(AdminResponse r) {
  // Tokens travel in Authorization (or the query), never in cookies: any origin may read the answers.
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  r.headers.emplace_back("Access-Control-Expose-Headers", std::string(kExposed));
  return r;
}

AdminResponse FileStore::Http::Decorate(AdminResponse r) {
  r.headers.emplace_back("Tus-Resumable", "1.0.0");
  return Cors(std::move(r));
}

void FileStore::Http::AddRoutes(broker::AdminRouter& router) {
  auto plain = [this](AdminResponse (Http::*f)(const AdminRequest&)) {
    return [this, f](const AdminRequest& r) { return (this->*f)(r); };
  };
  router.Add("OPTIONS", "/files/v1/uploads", plain(&Http::Options));
  router.Add("OPTIONS", "/files/v1/uploads/{id}", plain(&Http::Options));
  router.Add("OPTIONS", "/files/v1/{id}", plain(&Http::Options));
  router.Add("POST", "/files/v1/uploads", plain(&Http::Create));
  router.Add("HEAD", "/files/v1/uploads/{id}", plain(&Http::Head));
  router.AddStreaming(
      "PATCH", "/files/v1/uploads/{id}", [this](const AdminRequest& r) { return Patch(r); },
      fs_.options_.max_file_size);
  router.Add("DELETE", "/files/v1/uploads/{id}", plain(&Http::Terminate));
  router.Add("GET", "/files/v1/{id}", plain(&Http::Download));  // HEAD too
}

// ---- tus ------------------------------------------------------------------------------------------------

AdminResponse FileStore::Http::Options(const AdminRequest& r) {
  AdminResponse resp = Empty(204);
  resp.headers.emplace_back("Tus-Version", "1.0.0");
  resp.headers.emplace_back("Tus-Extension", std::string(kTusExtensions));
  resp.headers.emplace_back("Tus-Max-Size", std::to_string(fs_.options_.max_file_size));
  resp.headers.emplace_back("Tus-Checksum-Algorithm", "sha256");
  // CORS preflight (see Cors).
  resp.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE, OPTIONS");
  resp.headers.emplace_back("Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, "
                            "Upload-Offset, Upload-Checksum, Upload-Defer-Length, Range, If-Range, If-None-Match, "
                            "X-Requested-With");
  resp.headers.emplace_back("Access-Control-Max-Age", "86400");
  return Decorate(std::move(resp));
}

bool FileStore::Http::AuthUpload(const AdminRequest& r, std::string_view path_id, FileToken* token,
                                 AdminResponse* refusal) {
  const std::string text = BearerToken(r);
  if (text.empty()) {
    *refusal = Fail(401, "unauthorized", "send the upload slot's token: Authorization: Bearer <token>");
    return false;
  }
  const TokenCheck check = VerifyFileToken(fs_.secret_, text, fs_.NowMs(), token);
  if (check == TokenCheck::kInvalid || token->kind != FileToken::kUpload) {
    *refusal = Fail(401, "unauthorized", "not a valid upload token");
    return false;
  }
  if (check == TokenCheck::kExpired) {
    *refusal = Fail(410, "gone", "the upload slot expired: ask for a new one");
    return false;
  }
  if (!path_id.empty() && token->file_id != path_id) {
    *refusal = Fail(403, "forbidden", "this token is for another upload");
    return false;
  }
  return true;
}

bool FileStore::Http::UploadRecordLocked(const std::string& id, const FileToken& token, bool need_created,
                                         st::FileRecord* rec, AdminResponse* refusal) {
  storage::Status err;
  if (!fs_.ReadRecord(id, rec, &err)) {
    *refusal = err.ok() ? Fail(404, "not_found", "unknown upload") : Fail(500, "internal", err.ToString());
    return false;
  }
  if (rec->uploader() != token.user) {
    *refusal = Fail(403, "forbidden", "this upload is not yours");
    return false;
  }
  if (rec->state() != st::FileRecord::COMPLETE) {
    if (fs_.NowMs() >= rec->expires_ts()) {
      *refusal = Fail(410, "gone", "the upload expired: ask for a new slot");
      return false;
    }
    if (need_created && !rec->reserved()) {
      *refusal = Fail(404, "not_found", "create the upload first (POST /files/v1/uploads)");
      return false;
    }
  }
  return true;
}

AdminResponse FileStore::Http::Create(const AdminRequest& r) {
  if (!TusVersionOk(r)) return Decorate(Fail(412, "precondition_failed", "Tus-Resumable: 1.0.0 is required"));
  FileToken token;
  AdminResponse refusal;
  if (!AuthUpload(r, "", &token, &refusal)) return Decorate(std::move(refusal));
  if (r.Header("Upload-Defer-Length"))
    return Decorate(Fail(400, "bad_request", "Upload-Defer-Length is not supported: send Upload-Length"));
  uint64_t length = 0;
  const auto lh = r.Header("Upload-Length");
  if (!lh || !ParseUint(*lh, &length))
    return Decorate(Fail(400, "bad_request", "Upload-Length must be the file's size in bytes"));

  const std::string& id = token.file_id;
  std::lock_guard lock(fs_.mu_);
  st::FileRecord rec;
  if (!UploadRecordLocked(id, token, /*need_created=*/false, &rec, &refusal)) return Decorate(std::move(refusal));
  if (length != rec.size()) {
    if (length > fs_.options_.max_file_size)
      return Decorate(Fail(413, "too_large", "files are limited to " + std::to_string(fs_.options_.max_file_size) +
                                                 " bytes"));
    return Decorate(Fail(400, "bad_request", "Upload-Length must be the slot's size " + std::to_string(rec.size())));
  }
  if (rec.state() != st::FileRecord::COMPLETE && !rec.reserved()) {
    // The creation reserves the file's size in the uploader's quota (a second POST finds it done).
    const uint64_t quota = fs_.options_.user_quota;
    if (rec.size() > fs_.options_.max_file_size)
      return Decorate(Fail(413, "too_large", "files are limited to " + std::to_string(fs_.options_.max_file_size) +
                                                 " bytes"));
    storage::Status err;
    const uint64_t used = fs_.QuotaUsed(rec.uploader(), &err);
    if (!err.ok()) return Decorate(Fail(500, "internal", err.ToString()));
    if (quota != 0 && (rec.size() > quota || used > quota - rec.size()))
      return Decorate(Fail(413, "quota_exceeded",
                           "the file would take you past your quota of " + std::to_string(quota) + " bytes (" +
                               std::to_string(used) + " used)"));
    rec.set_reserved(true);
    storage::WriteBatch b;
    b.Put(fs_.fam_(Fam::kFiles), FileKey(id), rec.SerializeAsString());
    fs_.PutQuota(rec.uploader(), used + rec.size(), b);
    if (storage::Status s = fs_.WriteSync(b); !s.ok())
      return Decorate(s.IsNoSpace() ? Fail(507, "insufficient_storage", "the server's disk is full")
                                    : Fail(500, "internal", s.ToString()));
  }
  AdminResponse resp = Empty(201);
  resp.headers.emplace_back("Location", fs_.UrlPrefix() + "/files/v1/uploads/" + id);
  if (rec.state() != st::FileRecord::COMPLETE)
    resp.headers.emplace_back("Upload-Expires", HttpDate(rec.expires_ts()));
  return Decorate(std::move(resp));
}

AdminResponse FileStore::Http::Head(const AdminRequest& r) {
  if (!TusVersionOk(r)) return Decorate(Fail(412, "precondition_failed", "Tus-Resumable: 1.0.0 is required"));
  const std::string id(r.Param("id"));
  if (!ValidFileId(id)) return Decorate(Fail(404, "not_found", "unknown upload"));
  FileToken token;
  AdminResponse refusal;
  if (!AuthUpload(r, id, &token, &refusal)) return Decorate(std::move(refusal));
  std::lock_guard lock(fs_.mu_);
  TakeOverLocked(id);  // a quiet PATCH (a lost link): record what it received, so the offset below has it
  st::FileRecord rec;
  if (!UploadRecordLocked(id, token, /*need_created=*/true, &rec, &refusal)) return Decorate(std::move(refusal));
  const bool complete = rec.state() == st::FileRecord::COMPLETE;
  AdminResponse resp = Empty(200);
  resp.headers.emplace_back("Upload-Offset", std::to_string(complete ? rec.size() : rec.offset()));
  resp.headers.emplace_back("Upload-Length", std::to_string(rec.size()));
  if (!complete) resp.headers.emplace_back("Upload-Expires", HttpDate(rec.expires_ts()));
  resp.headers.emplace_back("Cache-Control", "no-store");
  return Decorate(std::move(resp));
}

AdminResponse FileStore::Http::Terminate(const AdminRequest& r) {
  if (!TusVersionOk(r)) return Decorate(Fail(412, "precondition_failed", "Tus-Resumable: 1.0.0 is required"));
  const std::string id(r.Param("id"));
  if (!ValidFileId(id)) return Decorate(Fail(404, "not_found", "unknown upload"));
  FileToken token;
  AdminResponse refusal;
  if (!AuthUpload(r, id, &token, &refusal)) return Decorate(std::move(refusal));
  std::lock_guard lock(fs_.mu_);
  if (!TakeOverLocked(id))
    return Decorate(Fail(409, "conflict", "a PATCH of this upload is in progress"));
  st::FileRecord rec;
  if (!UploadRecordLocked(id, token, /*need_created=*/false, &rec, &refusal)) return Decorate(std::move(refusal));
  storage::Status s;
  if (rec.state() == st::FileRecord::COMPLETE) {
    // A finished file goes at once unless a message references it (then it lives as long as they do).
    storage::Status err;
    // BeginDelete first (no new pin from then on, and none held), then the committed references: a pin is
    // released only once its send's batch, with the reference, is committed.
    if (!fs_.BeginDelete(id)) return Decorate(Fail(409, "conflict", "the file is being shared right now"));
    if (fs_.HasRefs(id, &err)) {
      fs_.EndDelete(id);
      return Decorate(Fail(409, "conflict", "the file is shared in a conversation"));
    }
    s = fs_.DeleteCompleteLocked(id, rec, "");
    fs_.EndDelete(id);
  } else {
    s = fs_.DeleteUploadLocked(id, rec, "");
  }
  if (!s.ok()) return Decorate(Fail(500, "internal", s.ToString()));
  fs_.stats_->uploads[Stats::kTerminated].fetch_add(1);
  return Decorate(Empty(204));
}

// ---- downloads ------------------------------------------------------------------------------------------

AdminResponse FileStore::Http::CountDownload(AdminResponse r) {
  fs_.stats_->downloads[Stats::DownloadIndex(r.status)].fetch_add(1);
  return Cors(std::move(r));
}

AdminResponse FileStore::Http::Download(const AdminRequest& r) {
  const std::string id(r.Param("id"));
  const std::string text = BearerToken(r);
  FileToken token;
  if (text.empty())
    return CountDownload(Fail(401, "unauthorized", "send a download token: Authorization: Bearer <token>"));
  const TokenCheck check = VerifyFileToken(fs_.secret_, text, fs_.NowMs(), &token);
  if (check != TokenCheck::kOk || token.kind != FileToken::kAccess)
    return CountDownload(Fail(401, "unauthorized",
                              check == TokenCheck::kExpired ? "the download token expired: ask for a new one"
                                                            : "not a valid download token"));
  if (!ValidFileId(id)) return CountDownload(Fail(404, "not_found", "unknown file"));

  st::FileRecord rec;
  storage::Status err;
  if (!fs_.ReadRecord(id, &rec, &err) || rec.state() != st::FileRecord::COMPLETE)
    return CountDownload(err.ok() ? Fail(404, "not_found", "unknown file") : Fail(500, "internal", err.ToString()));
  if (!fs_.MayRead(token.user, id, rec))
    return CountDownload(Fail(403, "forbidden", "the file was not shared in a conversation you can read"));

  // Open under the lock: a completion moves the bytes into the blob under it, a GC pass removes it under it.
  int fd = -1;
  {
    std::lock_guard lock(fs_.mu_);
    if (!fs_.ReadRecord(id, &rec, &err) || rec.state() != st::FileRecord::COMPLETE)
      return CountDownload(Fail(404, "not_found", "unknown file"));
    fd = ::open(fs_.BlobPath(rec.sha256()).c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    spdlog::error("files: blob of {} cannot be opened: {}", id, std::strerror(errno));
    return CountDownload(Fail(500, "internal", "the file's content is missing"));
  }
  auto body = std::make_shared<FdBody>(fd);  // owns fd from here on
  const uint64_t size = rec.size();
  const std::string etag = "\"" + rec.sha256() + "\"";

  AdminResponse resp;
  resp.content_type = SafeContentType(rec.content_type());
  resp.headers.emplace_back("ETag", etag);
  resp.headers.emplace_back("Accept-Ranges", "bytes");
  resp.headers.emplace_back("Cache-Control",
                            "private, max-age=" + std::to_string(std::max<int64_t>(fs_.options_.token_ttl.count(), 0)));
  resp.headers.emplace_back("X-Content-Type-Options", "nosniff");
  resp.headers.emplace_back("Content-Disposition", ContentDisposition(rec.name()));

  if (const auto inm = r.Header("If-None-Match"); inm && NoneMatchHits(*inm, etag)) {
    resp.status = 304;
    resp.content_type.clear();
    return CountDownload(std::move(resp));
  }
  ByteRange range{0, size - 1};
  RangeResult kind = RangeResult::kWhole;
  if (const auto rh = r.Header("Range")) {
    const auto if_range = r.Header("If-Range");
    if (!if_range || IfRangeHits(*if_range, etag)) kind = ParseRange(*rh, size, &range);
  }
  if (kind == RangeResult::kUnsatisfiable) {
    AdminResponse e = Fail(416, "range_not_satisfiable", "the range starts past the file's " +
                                                             std::to_string(size) + " bytes");
    e.headers = std::move(resp.headers);
    e.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
    return CountDownload(std::move(e));
  }
  if (kind == RangeResult::kWhole) range = {0, size - 1};
  resp.status = kind == RangeResult::kPartial ? 206 : 200;
  if (kind == RangeResult::kPartial)
    resp.headers.emplace_back("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                   std::to_string(range.last) + "/" + std::to_string(size));
  body->set_base(range.first);
  resp.stream = std::move(body);
  resp.stream_length = range.last - range.first + 1;
  return CountDownload(std::move(resp));
}

}  // namespace parley::im
