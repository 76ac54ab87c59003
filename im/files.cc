#include "im/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "base/file_util.h"
#include "broker/codec/codec.h"
#include "im/files_http.h"
#include "im/summary.h"

namespace parley::im {

namespace {

using storage::WriteBatch;

constexpr size_t kSecretSize = 32;
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kGcBatch = 1000;  // GC rows read per iterator, so a huge backlog is not held in memory

int64_t ToMs(std::chrono::seconds s) { return static_cast<int64_t>(s.count()) * 1000; }

std::string Errno(int e) { return std::strerror(e); }

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (!d) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// A display name: 1..255 bytes of UTF-8 (the MQTT rules), no control characters.
bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || !mqtt::IsValidMqttUtf8(name)) return false;
  for (char c : name)
    if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

std::string EncodeU64(uint64_t v) {
  std::string s;
  storage::PutU64(&s, v);
  return s;
}

}  // namespace

namespace files_detail {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return Status::Ok();
  return Status::Error("files: cannot create " + path + ": " + Errno(errno));
}

void SyncDir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) spdlog::warn("files: cannot sync directory {}: {}", path, Errno(errno));
  if (fd >= 0) ::close(fd);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace files_detail

using files_detail::FileExists;
using files_detail::MakeDir;
using files_detail::SyncDir;

// ---- construction, Open -----------------------------------------------------------------------------------

FileStore::FileStore(FilesOptions options, storage::Store* store, Families fam, const Clock& clock)
    : options_(std::move(options)), store_(store), fam_(fam), clock_(clock), stats_(std::make_unique<Stats>()) {}

FileStore::~FileStore() { Stop(); }

bool FileStore::ValidFileId(std::string_view id) {
  if (id.size() != 34 || !id.starts_with("f_")) return false;
  for (char c : id.substr(2))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string FileStore::UploadPath(const std::string& file_id) const { return options_.dir + "/uploads/" + file_id; }
std::string FileStore::BlobPath(const std::string& sha) const {
  return options_.dir + "/blobs/" + sha.substr(0, 2) + "/" + sha;
}
std::string FileStore::UrlPrefix() const {
  std::string p = options_.public_url;
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}
std::string FileStore::DownloadUrl(const std::string& file_id) const { return UrlPrefix() + "/files/v1/" + file_id; }

Status FileStore::Open() {
  if (options_.dir.empty()) return Status::Error("files: dir is not set");
  for (const std::string& d : {options_.dir, options_.dir + "/uploads", options_.dir + "/blobs"})
    if (Status s = MakeDir(d); !s.ok()) return s;

  // The HMAC secret: made once; every token handed out is signed with it, so replacing it revokes them all.
  const std::string secret_path = options_.dir + "/secret";
  ::unlink((secret_path + ".tmp").c_str());
  const int fd = ::open(secret_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[kSecretSize + 1];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    ::close(fd);
    if (n != static_cast<ssize_t>(kSecretSize))
      return Status::Error("files: " + secret_path + " is not a " + std::to_string(kSecretSize) +
                           "-byte secret (remove it to make a new one; tokens handed out become invalid)");
    secret_.assign(buf, kSecretSize);
  } else if (errno == ENOENT) {
    uint8_t buf[kSecretSize];
    if (!RandomBytes(buf)) return Status::Error("files: no random bytes for the secret");
    std::string secret(reinterpret_cast<const char*>(buf), kSecretSize);
    if (Status s = ReplaceFileAtomically(secret_path, secret, 0600); !s.ok()) return s;
    secret_ = std::move(secret);
  } else {
    return Status::Error("files: cannot read " + secret_path + ": " + Errno(errno));
  }

  std::lock_guard lock(mu_);
  storage::Status err;
  // uploads/: finish the move of files completed just before a crash (the record says COMPLETE, the bytes are
  // still here); remove what no record owns.
  for (const std::string& name : ListDir(options_.dir + "/uploads")) {
    const std::string path = options_.dir + "/uploads/" + name;
    st::FileRecord rec;
    const bool known = ValidFileId(name) && ReadRecord(name, &rec, &err);
    if (!err.ok()) return err.ToBase();
    if (!known) {
      spdlog::info("files: removing stray {}", path);
      ::unlink(path.c_str());
    } else if (rec.state() == st::FileRecord::COMPLETE) {
      const std::string blob = BlobPath(rec.sha256());
      if (Status s = MakeDir(options_.dir + "/blobs/" + rec.sha256().substr(0, 2)); !s.ok()) return s;
      if (FileExists(blob)) {
        ::unlink(path.c_str());
      } else if (::rename(path.c_str(), blob.c_str()) != 0) {
        return Status::Error("files: cannot move " + path + " to " + blob + ": " + Errno(errno));
      }
      SyncDir(options_.dir + "/blobs/" + rec.sha256().substr(0, 2));
    }
  }

  // blobs/: count them, and remove those no file uses any more (a GC pass that stopped between its batch and
  // the unlink) and stray names.
  for (const std::string& sub : ListDir(options_.dir + "/blobs")) {
    const std::string subdir = options_.dir + "/blobs/" + sub;
    for (const std::string& name : ListDir(subdir)) {
      const std::string path = subdir + "/" + name;
      bool used = false;
      if (IsSha256Hex(name) && name.substr(0, 2) == sub) {
        storage::IteratorOptions o;
        o.prefix = FileBlobPrefix(name);
        auto it = store_->NewIterator(fam_(Fam::kFileBlobs), o);
        it->SeekToFirst();
        if (!it->status().ok()) return it->status().ToBase();
        used = it->Valid();
      }
      struct stat st {};
      if (!used) {
        spdlog::info("files: removing unused blob {}", path);
        ::unlink(path.c_str());
      } else if (::stat(path.c_str(), &st) == 0) {
        stats_->blobs.fetch_add(1);
        stats_->blob_bytes.fetch_add(st.st_size);
      }
    }
  }

  // The gauges.
  auto it = store_->NewIterator(fam_(Fam::kFiles));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    st::FileRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    if (rec.state() == st::FileRecord::COMPLETE) {
      stats_->complete_files.fetch_add(1);
      stats_->complete_bytes.fetch_add(static_cast<int64_t>(rec.size()));
    } else {
      stats_->uploading.fetch_add(1);
      ++open_uploads_[rec.uploader()];
    }
  }
  if (!it->status().ok()) return it->status().ToBase();
  return Status::Ok();
}

