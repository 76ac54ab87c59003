// The tus 1.0 upload flow through the file store's handlers (called directly through a router double):
// discovery, creation, offsets, chunks, lost links, concurrency, checksums, completion and termination.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "base/metrics.h"
#include "files_rig.h"

namespace parley::im {
namespace {

using broker::AdminResponse;
using testing::Content;
using testing::FilesRig;
using testing::HeaderOf;
using testing::ShaHex;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string B64(std::string_view raw) {  // standard base64 with padding, for Upload-Checksum
  static const char kA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < raw.size(); i += 3) {
    const uint32_t v = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8) | uint8_t(raw[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kA[(v >> k) & 63]);
  }
  if (i + 1 == raw.size()) {
    const uint32_t v = uint8_t(raw[i]) << 16;
    out += {kA[(v >> 18) & 63], kA[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == raw.size()) {
    const uint32_t v = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8);
    out += {kA[(v >> 18) & 63], kA[(v >> 12) & 63], kA[(v >> 6) & 63], '='};
  }
  return out;
}

std::string ChecksumOf(std::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return "sha256 " + B64(h.Digest());
}

TEST_CASE("tus: OPTIONS advertises the version, extensions, max size and checksum algorithm") {
  FilesRig rig;
  const AdminResponse r = rig.Call("OPTIONS", "/files/v1/uploads", "", {});
  CHECK(r.status == 204);
  CHECK(HeaderOf(r, "Tus-Resumable") == "1.0.0");
  CHECK(HeaderOf(r, "Tus-Version") == "1.0.0");
  CHECK(HeaderOf(r, "Tus-Extension") == "creation,termination,checksum,expiration");
  CHECK(HeaderOf(r, "Tus-Max-Size") == std::to_string(1 << 20));
  CHECK(HeaderOf(r, "Tus-Checksum-Algorithm") == "sha256");
  CHECK(HeaderOf(r, "Access-Control-Allow-Origin") == "*");
  CHECK(rig.router().max_bodies.at("PATCH /files/v1/uploads/{id}") == uint64_t{1} << 20);
  CHECK(rig.router().plain.contains("OPTIONS /files/v1/{id}"));
}

TEST_CASE("tus: creation is idempotent, checks Upload-Length and reserves quota (413 past it)") {
  FilesRig rig([](FilesOptions& o) {
    o.user_quota = 1000;
    o.public_url = "https://h.example:8443";
  });
  // Slots only check that the file fits now; the creation reserves.
  const v1::UploadSlot slot = rig.Slot("alice", 600);
  const v1::UploadSlot other = rig.Slot("alice", 300);
  const v1::UploadSlot big = rig.Slot("alice", 500);
  AdminResponse r = rig.Post(slot, 600);
  CHECK(r.status == 201);
  const std::string location = "https://h.example:8443/files/v1/uploads/" + slot.file_id();
  CHECK(HeaderOf(r, "Location") == location);
  CHECK(HeaderOf(r, "Tus-Resumable") == "1.0.0");
  CHECK(HeaderOf(r, "Upload-Expires")->ends_with(" GMT"));
  CHECK(rig.QuotaUsed("alice") == 600);
  r = rig.Post(slot, 600);  // again (the client lost the answer): the same upload, no second reservation
  CHECK(r.status == 201);
  CHECK(HeaderOf(r, "Location") == location);
  CHECK(rig.QuotaUsed("alice") == 600);

  CHECK(rig.Post(other, 300).status == 201);
  r = rig.Post(big, 500);
  CHECK(r.status == 413);
  CHECK(r.body.find("quota_exceeded") != std::string::npos);
  CHECK(rig.QuotaUsed("alice") == 900);

  const v1::UploadSlot s = rig.Slot("bob", 100);
  CHECK(rig.Post(s, 99).status == 400);                 // not the slot's size
  CHECK(rig.Post(s, std::nullopt).status == 400);       // no Upload-Length
  r = rig.Post(s, uint64_t{1} << 40);                   // past the max size
  CHECK(r.status == 413);
  CHECK(r.body.find("too_large") != std::string::npos);
  CHECK(rig.Call("POST", "/files/v1/uploads", "", {{"Tus-Resumable", "1.0.0"}, {"Upload-Length", "-5"}}, s.token())
            .status == 400);
  CHECK(rig.Call("POST", "/files/v1/uploads", "",
                 {{"Tus-Resumable", "1.0.0"}, {"Upload-Length", "99999999999999999999999"}}, s.token())
            .status == 400);
  CHECK(rig.Call("POST", "/files/v1/uploads", "", {{"Tus-Resumable", "1.0.0"}, {"Upload-Defer-Length", "1"}},
                 s.token())
            .status == 400);
  r = rig.Call("POST", "/files/v1/uploads", "", {{"Upload-Length", "100"}}, s.token());
  CHECK(r.status == 412);
  CHECK(HeaderOf(r, "Tus-Version") == "1.0.0");
  CHECK(rig.Call("POST", "/files/v1/uploads", "", {{"Tus-Resumable", "1.0.0"}, {"Upload-Length", "100"}}, "junk")
            .status == 401);
  CHECK(rig.QuotaUsed("bob") == 0);

  // HEAD and PATCH need the creation first.
  CHECK(rig.Head(s.file_id(), s.token()).status == 404);
  CHECK(rig.Patch(s.file_id(), s.token(), 0, "x").status == 404);
}

TEST_CASE("tus: PATCH in chunks, HEAD offsets, completion into a content blob") {
  FilesRig rig;
  const std::string data = Content(100'000, 2);
  const std::string sha = ShaHex(data);
  const v1::UploadSlot slot = rig.Slot("alice", data.size(), sha, "image/jpeg", "big.jpg");
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, data.size()).status == 201);
  CHECK(rig.Offset(id, slot.token()) == 0);

