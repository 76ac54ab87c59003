// HttpRequestParser: heads and bodies fed whole, one byte at a time and split at every boundary; limits;
// malformed requests; chunked bodies; the response helpers. Also writes and checks the seed corpus of
// fuzz_http_request (tests/fuzz/corpus/http_request):
//   ./net_tests --test-case='write HTTP request fuzz seed corpus' --no-skip
#include "broker/net/http_request.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace parley::net {
namespace {

// What feeding a byte stream produced: the last state, bytes consumed in all, and the body seen.
struct Outcome {
  HttpParseState state = HttpParseState::kNeedMore;
  size_t consumed = 0;
  std::string body;
  bool head_reported = false;
};

// Feeds `input` in pieces of `piece` bytes (0: whole), carrying unconsumed bytes over like a connection
// does, until the message completes, fails, or the input runs out. Checks the per-call contract.
Outcome Feed(HttpRequestParser& p, std::string_view input, size_t piece = 0) {
  Outcome out;
  p.set_body_handler([&](std::span<const uint8_t> b) {
    out.body.append(reinterpret_cast<const char*>(b.data()), b.size());
  });
  std::string pending;
  size_t next = 0;
  while (true) {
    const size_t take = piece == 0 ? input.size() - next : std::min(piece, input.size() - next);
    pending.append(input.substr(next, take));
    next += take;
    // Parse until this piece is used up or the parser stops.
    while (true) {
      const HttpParseResult r = p.Parse(pending);
      REQUIRE(r.consumed <= pending.size());
      out.consumed += r.consumed;
      pending.erase(0, r.consumed);
      out.state = r.state;
      if (r.state == HttpParseState::kHeadComplete) {
        CHECK_FALSE(out.head_reported);
        out.head_reported = true;
        continue;  // go on with the body
      }
      if (r.state == HttpParseState::kNeedMore) CHECK(pending.empty());
      break;
    }
    if (out.state == HttpParseState::kMessageComplete || out.state == HttpParseState::kError) return out;
    if (next == input.size()) return out;
  }
}

constexpr std::string_view kGet =
    "GET /mqtt/ws?client=a&x=%20y HTTP/1.1\r\n"
    "Host: broker.example:8083\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "X-Forwarded-For: 10.0.0.1\r\n"
    "x-forwarded-for:   10.0.0.2  \r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "\r\n";

void CheckGet(const HttpRequest& r) {
  CHECK(r.method == "GET");
  CHECK(r.target == "/mqtt/ws?client=a&x=%20y");
  CHECK(r.path == "/mqtt/ws");
  CHECK(r.query == "client=a&x=%20y");
  CHECK(r.version_major == 1);
  CHECK(r.version_minor == 1);
  REQUIRE(r.headers.size() == 6);
  CHECK(r.headers[0].name == "Host");
  CHECK(r.headers[0].value == "broker.example:8083");
  CHECK(r.Find("HOST") == "broker.example:8083");
  CHECK(r.Find("upgrade") == "websocket");
  CHECK(r.Count("X-Forwarded-For") == 2);
  CHECK(r.Find("X-Forwarded-For") == "10.0.0.1");
  CHECK(r.headers[4].value == "10.0.0.2");  // surrounding spaces trimmed
  CHECK(r.HasToken("Connection", "upgrade"));
  CHECK(r.HasToken("connection", "KEEP-ALIVE"));
  CHECK_FALSE(r.HasToken("Connection", "close"));
  CHECK_FALSE(r.Find("Origin").has_value());
  CHECK_FALSE(r.has_body());
  CHECK_FALSE(r.content_length.has_value());
}

TEST_CASE("HttpRequestParser: a GET whole, then nothing more consumed") {
  HttpRequestParser p;
  const std::string input = std::string(kGet) + "\x82\x80 trailing frame bytes";
  HttpParseResult r = p.Parse(input);
  CHECK(r.state == HttpParseState::kHeadComplete);
  CHECK(r.consumed == kGet.size());
  CheckGet(p.request());
  CHECK(p.message_complete());
  // The rest belongs to whatever follows (an upgraded protocol, the next request).
  r = p.Parse(std::string_view(input).substr(r.consumed));
  CHECK(r.state == HttpParseState::kMessageComplete);
  CHECK(r.consumed == 0);
}

TEST_CASE("HttpRequestParser: the head split at every boundary and fed one byte at a time") {
  for (size_t split = 0; split <= kGet.size(); ++split) {
    CAPTURE(split);
    HttpRequestParser p;
    HttpParseResult r = p.Parse(kGet.substr(0, split));
    if (split < kGet.size()) {
      REQUIRE(r.state == HttpParseState::kNeedMore);
      REQUIRE(r.consumed == split);
      r = p.Parse(kGet.substr(split));
      REQUIRE(r.consumed == kGet.size() - split);
    } else {
      REQUIRE(r.consumed == kGet.size());
    }
    REQUIRE(r.state == HttpParseState::kHeadComplete);
    CheckGet(p.request());
  }
  HttpRequestParser p;
  const Outcome o = Feed(p, kGet, 1);
  CHECK(o.head_reported);
  CHECK(o.state == HttpParseState::kMessageComplete);
  CHECK(o.consumed == kGet.size());
  CheckGet(p.request());
}

TEST_CASE("HttpRequestParser: targets") {
  struct Case {
    std::string_view line;
    std::string_view path, query;
  };
  for (const Case& c : {Case{"GET / HTTP/1.1", "/", ""}, Case{"GET /a/b?c HTTP/1.1", "/a/b", "c"},
                        Case{"GET /a? HTTP/1.1", "/a", ""}, Case{"OPTIONS * HTTP/1.1", "*", ""},
                        Case{"GET http://h.example:80/x/y?q=1 HTTP/1.1", "/x/y", "q=1"},
                        Case{"GET http://h.example HTTP/1.1", "/", ""}}) {
    CAPTURE(c.line);
    HttpRequestParser p;
    const HttpParseResult r = p.Parse(std::string(c.line) + "\r\nHost: h\r\n\r\n");
    REQUIRE(r.state == HttpParseState::kHeadComplete);
    CHECK(p.request().path == c.path);
    CHECK(p.request().query == c.query);
  }
}

TEST_CASE("HttpRequestParser: repeated headers are kept apart and in order") {
  HttpRequestParser p;
  const HttpParseResult r = p.Parse(
      "GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nX-Tag: one\r\naccept: b, c\r\nX-TAG: two\r\nEmpty:\r\n\r\n");
  REQUIRE(r.state == HttpParseState::kHeadComplete);
  const HttpRequest& req = p.request();
  CHECK(req.Count("accept") == 2);
  CHECK(req.Count("x-tag") == 2);
  CHECK(req.Find("Accept") == "a");
  CHECK(req.HasToken("Accept", "c"));
  REQUIRE(req.headers.size() == 6);
  CHECK(req.headers[4].name == "X-TAG");
  CHECK(req.headers[4].value == "two");
  CHECK(req.Find("Empty") == "");
}

// ---- Limits -------------------------------------------------------------------------------------------

std::string ManyHeaders(size_t n) {
  std::string s = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i < n; ++i) s += "H" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

// The outcome must not depend on how the bytes are split.
void CheckErrorAtEverySplit(std::string_view input, HttpLimits limits, int status) {
  for (size_t piece : {size_t{0}, size_t{1}, size_t{7}, size_t{100}}) {
    CAPTURE(piece);
    HttpRequestParser p(limits);
    const Outcome o = Feed(p, input, piece);
    REQUIRE(o.state == HttpParseState::kError);
    CHECK(p.error().status == status);
    CHECK_FALSE(p.error().reason.empty());
    // An error is final.
    CHECK(p.Parse("GET / HTTP/1.1\r\n\r\n").state == HttpParseState::kError);
  }
}

TEST_CASE("HttpRequestParser: header count limit (431)") {
  HttpLimits limits;
  limits.max_headers = 100;
  HttpRequestParser ok(limits);
  CHECK(Feed(ok, ManyHeaders(100)).state == HttpParseState::kMessageComplete);
  CHECK(ok.request().headers.size() == 100);
  CheckErrorAtEverySplit(ManyHeaders(101), limits, 431);
}

TEST_CASE("HttpRequestParser: head size limit (431), exact at the boundary") {
  const std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
  for (size_t split = 0; split <= head.size(); ++split) {
    CAPTURE(split);
    HttpLimits limits;
    limits.max_head = head.size();  // exactly fits
    HttpRequestParser p(limits);
    HttpParseResult r = p.Parse(std::string_view(head).substr(0, split));
    if (r.state == HttpParseState::kNeedMore) r = p.Parse(std::string_view(head).substr(split));
    CHECK(r.state == HttpParseState::kHeadComplete);

    limits.max_head = head.size() - 1;  // one byte short
    HttpRequestParser q(limits);
    r = q.Parse(std::string_view(head).substr(0, split));
    if (r.state == HttpParseState::kNeedMore) r = q.Parse(std::string_view(head).substr(split));
    CHECK(r.state == HttpParseState::kError);
    CHECK(q.error().status == 431);
  }
  HttpLimits limits;
  CheckErrorAtEverySplit("GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n", limits, 431);
}

TEST_CASE("HttpRequestParser: a request target that fills the head limit (414)") {
  CheckErrorAtEverySplit("GET /" + std::string(9000, 'u') + " HTTP/1.1\r\nHost: h\r\n\r\n", HttpLimits{},
                         414);
  // A long target that fits is fine.
  HttpRequestParser p;
  CHECK(Feed(p, "GET /" + std::string(4000, 'u') + " HTTP/1.1\r\n\r\n").state ==
        HttpParseState::kMessageComplete);
}

TEST_CASE("HttpRequestParser: declared body over the limit (413), refused before the body is read") {
  HttpLimits limits;
  limits.max_body = 10;
  HttpRequestParser p(limits);
  const HttpParseResult r = p.Parse("POST /u HTTP/1.1\r\nContent-Length: 11\r\n\r\n0123456789A");
  CHECK(r.state == HttpParseState::kError);
  CHECK(p.error().status == 413);
  CHECK(p.request().content_length == 11u);  // the head stays readable for the log
  CHECK(p.body_bytes() == 0);
  // By default no body at all is accepted.
  CheckErrorAtEverySplit("POST /u HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", HttpLimits{}, 413);
  CheckErrorAtEverySplit("POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HttpLimits{},
                         413);
  // A chunked body is measured as it streams.
  limits.max_body = 8;
  CheckErrorAtEverySplit(
      "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits,
      413);
}

TEST_CASE("HttpRequestParser: malformed requests (400) and versions (505)") {
  for (std::string_view bad : {
           "GET/ HTTP/1.1\r\n\r\n",                         // no space
           "FROB / HTTP/1.1\r\n\r\n",                       // unknown method
           "GET / HTTP/1.x\r\n\r\n",                        // version
           "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",       // space in a field name
           "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",  // length
           "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",  // smuggling
           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "GET /\x01 HTTP/1.1\r\n\r\n",
           "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",         // space before the colon
           "GET / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",  // bare CR
           "GET / HTTP/1.1\r\nHost: h\r\r\n",                           // bare CR
           "GET / HTTP/1.1\r\nX-Long: a\r\n b\r\n\r\n",                 // obs-fold
           "GET / HTTP/1.1\r\n Host: h\r\n\r\n",                        // space before the first field
           "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",              // a TLS ClientHello on a plain port
       }) {
    CAPTURE(bad);
    HttpLimits limits;
    limits.max_body = 100;
    CheckErrorAtEverySplit(bad, limits, 400);
  }
  CheckErrorAtEverySplit("GET / HTTP/2.0\r\nHost: h\r\n\r\n", HttpLimits{}, 505);
  CheckErrorAtEverySplit("GET / HTTP/0.9\r\nHost: h\r\n\r\n", HttpLimits{}, 505);
  HttpRequestParser p;
  CHECK(Feed(p, "GET / HTTP/1.0\r\n\r\n").state == HttpParseState::kMessageComplete);
  CHECK(p.request().version_minor == 0);
}

// ---- Bodies -------------------------------------------------------------------------------------------

TEST_CASE("HttpRequestParser: chunked body streams at every split, the next request is left alone") {
  const std::string head = "POST /files/abc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-A: x\r\n\r\n";
  const std::string next = "GET / HTTP/1.1\r\n\r\n";
  const std::string input = head + body + next;
  HttpLimits limits;
  limits.max_body = 1024;
  for (size_t piece : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{13}}) {
    CAPTURE(piece);
    HttpRequestParser p(limits);
    const Outcome o = Feed(p, input, piece);
    CHECK(o.head_reported);
    CHECK(o.state == HttpParseState::kMessageComplete);
    CHECK(o.consumed == head.size() + body.size());
    CHECK(o.body == "hello world");
    CHECK(p.request().chunked);
    CHECK(p.request().has_body());
    CHECK(p.request().headers.size() == 2);  // trailers are not headers
    CHECK(p.body_bytes() == 11);
  }
  for (size_t split = 0; split <= input.size(); ++split) {
    CAPTURE(split);
    HttpRequestParser p(limits);
    Outcome o = Feed(p, std::string_view(input).substr(0, split));
    std::string body_seen = o.body;
    size_t consumed = o.consumed;
    if (o.state != HttpParseState::kMessageComplete) {
      // Continue with what was not consumed.
      o = Feed(p, std::string_view(input).substr(consumed));
      body_seen += o.body;
      consumed += o.consumed;
    }
    CHECK(o.state == HttpParseState::kMessageComplete);
    CHECK(consumed == head.size() + body.size());
    CHECK(body_seen == "hello world");
  }
}

