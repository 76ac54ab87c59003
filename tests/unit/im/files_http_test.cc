// The file store's HTTP helpers (header parsing), and uploads and downloads through a real HttpServer on
// 127.0.0.1 port 0 driven by plain sockets: a tus upload cut off mid-body and resumed, a Range download.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "broker/net/http_server.h"
#include "files_rig.h"
#include "im/files_http.h"

namespace parley::im {
namespace {

using namespace files_detail;
using testing::Content;
using testing::FilesRig;
using testing::ShaHex;

TEST_CASE("files http: ParseRange") {
  ByteRange r;
  CHECK(ParseRange("bytes=0-0", 10, &r) == RangeResult::kPartial);
  CHECK((r.first == 0 && r.last == 0));
  CHECK(ParseRange("bytes=2-", 10, &r) == RangeResult::kPartial);
  CHECK((r.first == 2 && r.last == 9));
  CHECK(ParseRange("BYTES=2-20", 10, &r) == RangeResult::kPartial);
  CHECK((r.first == 2 && r.last == 9));
  CHECK(ParseRange("bytes=-3", 10, &r) == RangeResult::kPartial);
  CHECK((r.first == 7 && r.last == 9));
  CHECK(ParseRange("bytes=-30", 10, &r) == RangeResult::kPartial);
  CHECK((r.first == 0 && r.last == 9));
  CHECK(ParseRange("bytes=9-9", 10, &r) == RangeResult::kPartial);
  CHECK(ParseRange("bytes=10-", 10, &r) == RangeResult::kUnsatisfiable);
  CHECK(ParseRange("bytes=-0", 10, &r) == RangeResult::kUnsatisfiable);
  CHECK(ParseRange("bytes=18446744073709551615-", 10, &r) == RangeResult::kUnsatisfiable);
  CHECK(ParseRange("bytes=184467440737095516150000-", 10, &r) == RangeResult::kUnsatisfiable);
  for (const char* ignored : {"bytes=", "bytes=-", "bytes=a-b", "bytes=3-2", "bytes=0-1,2-3", "bytes 0-1",
                              "bits=0-1", "", "bytes=0x1-2", "bytes=1--2", "bytes= 1-2x", "bytes=-+1"})
    CHECK_MESSAGE(ParseRange(ignored, 10, &r) == RangeResult::kWhole, ignored);
}

TEST_CASE("files http: content types, dispositions, numbers, entity tags, tokens") {
  std::string t;
  CHECK(NormalizeContentType("Image/PNG", &t));
  CHECK(t == "image/png");
  CHECK(NormalizeContentType("text/plain;Charset=UTF-8", &t));
  CHECK(t == "text/plain; charset=UTF-8");
  CHECK(NormalizeContentType("text/plain; a=\"q;\\\"x\"; b=c", &t));
  CHECK(BareType(t) == "text/plain");
  for (const char* bad : {"", "text", "/plain", "text/", "te xt/plain", "text/plain; a", "text/plain; a=\"x",
                          "text/plain\r\nX: y", "text/plain; a=b c", "text/pl\xc3\xa4in",
                          "a/b; x=\"\\"})  // the last: a quoted value ending in a lone escape
    CHECK_MESSAGE(!NormalizeContentType(bad, &t), bad);
  CHECK(!NormalizeContentType("a/" + std::string(300, 'b'), &t));
  CHECK(SafeContentType("nonsense") == "application/octet-stream");
  CHECK(TypeAllowed("image/png", {}));
  CHECK(TypeAllowed("image/png", {"Image/*"}));
  CHECK(TypeAllowed("application/pdf", {"image/*", "application/pdf"}));
  CHECK(TypeAllowed("video/mp4", {"*/*"}));
  CHECK_FALSE(TypeAllowed("imagex/png", {"image/*"}));
  CHECK_FALSE(TypeAllowed("application/pdfx", {"application/pdf"}));

  CHECK(ContentDisposition("a b\"c\\d%.txt") ==
        "attachment; filename=\"a b_c_d_.txt\"; filename*=UTF-8''a%20b%22c%5Cd%25.txt");
  CHECK(ContentDisposition("\xe6\x96\x87.pdf") == "attachment; filename=\"___.pdf\"; filename*=UTF-8''%E6%96%87.pdf");

  uint64_t v = 0;
  CHECK(ParseUint("0", &v));
  CHECK(ParseUint("18446744073709551614", &v));
  CHECK(v == 18446744073709551614ull);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "18446744073709551615", "99999999999999999999999"})
    CHECK_MESSAGE(!ParseUint(bad, &v), bad);