void FileStore::Start() {
  std::lock_guard lock(gc_mu_);
  if (gc_thread_.joinable()) return;
  gc_stop_ = false;
  gc_thread_ = std::thread([this] { GcLoop(); });
}

void FileStore::Stop() {
  {
    std::lock_guard lock(gc_mu_);
    gc_stop_ = true;
  }
  gc_cv_.notify_all();
  if (gc_thread_.joinable()) gc_thread_.join();
}

void FileStore::GcLoop() {
  const auto interval = std::max(options_.gc_interval, std::chrono::seconds(1));
  std::unique_lock lock(gc_mu_);
  while (!gc_cv_.wait_for(lock, interval, [this] { return gc_stop_; })) {
    lock.unlock();
    CollectGarbage();
    lock.lock();
  }
}

// ---- records --------------------------------------------------------------------------------------------

bool FileStore::ReadRecord(const std::string& file_id, st::FileRecord* rec, storage::Status* err) {
  auto v = store_->Get(fam_(Fam::kFiles), FileKey(file_id));
  if (!v.ok()) {
    *err = v.status();
    return false;
  }
  if (!v.value()) return false;
  if (!rec->ParseFromString(*v.value())) {
    *err = storage::Status::Corruption("im.files: undecodable record of " + file_id);
    return false;
  }
  return true;
}

storage::Status FileStore::WriteSync(const WriteBatch& b) { return store_->Write(b, storage::Sync::kSync); }

uint64_t FileStore::QuotaUsed(const std::string& user, storage::Status* err) {
  auto v = store_->Get(fam_(Fam::kFileQuota), FileQuotaKey(user));
  if (!v.ok()) {
    *err = v.status();
    return 0;
  }
  uint64_t used = 0;
  if (v.value()) {
    std::string_view in = *v.value();
    if (!storage::GetU64(&in, &used)) *err = storage::Status::Corruption("im.file_quota: undecodable row of " + user);
  }
  return used;
}

