// libFuzzer target for HttpRequestParser (broker/net/http_request.h).
//
// Byte 0 of the input is the settings: bits 0-5 a piece size (0: the whole input at once), bit 6 a small
// head limit (256 bytes, else the default 8 KiB), bit 7 a body limit of 64 bytes (else no body accepted).
// The rest is a byte stream as a socket would deliver it. It is parsed twice: in one piece, and in pieces
// carrying the unconsumed bytes over as a connection does; both must agree (the result may not depend on
// how the bytes were split). Broken contracts abort, so libFuzzer reports them. After a complete request
// the whole-input run goes on with the next one (pipelining), as a keep-alive connection would.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "broker/net/http_request.h"

namespace {

using parley::net::HttpLimits;
using parley::net::HttpParseResult;
using parley::net::HttpParseState;
using parley::net::HttpRequest;
using parley::net::HttpRequestParser;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "http_request_fuzz: %s\n", what);
  std::abort();
}

struct Run {
  HttpParseState state = HttpParseState::kNeedMore;
  size_t consumed = 0;
  std::string body;
  bool head_reported = false;
};

// Feeds `in` in pieces of `piece` bytes (0: whole) until the request completes, fails or input runs out.
Run Feed(HttpRequestParser& p, const HttpLimits& limits, std::span<const uint8_t> in, size_t piece) {
  Run run;
  p.set_body_handler([&](std::span<const uint8_t> b) {
    if (b.empty()) Fail("empty body piece");
    run.body.append(reinterpret_cast<const char*>(b.data()), b.size());
  });
  std::string pending;
  size_t next = 0;
  while (true) {
    const size_t take = piece == 0 ? in.size() - next : std::min(piece, in.size() - next);
    pending.append(reinterpret_cast<const char*>(in.data()) + next, take);
    next += take;
    while (true) {
      const HttpParseResult r = p.Parse(pending);
      if (r.consumed > pending.size()) Fail("consumed more than given");
      run.consumed += r.consumed;
      pending.erase(0, r.consumed);
      run.state = r.state;
      if (r.state == HttpParseState::kHeadComplete) {
        if (run.head_reported) Fail("head reported twice");
        run.head_reported = true;
        if (!p.head_complete()) Fail("kHeadComplete but !head_complete()");
        if (run.consumed > limits.max_head) Fail("head larger than max_head accepted");
        if (p.request().headers.size() > limits.max_headers) Fail("more headers than max_headers");
        if (p.request().version_major != 1) Fail("version other than 1.x accepted");
        if (p.request().path.empty() && p.request().method != "CONNECT") Fail("empty path");
        continue;
      }
      if (r.state == HttpParseState::kNeedMore && !pending.empty()) Fail("need-more with bytes left over");
      if (r.state == HttpParseState::kError) {
        const int s = p.error().status;
        if (s != 400 && s != 413 && s != 414 && s != 431 && s != 505) Fail("unexpected error status");
        if (p.error().reason.empty()) Fail("error without a reason");
        if (p.Parse(pending).state != HttpParseState::kError) Fail("error state not sticky");
      }
      if (r.state == HttpParseState::kMessageComplete) {
        if (!run.head_reported) Fail("message complete before the head");
        const HttpParseResult again = p.Parse(pending);
        if (again.state != HttpParseState::kMessageComplete || again.consumed != 0)
          Fail("consumed past the end");
      }
      break;
    }
    if (run.body.size() > limits.max_body) Fail("body over max_body");
    if (run.body.size() != p.body_bytes()) Fail("body_bytes() disagrees");
    if (run.state == HttpParseState::kMessageComplete || run.state == HttpParseState::kError) return run;
    if (next == in.size()) return run;
  }
}

bool SameRequest(const HttpRequest& a, const HttpRequest& b) {
  if (a.method != b.method || a.target != b.target || a.path != b.path || a.query != b.query ||
      a.version_major != b.version_major || a.version_minor != b.version_minor || a.chunked != b.chunked ||
      a.content_length != b.content_length || a.headers.size() != b.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t settings = data[0];
  const std::span<const uint8_t> in(data + 1, size - 1);
  HttpLimits limits;
  if (settings & 0x40) limits.max_head = 256;
  if (settings & 0x80) limits.max_body = 64;
  const size_t piece = settings & 0x3F;

  HttpRequestParser whole(limits);
  const Run a = Feed(whole, limits, in, 0);
  HttpRequestParser split(limits);
  const Run b = Feed(split, limits, in, piece == 0 ? 1 : piece);

  if (a.state != b.state) Fail("whole and split disagree on the outcome");
  if (a.head_reported != b.head_reported) Fail("whole and split disagree on the head");
  if (a.state == HttpParseState::kError && whole.error().status != split.error().status) {
    Fail("whole and split disagree on the error status");
  }
  if (a.state == HttpParseState::kMessageComplete && a.consumed != b.consumed) {
    Fail("whole and split disagree on the request length");
  }
  // On an error (413 mid-body, say) each run may have streamed a different part of the body first.
  if (a.state != HttpParseState::kError && a.body != b.body) Fail("whole and split disagree on the body");
  if (a.head_reported && !SameRequest(whole.request(), split.request())) Fail("whole and split heads differ");

  // Pipelining: the bytes after a complete request start the next one.
  std::span<const uint8_t> rest = in;
  Run r = a;
  for (int i = 0; i < 4 && r.state == HttpParseState::kMessageComplete && r.consumed < rest.size(); ++i) {
    rest = rest.subspan(r.consumed);
    whole.Reset();
    r = Feed(whole, limits, rest, 0);
  }
  return 0;
}