  CHECK(NoneMatchHits("\"x\"", "\"x\""));
  CHECK(NoneMatchHits(" \"a\" , W/\"x\"", "\"x\""));
  CHECK_FALSE(NoneMatchHits("\"a\", \"b\"", "\"x\""));
  CHECK_FALSE(NoneMatchHits("", "\"x\""));
  CHECK(IfRangeHits("\"x\"", "\"x\""));
  CHECK_FALSE(IfRangeHits("W/\"x\"", "\"x\""));
  CHECK_FALSE(IfRangeHits("Sun, 06 Nov 1994 08:49:37 GMT", "\"x\""));

  broker::AdminRequest r;
  r.headers = {{"authorization", "bearer   abc "}};
  CHECK(BearerToken(r) == "abc");
  r.headers = {{"Authorization", "Basic abc"}};
  r.query["token"] = "q";
  CHECK(BearerToken(r) == "");  // an Authorization of another scheme is not overridden by the query
  r.headers.clear();
  CHECK(BearerToken(r) == "q");
  CHECK(HttpDate(784111777000) == "Sun, 06 Nov 1994 08:49:37 GMT");

  std::string raw;
  CHECK(Base64UrlDecode(Base64UrlEncode(std::string("\xff\xfe\0x", 4)), &raw));
  CHECK(raw == std::string("\xff\xfe\0x", 4));
  CHECK_FALSE(Base64UrlDecode("A", &raw));
  CHECK_FALSE(Base64UrlDecode("AB", &raw));  // non-zero trailing bits
  CHECK(Base64Decode("YWJj", &raw));
  CHECK(raw == "abc");
  CHECK(Base64Decode("YQ==", &raw));
  CHECK(raw == "a");
  CHECK_FALSE(Base64Decode("YQ=", &raw));
  CHECK_FALSE(Base64Decode("Y===", &raw));
}

// ---- through a real server -----------------------------------------------------------------------------

struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string> Header(std::string_view name) const {
    broker::AdminRequest probe;
    probe.headers = headers;
    if (auto v = probe.Header(name)) return std::string(*v);
    return std::nullopt;
  }
};

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  ~Client() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  // One response; `head_only` for a HEAD request (no body whatever Content-Length says).
  Reply Read(bool head_only = false) {
    Reply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) REQUIRE(Fill());
    std::string_view head = std::string_view(buf_).substr(0, end);
    r.status = std::stoi(std::string(head.substr(9, 3)));
    head.remove_prefix(std::min(head.size(), head.find("\r\n") + 2));
    while (!head.empty()) {
      const size_t eol = head.find("\r\n");
      const std::string_view line = head.substr(0, eol);
      const size_t colon = line.find(':');
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
      head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    }
    buf_.erase(0, end + 4);
    size_t length = 0;
    if (auto cl = r.Header("Content-Length"); cl && !head_only) length = std::stoull(*cl);
    while (buf_.size() < length) REQUIRE(Fill());
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }
  Reply Roundtrip(std::string_view request, bool head_only = false) {
    Send(request);
    return Read(head_only);
  }

 private:
  bool Fill() {
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

std::string Request(std::string_view method, std::string_view path, std::string_view token,
                    std::vector<std::string> headers = {}, std::string_view body = "") {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: files.test\r\n";
  if (!token.empty()) r += "Authorization: Bearer " + std::string(token) + "\r\n";
  for (const std::string& h : headers) r += h + "\r\n";
  r += "\r\n";
  r += body;
  return r;
}

TEST_CASE("files http: a tus upload cut off mid-body resumes, and downloads range through a real server") {
  FilesRig rig([](FilesOptions& o) { o.user_quota = 300'000; });
  net::HttpServerOptions so;
  so.name = "files";
  so.port = 0;
  so.public_paths.clear();
  so.request_timeout = std::chrono::seconds(5);
  net::HttpServer server(so);
  rig.files().AddRoutes(server);
  REQUIRE(server.Listen().ok());
  server.Start();
  const uint16_t port = server.port();

  const std::string data = Content(200'000, 11);
  const v1::UploadSlot slot = rig.Slot("alice", data.size(), ShaHex(data), "image/png", "cat.png");
  const std::string& token = slot.token();
  const v1::UploadSlot big = rig.Slot("alice", 100'001);  // fits now; not once the first one is created
  Client c(port);
  Reply r = c.Roundtrip(Request("OPTIONS", "/files/v1/uploads", ""));
  CHECK(r.status == 204);
  CHECK(r.Header("Tus-Version") == "1.0.0");
  r = c.Roundtrip(Request("POST", slot.upload_url(), token,
                          {"Tus-Resumable: 1.0.0", "Upload-Length: " + std::to_string(data.size()),
                           "Upload-Metadata: filename Y2F0LnBuZw==", "Content-Length: 0"}));
  REQUIRE(r.status == 201);
  const std::string location = *r.Header("Location");
  CHECK(location == "/files/v1/uploads/" + slot.file_id());

  // The first PATCH announces everything but the link dies after 70,000 bytes.
  {
    Client cut(port);
    cut.Send(Request("PATCH", location, token,
                     {"Tus-Resumable: 1.0.0", "Content-Type: application/offset+octet-stream", "Upload-Offset: 0",
                      "Content-Length: " + std::to_string(data.size())},
                     std::string_view(data).substr(0, 70'000)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }  // closed
  uint64_t offset = 0;
  for (int i = 0; i < 50 && offset != 70'000; ++i) {
    r = c.Roundtrip(Request("HEAD", location, token, {"Tus-Resumable: 1.0.0"}), /*head_only=*/true);
    REQUIRE(r.status == 200);
    offset = std::stoull(*r.Header("Upload-Offset"));
    if (offset != 70'000) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(offset == 70'000);
  CHECK(r.Header("Upload-Length") == std::to_string(data.size()));

  // A wrong offset, then the rest, chunked.
  r = c.Roundtrip(Request("PATCH", location, token,
                          {"Tus-Resumable: 1.0.0", "Content-Type: application/offset+octet-stream",
                           "Upload-Offset: 0", "Content-Length: 1"},
                          "x"));
  CHECK(r.status == 409);
  Client c2(port);  // the server closes a connection whose refused body it did not read
  std::string chunked;
  for (size_t at = 70'000; at < data.size(); at += 50'000) {
    const size_t n = std::min<size_t>(50'000, data.size() - at);
    char size_line[32];
    std::snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
    chunked += size_line + data.substr(at, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  r = c2.Roundtrip(Request("PATCH", location, token,
                           {"Tus-Resumable: 1.0.0", "Content-Type: application/offset+octet-stream",
                            "Upload-Offset: 70000", "Transfer-Encoding: chunked"},
                           chunked));
  CHECK(r.status == 204);
  CHECK(r.Header("Upload-Offset") == std::to_string(data.size()));
  CHECK(rig.Record(slot.file_id())->state() == store::FileRecord::COMPLETE);

  // Downloads.
  const std::string alice = rig.files().Access("alice").token();
  const std::string path = "/files/v1/" + slot.file_id();
  r = c2.Roundtrip(Request("GET", path, alice));
  CHECK(r.status == 200);
  CHECK(r.body == data);
  CHECK(r.Header("Content-Type") == "image/png");
  CHECK(r.Header("ETag") == "\"" + ShaHex(data) + "\"");
  CHECK(r.Header("Cache-Control") == "private, max-age=300");
  r = c2.Roundtrip(Request("GET", path, alice, {"Range: bytes=100000-100099"}));
  CHECK(r.status == 206);
  CHECK(r.Header("Content-Range") == "bytes 100000-100099/200000");
  CHECK(r.body == data.substr(100'000, 100));
  r = c2.Roundtrip(Request("GET", path + "?token=" + alice, "", {"Range: bytes=-10"}));
  CHECK(r.status == 206);
  CHECK(r.body == data.substr(data.size() - 10));
  r = c2.Roundtrip(Request("HEAD", path, alice), /*head_only=*/true);
  CHECK(r.status == 200);
  CHECK(r.Header("Content-Length") == std::to_string(data.size()));
  r = c2.Roundtrip(Request("GET", path, alice, {"Range: bytes=300000-"}));
  CHECK(r.status == 416);
  CHECK(r.Header("Content-Range") == "bytes */200000");
  r = c2.Roundtrip(Request("GET", path, alice, {"If-None-Match: \"" + ShaHex(data) + "\""}));
  CHECK(r.status == 304);
  r = c2.Roundtrip(Request("GET", path, rig.files().Access("mallory").token()));
  CHECK(r.status == 403);
  CHECK(r.body.find("forbidden") != std::string::npos);
  r = c2.Roundtrip(Request("GET", path, "nope"));
  CHECK(r.status == 401);
  CHECK(r.Header("WWW-Authenticate").has_value());

  // Over quota: 413 at the creation.
  r = c2.Roundtrip(Request("POST", "/files/v1/uploads", big.token(),
                           {"Tus-Resumable: 1.0.0", "Upload-Length: 100001", "Content-Length: 0"}));
  CHECK(r.status == 413);
  CHECK(r.body.find("quota_exceeded") != std::string::npos);
  server.Stop();
}

}  // namespace
}  // namespace parley::im
