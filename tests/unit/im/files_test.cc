// The file store (im/files.h): upload slots, tokens, download authorisation, pins, garbage collection, restart.
// The tus flow itself is in files_tus_test.cc; the header helpers and a real HTTP server in files_http_test.cc.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "base/metrics.h"
#include "files_rig.h"
#include "im/files_http.h"

namespace parley::im {
namespace {

using testing::Content;
using testing::FilesRig;
using testing::HeaderOf;
using testing::ShaHex;

FileError TrySlot(FilesRig& rig, const std::string& user, uint64_t size, const std::string& type = "image/png",
                  const std::string& sha = "", const std::string& name = "x.png") {
  v1::CreateUploadReq req;
  req.set_name(name);
  req.set_size(size);
  req.set_content_type(type);
  req.set_sha256(sha);
  v1::UploadSlot slot;
  return rig.files().CreateSlot(user, req, &slot);
}

TEST_CASE("files: a slot checks size, name, content type, sha256 and quota") {
  FilesRig rig([](FilesOptions& o) {
    o.allowed_types = {"image/*", "application/pdf"};
    o.max_file_size = 1000;
    o.user_quota = 1500;
  });
  CHECK(TrySlot(rig, "alice", 1000).ok());
  CHECK(TrySlot(rig, "alice", 1001).code == v1::ERR_TOO_LARGE);
  CHECK(TrySlot(rig, "alice", 0).code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "", 10).code == v1::ERR_UNAUTHENTICATED);

  CHECK(TrySlot(rig, "alice", 10, "IMAGE/JPEG").ok());
  CHECK(TrySlot(rig, "alice", 10, "application/pdf").ok());
  CHECK(TrySlot(rig, "alice", 10, "image/png; charset=\"x;y\"").ok());
  CHECK(TrySlot(rig, "alice", 10, "application/zip").code == v1::ERR_UNSUPPORTED);
  CHECK(TrySlot(rig, "alice", 10, "text/plain").code == v1::ERR_UNSUPPORTED);
  CHECK(TrySlot(rig, "alice", 10, "imagepng").code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png\r\nX-Evil: 1").code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/").code == v1::ERR_BAD_REQUEST);

