// HttpServer, in process on 127.0.0.1 port 0, driven by plain POSIX sockets (and one OpenSSL client):
// routing, decoding, authentication, errors, keep-alive, pipelining, timeouts, limits, TLS and Stop();
// streamed responses (back-pressure, HEAD, read errors) and streaming request bodies (sinks).
// Every socket has a receive timeout, so a broken server fails a test instead of hanging it.
#include "broker/net/http_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "broker/net/tls.h"
#include "tests/unit/net/test_certs.h"
#include "tests/unit/temp_dir.h"

namespace parley::net {
namespace {

using broker::AdminRequest;
using broker::AdminResponse;
using namespace std::chrono_literals;

constexpr char kToken[] = "s3cret-token-0123456789";

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of header `name` (case-insensitive), or "" when absent.
  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (IEquals(n, name)) return v;
    return "";
  }
  bool Has(std::string_view name) const {
    for (const auto& h : headers)
      if (IEquals(h.first, name)) return true;
    return false;
  }
};

// One client connection: plain TCP, or TLS when given an SSL_CTX. Reads responses by Content-Length.
class Client {
 public:
  explicit Client(uint16_t port, SSL_CTX* tls = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    if (tls) {
      ssl_ = SSL_new(tls);
      REQUIRE(ssl_ != nullptr);
      SSL_set_fd(ssl_, fd_);
      SSL_set_tlsext_host_name(ssl_, "localhost");
      REQUIRE(SSL_set1_host(ssl_, "localhost") == 1);
      const int r = SSL_connect(ssl_);
      if (r != 1) ERR_print_errors_fp(stderr);
      REQUIRE(r == 1);
    }
  }
  ~Client() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n;
      if (ssl_) {
        size_t w = 0;
        n = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &w) == 1 ? static_cast<ssize_t>(w) : -1;
      } else {
        n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      }
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Closes with a RST (SO_LINGER 0) instead of a FIN.
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd_);
    fd_ = -1;
  }

  // Appends up to `max` bytes that follow what Read() parsed (buffered ones first) to *out; false at the
  // end of the connection or the receive timeout.
  bool ReadRaw(std::string* out, size_t max) {
    if (buf_.empty() && !Fill(max)) return false;
    const size_t n = std::min(max, buf_.size());
    out->append(buf_, 0, n);
    buf_.erase(0, n);
    return true;
  }
  // Bytes this client holds but has not returned yet (its buffer, and OpenSSL's decrypted bytes).
  size_t Buffered() const { return buf_.size() + (ssl_ ? static_cast<size_t>(SSL_pending(ssl_)) : 0); }
  // Bytes received by the kernel that this client has not read yet.
  size_t KernelUnread() const {
    int n = 0;
    ::ioctl(fd_, SIOCINQ, &n);
    return static_cast<size_t>(n);
  }
  // The server's socket of this connection (same process): the descriptor whose peer is our address.
  int ServerSideFd() const {
    sockaddr_in mine{};
    socklen_t len = sizeof(mine);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&mine), &len) == 0);
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      const int fd = std::stoi(e.path().filename().string());
      sockaddr_in peer{};
      len = sizeof(peer);
      if (fd == fd_ || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
      if (peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
          peer.sin_addr.s_addr == mine.sin_addr.s_addr)
        return fd;
    }
    return -1;
  }

  // One response, by Content-Length (none read for a HEAD request); nullopt if the connection ends or
  // the receive timeout passes first.
  std::optional<Response> Read(bool head_request = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill()) return std::nullopt;
    Response r;
    std::string_view head(buf_.data(), end);
    const size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    REQUIRE(status_line.substr(0, 9) == "HTTP/1.1 ");
    r.status = std::stoi(std::string(status_line.substr(9, 3)));
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    size_t length = 0;
    while (!head.empty()) {
      const size_t e = head.find("\r\n");
      const std::string_view line = head.substr(0, e);
      const size_t colon = line.find(": ");
      REQUIRE(colon != std::string_view::npos);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
      if (IEquals(r.headers.back().first, "Content-Length")) length = std::stoul(r.headers.back().second);
      head = e == std::string_view::npos ? std::string_view() : head.substr(e + 2);
    }
    if (head_request) length = 0;
    const size_t need = end + 4 + length;
    while (buf_.size() < need)
      if (!Fill()) return std::nullopt;
    r.body = buf_.substr(end + 4, length);
    buf_.erase(0, need);
    return r;
  }

  // Sends `request` and reads its response.
  std::optional<Response> Roundtrip(std::string_view request) {
    Send(request);
    return Read();
  }

  // True if the server ends the connection (EOF or reset) before the receive timeout; bytes that arrive
  // first are discarded.
  bool Closed() {
    buf_.clear();
    while (true) {
      char tmp[4096];
      const ssize_t n = ssl_ ? SslRead(tmp, sizeof tmp) : ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    }
  }

 private:
  ssize_t SslRead(char* p, size_t size) {
    size_t n = 0;
    if (SSL_read_ex(ssl_, p, size, &n) == 1) return static_cast<ssize_t>(n);
    const int e = SSL_get_error(ssl_, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
    errno = ECONNRESET;
    return -1;
  }
  bool Fill(size_t max = 16384) {
    char tmp[16384];
    max = std::min(max, sizeof tmp);
    const ssize_t n = ssl_ ? SslRead(tmp, max) : ::recv(fd_, tmp, max, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string buf_;
};

std::string Get(std::string_view path, std::string_view extra = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}
std::string Authed(std::string_view method, std::string_view path, std::string_view body = "") {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                  kToken + "\r\n";
  if (!body.empty()) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + std::string(body);
}

HttpServerOptions TestOptions() {
  HttpServerOptions o;
  o.port = 0;
  o.max_body = 1024;
  return o;
}

// The server's read-ahead bounds for streamed responses (http_server.cc).
constexpr size_t kStreamChunk = 64 * 1024;
constexpr size_t kStreamThreshold = 256 * 1024;
// The streaming upload route's body limit: larger than TestOptions().max_body, so the parser's limit is
// this one and the server enforces the whole-body routes' 1024 itself.
constexpr uint64_t kUploadMax = 100'000;

// Byte `i` of every streamed test body.
char BodyByte(uint64_t i) {
  return static_cast<char>('a' + i % 23);
}
std::string BodyBytes(uint64_t from, uint64_t n) {
  std::string s;
  for (uint64_t i = from; i < from + n; ++i) s.push_back(BodyByte(i));
  return s;
}

// Polls `done` until it holds or `limit` passes.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// What the streamed response bodies of a TestServer were asked for (written on the server's thread).
struct StreamStats {
  std::atomic<uint64_t> served{0};  // bytes Read() returned
  std::atomic<int> reads{0};        // Read() calls
};

// BodyByte(i) for i < length; a read at or after `fail_at` returns 0 (an error).
class PatternBody final : public broker::ResponseBody {
 public:
  PatternBody(StreamStats& stats, uint64_t length, uint64_t fail_at)
      : stats_(stats), length_(length), fail_at_(fail_at) {}
  size_t Read(uint64_t offset, std::span<uint8_t> out) override {
    ++stats_.reads;
    const uint64_t end = std::min(length_, fail_at_);
    if (offset >= end || out.empty()) return 0;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), end - offset));
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(BodyByte(offset + i));
    stats_.served += n;
    return n;
  }

 private:
  StreamStats& stats_;
  uint64_t length_, fail_at_;
};