void FileStore::PutQuota(const std::string& user, uint64_t used, WriteBatch& b) {
  if (used == 0) {
    b.Delete(fam_(Fam::kFileQuota), FileQuotaKey(user));
  } else {
    b.Put(fam_(Fam::kFileQuota), FileQuotaKey(user), EncodeU64(used));
  }
}

bool FileStore::HasRefs(const std::string& file_id, storage::Status* err) {
  storage::IteratorOptions o;
  o.prefix = FileRefPrefix(file_id);
  auto it = store_->NewIterator(fam_(Fam::kFileRefs), o);
  it->SeekToFirst();
  if (!it->status().ok()) *err = it->status();
  // On an error, say "referenced": GC then keeps the file.
  return it->Valid() || !it->status().ok();
}

bool FileStore::MayRead(const std::string& user, const std::string& file_id, const st::FileRecord& rec) {
  if (user.empty()) return false;
  if (rec.uploader() == user) return true;
  storage::IteratorOptions o;
  o.prefix = FileRefPrefix(file_id);
  auto it = store_->NewIterator(fam_(Fam::kFileRefs), o);
  // Refs are sorted by conversation, then seq: for each conversation only its newest ref matters (the member
  // may read it iff seq >= their visible floor), so check the last row of each run.
  std::string conv, next_conv, fid;
  uint64_t seq = 0, next_seq = 0;
  auto check = [&](const std::string& c, uint64_t s) {
    auto m = store_->Get(fam_(Fam::kMembers), MemberKey(c, user));
    if (!m.ok() || !m.value()) return false;
    auto cr = store_->Get(fam_(Fam::kConvs), ConvKey(c));
    if (!cr.ok() || !cr.value()) return false;
    st::MemberRecord member;
    st::ConvRecord crec;
    if (!member.ParseFromString(*m.value()) || !crec.ParseFromString(*cr.value())) return false;
    return s >= VisibleFrom(crec, member);
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!DecodeFileRef(it->key(), &fid, &next_conv, &next_seq)) continue;
    if (!conv.empty() && next_conv != conv && check(conv, seq)) return true;
    conv = next_conv;
    seq = next_seq;
  }
  return !conv.empty() && check(conv, seq);
}

// ---- IM requests ------------------------------------------------------------------------------------------