  CHECK(TrySlot(rig, "alice", 10, "image/png", std::string(64, 'a')).ok());
  CHECK(TrySlot(rig, "alice", 10, "image/png", std::string(64, 'A')).ok());  // upper case is accepted
  CHECK(TrySlot(rig, "alice", 10, "image/png", std::string(63, 'a')).code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png", std::string(64, 'g')).code == v1::ERR_BAD_REQUEST);

  CHECK(TrySlot(rig, "alice", 10, "image/png", "", "").code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png", "", std::string(256, 'n')).code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png", "", "a\nb").code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png", "", "\xff\xfe").code == v1::ERR_BAD_REQUEST);
  CHECK(TrySlot(rig, "alice", 10, "image/png", "", "../../etc/passwd").ok());  // a name, never a path

  // The quota counts created uploads and complete files: 600 + 600 fit, a third does not.
  v1::UploadSlot a = rig.Slot("alice", 600, "", "image/png");
  REQUIRE(rig.Post(a, 600).status == 201);
  v1::UploadSlot b = rig.Slot("alice", 600, "", "image/png");
  REQUIRE(rig.Post(b, 600).status == 201);
  CHECK(rig.QuotaUsed("alice") == 1200);
  CHECK(TrySlot(rig, "alice", 400).code == v1::ERR_QUOTA_EXCEEDED);
  CHECK(TrySlot(rig, "alice", 300).ok());
  CHECK(TrySlot(rig, "bob", 1000).ok());  // per user

  FilesRig off([](FilesOptions& o) { o.enabled = false; });
  CHECK(TrySlot(off, "alice", 10).code == v1::ERR_UNSUPPORTED);
}

TEST_CASE("files: a slot names its file, URL, token and expiry; the record waits for the upload") {
  FilesRig rig([](FilesOptions& o) { o.public_url = "https://chat.example.com:8443/"; });
  const v1::UploadSlot slot = rig.Slot("alice", 123, "", "image/PNG", "cat.png");
  CHECK(FileStore::ValidFileId(slot.file_id()));
  CHECK(slot.upload_url() == "https://chat.example.com:8443/files/v1/uploads");
  CHECK(slot.expires_ts() == rig.clock().UnixMillis() + 600'000);
  CHECK_FALSE(slot.token().empty());
  CHECK(slot.token().find_first_of("+/=") == std::string::npos);  // URL-safe
  const auto rec = rig.Record(slot.file_id());
  REQUIRE(rec);
  CHECK(rec->state() == store::FileRecord::UPLOADING);
  CHECK(rec->uploader() == "alice");
  CHECK(rec->name() == "cat.png");
  CHECK(rec->content_type() == "image/png");
  CHECK(rec->offset() == 0);
  CHECK_FALSE(rec->reserved());
  CHECK(rig.Rows(Fam::kFileGc) == 1);
  CHECK(rig.QuotaUsed("alice") == 0);  // reserved by the tus creation, not the slot

  const v1::FileAccess access = rig.files().Access("alice");
  CHECK(access.download_url_prefix() == "https://chat.example.com:8443/files/v1/");
  CHECK(access.expires_ts() == rig.clock().UnixMillis() + 300'000);

  FilesRig relative;
  CHECK(relative.Slot("alice", 5).upload_url() == "/files/v1/uploads");
  CHECK(relative.files().Access("bob").download_url_prefix() == "/files/v1/");
  CHECK(std::filesystem::file_size(relative.Dir("secret")) == 32);
  CHECK((std::filesystem::status(relative.Dir("secret")).permissions() & std::filesystem::perms::group_all) ==
        std::filesystem::perms::none);
}

TEST_CASE("files: tokens are signed, expire, and name their kind, user and file") {
  const std::string secret(32, 's');
  FileToken t{FileToken::kUpload, 5000, "alice", "f_0123"};
  const std::string text = SignFileToken(secret, t);
  FileToken out;
  CHECK(VerifyFileToken(secret, text, 4999, &out) == TokenCheck::kOk);
  CHECK(out.kind == FileToken::kUpload);
  CHECK(out.user == "alice");
  CHECK(out.file_id == "f_0123");
  CHECK(VerifyFileToken(secret, text, 5000, &out) == TokenCheck::kExpired);
  CHECK(VerifyFileToken(std::string(32, 'x'), text, 0, &out) == TokenCheck::kInvalid);  // another secret
  for (size_t i = 0; i < text.size(); ++i) {  // every single-character change is refused
    std::string bad = text;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    CHECK(VerifyFileToken(secret, bad, 0, &out) == TokenCheck::kInvalid);
  }
  CHECK(VerifyFileToken(secret, text.substr(1), 0, &out) == TokenCheck::kInvalid);
  CHECK(VerifyFileToken(secret, "", 0, &out) == TokenCheck::kInvalid);
  CHECK(VerifyFileToken(secret, "!!!!", 0, &out) == TokenCheck::kInvalid);
  CHECK(VerifyFileToken(secret, std::string(10000, 'A'), 0, &out) == TokenCheck::kInvalid);

  // Through the HTTP side: a tampered token is a 401, an expired access token too, another file's a 403.
  FilesRig rig;
  const std::string id = rig.Upload("alice", Content(100));
  std::string token = rig.files().Access("alice").token();
  CHECK(rig.Call("GET", "/files/v1/{id}", id, {}, token).status == 200);
  std::string tampered = token;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'a' ? 'b' : 'a';
  const broker::AdminResponse r401 = rig.Call("GET", "/files/v1/{id}", id, {}, tampered);
  CHECK(r401.status == 401);
  CHECK(HeaderOf(r401, "WWW-Authenticate")->starts_with("Bearer"));
  CHECK(r401.body.find("\"unauthorized\"") != std::string::npos);
  CHECK(rig.Call("GET", "/files/v1/{id}", id, {}, "").status == 401);
  rig.clock().Advance(std::chrono::seconds(301));
  CHECK(rig.Call("GET", "/files/v1/{id}", id, {}, token).status == 401);

  const v1::UploadSlot a = rig.Slot("alice", 10);
  const v1::UploadSlot b = rig.Slot("alice", 10);
  REQUIRE(rig.Post(a, 10).status == 201);
  CHECK(rig.Head(a.file_id(), b.token()).status == 403);  // b's token for a's upload
  CHECK(rig.Head(a.file_id(), a.token()).status == 200);
  CHECK(rig.Head(a.file_id(), rig.files().Access("alice").token()).status == 401);  // not an upload token
  CHECK(rig.Call("GET", "/files/v1/{id}", id, {}, a.token()).status == 401);     // not a download token
  rig.clock().Advance(std::chrono::seconds(600));
  CHECK(rig.Head(a.file_id(), a.token()).status == 410);  // the slot (and its token) expired
}

TEST_CASE("files: downloads are for the uploader and members who can see a message referencing the file") {
  FilesRig rig;
  const std::string data = Content(5000);
  const std::string id = rig.Upload("alice", data, "", "image/png", "photo ü.png");
  rig.AddMember("g_1", "bob", 1);
  rig.AddMember("g_1", "carol", 10);  // joined after the message
  rig.AddMember("g_2", "erin", 1, /*min_seq=*/6);  // retention removed seq 5
  rig.AddRef(id, "g_1", 5);
  rig.AddRef(id, "g_2", 5);

  broker::AdminResponse r = rig.Get(id, "alice");
  REQUIRE(r.status == 200);
  CHECK(testing::BodyOf(r) == data);
  CHECK(r.stream_length == data.size());
  CHECK(r.body.empty());
  CHECK(r.content_type == "image/png");
  CHECK(HeaderOf(r, "ETag") == "\"" + ShaHex(data) + "\"");
  CHECK(HeaderOf(r, "Accept-Ranges") == "bytes");
  CHECK(HeaderOf(r, "X-Content-Type-Options") == "nosniff");
  CHECK(HeaderOf(r, "Content-Disposition") == "attachment; filename=\"photo __.png\"; filename*=UTF-8''photo%20%C3%BC.png");
  CHECK(HeaderOf(r, "Cache-Control") == "private, max-age=300");

  CHECK(rig.Get(id, "bob").status == 200);
  CHECK(rig.Get(id, "carol").status == 403);
  CHECK(rig.Get(id, "erin").status == 403);
  const broker::AdminResponse r403 = rig.Get(id, "dave");
  CHECK(r403.status == 403);
  CHECK(r403.body.find("\"forbidden\"") != std::string::npos);
  // A later message in the conversation carol can see: now she can.
  rig.AddRef(id, "g_1", 12);
  CHECK(rig.Get(id, "carol").status == 200);

  CHECK(rig.Get("f_00000000000000000000000000000000", "alice").status == 404);
  CHECK(rig.Get("../../secret", "alice").status == 404);
  CHECK(rig.Get("", "alice").status == 404);
  // An upload not finished is not downloadable, not even by its uploader.
  const v1::UploadSlot slot = rig.Slot("alice", 10);
  CHECK(rig.Get(slot.file_id(), "alice").status == 404);

  // The response reads from a descriptor opened at the request: deleting the blob meanwhile does not cut it.
  broker::AdminResponse live = rig.Get(id, "alice");
  REQUIRE(live.status == 200);
  std::filesystem::remove(rig.BlobPath(ShaHex(data)));
  CHECK(testing::BodyOf(live) == data);
}

TEST_CASE("files: Range, If-Range, If-None-Match and HEAD on downloads") {
  FilesRig rig;
  const std::string data = Content(1000, 7);
  const std::string id = rig.Upload("alice", data);
  const std::string etag = "\"" + ShaHex(data) + "\"";
  auto get = [&](testing::Headers h) { return rig.Get(id, "alice", std::move(h)); };

  broker::AdminResponse r = get({{"Range", "bytes=10-19"}});
  CHECK(r.status == 206);
  CHECK(HeaderOf(r, "Content-Range") == "bytes 10-19/1000");
  CHECK(testing::BodyOf(r) == data.substr(10, 10));
  r = get({{"Range", "bytes=990-"}});
  CHECK(r.status == 206);
  CHECK(testing::BodyOf(r) == data.substr(990));
  r = get({{"Range", "bytes=-5"}});
  CHECK(r.status == 206);
  CHECK(HeaderOf(r, "Content-Range") == "bytes 995-999/1000");
  CHECK(testing::BodyOf(r) == data.substr(995));
  r = get({{"Range", "bytes=-5000"}});  // a suffix longer than the file: all of it
  CHECK(r.status == 206);
  CHECK(testing::BodyOf(r) == data);
  r = get({{"Range", "bytes=900-99999999999999999999999"}});  // clamped
  CHECK(r.status == 206);
  CHECK(testing::BodyOf(r) == data.substr(900));
  r = get({{"Range", "bytes=1000-"}});
  CHECK(r.status == 416);
  CHECK(HeaderOf(r, "Content-Range") == "bytes */1000");
  CHECK(r.body.find("range_not_satisfiable") != std::string::npos);
  CHECK(get({{"Range", "bytes=-0"}}).status == 416);
  CHECK(get({{"Range", "bytes=99999999999999999999999-"}}).status == 416);
  CHECK(get({{"Range", "bytes=0-1,5-6"}}).status == 200);  // several ranges: the whole file
  CHECK(get({{"Range", "bytes=5-1"}}).status == 200);      // malformed: ignored
  CHECK(get({{"Range", "bytes=-1-2"}}).status == 200);
  CHECK(get({{"Range", "items=0-1"}}).status == 200);
  CHECK(get({{"Range", "bytes=+1-2"}}).status == 200);
  r = get({{"Range", "bytes=0-9"}, {"If-Range", etag}});
  CHECK(r.status == 206);
  r = get({{"Range", "bytes=0-9"}, {"If-Range", "\"other\""}});
  CHECK(r.status == 200);
  CHECK(testing::BodyOf(r) == data);
  CHECK(get({{"Range", "bytes=0-9"}, {"If-Range", "W/" + etag}}).status == 200);  // weak: never for If-Range

  r = get({{"If-None-Match", etag}});
  CHECK(r.status == 304);
  CHECK(!r.stream);
  CHECK(HeaderOf(r, "ETag") == etag);
  CHECK(get({{"If-None-Match", "\"a\", W/" + etag}}).status == 304);
  CHECK(get({{"If-None-Match", "*"}}).status == 304);
  CHECK(get({{"If-None-Match", "\"a\""}}).status == 200);

  // HEAD is the GET route (the server sends the head only).
  r = rig.Call("GET", "/files/v1/{id}", id, {}, rig.files().Access("alice").token());
  CHECK(r.stream_length == 1000);
}

TEST_CASE("files: a record's content type is re-checked at download") {
  FilesRig rig;
  const std::string id = rig.Upload("alice", Content(10), "", "text/html");
  auto rec = rig.Record(id);
  rec->set_content_type("text/html\r\nSet-Cookie: x=1");  // a record written by an older, laxer version
  storage::WriteBatch b;
  b.Put(Fam::kFiles, FileKey(id), rec->SerializeAsString());
  REQUIRE(rig.store().Write(b, storage::Sync::kSync).ok());
  CHECK(rig.Get(id, "alice").content_type == "application/octet-stream");
}

TEST_CASE("files: PinAttachments fills attachments from the record and refuses what the sender cannot share") {
  FilesRig rig([](FilesOptions& o) { o.public_url = "https://x.example"; });
  const std::string data = Content(321);
  const std::string id = rig.Upload("alice", data, ShaHex(data), "application/pdf", "doc.pdf");

  google::protobuf::RepeatedPtrField<v1::Attachment> atts;
  v1::Attachment* a = atts.Add();
  a->set_file_id(id);
  a->set_size(1);  // lies are overwritten
  a->set_content_type("text/html");
  a->set_sha256("00");
  a->set_url("https://evil.example");
  v1::Attachment* external = atts.Add();
  external->set_url("https://elsewhere.example/x");
  external->set_size(77);
  std::vector<std::string> pinned;
  FileError e = rig.files().PinAttachments("alice", &atts, &pinned);
  REQUIRE(e.ok());
  CHECK(pinned == std::vector<std::string>{id});
  CHECK(atts[0].size() == 321);
  CHECK(atts[0].content_type() == "application/pdf");
  CHECK(atts[0].sha256() == ShaHex(data));
  CHECK(atts[0].url() == "https://x.example/files/v1/" + id);
  CHECK(atts[0].name() == "doc.pdf");
  CHECK(atts[1].url() == "https://elsewhere.example/x");  // no file_id: left alone
  CHECK(atts[1].size() == 77);
  rig.files().Unpin(pinned);

  auto pin_one = [&](const std::string& user, const std::string& file_id) {
    google::protobuf::RepeatedPtrField<v1::Attachment> one;
    one.Add()->set_file_id(file_id);
    one[0].set_name("kept");
    std::vector<std::string> p;
    FileError err = rig.files().PinAttachments(user, &one, &p);
    if (err.ok()) {
      CHECK(one[0].name() == "kept");  // a name the sender gives stays
      rig.files().Unpin(p);
    } else {
      CHECK(p.empty());
    }
    return err.code;
  };
  CHECK(pin_one("bob", id) == v1::ERR_NOT_FOUND);  // not his, not shared with him
  rig.AddMember("g_1", "bob", 1);
  rig.AddRef(id, "g_1", 3);
  CHECK(pin_one("bob", id) == v1::OK);  // forwarding a file he can read
  CHECK(pin_one("alice", "f_ffffffffffffffffffffffffffffffff") == v1::ERR_NOT_FOUND);
  CHECK(pin_one("alice", "nope") == v1::OK);  // not one of this server's ids: the app's own storage, untouched
  const v1::UploadSlot slot = rig.Slot("alice", 10);
  CHECK(pin_one("alice", slot.file_id()) == v1::ERR_NOT_FOUND);  // not complete

  // An error after a file was pinned releases that pin: GC is free to collect it.
  const std::string lonely = rig.Upload("alice", Content(50, 3));
  google::protobuf::RepeatedPtrField<v1::Attachment> two;
  two.Add()->set_file_id(lonely);
  two.Add()->set_file_id(slot.file_id());
  std::vector<std::string> p;
  CHECK(rig.files().PinAttachments("alice", &two, &p).code == v1::ERR_NOT_FOUND);
  CHECK(p.empty());
  rig.clock().Advance(std::chrono::seconds(61));
  rig.files().CollectGarbage();
  CHECK_FALSE(rig.Record(lonely));
}

TEST_CASE("files: GC deletes unreferenced files after the grace, keeps referenced and pinned ones") {
  FilesRig rig;
  const std::string data = Content(2000, 5);
  const std::string sha = ShaHex(data);
  const std::string a = rig.Upload("alice", data);
  const std::string b = rig.Upload("bob", data);  // same content: one blob
  const std::string c = rig.Upload("alice", Content(300, 6));
  const std::string d = rig.Upload("alice", Content(400, 8));
  CHECK(rig.QuotaUsed("alice") == 2700);
  rig.AddRef(b, "g_1", 4);
  std::vector<std::string> pinned;
  google::protobuf::RepeatedPtrField<v1::Attachment> atts;
  atts.Add()->set_file_id(c);
  REQUIRE(rig.files().PinAttachments("alice", &atts, &pinned).ok());

  CHECK(rig.files().CollectGarbage() == 0);  // within the grace
  CHECK(rig.Record(a));
  rig.clock().Advance(std::chrono::seconds(61));
  CHECK(rig.files().CollectGarbage() == 2);  // a and d; b is referenced, c pinned
  CHECK_FALSE(rig.Record(a));
  CHECK_FALSE(rig.Record(d));
  CHECK(rig.Record(b));
  CHECK(rig.Record(c));
  CHECK(std::filesystem::exists(rig.BlobPath(sha)));  // b still uses it
  CHECK(rig.QuotaUsed("alice") == 300);
  CHECK(rig.QuotaUsed("bob") == 2000);
  CHECK(rig.Get(b, "bob").status == 200);

  // c: the send failed, so the pin goes without a reference; the next pass collects it.
  rig.files().Unpin(pinned);
  CHECK(rig.files().CollectGarbage() == 1);
  CHECK_FALSE(rig.Record(c));
  CHECK(rig.QuotaUsed("alice") == 0);

  // b: its message is recalled; the grace runs from then.
  rig.DropRef(b, "g_1", 4);
  CHECK(rig.files().CollectGarbage() == 0);
  rig.clock().Advance(std::chrono::seconds(30));
  CHECK(rig.files().CollectGarbage() == 0);
  CHECK(rig.Record(b));
  rig.clock().Advance(std::chrono::seconds(31));
  CHECK(rig.files().CollectGarbage() == 1);
  CHECK_FALSE(rig.Record(b));
  CHECK_FALSE(std::filesystem::exists(rig.BlobPath(sha)));
  CHECK(rig.QuotaUsed("bob") == 0);
  CHECK(rig.Rows(Fam::kFiles) == 0);
  CHECK(rig.Rows(Fam::kFileBlobs) == 0);
  CHECK(rig.Rows(Fam::kFileGc) == 0);
  CHECK(rig.Rows(Fam::kFileQuota) == 0);

  std::vector<metrics::Family> fams;
  rig.files().CollectMetrics(fams);
  CHECK(metrics::Sum(fams, "parley_files_gc_deleted_total", {{"kind", "file"}}) == 4);
  CHECK(metrics::Sum(fams, "parley_files_gc_deleted_total", {{"kind", "blob"}}) == 3);
  CHECK(metrics::Sum(fams, "parley_files", {{"state", "complete"}}) == 0);
  CHECK(metrics::Sum(fams, "parley_files_blobs") == 0);
}

TEST_CASE("files: a referenced file outlives its grace until the reference goes") {
  FilesRig rig;
  const std::string id = rig.Upload("alice", Content(100));
  rig.AddRef(id, "d_x", 2);
  rig.clock().Advance(std::chrono::hours(48));
  CHECK(rig.files().CollectGarbage() == 0);
  CHECK(rig.Rows(Fam::kFileGc) == 0);  // nothing left to look at until a recall schedules a check
  CHECK(rig.Record(id));
  rig.DropRef(id, "d_x", 2);
  rig.clock().Advance(std::chrono::seconds(61));
  CHECK(rig.files().CollectGarbage() == 1);
}

TEST_CASE("files: GC drops expired uploads with their bytes and quota; slots never created cost nothing") {
  FilesRig rig;
  const v1::UploadSlot slot = rig.Slot("alice", 1000);
  REQUIRE(rig.Post(slot, 1000).status == 201);
  REQUIRE(rig.Patch(slot.file_id(), slot.token(), 0, Content(400)).status == 204);
  const v1::UploadSlot unused = rig.Slot("alice", 1000);
  CHECK(rig.QuotaUsed("alice") == 1000);
  CHECK(std::filesystem::exists(rig.Dir("uploads/" + slot.file_id())));

  rig.clock().Advance(std::chrono::seconds(599));
  CHECK(rig.files().CollectGarbage() == 0);
  rig.clock().Advance(std::chrono::seconds(1));
  CHECK(rig.files().CollectGarbage() == 2);
  CHECK_FALSE(rig.Record(slot.file_id()));
  CHECK_FALSE(rig.Record(unused.file_id()));
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/" + slot.file_id())));
  CHECK(rig.QuotaUsed("alice") == 0);
  CHECK(rig.Rows(Fam::kFileGc) == 0);
  CHECK(rig.Head(slot.file_id(), slot.token()).status == 410);

  std::vector<metrics::Family> fams;
  rig.files().CollectMetrics(fams);
  CHECK(metrics::Sum(fams, "parley_files_uploads_total", {{"outcome", "expired"}}) == 2);
  CHECK(metrics::Sum(fams, "parley_files", {{"state", "uploading"}}) == 0);
}

TEST_CASE("files: a user holds at most kMaxOpenUploads unfinished uploads") {
  FilesRig rig;
  std::vector<v1::UploadSlot> slots;
  for (uint32_t i = 0; i < FileStore::kMaxOpenUploads; ++i) slots.push_back(rig.Slot("alice", 10));
  const FileError over = TrySlot(rig, "alice", 10);
  CHECK(over.code == v1::ERR_RATE_LIMITED);
  CHECK(over.retry_after_ms > 0);
  CHECK(TrySlot(rig, "bob", 10).ok());  // per user
  // Finishing one frees a place; so does an expiry.
  REQUIRE(rig.Post(slots[0], 10).status == 201);
  REQUIRE(rig.Patch(slots[0].file_id(), slots[0].token(), 0, Content(10)).status == 204);
  CHECK(TrySlot(rig, "alice", 10).ok());
  CHECK(TrySlot(rig, "alice", 10).code == v1::ERR_RATE_LIMITED);
  rig.clock().Advance(std::chrono::seconds(600));
  rig.files().CollectGarbage();
  CHECK(TrySlot(rig, "alice", 10).ok());
}

TEST_CASE("files: the GC thread runs passes until stopped") {
  FilesRig rig([](FilesOptions& o) { o.gc_interval = std::chrono::seconds(1); });
  const v1::UploadSlot slot = rig.Slot("alice", 10);
  rig.clock().Advance(std::chrono::seconds(601));
  rig.files().Start();
  for (int i = 0; i < 40 && rig.Record(slot.file_id()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rig.files().Stop();
  CHECK_FALSE(rig.Record(slot.file_id()));
  rig.files().Stop();  // idempotent
}

TEST_CASE("files: Open moves uploads completed just before a crash and removes strays") {
  FilesRig rig;
  const std::string data = Content(700, 9);
  const std::string sha = ShaHex(data);
  // A crash after the COMPLETE record was written, before the rename: the bytes are still in uploads/.
  const v1::UploadSlot slot = rig.Slot("alice", data.size());
  auto rec = rig.Record(slot.file_id());
  rec->set_state(store::FileRecord::COMPLETE);
  rec->set_sha256(sha);
  rec->set_offset(data.size());
  rec->set_reserved(true);
  storage::WriteBatch b;
  b.Put(Fam::kFiles, FileKey(slot.file_id()), rec->SerializeAsString());
  b.Put(Fam::kFileBlobs, FileBlobKey(sha, slot.file_id()), "");
  REQUIRE(rig.store().Write(b, storage::Sync::kSync).ok());
  {
    std::ofstream(rig.Dir("uploads/" + slot.file_id()), std::ios::binary) << data;
    std::ofstream(rig.Dir("uploads/f_junk"), std::ios::binary) << "x";
    std::ofstream(rig.Dir("uploads/f_11111111111111111111111111111111"), std::ios::binary) << "no record";
    std::filesystem::create_directories(rig.Dir("blobs/ab"));
    std::ofstream(rig.Dir("blobs/ab/" + std::string(64, 'a').replace(0, 2, "ab")), std::ios::binary) << "orphan";
  }
  rig.Restart();
  CHECK(testing::ReadFile(rig.BlobPath(sha)) == data);
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/" + slot.file_id())));
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/f_junk")));
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/f_11111111111111111111111111111111")));
  CHECK(std::filesystem::is_empty(rig.Dir("blobs/ab")));
  CHECK(testing::BodyOf(rig.Get(slot.file_id(), "alice")) == data);

  std::vector<metrics::Family> fams;
  rig.files().CollectMetrics(fams);
  CHECK(metrics::Sum(fams, "parley_files", {{"state", "complete"}}) == 1);
  CHECK(metrics::Sum(fams, "parley_files_bytes", {{"kind", "stored"}}) == 700);
}

TEST_CASE("files: a secret that is not 32 bytes stops Open; an existing one is kept") {
  FilesRig rig;
  const std::string secret = testing::ReadFile(rig.Dir("secret"));
  const v1::FileAccess access = rig.files().Access("alice");
  rig.Restart();
  CHECK(testing::ReadFile(rig.Dir("secret")) == secret);
  const std::string id = rig.Upload("alice", Content(10));
  CHECK(rig.Call("GET", "/files/v1/{id}", id, {}, access.token()).status == 200);  // survives the restart

  std::ofstream(rig.Dir("secret"), std::ios::binary | std::ios::trunc) << "short";
  storage::MemStore& s = rig.store();
  ManualClock clock;
  FileStore other(rig.options(), &s, Families(0), clock);
  CHECK_FALSE(other.Open().ok());
}

}  // namespace
}  // namespace parley::im
