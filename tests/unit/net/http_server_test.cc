// HttpServer, in process on 127.0.0.1 port 0, driven by plain POSIX sockets (and one OpenSSL client):
// routing, decoding, authentication, errors, keep-alive, pipelining, timeouts, limits, TLS and Stop().
// Every socket has a receive timeout, so a broken server fails a test instead of hanging it.
#include "broker/net/http_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
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
  bool Fill() {
    char tmp[16384];
    const ssize_t n = ssl_ ? SslRead(tmp, sizeof tmp) : ::recv(fd_, tmp, sizeof tmp, 0);
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

// A started server with the test routes.
struct TestServer {
  explicit TestServer(HttpServerOptions o = TestOptions()) : server(std::move(o)) {
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

}  // namespace
}  // namespace parley::net