TEST_CASE("HttpRequestParser: Content-Length body, then Reset() for a pipelined request") {
  HttpLimits limits;
  limits.max_body = 5;
  HttpRequestParser p(limits);
  const std::string input =
      "PATCH /files/1?x HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeHEAD / HTTP/1.1\r\n\r\n";
  Outcome o = Feed(p, input, 4);
  CHECK(o.state == HttpParseState::kMessageComplete);
  CHECK(o.body == "abcde");
  CHECK(p.request().method == "PATCH");
  CHECK(p.request().content_length == 5u);
  CHECK(p.request().query == "x");
  p.Reset();
  o = Feed(p, std::string_view(input).substr(o.consumed));
  CHECK(o.state == HttpParseState::kMessageComplete);
  CHECK(p.request().method == "HEAD");
  CHECK(o.body.empty());
}

TEST_CASE("HttpRequestParser: trailers are dropped, and bounded by http-parser (80 KiB)") {
  HttpLimits limits;
  limits.max_body = 100;
  HttpRequestParser p(limits);
  const Outcome o = Feed(p, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\nU: 2\r\n\r\n");
  CHECK(o.state == HttpParseState::kMessageComplete);
  CHECK(p.request().headers.size() == 1);
  CheckErrorAtEverySplit("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " +
                             std::string(90 * 1024, 't') + "\r\n\r\n",
                         limits, 431);
}

// http-parser reports a field at its end, or at the end of an input piece: the header count is checked
// when the head is complete, so a later syntax error wins whatever the pieces (found by fuzz_http_request).
TEST_CASE("HttpRequestParser: too many headers, then a malformed one: 400 at every split") {
  CheckErrorAtEverySplit(ManyHeaders(101).insert(ManyHeaders(101).size() - 2, "bad\x01name: x\r\n"),
                         HttpLimits{}, 400);
}

// ---- Responses ----------------------------------------------------------------------------------------

TEST_CASE("HTTP responses: head and error reply") {
  const HttpHeaderView h[] = {{"Upgrade", "websocket"}, {"X-Evil", "a\r\nSet-Cookie: b"}};
  CHECK(RenderHttpResponseHead(101, h) ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Evil: a  Set-Cookie: b\r\n\r\n");
  const HttpHeaderView v[] = {{"Sec-WebSocket-Version", "13"}};
  CHECK(RenderHttpErrorResponse(426, "version 13 required", v) ==
        "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
        "Connection: close\r\nSec-WebSocket-Version: 13\r\n\r\nversion 13 required\n");
  CHECK(HttpReasonPhrase(431) == "Request Header Fields Too Large");
  CHECK(HttpReasonPhrase(999) == "Unknown");
  CHECK(EqualsIgnoreCase("WebSocket", "websocket"));
  CHECK_FALSE(EqualsIgnoreCase("websockets", "websocket"));
}

// ---- Fuzz seed corpus ---------------------------------------------------------------------------------

std::filesystem::path CorpusDir() {
  return std::filesystem::path(PARLEY_SOURCE_DIR) / "tests" / "fuzz" / "corpus" /
         "http_request";
}

// The fuzz target reads byte 0 as its settings (see tests/fuzz/http_request_fuzz.cc): bits 0-5 the piece
// size (0: whole), bit 6 a small head limit, bit 7 a body limit of 64 bytes (else none accepted).
struct Seed {
  std::string name;
  uint8_t settings;
  std::string request;
};

std::vector<Seed> Seeds() {
  const std::string ws =
      "GET /mqtt HTTP/1.1\r\nHost: localhost:8083\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: mqtt\r\nOrigin: https://app.example\r\n\r\n";
  const std::string chunked =
      "POST /files/24e533e02ec3bc40c387f1a0e460e216 HTTP/1.1\r\nHost: h\r\nTus-Resumable: 1.0.0\r\n"
      "Transfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
  return {
      {"ok_ws_upgrade", 0x00, ws},
      {"ok_ws_upgrade_bytewise", 0x01, ws},
      {"ok_ws_upgrade_then_frame", 0x00, ws + "\x82\x85\x01\x02\x03\x04\x11\x02\x03\x04\x05"},
      {"ok_get_query", 0x07,
       "GET /api/v1/clients?limit=10&offset=20 HTTP/1.1\r\nHost: admin\r\nAccept: */*\r\n\r\n"},
      {"ok_get_absolute", 0x00,
       "GET http://broker.example:8080/metrics?x HTTP/1.1\r\nHost: broker.example\r\n\r\n"},
      {"ok_options_star", 0x00, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"ok_http10", 0x00, "GET / HTTP/1.0\r\n\r\n"},
      {"ok_repeated_headers", 0x03,
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n"
       "Cookie: a=1\r\ncookie: b=2\r\n\r\n"},
      {"ok_bare_lf", 0x00, "GET / HTTP/1.1\nHost: h\n\n"},
      {"ok_leading_crlf", 0x00, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"err_obs_fold", 0x00, "GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\nHost: h\r\n\r\n"},
      {"err_bare_cr", 0x00, "GET / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello"},
      {"err_space_before_colon", 0x80, "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello"},
      {"ok_post_body", 0x80,
       "POST /api/v1/kick HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n{\"client\":\"c1\"}\n"},
      {"ok_tus_patch", 0x85,
       "PATCH /files/abc HTTP/1.1\r\nHost: h\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
       "Content-Type: application/offset+octet-stream\r\nContent-Length: 10\r\n\r\n0123456789"},
      {"ok_chunked", 0x80, chunked},
      {"ok_chunked_bytewise", 0x81, chunked},
      {"ok_pipelined", 0x80, "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n"},
      {"err_head_limit", 0x40, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + std::string(300, 'p') + "\r\n\r\n"},
      {"err_target_limit", 0x40, "GET /" + std::string(300, 'u') + " HTTP/1.1\r\n\r\n"},
      {"err_many_headers", 0x00,
       [] {
         std::string s = "GET / HTTP/1.1\r\n";
         for (int i = 0; i < 101; ++i) s += "h" + std::to_string(i) + ": v\r\n";
         return s + "\r\n";
       }()},
      {"err_body_too_large", 0x80, "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n"},
      {"err_body_not_accepted", 0x00, "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"},
      {"err_chunked_too_large", 0x80,
       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'x') +
           "\r\n1\r\ny\r\n0\r\n\r\n"},
      {"err_cl_and_te", 0x80,
       "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"err_te_gzip", 0x80, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"},
      {"err_bad_chunk_size", 0x80, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
      {"err_version_2", 0x00, "GET / HTTP/2.0\r\n\r\n"},
      {"err_bad_method", 0x00, "BREW /pot HTTP/1.1\r\n\r\n"},
      {"err_bad_header_name", 0x00, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"},
      {"err_tls_hello", 0x00, std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11)},
      {"err_mqtt_connect", 0x00, std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14)},
  };
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

TEST_CASE("write HTTP request fuzz seed corpus" * doctest::skip()) {
  std::filesystem::create_directories(CorpusDir());
  for (const Seed& s : Seeds()) {
    std::ofstream f(CorpusDir() / s.name, std::ios::binary);
    f.put(static_cast<char>(s.settings));
    f << s.request;
  }
}

// Every seed in the tree is one of Seeds() (so the corpus can be regenerated), and does what its name
// says: ok_ seeds parse to a complete message, err_ seeds fail.
TEST_CASE("HTTP request fuzz seed corpus") {
  for (const Seed& s : Seeds()) {
    CAPTURE(s.name);
    std::ifstream f(CorpusDir() / s.name, std::ios::binary);
    REQUIRE(f.good());
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(bytes == std::string(1, static_cast<char>(s.settings)) + s.request);
    HttpLimits limits;
    if (s.settings & 0x40) limits.max_head = 256;
    if (s.settings & 0x80) limits.max_body = 64;
    HttpRequestParser p(limits);
    const Outcome o = Feed(p, s.request, s.settings & 0x3F);
    if (StartsWith(s.name, "ok_")) {
      CHECK(o.state == HttpParseState::kMessageComplete);
    } else {
      CHECK(o.state == HttpParseState::kError);
    }
  }
}

}  // namespace
}  // namespace parley::net
