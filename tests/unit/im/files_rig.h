// A rig for the file store's tests: a FileStore on an in-memory store and a temporary directory, a manual clock,
// and a router double that captures the HTTP handlers so tests call them directly (the tus flow without a
// socket). files_http_test.cc drives the same handlers through a real HttpServer.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/api/admin.h"
#include "im/files.h"
#include "im/files_crypto.h"
#include "im/keys.h"
#include "storage/mem_store.h"
#include "store.pb.h"
#include "unit/temp_dir.h"

namespace parley::im::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Keeps what AddRoutes registers, by "METHOD pattern".
class CaptureRouter final : public broker::AdminRouter {
 public:
  void Add(std::string_view method, std::string_view pattern, broker::AdminHandler handler) override {
    plain[std::string(method) + " " + std::string(pattern)] = std::move(handler);
  }
  void AddStreaming(std::string_view method, std::string_view pattern, broker::StreamingHandler handler,
                    uint64_t max_body) override {
    const std::string key = std::string(method) + " " + std::string(pattern);
    streaming[key] = std::move(handler);
    max_bodies[key] = max_body;
  }
  std::map<std::string, broker::AdminHandler> plain;
  std::map<std::string, broker::StreamingHandler> streaming;
  std::map<std::string, uint64_t> max_bodies;
};

inline std::optional<std::string> HeaderOf(const broker::AdminResponse& r, std::string_view name) {
  broker::AdminRequest probe;
  probe.headers = r.headers;
  if (auto v = probe.Header(name)) return std::string(*v);
  return std::nullopt;
}

// `n` bytes that differ with `seed`, with every byte value in them.
inline std::string Content(size_t n, int seed = 1) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u + static_cast<uint32_t>(seed);
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xFF);
  }
  return s;
}