// What the upload route's handler and sinks saw (written on the server's thread).
struct SinkLog {
  std::mutex mu;
  std::vector<AdminRequest> heads;  // every request the streaming handler was asked about
  std::string bytes;                // what the sinks were given, in order
  int finishes = 0;
  int aborts = 0;

  template <typename T>
  T Get(T SinkLog::*field) {
    std::lock_guard lock(mu);
    return this->*field;
  }
};

// Records the body; Write returns false once `stop_after` bytes are in.
class RecordingSink final : public broker::RequestBodySink {
 public:
  RecordingSink(SinkLog& log, uint64_t stop_after) : log_(log), stop_after_(stop_after) {}
  bool Write(std::span<const uint8_t> bytes) override {
    std::lock_guard lock(log_.mu);
    log_.bytes.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    received_ += bytes.size();
    return received_ < stop_after_;
  }
  AdminResponse Finish() override {
    std::lock_guard lock(log_.mu);
    ++log_.finishes;
    AdminResponse r = AdminResponse::Text(201, "got " + std::to_string(received_));
    r.headers.emplace_back("X-Sink", "finished");
    return r;
  }
  void Abort() override {
    std::lock_guard lock(log_.mu);
    ++log_.aborts;
  }

 private:
  SinkLog& log_;
  uint64_t stop_after_;
  uint64_t received_ = 0;
};

uint64_t QueryNumber(const AdminRequest& r, std::string_view name, uint64_t otherwise) {
  const auto v = r.Query(name);
  return v ? std::stoull(std::string(*v)) : otherwise;
}