  AdminResponse r = rig.Patch(id, slot.token(), 0, std::string_view(data).substr(0, 30'000), 1000);
  CHECK(r.status == 204);
  CHECK(HeaderOf(r, "Upload-Offset") == "30000");
  CHECK(HeaderOf(r, "Tus-Resumable") == "1.0.0");
  r = rig.Head(id, slot.token());
  CHECK(r.status == 200);
  CHECK(HeaderOf(r, "Upload-Offset") == "30000");
  CHECK(HeaderOf(r, "Upload-Length") == "100000");
  CHECK(HeaderOf(r, "Cache-Control") == "no-store");
  CHECK(rig.Record(id)->offset() == 30'000);

  // Refusals leave the offset alone.
  r = rig.Patch(id, slot.token(), 20'000, "stale");
  CHECK(r.status == 409);
  CHECK(HeaderOf(r, "Upload-Offset") == "30000");
  {
    broker::AdminRequest req;
    req.method = "PATCH";
    req.params["id"] = id;
    req.headers = {{"Tus-Resumable", "1.0.0"},
                   {"Content-Type", "application/json"},
                   {"Upload-Offset", "30000"},
                   {"Authorization", "Bearer " + slot.token()}};
    broker::StreamStart s = rig.router().streaming.at("PATCH /files/v1/uploads/{id}")(req);
    REQUIRE(s.response);
    CHECK(s.response->status == 415);
    req.headers[0].second = "0.2.2";
    s = rig.router().streaming.at("PATCH /files/v1/uploads/{id}")(req);
    CHECK(s.response->status == 412);
    CHECK(HeaderOf(*s.response, "Tus-Version") == "1.0.0");
  }
  CHECK(rig.Patch(id, slot.token(), 30'000, std::string_view(data).substr(30'000, 1), 1, {{"Upload-Offset", "-1"}})
            .status == 204);  // the first Upload-Offset counts
  CHECK(rig.Offset(id, slot.token()) == 30'001);
  // The body may not go past the length: announced (at once) or streamed (chunked: at the byte).
  CHECK(rig.Patch(id, slot.token(), 30'001, std::string(70'000, 'z')).status == 413);
  {
    broker::StreamStart s = rig.StartPatch(id, slot.token(), 30'001);  // no Content-Length
    REQUIRE(s.sink);
    CHECK(s.sink->Write(Bytes(std::string_view(data).substr(30'001, 60'000))));
    CHECK_FALSE(s.sink->Write(Bytes(std::string(10'000, 'z'))));
    r = s.sink->Finish();
    CHECK(r.status == 413);
    CHECK(HeaderOf(r, "Upload-Offset") == "30001");  // that PATCH counted for nothing
  }
  CHECK(rig.Offset(id, slot.token()) == 30'001);
  CHECK(std::filesystem::file_size(rig.Dir("uploads/" + id)) == 30'001);

  r = rig.Patch(id, slot.token(), 30'001, std::string_view(data).substr(30'001), 777);
  CHECK(r.status == 204);
  CHECK(HeaderOf(r, "Upload-Offset") == "100000");
  const auto rec = rig.Record(id);
  CHECK(rec->state() == store::FileRecord::COMPLETE);
  CHECK(rec->sha256() == sha);
  CHECK(rec->size() == data.size());
  CHECK(testing::ReadFile(rig.BlobPath(sha)) == data);
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/" + id)));
  CHECK(rig.Offset(id, slot.token()) == 100'000);  // HEAD after completion: all there
  CHECK(rig.Patch(id, slot.token(), 100'000, "").status == 204);
  CHECK(rig.Patch(id, slot.token(), 100'000, "more").status == 413);
  CHECK(testing::BodyOf(rig.Get(id, "alice")) == data);
}

TEST_CASE("tus: a lost link keeps what arrived; the next PATCH resumes from the synced offset") {
  FilesRig rig;
  const std::string data = Content(50'000, 3);
  const v1::UploadSlot slot = rig.Slot("alice", data.size(), ShaHex(data));
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, data.size()).status == 201);

  broker::StreamStart s = rig.StartPatch(id, slot.token(), 0, data.size());
  REQUIRE(s.sink);
  CHECK(s.sink->Write(Bytes(std::string_view(data).substr(0, 12'345))));
  CHECK(s.sink->Write(Bytes(std::string_view(data).substr(12'345, 5))));
  s.sink->Abort();  // the phone went into a tunnel
  s.sink.reset();
  CHECK(rig.Offset(id, slot.token()) == 12'350);
  CHECK(rig.Record(id)->offset() == 12'350);

  // It comes back with the offset HEAD gave it.
  AdminResponse r = rig.Patch(id, slot.token(), 12'350, std::string_view(data).substr(12'350, 20'000));
  CHECK(r.status == 204);
  // A crash: bytes past the recorded offset (written, never recorded) and a process without the running hash.
  {
    std::ofstream f(rig.Dir("uploads/" + id), std::ios::binary | std::ios::app);
    f << "garbage that was never acknowledged";
  }
  rig.Restart();
  CHECK(rig.Offset(id, slot.token()) == 32'350);
  r = rig.Patch(id, slot.token(), 32'350, std::string_view(data).substr(32'350));
  CHECK(r.status == 204);  // the sha256 matches: the garbage was cut and the hash rebuilt from the file
  CHECK(rig.Record(id)->state() == store::FileRecord::COMPLETE);
  CHECK(testing::BodyOf(rig.Get(id, "alice")) == data);
}

TEST_CASE("tus: one PATCH at a time; a quiet one is taken over by the reconnecting client") {
  FilesRig rig;
  const std::string data = Content(10'000, 4);
  const v1::UploadSlot slot = rig.Slot("alice", data.size());
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, data.size()).status == 201);

  broker::StreamStart first = rig.StartPatch(id, slot.token(), 0, data.size());
  REQUIRE(first.sink);
  CHECK(first.sink->Write(Bytes(std::string_view(data).substr(0, 4000))));
  AdminResponse r = rig.Patch(id, slot.token(), 0, data);
  CHECK(r.status == 409);  // the first one is alive
  CHECK(r.body.find("in progress") != std::string::npos);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, {{"Tus-Resumable", "1.0.0"}}, slot.token()).status == 409);
  CHECK(rig.Offset(id, slot.token()) == 0);  // nothing synced yet

  // Quiet for 2 s: HEAD takes over, syncs what came, and reports it.
  rig.clock().Advance(std::chrono::seconds(3));
  CHECK(rig.Offset(id, slot.token()) == 4000);
  CHECK_FALSE(first.sink->Write(Bytes("late")));  // the old request is done for
  r = first.sink->Finish();
  CHECK(r.status == 409);
  first.sink->Abort();  // and nothing more happens
  first.sink.reset();

  broker::StreamStart second = rig.StartPatch(id, slot.token(), 4000, 6000);
  REQUIRE(second.sink);
  CHECK(second.sink->Write(Bytes(std::string_view(data).substr(4000, 1000))));
  rig.clock().Advance(std::chrono::seconds(5));
  // A PATCH takes over too (here with an offset that was right before: 409 with the new one).
  r = rig.Patch(id, slot.token(), 4000, std::string_view(data).substr(4000));
  CHECK(r.status == 409);
  CHECK(HeaderOf(r, "Upload-Offset") == "5000");
  second.sink.reset();  // destroyed without Finish or Abort: nothing changes
  r = rig.Patch(id, slot.token(), 5000, std::string_view(data).substr(5000));
  CHECK(r.status == 204);
  CHECK(testing::BodyOf(rig.Get(id, "alice")) == data);
}

TEST_CASE("tus: a wrong sha256 is a 460 and the upload starts again at 0") {
  FilesRig rig;
  const std::string data = Content(3000, 5);
  const v1::UploadSlot slot = rig.Slot("alice", data.size(), ShaHex(Content(3000, 6)));
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, data.size()).status == 201);
  REQUIRE(rig.Patch(id, slot.token(), 0, std::string_view(data).substr(0, 1000)).status == 204);
  AdminResponse r = rig.Patch(id, slot.token(), 1000, std::string_view(data).substr(1000));
  CHECK(r.status == 460);
  CHECK(r.body.find("checksum_mismatch") != std::string::npos);
  CHECK(HeaderOf(r, "Upload-Offset") == "0");
  CHECK(rig.Offset(id, slot.token()) == 0);
  CHECK(rig.Record(id)->state() == store::FileRecord::UPLOADING);
  CHECK(std::filesystem::file_size(rig.Dir("uploads/" + id)) == 0);
  // The right bytes now.
  const std::string right = Content(3000, 6);
  CHECK(rig.Patch(id, slot.token(), 0, right).status == 204);
  CHECK(testing::BodyOf(rig.Get(id, "alice")) == right);

  std::vector<metrics::Family> fams;
  rig.files().CollectMetrics(fams);
  CHECK(metrics::Sum(fams, "parley_files_uploads_total", {{"outcome", "checksum_mismatch"}}) == 1);
  CHECK(metrics::Sum(fams, "parley_files_uploads_total", {{"outcome", "completed"}}) == 1);
}

TEST_CASE("tus: Upload-Checksum verifies each chunk; a bad one is dropped whole") {
  FilesRig rig;
  const std::string data = Content(8000, 8);
  const v1::UploadSlot slot = rig.Slot("alice", data.size(), ShaHex(data));
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, data.size()).status == 201);
  const std::string_view c1 = std::string_view(data).substr(0, 3000);
  CHECK(rig.Patch(id, slot.token(), 0, c1, 500, {{"Upload-Checksum", ChecksumOf(c1)}}).status == 204);
  const std::string_view c2 = std::string_view(data).substr(3000);
  AdminResponse r = rig.Patch(id, slot.token(), 3000, c2, 500, {{"Upload-Checksum", ChecksumOf("other")}});
  CHECK(r.status == 460);
  CHECK(HeaderOf(r, "Upload-Offset") == "3000");
  CHECK(rig.Offset(id, slot.token()) == 3000);
  CHECK(rig.Patch(id, slot.token(), 3000, c2, 500, {{"Upload-Checksum", "md5 AAAA"}}).status == 400);
  CHECK(rig.Patch(id, slot.token(), 3000, c2, 500, {{"Upload-Checksum", "sha256 !!"}}).status == 400);
  CHECK(rig.Patch(id, slot.token(), 3000, c2, 500, {{"Upload-Checksum", "sha256"}}).status == 400);
  // A checksummed chunk cut short by a lost link cannot be verified: none of it counts.
  broker::StreamStart s = rig.StartPatch(id, slot.token(), 3000, c2.size(), {{"Upload-Checksum", ChecksumOf(c2)}});
  REQUIRE(s.sink);
  CHECK(s.sink->Write(Bytes(c2.substr(0, 100))));
  s.sink->Abort();
  CHECK(rig.Offset(id, slot.token()) == 3000);
  // The dropped chunks did not spoil the running hash: the whole file still matches its sha256.
  CHECK(rig.Patch(id, slot.token(), 3000, c2, 500, {{"Upload-Checksum", ChecksumOf(c2)}}).status == 204);
  CHECK(rig.Record(id)->state() == store::FileRecord::COMPLETE);
}

TEST_CASE("tus: identical uploads share one blob; deleting one keeps it for the other") {
  FilesRig rig;
  const std::string data = Content(4096, 9);
  const std::string sha = ShaHex(data);
  const std::string a = rig.Upload("alice", data);
  const std::string b = rig.Upload("bob", data, sha);
  CHECK(a != b);
  CHECK(rig.Rows(Fam::kFileBlobs) == 2);
  size_t blobs = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(rig.Dir("blobs")))
    blobs += e.is_regular_file() ? 1 : 0;
  CHECK(blobs == 1);
  CHECK(std::filesystem::is_empty(rig.Dir("uploads")));
  std::vector<metrics::Family> fams;
  rig.files().CollectMetrics(fams);
  CHECK(metrics::Sum(fams, "parley_files_uploads_total", {{"outcome", "deduplicated"}}) == 1);
  CHECK(metrics::Sum(fams, "parley_files_bytes", {{"kind", "logical"}}) == 8192);
  CHECK(metrics::Sum(fams, "parley_files_bytes", {{"kind", "stored"}}) == 4096);
  CHECK(metrics::Sum(fams, "parley_files_blobs") == 1);

  rig.clock().Advance(std::chrono::seconds(61));
  rig.AddRef(b, "g_9", 1);
  CHECK(rig.files().CollectGarbage() == 1);
  CHECK(testing::BodyOf(rig.Get(b, "bob")) == data);
}

TEST_CASE("tus: termination frees the bytes and the quota") {
  FilesRig rig;
  const v1::UploadSlot slot = rig.Slot("alice", 5000);
  const std::string& id = slot.file_id();
  REQUIRE(rig.Post(slot, 5000).status == 201);
  REQUIRE(rig.Patch(id, slot.token(), 0, Content(2000)).status == 204);
  CHECK(rig.QuotaUsed("alice") == 5000);
  const testing::Headers tus = {{"Tus-Resumable", "1.0.0"}};
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, tus, "bad").status == 401);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, {}, slot.token()).status == 412);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, tus, slot.token()).status == 204);
  CHECK(rig.QuotaUsed("alice") == 0);
  CHECK_FALSE(rig.Record(id));
  CHECK_FALSE(std::filesystem::exists(rig.Dir("uploads/" + id)));
  CHECK(rig.Rows(Fam::kFileGc) == 0);
  CHECK(rig.Head(id, slot.token()).status == 404);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, tus, slot.token()).status == 404);

  // A complete file: deleted unless a message references it.
  const v1::UploadSlot s2 = rig.Slot("alice", 10);
  REQUIRE(rig.Post(s2, 10).status == 201);
  REQUIRE(rig.Patch(s2.file_id(), s2.token(), 0, Content(10)).status == 204);
  rig.AddRef(s2.file_id(), "g_1", 1);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", s2.file_id(), tus, s2.token()).status == 409);
  rig.DropRef(s2.file_id(), "g_1", 1);
  CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", s2.file_id(), tus, s2.token()).status == 204);
  CHECK(rig.Rows(Fam::kFileBlobs) == 0);
  CHECK(rig.QuotaUsed("alice") == 0);
}

TEST_CASE("tus: ids from clients are checked before anything touches the disk") {
  FilesRig rig;
  const v1::UploadSlot slot = rig.Slot("alice", 10);
  REQUIRE(rig.Post(slot, 10).status == 201);
  for (const std::string id : {"../secret", "f_../../x", "", "F_00000000000000000000000000000000", "f_0"}) {
    CHECK(rig.Head(id, slot.token()).status == 404);
    CHECK(rig.Patch(id, slot.token(), 0, "x").status == 404);
    CHECK(rig.Call("DELETE", "/files/v1/uploads/{id}", id, {{"Tus-Resumable", "1.0.0"}}, slot.token()).status == 404);
  }
  CHECK(rig.Patch(slot.file_id(), slot.token(), 0, "x", 1, {}).status == 204);
  CHECK(rig.Call("HEAD", "/files/v1/uploads/{id}", slot.file_id(), {{"Tus-Resumable", "1.0.0"}},
                 "Bearer " + slot.token()).status == 401);  // "Bearer Bearer ..."
  broker::AdminRequest q;
  q.method = "HEAD";
  q.params["id"] = slot.file_id();
  q.headers = {{"Tus-Resumable", "1.0.0"}};
  q.query["token"] = slot.token();  // the token may come in the query too
  CHECK(rig.router().plain.at("HEAD /files/v1/uploads/{id}")(q).status == 200);
}

}  // namespace
}  // namespace parley::im