inline std::string ShaHex(std::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return HexEncode(h.Digest());
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The whole body of a response: `body`, or its stream read in small pieces.
inline std::string BodyOf(const broker::AdminResponse& r) {
  if (!r.stream) return r.body;
  std::string out;
  uint8_t buf[1000];
  while (out.size() < r.stream_length) {
    const size_t want = std::min<uint64_t>(sizeof(buf), r.stream_length - out.size());
    const size_t n = r.stream->Read(out.size(), std::span<uint8_t>(buf, want));
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  return out;
}

class FilesRig {
 public:
  explicit FilesRig(const std::function<void(FilesOptions&)>& tweak = {}) : dir_("files") {
    options_.enabled = true;
    options_.dir = dir_.Sub("files");
    options_.max_file_size = 1 << 20;
    options_.user_quota = 4 << 20;
    options_.upload_expiry = std::chrono::seconds(600);
    options_.gc_grace = std::chrono::seconds(60);
    options_.token_ttl = std::chrono::seconds(300);
    if (tweak) tweak(options_);
    auto s = storage::MemStore::Open(FamilyNames());
    REQUIRE(s.ok());
    store_ = std::move(s.value());
    Restart();
  }

  // A new FileStore on the same store and directory: what a process restart keeps.
  void Restart() {
    router_.plain.clear();
    router_.streaming.clear();
    router_.max_bodies.clear();
    files_.reset();
    files_ = std::make_unique<FileStore>(options_, store_.get(), Families(0), clock_);
    const Status s = files_->Open();
    REQUIRE_MESSAGE(s.ok(), s.message());
    files_->AddRoutes(router_);
  }

  FileStore& files() { return *files_; }
  storage::MemStore& store() { return *store_; }
  ManualClock& clock() { return clock_; }
  CaptureRouter& router() { return router_; }
  const FilesOptions& options() const { return options_; }
  std::string Dir(std::string_view sub = "") const { return options_.dir + (sub.empty() ? "" : "/") + std::string(sub); }
  std::string BlobPath(const std::string& sha) const { return Dir("blobs/" + sha.substr(0, 2) + "/" + sha); }

  v1::UploadSlot Slot(const std::string& user, uint64_t size, const std::string& sha = "",
                      const std::string& type = "application/octet-stream", const std::string& name = "a file.bin") {
    v1::CreateUploadReq req;
    req.set_name(name);
    req.set_size(size);
    req.set_content_type(type);
    req.set_sha256(sha);
    v1::UploadSlot slot;
    const FileError e = files_->CreateSlot(user, req, &slot);
    REQUIRE_MESSAGE(e.ok(), e.message);
    return slot;
  }

  broker::AdminResponse Call(const std::string& method, const std::string& pattern, const std::string& id,
                             Headers headers, const std::string& token = "") {
    broker::AdminRequest r;
    r.method = method;
    r.path = pattern;
    if (!id.empty()) r.params["id"] = id;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    r.headers = std::move(headers);
    auto it = router_.plain.find(method + " " + pattern);
    REQUIRE(it != router_.plain.end());
    return it->second(r);
  }

  broker::AdminResponse Post(const v1::UploadSlot& slot, std::optional<uint64_t> length) {
    Headers h = {{"Tus-Resumable", "1.0.0"}};
    if (length) h.emplace_back("Upload-Length", std::to_string(*length));
    return Call("POST", "/files/v1/uploads", "", h, slot.token());
  }
  broker::AdminResponse Head(const std::string& id, const std::string& token) {
    return Call("HEAD", "/files/v1/uploads/{id}", id, {{"Tus-Resumable", "1.0.0"}}, token);
  }
  std::optional<uint64_t> Offset(const std::string& id, const std::string& token) {
    const broker::AdminResponse r = Head(id, token);
    if (r.status != 200) return std::nullopt;
    return std::stoull(*HeaderOf(r, "Upload-Offset"));
  }

  // Starts a PATCH: the early answer, or the sink that takes the body.
  broker::StreamStart StartPatch(const std::string& id, const std::string& token, uint64_t offset,
                                 std::optional<uint64_t> length = std::nullopt, Headers extra = {}) {
    Headers h = {{"Tus-Resumable", "1.0.0"},
                 {"Content-Type", "application/offset+octet-stream"},
                 {"Upload-Offset", std::to_string(offset)}};
    if (length) h.emplace_back("Content-Length", std::to_string(*length));
    for (auto& kv : extra) h.push_back(std::move(kv));
    broker::AdminRequest r;
    r.method = "PATCH";
    r.path = "/files/v1/uploads/" + id;
    r.params["id"] = id;
    h.emplace_back("Authorization", "Bearer " + token);
    r.headers = std::move(h);
    auto it = router_.streaming.find("PATCH /files/v1/uploads/{id}");
    REQUIRE(it != router_.streaming.end());
    return it->second(r);
  }

  // A whole PATCH: the body fed in pieces of `piece` bytes, then Finish.
  broker::AdminResponse Patch(const std::string& id, const std::string& token, uint64_t offset,
                              std::string_view body, size_t piece = 4096, Headers extra = {}) {
    broker::StreamStart s = StartPatch(id, token, offset, body.size(), std::move(extra));
    if (s.response) return std::move(*s.response);
    REQUIRE(s.sink);
    while (!body.empty()) {
      const size_t n = std::min(piece, body.size());
      if (!s.sink->Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), n))) break;
      body.remove_prefix(n);
    }
    return s.sink->Finish();
  }

  // Slot, creation and one PATCH: the id of a complete file.
  std::string Upload(const std::string& user, const std::string& content, const std::string& sha = "",
                     const std::string& type = "application/octet-stream", const std::string& name = "a file.bin") {
    const v1::UploadSlot slot = Slot(user, content.size(), sha, type, name);
    REQUIRE(Post(slot, content.size()).status == 201);
    const broker::AdminResponse r = Patch(slot.file_id(), slot.token(), 0, content);
    REQUIRE_MESSAGE(r.status == 204, r.body);
    return slot.file_id();
  }

  broker::AdminResponse Get(const std::string& id, const std::string& user, Headers headers = {}) {
    return Call("GET", "/files/v1/{id}", id, std::move(headers), files_->Access(user).token());
  }

  // Conversation state the download check reads: `user` a member of `conv` from `join_seq`.
  void AddMember(const std::string& conv, const std::string& user, uint64_t join_seq, uint64_t min_seq = 0) {
    store::ConvRecord c;
    c.set_type(v1::CONV_GROUP);
    c.set_min_seq(min_seq);
    store::MemberRecord m;
    m.set_join_seq(join_seq);
    storage::WriteBatch b;
    b.Put(Fam::kConvs, ConvKey(conv), c.SerializeAsString());
    b.Put(Fam::kMembers, MemberKey(conv, user), m.SerializeAsString());
    REQUIRE(store_->Write(b, storage::Sync::kSync).ok());
  }
  void AddRef(const std::string& file_id, const std::string& conv, uint64_t seq) {
    storage::WriteBatch b;
    b.Put(Fam::kFileRefs, FileRefKey(file_id, conv, seq), "");
    REQUIRE(store_->Write(b, storage::Sync::kSync).ok());
  }
  // What the writer does on a recall: the ref row goes, with a GC check, in one batch.
  void DropRef(const std::string& file_id, const std::string& conv, uint64_t seq) {
    storage::WriteBatch b;
    b.Delete(Fam::kFileRefs, FileRefKey(file_id, conv, seq));
    files_->ScheduleCheck(file_id, b);
    REQUIRE(store_->Write(b, storage::Sync::kSync).ok());
  }

  std::optional<store::FileRecord> Record(const std::string& id) {
    auto v = store_->Get(Fam::kFiles, FileKey(id));
    REQUIRE(v.ok());
    if (!v.value()) return std::nullopt;
    store::FileRecord rec;
    REQUIRE(rec.ParseFromString(*v.value()));
    return rec;
  }
  uint64_t QuotaUsed(const std::string& user) {
    auto v = store_->Get(Fam::kFileQuota, FileQuotaKey(user));
    REQUIRE(v.ok());
    if (!v.value()) return 0;
    std::string_view in = *v.value();
    uint64_t used = 0;
    REQUIRE(storage::GetU64(&in, &used));
    return used;
  }
  size_t Rows(Fam f) {
    auto it = store_->NewIterator(f);
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }

 private:
  parley::testing::TempDir dir_;
  FilesOptions options_;
  ManualClock clock_;
  std::unique_ptr<storage::MemStore> store_;
  CaptureRouter router_;
  std::unique_ptr<FileStore> files_;
};

}  // namespace parley::im::testing