// A started server with the test routes.
struct TestServer {
  explicit TestServer(HttpServerOptions o = TestOptions()) : server(std::move(o)) {
    // A streamed body of ?size= bytes (default 1 MiB) that fails at ?fail=; ?status=, ?cache=, ?notype.
    server.Add("GET", "/files/{name}", [this](const AdminRequest& r) {
      AdminResponse resp;
      resp.status = static_cast<int>(QueryNumber(r, "status", 200));
      resp.content_type = r.Query("notype") ? "" : "application/octet-stream";
      resp.stream_length = QueryNumber(r, "size", 1 << 20);
      resp.stream =
          std::make_shared<PatternBody>(streams, resp.stream_length, QueryNumber(r, "fail", UINT64_MAX));
      if (auto cache = r.Query("cache")) resp.headers.emplace_back("cache-control", std::string(*cache));
      if (resp.status == 206) resp.headers.emplace_back("Content-Range", "bytes 0-9/99");
      return resp;
    });
    // Streaming uploads: ?refuse answers 403 at the head; ?stop=N makes Write return false after N bytes.
    server.AddStreaming(
        "PATCH", "/upload/{id}",
        [this](const AdminRequest& head) {
          {
            std::lock_guard lock(sinks.mu);
            sinks.heads.push_back(head);
          }
          broker::StreamStart start;
          if (head.Query("refuse"))
            start.response = AdminResponse::Error(403, "forbidden", "refused at the head");
          else
            start.sink = std::make_unique<RecordingSink>(sinks, QueryNumber(head, "stop", UINT64_MAX));
          return start;
        },
        kUploadMax);
    // Explicit HEAD and OPTIONS routes beside GET.
    server.Add("GET", "/api/v1/both",
               [](const AdminRequest&) { return AdminResponse::Text(200, "get body"); });
    server.Add("HEAD", "/api/v1/both", [](const AdminRequest&) {
      AdminResponse r = AdminResponse::Text(200, "head route body, never sent");
      r.headers.emplace_back("X-Route", "head");
      return r;
    });
    server.Add("OPTIONS", "/api/v1/both", [](const AdminRequest&) {
      AdminResponse r = AdminResponse::Json(204, "");
      r.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
      r.headers.emplace_back("X-Route", "options");
      return r;
    });
    server.Add("HEAD", "/api/v1/head-only",
               [](const AdminRequest&) { return AdminResponse::Text(200, "x"); });
    // The request's header fields, one "name=value" per line.
    server.Add("GET", "/api/v1/headers", [](const AdminRequest& r) {
      std::string out;
      for (const auto& [n, v] : r.headers) out += n + "=" + v + "\n";
      out += "lookup=" + std::string(r.Header("x-CUSTOM").value_or("<none>")) + "\n";
      out += "missing=" + std::string(r.Header("X-Missing").value_or("<none>")) + "\n";
      return AdminResponse::Text(200, out);
    });
    server.Add("GET", "/healthz", [](const AdminRequest&) { return AdminResponse::Text(200, "ok\n"); });
    server.Add("GET", "/api/v1/clients/{id}", [](const AdminRequest& r) {
      return AdminResponse::Text(200, "param:" + std::string(r.Param("id")) + " path:" + r.path);
    });
    server.Add("GET", "/api/v1/clients/me", [](const AdminRequest&) { return AdminResponse::Text(200, "literal"); });
    server.Add("DELETE", "/api/v1/clients/{id}", [](const AdminRequest&) { return AdminResponse::Json(204, ""); });
    server.Add("GET", "/api/v1/{kind}/{id}/sessions", [](const AdminRequest& r) {
      return AdminResponse::Text(200, std::string(r.Param("kind")) + "/" + std::string(r.Param("id")));
    });
    server.Add("GET", "/api/v1/query", [](const AdminRequest& r) {
      std::string out;
      for (const auto& [k, v] : r.query) out += k + "=" + v + ";";
      return AdminResponse::Text(200, out);
    });
    server.Add("POST", "/api/v1/echo", [](const AdminRequest& r) {
      AdminResponse resp = AdminResponse::Text(200, r.body, "application/octet-stream");
      resp.headers.emplace_back("X-Peer", r.peer);
      resp.headers.emplace_back("Retry-After", "7");
      resp.headers.emplace_back("Content-Length", "999");  // ignored: framing is the server's
      return resp;
    });
    server.Add("GET", "/api/v1/throw", [](const AdminRequest&) -> AdminResponse { throw std::runtime_error("boom"); });
    server.Add("GET", "/api/v1/throw-int", [](const AdminRequest&) -> AdminResponse { throw 42; });
    server.Add("GET", "/api/v1/big", [](const AdminRequest&) { return AdminResponse::Text(200, std::string(300'000, 'x')); });
    const Status st = server.Listen();
    REQUIRE_MESSAGE(st.ok(), st.message());
    REQUIRE(server.port() != 0);
    server.Start();
  }
  uint16_t port() const { return server.port(); }
  // Before `server`: its routes point at them, and Stop() (in its destructor) may still Abort a sink.
  StreamStats streams;
  SinkLog sinks;
  HttpServer server;
};

TEST_CASE("HttpServer: routes with percent-decoded parameters, literal over parameter, response headers") {
  TestServer t;
  Client c(t.port());
  auto r = c.Roundtrip(Get("/api/v1/clients/a%2Fb"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "param:a/b path:/api/v1/clients/a/b");
  CHECK(r->Header("Cache-Control") == "no-store");
  CHECK(r->Header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(r->Header("Content-Length") == std::to_string(r->body.size()));
  CHECK_FALSE(r->Has("Connection"));  // HTTP/1.1 keep-alive is the default

  r = c.Roundtrip(Get("/api/v1/clients/sensor%201"));
  REQUIRE(r);
  CHECK(r->body == "param:sensor 1 path:/api/v1/clients/sensor 1");
  r = c.Roundtrip(Get("/api/v1/clients/me"));
  REQUIRE(r);
  CHECK(r->body == "literal");
  r = c.Roundtrip(Get("/api/v1/clients/m%65"));  // literal segments match the decoded segment
  REQUIRE(r);
  CHECK(r->body == "literal");
  r = c.Roundtrip(Get("/api/v1/users/u7/sessions"));
  REQUIRE(r);
  CHECK(r->body == "users/u7");
  // A literal wins at the first segment where patterns differ: /api/v1/clients/{id} is not tried for
  // three segments, but /api/v1/{kind}/{id}/sessions matches "clients" as a parameter.
  r = c.Roundtrip(Get("/api/v1/clients/x/sessions"));
  REQUIRE(r);
  CHECK(r->body == "clients/x");
  // A handler's Content-Type, extra headers, and no Content-Length of its own.
  r = c.Roundtrip("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  REQUIRE(r);
  CHECK(r->body == "hello");
  CHECK(r->Header("Content-Type") == "application/octet-stream");
  CHECK(r->Header("Retry-After") == "7");
  CHECK(r->Header("Content-Length") == "5");
  CHECK(r->Header("X-Peer").rfind("127.0.0.1:", 0) == 0);
  // 204: no Content-Length, no body.
  r = c.Roundtrip("DELETE /api/v1/clients/x HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 204);
  CHECK_FALSE(r->Has("Content-Length"));
  // HEAD is served by the GET route, without the body.
  c.Send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  r = c.Read(/*head_request=*/true);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->Header("Content-Length") == "3");
  r = c.Roundtrip(Get("/healthz"));  // nothing of the HEAD's body was sent: the next response parses
  REQUIRE(r);
  CHECK(r->body == "ok\n");
}

TEST_CASE("HttpServer: query parameters") {
  TestServer t;
  Client c(t.port());
  auto r = c.Roundtrip(Get("/api/v1/query?a=1&b=hello+world&c&d=%41%2B&&a=2&e="));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "a=2;b=hello world;c=;d=A+;e=;");
  r = c.Roundtrip(Get("/api/v1/query?x=%zz"));
  REQUIRE(r);
  CHECK(r->status == 400);
}

TEST_CASE("HttpServer: 404, 405 with Allow, trailing slash") {
  TestServer t;
  Client c(t.port());
  auto r = c.Roundtrip(Get("/nope"));
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->Header("Content-Type") == "application/json");
  CHECK(r->body == R"({"error":{"code":"not_found","message":"no such path"}})");
  r = c.Roundtrip(Get("/healthz/"));
  REQUIRE(r);
  CHECK(r->status == 404);
  r = c.Roundtrip(Get("/api/v1/clients/"));  // a parameter never matches an empty segment
  REQUIRE(r);
  CHECK(r->status == 404);
  r = c.Roundtrip("PUT /api/v1/clients/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->Header("Allow") == "DELETE, GET, HEAD");
  CHECK(r->body.find("method_not_allowed") != std::string::npos);
  r = c.Roundtrip(Get("/healthz"));  // the connection is still usable
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("HttpServer: bearer token") {
  HttpServerOptions o = TestOptions();
  o.bearer_token = kToken;
  TestServer t(o);
  Client c(t.port());
  auto r = c.Roundtrip(Get("/api/v1/clients/x"));
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->Header("WWW-Authenticate") == R"(Bearer realm="parley")");
  CHECK(r->body.find(R"("code":"unauthorized")") != std::string::npos);
  // Unknown paths are 401 too: nothing tells an unauthenticated client which paths exist.
  r = c.Roundtrip(Get("/nope"));
  REQUIRE(r);
  CHECK(r->status == 401);
  for (const std::string& wrong :
       {std::string("Authorization: Bearer s3cret-token-0123456780\r\n"),  // same length
        std::string("Authorization: Bearer s3cret\r\n"),                   // a prefix
        std::string("Authorization: Bearer ") + kToken + "x\r\n",          // longer
        std::string("Authorization: Basic ") + kToken + "\r\n", std::string("Authorization: Bearer\r\n"),
        std::string("Authorization: Bearer ") + kToken + "\r\nAuthorization: Bearer " + kToken + "\r\n"}) {
    CAPTURE(wrong);
    r = c.Roundtrip(Get("/api/v1/clients/x", wrong));
    REQUIRE(r);
    CHECK(r->status == 401);
  }
  r = c.Roundtrip(Authed("GET", "/api/v1/clients/x"));
  REQUIRE(r);
  CHECK(r->status == 200);
  r = c.Roundtrip(Get("/api/v1/clients/x", std::string("Authorization: bearer ") + kToken + "\r\n"));
  REQUIRE(r);
  CHECK(r->status == 200);  // the scheme is case-insensitive
  r = c.Roundtrip(Authed("GET", "/nope"));
  REQUIRE(r);
  CHECK(r->status == 404);
  // Public paths need no token.
  r = c.Roundtrip(Get("/healthz"));
  REQUIRE(r);
  CHECK(r->status == 200);
  // A refused request with a body is answered before its body is read, and the connection closes.
  c.Send("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
  r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->Header("Connection") == "close");
  CHECK(c.Closed());
}

TEST_CASE("HttpServer: request bodies, 413, 100-continue, chunked") {
  TestServer t;  // max_body 1024
  {
    Client c(t.port());
    auto r = c.Roundtrip("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    REQUIRE(r);
    CHECK(r->body == "abcde");
    const std::string body(1024, 'b');
    r = c.Roundtrip("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" + body);
    REQUIRE(r);
    CHECK(r->body == body);
    c.Send("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 100);
    r = c.Roundtrip("body");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "body");
  }
  {
    Client c(t.port());
    c.Send("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n" + std::string(1025, 'b'));
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->body.find(R"("code":"too_large")") != std::string::npos);
    CHECK(c.Closed());
  }
  {
    Client c(t.port());
    c.Send("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" +
           std::string(1024, 'b') + "\r\n1\r\nb\r\n0\r\n\r\n");
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(c.Closed());
  }
}

TEST_CASE("HttpServer: malformed requests are answered and closed") {
  TestServer t;
  struct Case {
    std::string request;
    int status;
  };
  for (const Case& k : {Case{"GARBAGE\r\n\r\n", 400}, Case{Get("/api/v1/clients/%zz"), 400},
                        Case{Get("/api/v1/clients/a%00b"), 400}, Case{Get("/api/v1/clients/a%2"), 400},
                        Case{"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
                        Case{"GET /healthz HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", 431},
                        Case{"GET /healthz HTTP/2.0\r\n\r\n", 505}}) {
    CAPTURE(k.request.substr(0, 40));
    Client c(t.port());
    auto r = c.Roundtrip(k.request);
    REQUIRE(r);
    CHECK(r->status == k.status);
    CHECK(r->Header("Connection") == "close");
    CHECK(r->body.find(R"({"error":{"code":)") == 0);
    CHECK(c.Closed());
  }
}

TEST_CASE("HttpServer: keep-alive, pipelining, Connection: close, HTTP/1.0, half-close") {
  TestServer t;
  {
    Client c(t.port());
    for (int i = 0; i < 3; ++i) {
      auto r = c.Roundtrip(Get("/api/v1/clients/c" + std::to_string(i)));
      REQUIRE(r);
      CHECK(r->body == "param:c" + std::to_string(i) + " path:/api/v1/clients/c" + std::to_string(i));
    }
  }
  {
    Client c(t.port());
    c.Send(Get("/api/v1/clients/one") + "POST /api/v1/echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo" + Get("/nope") +
           Get("/api/v1/clients/four", "Connection: close\r\n") + Get("/healthz"));
    auto r1 = c.Read();
    auto r2 = c.Read();
    auto r3 = c.Read();
    auto r4 = c.Read();
    REQUIRE((r1 && r2 && r3 && r4));
    CHECK(r1->body == "param:one path:/api/v1/clients/one");
    CHECK(r2->body == "two");
    CHECK(r3->status == 404);
    CHECK(r4->body == "param:four path:/api/v1/clients/four");
    CHECK(r4->Header("Connection") == "close");
    CHECK(c.Closed());  // the request after "Connection: close" is not answered
  }
  {
    Client c(t.port());
    auto r = c.Roundtrip("GET /healthz HTTP/1.0\r\n\r\n");
    REQUIRE(r);
    CHECK(r->Header("Connection") == "close");
    CHECK(c.Closed());
  }
  {
    Client c(t.port());
    auto r = c.Roundtrip("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    REQUIRE(r);
    CHECK(r->Header("Connection") == "keep-alive");
    r = c.Roundtrip("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  {
    // The client shuts its side down after its requests: both are answered, then the server closes.
    Client c(t.port());
    c.Send(Get("/healthz") + Get("/api/v1/big"));
    c.ShutdownWrite();
    auto r1 = c.Read();
    auto r2 = c.Read();
    REQUIRE((r1 && r2));
    CHECK(r2->body.size() == 300'000);
    CHECK(c.Closed());
  }
}

TEST_CASE("HttpServer: a client that pipelines without reading gets every response, in order") {
  TestServer t;
  Client c(t.port());
  std::string requests;
  for (int i = 0; i < 20; ++i) requests += Get("/api/v1/big") + Get("/api/v1/clients/n" + std::to_string(i));
  c.Send(requests);
  std::this_thread::sleep_for(200ms);  // the server fills the socket and stops parsing
  for (int i = 0; i < 20; ++i) {
    auto big = c.Read();
    auto small = c.Read();
    REQUIRE((big && small));
    CHECK(big->body.size() == 300'000);
    CHECK(small->body == "param:n" + std::to_string(i) + " path:/api/v1/clients/n" + std::to_string(i));
  }
}

TEST_CASE("HttpServer: a throwing handler is a 500 and the server goes on") {
  TestServer t;
  Client c(t.port());
  auto r = c.Roundtrip(Get("/api/v1/throw"));
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(r->body == R"({"error":{"code":"internal","message":"internal error"}})");  // no exception text
  r = c.Roundtrip(Get("/api/v1/throw-int"));
  REQUIRE(r);
  CHECK(r->status == 500);
  r = c.Roundtrip(Get("/healthz"));
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("HttpServer: request timeout is a 408 and a close; idle connections are closed") {
  HttpServerOptions o = TestOptions();
  o.request_timeout = 200ms;
  o.idle_timeout = 300ms;
  TestServer t(o);
  {
    Client c(t.port());
    const auto start = std::chrono::steady_clock::now();
    c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n");  // the head never ends
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(r->body.find("request_timeout") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(c.Closed());
  }
  {
    Client c(t.port());
    auto r = c.Roundtrip(Get("/healthz"));
    REQUIRE(r);
    const auto start = std::chrono::steady_clock::now();
    CHECK(c.Closed());  // idle after its request
    CHECK(std::chrono::steady_clock::now() - start < 2s);
  }
}

TEST_CASE("HttpServer: connections over max_connections get a 503") {
  HttpServerOptions o = TestOptions();
  o.max_connections = 2;
  TestServer t(o);
  auto a = std::make_unique<Client>(t.port());
  Client b(t.port());
  REQUIRE(a->Roundtrip(Get("/healthz")));
  REQUIRE(b.Roundtrip(Get("/healthz")));
  {
    Client over(t.port());
    auto r = over.Read();
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->body.find(R"("code":"unavailable")") != std::string::npos);
    CHECK(over.Closed());
  }
  a.reset();  // room for one more, once the server has seen the close
  std::optional<Response> r;
  for (int i = 0; i < 50; ++i) {
    Client again(t.port());
    r = again.Roundtrip(Get("/healthz"));
    if (r && r->status == 200) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("HttpServer: Stop() with connections open returns promptly") {
  auto t = std::make_unique<TestServer>();
  Client idle(t->port());
  Client partial(t->port());
  partial.Send("GET /healthz HTTP/1.1\r\n");
  Client reading(t->port());
  reading.Send(Get("/api/v1/big") + Get("/api/v1/big") + Get("/api/v1/big") + Get("/api/v1/big"));
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  t->server.Stop();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(idle.Closed());
  CHECK(partial.Closed());
  CHECK(reading.Closed());
  t->server.Stop();  // idempotent
  t.reset();
}

TEST_CASE("HttpServer: Listen errors name the address; a server that never started is destroyed cleanly") {
  TestServer t;
  HttpServerOptions o = TestOptions();
  o.port = t.port();
  HttpServer second(o);
  const Status st = second.Listen();
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "admin listener 127.0.0.1:" + std::to_string(t.port()) + ": address already in use");
  HttpServerOptions bad = TestOptions();
  bad.bind = "not-an-address";
  HttpServer third(bad);
  CHECK(third.Listen().message() == "admin listener not-an-address:0: not an IP address");
}

TEST_CASE("HttpServer: IPv6 listener and the access log") {
  HttpServerOptions o = TestOptions();
  o.bind = "::1";
  HttpServer server(o);
  server.Add("GET", "/healthz", [](const AdminRequest& r) { return AdminResponse::Text(200, r.peer); });
  if (!server.Listen().ok()) return;  // no IPv6 loopback here
  server.Start();
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::debug);  // runs the access log's formatting
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(server.port());
  a.sin6_addr = in6addr_loopback;
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const std::string req = "GET /healthz?secret=1 HTTP/1.1\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[1024];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  spdlog::set_level(level);
  CHECK(got.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(got.find("[::1]:") != std::string::npos);
}

// ---- streamed responses ----

// Reads a streamed body of `length` bytes (whose head Read() took) slowly, after first not reading at all,
// and checks after every read that the server's Read() calls ran at most kStreamThreshold + kStreamChunk
// ahead of what the client side holds: what it returned, what it buffered, and both kernels' queues (the
// server's unacknowledged send queue, our receive queue). Returns the body.
std::string ReadSlowly(Client& c, const StreamStats& stats, uint64_t length) {
  const int server_fd = c.ServerSideFd();
  REQUIRE(server_fd >= 0);
  std::string body;
  auto ahead = [&]() -> uint64_t {
    const uint64_t served = stats.served.load();  // first: whatever moves later only lowers the estimate
    int outq = 0;
    ::ioctl(server_fd, SIOCOUTQ, &outq);
    const uint64_t held = body.size() + c.Buffered() + static_cast<uint64_t>(outq) + c.KernelUnread();
    return served > held ? served - held : 0;
  };
  std::this_thread::sleep_for(300ms);  // the client reads nothing: the server must stop reading too
  uint64_t worst = ahead();
  for (int i = 0; body.size() < length; ++i) {
    REQUIRE(c.ReadRaw(&body, std::min<uint64_t>(8192, length - body.size())));
    if (i % 16 == 0) std::this_thread::sleep_for(1ms);
    worst = std::max(worst, ahead());
  }
  CAPTURE(worst);
  CHECK(worst <= kStreamThreshold + kStreamChunk);
  CHECK(stats.served.load() == length);
  return body;
}

TEST_CASE("HttpServer: a streamed response is read only as fast as the client reads") {
  TestServer t;
  Client c(t.port());
  constexpr uint64_t kLength = 8 << 20;
  c.Send(Get("/files/big?size=" + std::to_string(kLength)));
  auto r = c.Read(/*head_request=*/true);  // the head only: the body is read below
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->Header("Content-Length") == std::to_string(kLength));
  CHECK(r->Header("Content-Type") == "application/octet-stream");
  CHECK(r->Header("Cache-Control") == "no-store");
  const std::string body = ReadSlowly(c, t.streams, kLength);
  CHECK(body == BodyBytes(0, kLength));
  r = c.Roundtrip(Get("/healthz"));  // keep-alive after the stream
  REQUIRE(r);
  CHECK(r->body == "ok\n");
}

TEST_CASE("HttpServer: HEAD, 304 and 206 with a stream; Cache-Control and Content-Type from the handler") {
  TestServer t;
  Client c(t.port());
  c.Send("HEAD /files/x?size=5000000 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.Read(/*head_request=*/true);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->Header("Content-Length") == "5000000");
  r = c.Roundtrip(Get("/files/x?status=304&size=10"));  // no body, no Content-Length
  REQUIRE(r);
  CHECK(r->status == 304);
  CHECK_FALSE(r->Has("Content-Length"));
  r = c.Roundtrip(Get("/healthz"));  // nothing of either body was sent: this parses
  REQUIRE(r);
  CHECK(r->body == "ok\n");
  CHECK(t.streams.reads.load() == 0);

  r = c.Roundtrip(Get("/files/x?status=206&size=10&cache=private,+max-age%3D60&notype"));
  REQUIRE(r);
  CHECK(r->status == 206);
  CHECK(r->body == BodyBytes(0, 10));
  CHECK(r->Header("Content-Range") == "bytes 0-9/99");
  CHECK(r->Header("Cache-Control") == "private, max-age=60");  // replaces no-store: one header only
  int cache_headers = 0;
  for (const auto& [n, v] : r->headers) cache_headers += IEquals(n, "Cache-Control");
  CHECK(cache_headers == 1);
  CHECK_FALSE(r->Has("Content-Type"));
}

TEST_CASE("HttpServer: a read error mid-stream sends what was read, then closes") {
  TestServer t;
  Client c(t.port());
  constexpr uint64_t kFailAt = 5 * kStreamChunk + 1000;
  c.Send(Get("/files/x?size=1000000&fail=" + std::to_string(kFailAt)) + Get("/healthz"));
  auto r = c.Read(/*head_request=*/true);
  REQUIRE(r);
  CHECK(r->Header("Content-Length") == "1000000");
  std::string body;
  while (c.ReadRaw(&body, 65536)) {
  }
  CHECK(body == BodyBytes(0, kFailAt));  // a short body, and no answer to the pipelined request
}

TEST_CASE("HttpServer: requests pipelined after a streamed response are answered after it, in order") {
  TestServer t;
  Client c(t.port());
  c.Send(Get("/files/a?size=1000000") + Get("/healthz") + Get("/files/b?size=700001") +
         Get("/api/v1/clients/x") + Get("/files/c?size=300000", "Connection: close\r\n") + Get("/healthz"));
  auto a = c.Read();
  auto ok = c.Read();
  auto b = c.Read();
  auto x = c.Read();
  auto last = c.Read();
  REQUIRE((a && ok && b && x && last));
  CHECK(a->body == BodyBytes(0, 1000000));
  CHECK(ok->body == "ok\n");
  CHECK(b->body == BodyBytes(0, 700001));
  CHECK(x->body == "param:x path:/api/v1/clients/x");
  CHECK(last->body == BodyBytes(0, 300000));
  CHECK(last->Header("Connection") == "close");
  CHECK(c.Closed());  // after the whole stream; the request after "Connection: close" is not answered
}

// ---- streaming request bodies ----

std::string Patch(std::string_view target, std::string_view extra_headers, std::string_view body) {
  return "PATCH " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra_headers) +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

std::string Chunked(std::string_view body, size_t piece) {
  std::string out;
  for (size_t i = 0; i < body.size(); i += piece) {
    const std::string_view p = body.substr(i, piece);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", p.size());
    out += size + std::string(p) + "\r\n";
  }
  return out + "0\r\n\r\n";
}

TEST_CASE("HttpServer: a streaming route's sink gets the body (Content-Length and chunked), Finish answers") {
  TestServer t;
  Client c(t.port());
  const std::string body = BodyBytes(7, 90'000);  // over options.max_body, under the route's limit
  auto r = c.Roundtrip(Patch("/upload/f%201?offset=0", "Upload-Offset: 0\r\nX-Custom: a b \r\n", body));
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->body == "got 90000");
  CHECK(r->Header("X-Sink") == "finished");
  CHECK_FALSE(r->Has("Connection"));
  CHECK(t.sinks.Get(&SinkLog::bytes) == body);
  {
    std::lock_guard lock(t.sinks.mu);
    REQUIRE(t.sinks.heads.size() == 1);
    const AdminRequest& head = t.sinks.heads[0];
    CHECK(head.method == "PATCH");
    CHECK(head.path == "/upload/f 1");
    CHECK(head.Param("id") == "f 1");
    CHECK(head.Query("offset") == "0");
    CHECK(head.body.empty());
    CHECK(head.Header("upload-offset") == "0");
    CHECK(head.Header("X-CUSTOM") == "a b");  // trimmed
    CHECK(head.peer.rfind("127.0.0.1:", 0) == 0);
  }
  // Keep-alive continues: chunked (in pieces of every size, sent apart), then a plain request.
  const std::string chunked = Chunked(body, 10'000);
  c.Send("PATCH /upload/g HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t i = 0; i < chunked.size(); i += 7'777) {
    c.Send(chunked.substr(i, 7'777));
    std::this_thread::sleep_for(1ms);
  }
  r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->body == "got 90000");
  CHECK(t.sinks.Get(&SinkLog::bytes) == body + body);
  // No body at all: Finish at once.
  r = c.Roundtrip("PATCH /upload/h HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->body == "got 0");
  r = c.Roundtrip(Get("/healthz"));
  REQUIRE(r);
  CHECK(r->body == "ok\n");
  CHECK(t.sinks.Get(&SinkLog::finishes) == 3);
  CHECK(t.sinks.Get(&SinkLog::aborts) == 0);
}

TEST_CASE("HttpServer: a sink's Write returning false is answered with Finish, then the connection closes") {
  TestServer t;
  Client c(t.port());
  const std::string body = BodyBytes(0, 50'000);
  c.Send(Patch("/upload/f?stop=1000", "", body.substr(0, 20'000)));  // the head says 50000
  auto r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->Header("Connection") == "close");
  const std::string got = t.sinks.Get(&SinkLog::bytes);
  CHECK(got.size() >= 1000);
  CHECK(r->body == "got " + std::to_string(got.size()));
  CHECK(body.compare(0, got.size(), got) == 0);
  CHECK(c.Closed());
  CHECK(t.sinks.Get(&SinkLog::finishes) == 1);
  CHECK(t.sinks.Get(&SinkLog::aborts) == 0);
}

TEST_CASE("HttpServer: a body cut short (close, reset, malformed chunk, Stop) aborts the sink once") {
  auto t = std::make_unique<TestServer>();
  {
    Client c(t->port());  // closes (FIN) mid-body
    c.Send(Patch("/upload/a", "", std::string(50'000, 'x')).substr(0, 30'000));
    REQUIRE(WaitUntil([&] { return t->sinks.Get(&SinkLog::bytes).size() > 0; }));
  }
  REQUIRE(WaitUntil([&] { return t->sinks.Get(&SinkLog::aborts) == 1; }));
  {
    Client c(t->port());  // resets mid-body
    c.Send(Patch("/upload/b", "", std::string(50'000, 'x')).substr(0, 30'000));
    REQUIRE(WaitUntil([&] { return t->sinks.Get(&SinkLog::bytes).size() > 30'000; }));
    c.Reset();
  }
  REQUIRE(WaitUntil([&] { return t->sinks.Get(&SinkLog::aborts) == 2; }));
  {
    Client c(t->port());  // a malformed chunk: 400, Abort
    auto r = c.Roundtrip(
        "PATCH /upload/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(c.Closed());
    CHECK(t->sinks.Get(&SinkLog::aborts) == 3);
  }
  Client c(t->port());  // Stop() mid-body
  c.Send(Patch("/upload/d", "", std::string(50'000, 'x')).substr(0, 1'000));
  REQUIRE(WaitUntil([&] { return t->sinks.Get(&SinkLog::heads).size() == 4; }));
  t->server.Stop();
  CHECK(t->sinks.Get(&SinkLog::aborts) == 4);
  CHECK(t->sinks.Get(&SinkLog::finishes) == 0);
  CHECK(c.Closed());
  t.reset();  // nothing is aborted twice on the way out (the sink log is checked just before)
}

TEST_CASE("HttpServer: a streaming body may take longer than request_timeout, but not pause that long") {
  HttpServerOptions o = TestOptions();
  o.request_timeout = 300ms;
  o.idle_timeout = 5s;
  TestServer t(o);
  {
    // 12 pieces 100 ms apart: 1.2 s in all, every gap well under the timeout.
    Client c(t.port());
    const std::string body = BodyBytes(0, 12'000);
    c.Send("PATCH /upload/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 12000\r\n\r\n");
    for (size_t i = 0; i < body.size(); i += 1000) {
      std::this_thread::sleep_for(100ms);
      c.Send(body.substr(i, 1000));
    }
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(r->body == "got 12000");
  }
  {
    Client c(t.port());
    c.Send("PATCH /upload/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 12000\r\n\r\n" +
           std::string(1000, 'x'));
    const auto start = std::chrono::steady_clock::now();
    auto r = c.Read();  // nothing more is sent
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(c.Closed());
    CHECK(t.sinks.Get(&SinkLog::aborts) == 1);
    CHECK(t.sinks.Get(&SinkLog::finishes) == 1);  // the slow upload's
  }
}

TEST_CASE("HttpServer: a streaming body over the route's max_body is a 413") {
  TestServer t;
  {
    // Announced: refused before the handler is asked, the body unread.
    Client c(t.port());
    c.Send("PATCH /upload/a HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(kUploadMax + 1) +
           "\r\n\r\n");
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(c.Closed());
    CHECK(t.sinks.Get(&SinkLog::heads).empty());
  }
  {
    // Chunked: found as it streams; the sink is aborted.
    Client c(t.port());
    c.Send("PATCH /upload/b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
           Chunked(std::string(kUploadMax + 1, 'x'), 30'000));
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->body.find(R"("code":"too_large")") != std::string::npos);
    CHECK(c.Closed());
    CHECK(t.sinks.Get(&SinkLog::aborts) == 1);
    CHECK(t.sinks.Get(&SinkLog::finishes) == 0);
    CHECK(t.sinks.Get(&SinkLog::bytes).size() <= kUploadMax);
  }
  {
    // Exactly the limit is fine.
    Client c(t.port());
    auto r = c.Roundtrip("PATCH /upload/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         Chunked(std::string(kUploadMax, 'x'), 30'000));
    REQUIRE(r);
    CHECK(r->status == 201);
  }
}

TEST_CASE("HttpServer: a streaming handler's refusal; 100-continue once it takes the body") {
  TestServer t;
  {
    // Refused with a body announced: answered, body unread, closed.
    Client c(t.port());
    c.Send("PATCH /upload/a?refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(r->Header("Connection") == "close");
    CHECK(c.Closed());
  }
  {
    // Refused without a body: the connection goes on.
    Client c(t.port());
    auto r = c.Roundtrip("PATCH /upload/a?refuse HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK_FALSE(r->Has("Connection"));
    r = c.Roundtrip(Get("/healthz"));
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  {
    // Expect: 100-continue, refused: no 100, the refusal, closed.
    Client c(t.port());
    c.Send(
        "PATCH /upload/a?refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(c.Closed());
  }
  {
    // Expect: 100-continue, accepted: 100, then the body, then Finish's answer.
    Client c(t.port());
    c.Send("PATCH /upload/b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 100);
    r = c.Roundtrip("hello");
    REQUIRE(r);
    CHECK(r->status == 201);
    CHECK(r->body == "got 5");
  }
  CHECK(t.sinks.Get(&SinkLog::bytes) == "hello");
  CHECK(t.sinks.Get(&SinkLog::finishes) == 1);
  CHECK(t.sinks.Get(&SinkLog::aborts) == 0);
}

TEST_CASE("HttpServer: whole-body routes keep options.max_body when a streaming route allows more") {
  TestServer t;  // the parser takes kUploadMax; /api/v1/echo must still stop at 1024
  Client c(t.port());
  c.Send("POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
  auto r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(c.Closed());
}

// ---- methods and headers ----

TEST_CASE("HttpServer: an explicit HEAD route beats GET; OPTIONS routes; Allow lists both") {
  TestServer t;
  Client c(t.port());
  c.Send("HEAD /api/v1/both HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.Read(/*head_request=*/true);
  REQUIRE(r);
  CHECK(r->Header("X-Route") == "head");
  CHECK(r->Header("Content-Length") == std::to_string(std::string("head route body, never sent").size()));
  r = c.Roundtrip(Get("/api/v1/both"));  // the HEAD sent no body: this parses
  REQUIRE(r);
  CHECK(r->body == "get body");
  r = c.Roundtrip("OPTIONS /api/v1/both HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 204);
  CHECK(r->Header("X-Route") == "options");
  CHECK(r->Header("Allow") == "GET, HEAD, OPTIONS");
  r = c.Roundtrip("PUT /api/v1/both HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->Header("Allow") == "GET, HEAD, OPTIONS");
  r = c.Roundtrip(Get("/api/v1/head-only"));
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->Header("Allow") == "HEAD");
  r = c.Roundtrip("OPTIONS /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(r->Header("Allow") == "GET, HEAD");
}

TEST_CASE("HttpServer: handlers see the header fields, Authorization included") {
  HttpServerOptions o = TestOptions();
  o.bearer_token = kToken;
  TestServer t(o);
  Client c(t.port());
  auto r = c.Roundtrip(
      "GET /api/v1/headers HTTP/1.1\r\nHost: t\r\nX-Custom:   spaced value\t \r\nAuthorization: Bearer " +
      std::string(kToken) + "\r\nx-custom: second\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "Host=t\nX-Custom=spaced value\nAuthorization=Bearer " + std::string(kToken) +
                       "\nx-custom=second\nlookup=spaced value\nmissing=<none>\n");
}

// ---- TLS ----

struct ClientTls {
  explicit ClientTls(const std::string& ca) : ctx(SSL_CTX_new(TLS_client_method())) {
    REQUIRE(ctx);
    REQUIRE(SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  ~ClientTls() { SSL_CTX_free(ctx); }
  SSL_CTX* ctx;
};

std::shared_ptr<const TlsContext> ServerTls(const testing::TestPki& pki) {
  TlsOptions o;
  o.cert_file = pki.server.cert;
  o.key_file = pki.server.key;
  auto ctx = TlsContext::Create(o);
  REQUIRE_MESSAGE(ctx.ok(), ctx.status().message());
  return ctx.value();
}

TEST_CASE("HttpServer: HTTPS, and SetTls for new connections") {
  parley::testing::TempDir dir("http-tls");
  testing::TestPki pki(dir);
  ClientTls client_tls(pki.ca.cert);
  HttpServerOptions o = TestOptions();
  o.tls = ServerTls(pki);
  o.bearer_token = kToken;
  TestServer t(o);
  {
    Client c(t.port(), client_tls.ctx);
    auto r = c.Roundtrip(Authed("POST", "/api/v1/echo", "over tls"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "over tls");
    c.Send(Get("/healthz") + Get("/api/v1/clients/x", "Connection: close\r\n"));  // pipelined over TLS
    r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 200);
    r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(c.Closed());
  }
  {
    Client plain(t.port());  // not TLS: the handshake fails and the connection closes
    plain.Send(Get("/healthz"));
    CHECK(plain.Closed());
  }
  std::thread([&] { t.server.SetTls(nullptr); }).join();
  {
    Client plain(t.port());
    auto r = plain.Roundtrip(Get("/healthz"));
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  t.server.SetTls(ServerTls(pki));
  Client c(t.port(), client_tls.ctx);
  auto r = c.Roundtrip(Get("/healthz"));
  REQUIRE(r);
  CHECK(r->body == "ok\n");
}

TEST_CASE("HttpServer: over max_connections with TLS, the 503 follows the handshake") {
  parley::testing::TempDir dir("http-tls");
  testing::TestPki pki(dir);
  ClientTls client_tls(pki.ca.cert);
  HttpServerOptions o = TestOptions();
  o.tls = ServerTls(pki);
  o.max_connections = 1;
  TestServer t(o);
  Client first(t.port(), client_tls.ctx);
  REQUIRE(first.Roundtrip(Get("/healthz")));
  Client over(t.port(), client_tls.ctx);
  auto r = over.Read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(over.Closed());
}

TEST_CASE("HttpServer: over TLS, a streamed response keeps to the read-ahead bound, and an upload streams") {
  parley::testing::TempDir dir("http-tls");
  testing::TestPki pki(dir);
  ClientTls client_tls(pki.ca.cert);
  HttpServerOptions o = TestOptions();
  o.tls = ServerTls(pki);
  TestServer t(o);
  Client c(t.port(), client_tls.ctx);
  constexpr uint64_t kLength = 8 << 20;
  c.Send(Get("/files/big?size=" + std::to_string(kLength)));
  auto r = c.Read(/*head_request=*/true);
  REQUIRE(r);
  CHECK(r->Header("Content-Length") == std::to_string(kLength));
  const std::string body = ReadSlowly(c, t.streams, kLength);
  CHECK(body == BodyBytes(0, kLength));

  const std::string upload = BodyBytes(3, 99'999);
  r = c.Roundtrip(Patch("/upload/tls", "", upload));
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->body == "got 99999");
  c.Send("PATCH /upload/tls2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
         Chunked(upload, 4096));
  r = c.Read();
  REQUIRE(r);
  CHECK(r->body == "got 99999");
  CHECK(t.sinks.Get(&SinkLog::bytes) == upload + upload);
  r = c.Roundtrip(Get("/files/x?size=100", "Connection: close\r\n"));  // keep-alive went on; then a close
  REQUIRE(r);
  CHECK(r->body == BodyBytes(0, 100));
  CHECK(c.Closed());
  CHECK(t.sinks.Get(&SinkLog::aborts) == 0);
}
}  // namespace
}  // namespace parley::net