FileError FileStore::CreateSlot(const std::string& user, const v1::CreateUploadReq& req, v1::UploadSlot* out) {
  using namespace files_detail;
  if (!options_.enabled) return {v1::ERR_UNSUPPORTED, "file transfer is not enabled on this server"};
  if (user.empty()) return {v1::ERR_UNAUTHENTICATED, "uploads need a user"};
  if (!ValidName(req.name()))
    return {v1::ERR_BAD_REQUEST, "name must be 1..255 bytes of UTF-8 without control characters"};
  if (req.size() == 0) return {v1::ERR_BAD_REQUEST, "size must be at least 1 byte"};
  if (req.size() > options_.max_file_size)
    return {v1::ERR_TOO_LARGE, "files are limited to " + std::to_string(options_.max_file_size) + " bytes"};
  std::string type;
  if (req.content_type().empty()) {
    type = "application/octet-stream";
  } else if (!NormalizeContentType(req.content_type(), &type)) {
    return {v1::ERR_BAD_REQUEST, "content_type is not a media type (type/subtype)"};
  }
  if (!TypeAllowed(BareType(type), options_.allowed_types))
    return {v1::ERR_UNSUPPORTED, "content type " + std::string(BareType(type)) + " is not allowed on this server"};
  std::string sha = req.sha256();
  std::transform(sha.begin(), sha.end(), sha.begin(), [](char c) { return c >= 'A' && c <= 'F' ? c + 32 : c; });
  if (!sha.empty() && !IsSha256Hex(sha)) return {v1::ERR_BAD_REQUEST, "sha256 must be 64 hex digits"};

  uint8_t r[16];
  if (!RandomBytes(r)) return {v1::ERR_INTERNAL, "no random bytes"};
  const std::string id = "f_" + HexEncode(std::string_view(reinterpret_cast<const char*>(r), sizeof(r)));
  const int64_t now = NowMs();
  st::FileRecord rec;
  rec.set_state(st::FileRecord::UPLOADING);
  rec.set_uploader(user);
  rec.set_name(req.name());
  rec.set_size(req.size());
  rec.set_content_type(type);
  rec.set_sha256(sha);
  rec.set_created_ts(now);
  rec.set_expires_ts(now + ToMs(options_.upload_expiry));
  {
    std::lock_guard lock(mu_);
    if (auto n = open_uploads_.find(user); n != open_uploads_.end() && n->second >= kMaxOpenUploads)
      return {v1::ERR_RATE_LIMITED, "you have " + std::to_string(n->second) +
                                        " unfinished uploads: finish or delete some first",
              60'000};
    storage::Status err;
    const uint64_t used = QuotaUsed(user, &err);
    if (!err.ok()) return {v1::ERR_INTERNAL, err.ToString()};
    if (options_.user_quota != 0 && (req.size() > options_.user_quota || used > options_.user_quota - req.size()))
      return {v1::ERR_QUOTA_EXCEEDED, "the file would take you past your quota of " +
                                          std::to_string(options_.user_quota) + " bytes (" + std::to_string(used) +
                                          " used)"};
    WriteBatch b;
    b.Put(fam_(Fam::kFiles), FileKey(id), rec.SerializeAsString());
    b.Put(fam_(Fam::kFileGc), FileGcKey(rec.expires_ts(), id), "");
    if (storage::Status s = WriteSync(b); !s.ok())
      return {s.IsNoSpace() ? v1::ERR_UNAVAILABLE : v1::ERR_INTERNAL, s.ToString()};
    ++open_uploads_[user];
  }
  stats_->uploading.fetch_add(1);
  out->set_file_id(id);
  out->set_upload_url(UrlPrefix() + "/files/v1/uploads");
  out->set_token(SignFileToken(secret_, {FileToken::kUpload, rec.expires_ts(), user, id}));
  out->set_expires_ts(rec.expires_ts());
  return {};
}

v1::FileAccess FileStore::Access(const std::string& user) {
  v1::FileAccess a;
  const int64_t expires = NowMs() + ToMs(options_.token_ttl);
  a.set_token(SignFileToken(secret_, {FileToken::kAccess, expires, user, {}}));
  a.set_expires_ts(expires);
  a.set_download_url_prefix(UrlPrefix() + "/files/v1/");
  return a;
}

FileError FileStore::PinAttachments(const std::string& user,
                                    google::protobuf::RepeatedPtrField<v1::Attachment>* attachments,
                                    std::vector<std::string>* pinned) {
  const size_t first = pinned->size();
  auto fail = [&](FileError e) {
    Unpin(std::vector<std::string>(pinned->begin() + static_cast<ptrdiff_t>(first), pinned->end()));
    pinned->resize(first);
    return e;
  };
  for (v1::Attachment& a : *attachments) {
    // Only ids of this server's form name its files; others (an app's own storage, as file_id was opaque
    // before file transfer existed) pass through untouched.
    if (!ValidFileId(a.file_id())) continue;
    FileError e = PinOne(user, &a);
    if (!e.ok()) return fail(std::move(e));
    pinned->push_back(a.file_id());
  }
  return {};
}

// Pin first, then read: a file found complete after the pin stays until Unpin (GC and termination call
// BeginDelete, which a pin refuses); one whose deletion began is refused here. No mu_: see pins_mu_.
FileError FileStore::PinOne(const std::string& user, v1::Attachment* a) {
  const std::string& id = a->file_id();
  {
    std::lock_guard lock(pins_mu_);
    if (deleting_.contains(id)) return {v1::ERR_NOT_FOUND, "unknown file " + id};
    ++pins_[id];
  }
  auto fail = [&](FileError e) {
    Unpin({id});
    return e;
  };
  st::FileRecord rec;
  storage::Status err;
  if (!ReadRecord(id, &rec, &err))
    return fail(err.ok() ? FileError{v1::ERR_NOT_FOUND, "unknown file " + id}
                         : FileError{v1::ERR_INTERNAL, err.ToString()});
  if (rec.state() != st::FileRecord::COMPLETE) return fail({v1::ERR_NOT_FOUND, "file " + id + " is not uploaded (yet)"});
  if (!MayRead(user, id, rec)) return fail({v1::ERR_NOT_FOUND, "unknown file " + id});
  a->set_size(rec.size());
  a->set_content_type(files_detail::SafeContentType(rec.content_type()));
  a->set_sha256(rec.sha256());
  a->set_url(DownloadUrl(id));
  if (a->name().empty()) a->set_name(rec.name());
  return {};
}

void FileStore::Unpin(const std::vector<std::string>& file_ids) {
  std::lock_guard lock(pins_mu_);
  for (const std::string& id : file_ids) {
    auto it = pins_.find(id);
    if (it == pins_.end()) continue;
    if (--it->second == 0) pins_.erase(it);
  }
}

bool FileStore::BeginDelete(const std::string& file_id) {
  std::lock_guard lock(pins_mu_);
  if (pins_.contains(file_id)) return false;
  deleting_.insert(file_id);
  return true;
}

void FileStore::EndDelete(const std::string& file_id) {
  std::lock_guard lock(pins_mu_);
  deleting_.erase(file_id);
}

void FileStore::ScheduleCheck(const std::string& file_id, WriteBatch& b) {
  b.Put(fam_(Fam::kFileGc), FileGcKey(NowMs() + ToMs(options_.gc_grace), file_id), "");
}

void FileStore::AddRoutes(broker::AdminRouter& router) {
  if (!http_) http_ = std::make_unique<Http>(*this);
  http_->AddRoutes(router);
}

// ---- deletion and GC ----------------------------------------------------------------------------------------

storage::Status FileStore::DeleteCompleteLocked(const std::string& file_id, const st::FileRecord& rec,
                                                const std::string& gc_key, bool* blob_freed) {
  storage::Status err;
  const uint64_t used = QuotaUsed(rec.uploader(), &err);
  if (!err.ok()) return err;
  WriteBatch b;
  b.Delete(fam_(Fam::kFiles), FileKey(file_id));
  b.Delete(fam_(Fam::kFileBlobs), FileBlobKey(rec.sha256(), file_id));
  b.Delete(fam_(Fam::kFileGc), FileGcKey(rec.completed_ts() + ToMs(options_.gc_grace), file_id));
  if (!gc_key.empty()) b.Delete(fam_(Fam::kFileGc), gc_key);
  PutQuota(rec.uploader(), used > rec.size() ? used - rec.size() : 0, b);
  if (storage::Status s = WriteSync(b); !s.ok()) return s;
  stats_->complete_files.fetch_sub(1);
  stats_->complete_bytes.fetch_sub(static_cast<int64_t>(rec.size()));

  // The blob goes with its last file. (Completion adds rows under mu_ too, so none can appear meanwhile.)
  storage::IteratorOptions o;
  o.prefix = FileBlobPrefix(rec.sha256());
  auto it = store_->NewIterator(fam_(Fam::kFileBlobs), o);
  it->SeekToFirst();
  if (!it->Valid() && it->status().ok()) {
    const std::string blob = BlobPath(rec.sha256());
    struct stat st {};
    const bool existed = ::stat(blob.c_str(), &st) == 0;
    if (::unlink(blob.c_str()) == 0) {
      SyncDir(options_.dir + "/blobs/" + rec.sha256().substr(0, 2));
      if (blob_freed) *blob_freed = true;
      stats_->blobs.fetch_sub(1);
      if (existed) stats_->blob_bytes.fetch_sub(st.st_size);
    } else if (errno != ENOENT) {
      spdlog::warn("files: cannot remove blob {}: {} (removed at the next start)", blob, Errno(errno));
    }
  }
  return storage::Status::Ok();
}

storage::Status FileStore::DeleteUploadLocked(const std::string& file_id, const st::FileRecord& rec,
                                              const std::string& gc_key) {
  WriteBatch b;
  b.Delete(fam_(Fam::kFiles), FileKey(file_id));
  b.Delete(fam_(Fam::kFileGc), FileGcKey(rec.expires_ts(), file_id));
  if (!gc_key.empty()) b.Delete(fam_(Fam::kFileGc), gc_key);
  if (rec.reserved()) {
    storage::Status err;
    const uint64_t used = QuotaUsed(rec.uploader(), &err);
    if (!err.ok()) return err;
    PutQuota(rec.uploader(), used > rec.size() ? used - rec.size() : 0, b);
  }
  if (storage::Status s = WriteSync(b); !s.ok()) return s;
  if (::unlink(UploadPath(file_id).c_str()) != 0 && errno != ENOENT)
    spdlog::warn("files: cannot remove {}: {} (removed at the next start)", UploadPath(file_id), Errno(errno));
  uploads_.erase(file_id);
  UploadClosedLocked(rec.uploader());
  stats_->uploading.fetch_sub(1);
  return storage::Status::Ok();
}

void FileStore::UploadClosedLocked(const std::string& user) {
  auto it = open_uploads_.find(user);
  if (it != open_uploads_.end() && --it->second == 0) open_uploads_.erase(it);
}

void FileStore::CollectOne(const std::string& gc_key, const std::string& file_id, int64_t now, GcCounts* counts) {
  std::lock_guard lock(mu_);
  st::FileRecord rec;
  storage::Status err;
  auto drop_row = [&] {
    WriteBatch b;
    b.Delete(fam_(Fam::kFileGc), gc_key);
    if (storage::Status s = WriteSync(b); !s.ok()) spdlog::warn("files: GC: {}", s.ToString());
  };
  if (!ReadRecord(file_id, &rec, &err)) {
    if (!err.ok()) {
      spdlog::warn("files: GC: {}", err.ToString());
      return;
    }
    drop_row();  // the file went another way (termination)
    return;
  }

  if (rec.state() != st::FileRecord::COMPLETE) {
    if (now < rec.expires_ts()) {
      if (gc_key != FileGcKey(rec.expires_ts(), file_id)) drop_row();  // its expiry row stays
      return;
    }
    auto u = uploads_.find(file_id);
    if (u != uploads_.end() && u->second->busy) return;  // a PATCH is streaming: the next pass
    if (storage::Status s = DeleteUploadLocked(file_id, rec, gc_key); !s.ok()) {
      spdlog::warn("files: GC of upload {}: {}", file_id, s.ToString());
      return;
    }
    stats_->uploads[Stats::kExpired].fetch_add(1);
    stats_->gc_uploads.fetch_add(1);
    ++counts->uploads;
    return;
  }

  if (HasRefs(file_id, &err)) {
    if (err.ok()) drop_row();  // a message references it: ScheduleCheck adds a row when that changes
    return;
  }
  const int64_t grace_end = rec.completed_ts() + ToMs(options_.gc_grace);
  if (now < grace_end) {  // an early row (a recall soon after the upload): look again when the grace ends
    WriteBatch b;
    b.Delete(fam_(Fam::kFileGc), gc_key);
    b.Put(fam_(Fam::kFileGc), FileGcKey(grace_end, file_id), "");
    if (storage::Status s = WriteSync(b); !s.ok()) spdlog::warn("files: GC: {}", s.ToString());
    return;
  }
  if (!BeginDelete(file_id)) return;  // being shared right now: look again at the next pass
  // A send may have pinned, committed its reference and unpinned since the check above: look again now that
  // no new pin can be taken (a pin is released only once its batch is committed).
  if (HasRefs(file_id, &err)) {
    EndDelete(file_id);
    if (err.ok()) drop_row();
    return;
  }
  bool blob_freed = false;
  const storage::Status deleted = DeleteCompleteLocked(file_id, rec, gc_key, &blob_freed);
  EndDelete(file_id);
  if (!deleted.ok()) {
    spdlog::warn("files: GC of file {}: {}", file_id, deleted.ToString());
    return;
  }
  stats_->gc_files.fetch_add(1);
  ++counts->files;
  if (blob_freed) {
    stats_->gc_blobs.fetch_add(1);
    ++counts->blobs;
  }
}

size_t FileStore::CollectGarbage() {
  const int64_t now = NowMs();
  GcCounts counts;
  std::string after;  // the last row looked at: rows kept (pinned, busy) are not seen twice in one pass
  while (true) {
    std::vector<std::pair<std::string, std::string>> due;  // (row key, file id)
    storage::IteratorOptions o;
    o.upper_bound = storage::KeyBuilder().U64(static_cast<uint64_t>(now < 0 ? 0 : now) + 1).Release();
    if (!after.empty()) o.lower_bound = after + '\0';
    auto it = store_->NewIterator(fam_(Fam::kFileGc), o);
    for (it->SeekToFirst(); it->Valid() && due.size() < kGcBatch; it->Next()) {
      int64_t due_ms = 0;
      std::string id;
      if (DecodeFileGc(it->key(), &due_ms, &id)) due.emplace_back(std::string(it->key()), std::move(id));
    }
    if (!it->status().ok()) spdlog::warn("files: GC: {}", it->status().ToString());
    it.reset();
    for (const auto& [key, id] : due) CollectOne(key, id, now, &counts);
    if (due.size() < kGcBatch) break;
    after = due.back().first;
  }
  if (counts.files + counts.uploads > 0)
    spdlog::info("files: GC deleted {} unreferenced files and {} expired uploads; {} blobs freed", counts.files,
                 counts.uploads, counts.blobs);
  return counts.files + counts.uploads;
}

// ---- metrics ----------------------------------------------------------------------------------------------

FileStore::Stats::Download FileStore::Stats::DownloadIndex(int status) {
  switch (status) {
    case 200: return k200;
    case 206: return k206;
    case 304: return k304;
    case 401: return k401;
    case 403: return k403;
    case 404: return k404;
    case 416: return k416;
    default: return kOther;
  }
}

void FileStore::CollectMetrics(std::vector<metrics::Family>& out) const {
  auto gauge = [](const std::atomic<int64_t>& v) { return static_cast<double>(std::max<int64_t>(v.load(), 0)); };
  const Stats& s = *stats_;
  out.push_back({"parley_files", "Files by state: complete, and uploading (slots handed out included).",
                 metrics::Type::kGauge,
                 {{{{"state", "complete"}}, gauge(s.complete_files)}, {{{"state", "uploading"}}, gauge(s.uploading)}},
                 {}});
  out.push_back({"parley_files_bytes",
                 "Bytes of files: the complete files' sizes (logical), and what their blobs take on disk (stored).",
                 metrics::Type::kGauge,
                 {{{{"kind", "logical"}}, gauge(s.complete_bytes)}, {{{"kind", "stored"}}, gauge(s.blob_bytes)}},
                 {}});
  out.push_back({"parley_files_blobs", "Content blobs on disk (one per distinct sha256).", metrics::Type::kGauge,
                 {{{}, gauge(s.blobs)}}, {}});
  {
    static const char* kOutcomes[] = {"completed", "deduplicated", "checksum_mismatch", "terminated", "expired"};
    metrics::Family f{"parley_files_uploads_total",
                      "Uploads that ended, by outcome (deduplicated: completed, content already stored).",
                      metrics::Type::kCounter, {}, {}};
    for (int i = 0; i < Stats::kOutcomes; ++i)
      f.samples.push_back({{{"outcome", kOutcomes[i]}}, static_cast<double>(s.uploads[i].load())});
    out.push_back(std::move(f));
  }
  {
    static const char* kStatuses[] = {"200", "206", "304", "401", "403", "404", "416", "other"};
    metrics::Family f{"parley_files_downloads_total", "Download requests, by response status.",
                      metrics::Type::kCounter, {}, {}};
    for (int i = 0; i < Stats::kDownloads; ++i)
      f.samples.push_back({{{"status", kStatuses[i]}}, static_cast<double>(s.downloads[i].load())});
    out.push_back(std::move(f));
  }
  out.push_back({"parley_files_gc_deleted_total",
                 "Deleted by garbage collection: unreferenced files, expired uploads, and blobs freed.",
                 metrics::Type::kCounter,
                 {{{{"kind", "file"}}, static_cast<double>(s.gc_files.load())},
                  {{{"kind", "upload"}}, static_cast<double>(s.gc_uploads.load())},
                  {{{"kind", "blob"}}, static_cast<double>(s.gc_blobs.load())}},
                 {}});
}

}  // namespace parley::im
