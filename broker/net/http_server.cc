#include "broker/net/http_server.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "base/check.h"
#include "broker/net/filter_stack.h"
#include "broker/net/http_request.h"
#include "broker/net/tls.h"

namespace parley::net {

using broker::AdminHandler;
using broker::AdminRequest;
using broker::AdminResponse;
using broker::RequestBodySink;
using broker::ResponseBody;
using broker::StreamingHandler;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// Output waiting for a client beyond this stops the parsing of its further pipelined requests until the
// socket drains, so a client that pipelines without reading cannot make us build responses without end.
constexpr size_t kMaxPendingOutput = 1 << 20;
// A streamed response body is read in pieces of this size, and only while the connection's output (ours,
// the TLS filter's, the write in flight) is below kStreamThreshold: a client that does not read holds at
// most kStreamThreshold + kStreamChunk of it here, whatever the body's length.
constexpr size_t kStreamChunk = 64 * 1024;
constexpr size_t kStreamThreshold = 256 * 1024;
// After the last response of a connection we shut our side down and drain the peer's input for this long
// before closing: closing with unread input makes the kernel send a RST, which can destroy the response
// (a 413 sent while the client is still sending its body) before the client reads it.
constexpr auto kLinger = std::chrono::seconds(2);
// Buffers above this are freed after use rather than kept for the next request.
constexpr size_t kKeepCapacity = 64 * 1024;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` into *out ('+' is a space when `plus_is_space`, as in query strings). False on a '%'
// not followed by two hex digits, or on an encoded NUL (handlers get C-string-safe text).
bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(plus_is_space && c == '+' ? ' ' : c);
    }
  }
  return true;
}

// "a=1&b=x+y&c" -> {a: 1, b: "x y", c: ""}; empty pieces are skipped, a repeated key keeps the last value.
bool ParseQuery(std::string_view query, std::map<std::string, std::string, std::less<>>* out) {
  std::string key, value;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    if (!PercentDecode(piece.substr(0, eq), true, &key)) return false;
    value.clear();
    if (eq != std::string_view::npos && !PercentDecode(piece.substr(eq + 1), true, &value)) return false;
    (*out)[key] = value;
  }
  return true;
}

// The segments of a path that starts with '/': "/a/b" -> {a, b}, "/" -> {""}, "/a/" -> {a, ""}.
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return segments;
    path.remove_prefix(slash + 1);
  }
}

// Compares in time that depends only on the token's length: a wrong length compares the token with itself
// (and fails), so neither an early exit nor the position of the first difference shows.
bool TokenMatches(std::string_view given, std::string_view token) {
  const bool same_length = given.size() == token.size();
  const std::string_view probe = same_length ? given : token;
  const bool equal = CRYPTO_memcmp(probe.data(), token.data(), token.size()) == 0;
  return same_length & equal;
}

// "127.0.0.1:8080", "[::1]:8080".
std::string HostPort(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

std::string PeerName(const uv_tcp_t* tcp) {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?";
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, host, sizeof(host));
    return HostPort(host, ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  uv_ip4_name(a, host, sizeof(host));
  return HostPort(host, ntohs(a->sin_port));
}

// For the log: a client's bytes with control characters replaced, bounded.
std::string Printable(std::string_view s) {
  std::string out(s.substr(0, 200));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

// The error body's code for the statuses the server itself answers with (docs/admin-api.md, "Errors").
AdminResponse ErrorResponse(int status, std::string_view message) {
  static constexpr std::pair<int, std::string_view> kCodes[] = {
      {400, "bad_request"},      {401, "unauthorized"}, {404, "not_found"},        {405, "method_not_allowed"},
      {408, "request_timeout"},  {413, "too_large"},    {414, "uri_too_long"},     {431, "header_too_large"},
      {503, "unavailable"},      {505, "http_version_not_supported"}};
  std::string_view code = "internal";
  for (const auto& [s, c] : kCodes)
    if (s == status) code = c;
  return AdminResponse::Error(status, code, message);
}

}  // namespace

struct Route {
  struct Segment {
    std::string text;  // the literal, or the parameter's name
    bool param = false;
  };
  std::string method;
  std::vector<Segment> segments;
  AdminHandler handler;        // a whole-body route, or
  StreamingHandler streaming;  // a streaming route (AddStreaming): sees the head, takes the body itself
  uint64_t max_body = 0;       // the streaming route's body limit

  bool Matches(const std::vector<std::string>& path) const {
    if (path.size() != segments.size()) return false;
    for (size_t i = 0; i < path.size(); ++i) {
      if (segments[i].param ? path[i].empty() : segments[i].text != path[i]) return false;
    }
    return true;
  }
  // True if this route is preferred to `other` (both matching the same path): a literal wins over a
  // parameter at the first segment where they differ.
  bool MoreSpecificThan(const Route& other) const {
    for (size_t i = 0; i < segments.size(); ++i) {
      if (segments[i].param != other.segments[i].param) return !segments[i].param;
    }
    return false;
  }
};

class HttpServer::Impl {
 public:
  // One client connection. Loop thread only. Freed by OnClosed, after uv_close (which first cancels the
  // write and shutdown requests embedded here, calling back with UV_ECANCELED).
  struct Conn {
    Conn(Impl& s, HttpLimits limits) : server(s), parser(limits) {}
    Impl& server;
    uv_tcp_t tcp{};
    uv_write_t write_req{};
    uv_shutdown_t shutdown_req{};
    HttpRequestParser parser;
    std::unique_ptr<FilterStack> filters;  // null: plain HTTP, bytes go straight to the parser
    std::string peer;
    AdminRequest req;                      // the current request, from its head on (the body streams in)
    const Route* route = nullptr;          // its route, or null when `early` holds the answer
    std::optional<AdminResponse> early;    // an answer decided at the head (401, 404, 405, 400, 413)
    // The current request's body: its limit (options or the streaming route's), what arrived, and the
    // streaming handler's sink while the body arrives (taken out by Finish or Abort, so each runs once).
    uint64_t body_limit = 0;
    uint64_t body_received = 0;
    std::unique_ptr<RequestBodySink> sink;
    bool body_too_large = false;  // the body passed body_limit: 413
    bool sink_stopped = false;    // the sink's Write returned false: Finish, then close
    bool sink_failed = false;     // the sink's Write threw: 500, then close
    Clock::time_point progress;   // with a sink: the head's end or the last body bytes
    // A streamed response being written (AdminResponse::stream): read up to kStreamThreshold ahead of the
    // socket. Until it ends, input waits unparsed (read_paused), so pipelined answers follow it in order.
    std::shared_ptr<ResponseBody> stream;
    uint64_t stream_offset = 0;
    uint64_t stream_length = 0;
    bool close_after_stream = false;  // it is the connection's last response
    std::string out;       // plaintext output not yet handed to the filters / the socket
    std::string writing;   // the bytes of the write in flight
    std::string unread;    // input set aside while read_paused
    Clock::time_point accepted, request_start, write_start, last_activity, linger_until;
    bool in_request = false;         // bytes of a request were parsed and it is not complete
    bool rejected = false;           // over max_connections: answered 503 (after the TLS handshake)
    bool counted = false;            // counts in active_
    bool writing_now = false;        // a uv_write is in flight (owns `writing`)
    bool close_after_flush = false;  // the last response is queued
    bool lingering = false;          // everything written, our side shut down, draining until EOF
    bool peer_eof = false;           // the peer shut its side down
    bool read_paused = false;        // too much output pending: input waits in `unread`
    bool closing = false;            // uv_close called
    Conn* prev = nullptr;
    Conn* next = nullptr;
  };

  explicit Impl(HttpServerOptions o) : options_(std::move(o)), tls_(options_.tls), read_buffer_(new char[kReadBufferSize]) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &stop_async_, &Impl::OnStop);
    stop_async_.data = this;
    uv_timer_init(&loop_, &sweep_);
    sweep_.data = this;
  }

  ~Impl() {
    Stop();
    // Handles of a server that never ran (or failed to listen) are still open: close them so that
    // uv_loop_close succeeds. After a run the thread closed everything and this finds nothing.
    uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  void Add(std::string_view method, std::string_view pattern, AdminHandler handler) {
    AddRoute(method, pattern).handler = std::move(handler);
  }

  void AddStreaming(std::string_view method, std::string_view pattern, StreamingHandler handler,
                    uint64_t max_body) {
    Route& r = AddRoute(method, pattern);
    r.streaming = std::move(handler);
    r.max_body = max_body;
    parser_max_body_ = std::max(parser_max_body_, max_body);
  }

  Status Listen() {
    PARLEY_CHECK(!listen_tried_);
    listen_tried_ = true;
    const bool v6 = options_.bind.find(':') != std::string::npos;
    const std::string where = options_.name + " listener " + HostPort(options_.bind, options_.port);
    sockaddr_storage ss{};
    int r = v6 ? uv_ip6_addr(options_.bind.c_str(), options_.port, reinterpret_cast<sockaddr_in6*>(&ss))
               : uv_ip4_addr(options_.bind.c_str(), options_.port, reinterpret_cast<sockaddr_in*>(&ss));
    if (r != 0) return Status::Error(where + ": not an IP address");
    uv_tcp_init(&loop_, &listener_);
    listener_.data = this;
    r = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&ss), v6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, &Impl::OnConnection);
    if (r != 0) return Status::Error(where + ": " + uv_strerror(r));  // the destructor closes the handle
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    listening_ = true;
    spdlog::info("{} listener on {} ({})", options_.name, HostPort(options_.bind, port_), tls() ? "https" : "http");
    return Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Start() {
    PARLEY_CHECK(listening_ && !started_);
    started_ = true;
    // The sweep's period: fine enough for the shortest timeout (tests use 200 ms), at most a second.
    const auto shortest = std::min(options_.request_timeout, options_.idle_timeout);
    const uint64_t period = std::clamp<uint64_t>(static_cast<uint64_t>(shortest.count()) / 4, 10, 1000);
    uv_timer_start(&sweep_, &Impl::OnSweep, period, period);
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  // The async send happens under stop_mu_ with the thread still joinable, so the handle is open (only the
  // loop thread closes it, in OnStop, and the thread ends right after).
  void Stop() {
    std::lock_guard lock(stop_mu_);
    if (!thread_.joinable()) return;
    uv_async_send(&stop_async_);
    thread_.join();
  }

  void SetTls(std::shared_ptr<const TlsContext> tls) {
    std::lock_guard lock(tls_mu_);
    tls_ = std::move(tls);
  }

 private:
  std::shared_ptr<const TlsContext> tls() const {
    std::lock_guard lock(tls_mu_);
    return tls_;
  }

  Route& AddRoute(std::string_view method, std::string_view pattern) {
    PARLEY_CHECK(!started_);
    PARLEY_CHECK(!pattern.empty() && pattern.front() == '/');
    Route& r = routes_.emplace_back();
    r.method = std::string(method);
    for (std::string_view s : SplitPath(pattern)) {
      const bool param = s.size() >= 2 && s.front() == '{' && s.back() == '}';
      r.segments.push_back({std::string(param ? s.substr(1, s.size() - 2) : s), param});
    }
    return r;
  }

  // ---- libuv callbacks: each catches everything (an allocation failure) and closes what it was about ----

  static void OnStop(uv_async_t* h) {
    auto* s = static_cast<Impl*>(h->data);
    if (s->listening_) uv_close(reinterpret_cast<uv_handle_t*>(&s->listener_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->sweep_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->stop_async_), nullptr);
    for (Conn* c = s->head_; c; c = c->next) CloseNow(c);
    // uv_run returns once the close callbacks have run: the thread ends.
  }

  static void OnConnection(uv_stream_t* listener, int status) {
    auto* s = static_cast<Impl*>(listener->data);
    if (status < 0) {
      s->WarnAccept(std::string("cannot accept connections: ") + uv_strerror(status));
      return;
    }
    Conn* c = nullptr;
    try {
      HttpLimits limits;
      limits.max_body = s->parser_max_body_;  // each request's own limit is checked by OnHead and OnBody
      c = new Conn(*s, limits);
      uv_tcp_init(&s->loop_, &c->tcp);
      c->tcp.data = c;
      c->accepted = c->last_activity = Clock::now();
      s->Attach(c);
      if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) return CloseNow(c);
      uv_tcp_nodelay(&c->tcp, 1);
      c->peer = PeerName(&c->tcp);
      c->parser.set_body_handler([c](std::span<const uint8_t> b) { c->server.OnBody(c, b); });
      if (s->active_ >= s->options_.max_connections) {
        c->rejected = true;
        s->WarnAccept("refused a connection from " + c->peer + ": " + std::to_string(s->active_) +
                      " connections open (max_connections)");
      } else {
        c->counted = true;
        ++s->active_;
      }
      if (auto ctx = s->tls()) {
        std::vector<std::unique_ptr<Filter>> filters;
        filters.push_back(ctx->NewFilter());
        c->filters = std::make_unique<FilterStack>(std::move(filters), [c](std::span<const uint8_t> b) { c->server.Feed(c, b); });
      }
      uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Impl::OnAlloc, &Impl::OnRead);
      if (c->rejected && !c->filters) s->Reject(c);  // with TLS, once the handshake is done
      s->Flush(c);
    } catch (...) {
      if (c) CloseNow(c);
    }
  }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    // One read buffer for the loop: input is parsed straight from it (only `unread` copies).
    buf->base = static_cast<Conn*>(h->data)->server.read_buffer_.get();
    buf->len = kReadBufferSize;
  }

  static void OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    if (c->closing || n == 0) return;
    try {
      if (n > 0) c->server.OnInput(c, std::span(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n)));
      else c->server.OnEndOfInput(c, static_cast<int>(n));
    } catch (...) {
      CloseNow(c);
    }
  }

  static void OnWrite(uv_write_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    c->writing_now = false;
    c->writing.clear();
    if (c->writing.capacity() > kKeepCapacity && !c->stream) std::string().swap(c->writing);
    if (c->closing) return;
    if (status < 0) return CloseNow(c);
    c->last_activity = Clock::now();
    try {
      if (c->read_paused && !c->stream && c->server.PendingOutput(c) < kMaxPendingOutput) c->server.Resume(c);
      c->server.Flush(c);  // reads more of a streamed response
    } catch (...) {
      CloseNow(c);
    }
  }

  static void OnSweep(uv_timer_t* h) {
    auto* s = static_cast<Impl*>(h->data);
    const auto now = Clock::now();
    for (Conn* c = s->head_; c;) {
      Conn* next = c->next;  // CloseNow frees nothing before the close callback: `next` stays valid
      try {
        s->Sweep(c, now);
      } catch (...) {
        CloseNow(c);
      }
      c = next;
    }
  }

  static void OnClosed(uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    Impl& s = c->server;
    s.AbortSink(c);  // a body cut short by a reset, a failed write, a timeout or Stop()
    if (c->counted) --s.active_;
    if (c->prev) c->prev->next = c->next;
    else s.head_ = c->next;
    if (c->next) c->next->prev = c->prev;
    delete c;
  }

  // ---- connection life ----

  void Attach(Conn* c) {
    c->next = head_;
    if (head_) head_->prev = c;
    head_ = c;
  }

  static void CloseNow(Conn* c) {
    if (c->closing) return;
    c->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), &Impl::OnClosed);
  }

  void OnInput(Conn* c, std::span<const uint8_t> bytes) {
    c->last_activity = Clock::now();
    if (c->close_after_flush) return;  // the last response is queued, or we are draining: discard
    if (c->filters) {
      const Status st = c->filters->Input(bytes);  // plaintext goes to Feed()
      if (!st.ok()) {
        // The filter queued what the peer should read (an alert, or our close_notify): send it, then close.
        spdlog::debug("{} {}: {}", options_.name, c->peer, st.message());
        c->close_after_flush = true;
      } else if (c->rejected && c->filters->ready() && !c->close_after_flush) {
        Reject(c);
      }
    } else {
      Feed(c, bytes);
    }
    Flush(c);
  }

  void OnEndOfInput(Conn* c, int error) {
    if (error != UV_EOF || c->lingering) return CloseNow(c);
    // A client may shut its side down after its request (a half-close): finish writing what was answered,
    // then close. (No EOF arrives while read_paused: reading is stopped.) A partial request is dropped.
    c->peer_eof = true;
    c->close_after_flush = true;
    AbortSink(c);
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    Flush(c);
  }

  // Plaintext input: parses and answers as many requests as it holds, in order.
  void Feed(Conn* c, std::span<const uint8_t> bytes) {
    if (c->rejected || c->closing || c->close_after_flush) return;
    if (c->read_paused) {
      c->unread.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      return;
    }
    while (!bytes.empty() && !c->closing) {
      if (c->stream || PendingOutput(c) >= kMaxPendingOutput) {
        // Stop reading until OnWrite drains the output below the bound (and a streamed response has
        // ended: what follows must be answered after it); the rest of this read waits.
        c->read_paused = true;
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
        c->unread.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return;
      }
      if (!c->in_request) {
        c->in_request = true;
        c->request_start = Clock::now();
      }
      const HttpParseResult r = c->parser.Parse(bytes);
      bytes = bytes.subspan(r.consumed);
      if (r.state == HttpParseState::kError) {
        AbortSink(c);
        const HttpError& e = c->parser.error();
        return Respond(c, ErrorResponse(e.status, e.reason), /*close=*/true);
      }
      if (r.state == HttpParseState::kHeadComplete) {
        OnHead(c);
        if (c->close_after_flush) return;
      } else if (c->sink && r.consumed > 0) {
        c->progress = Clock::now();
      }
      if (EndBodyEarly(c)) return;
      if (!c->parser.message_complete()) {
        if (r.state == HttpParseState::kNeedMore && r.consumed == 0) return;  // cannot happen; never spin
        continue;
      }
      Dispatch(c);
      if (c->close_after_flush) return;
    }
  }

  void Resume(Conn* c) {
    c->read_paused = false;
    if (c->sink) c->progress = Clock::now();  // the wait was ours, not the client's
    std::string unread = std::exchange(c->unread, {});
    Feed(c, std::span(reinterpret_cast<const uint8_t*>(unread.data()), unread.size()));  // may pause again
    if (!c->read_paused && !c->closing && !c->close_after_flush)
      uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Impl::OnAlloc, &Impl::OnRead);
  }

  // ---- requests ----

  // The head is complete: decode, authenticate, route, check the announced body and ask a streaming
  // handler now, so that a refused request's body is never read (its connection closes after the answer).
  void OnHead(Conn* c) {
    const HttpRequest& h = c->parser.request();
    c->early = Prepare(c);
    if (!c->early) {
      c->body_limit = c->route->streaming ? c->route->max_body : options_.max_body;
      // The parser's limit is the largest of all routes': this request's own is checked here and in OnBody.
      if (h.content_length.value_or(0) > c->body_limit || (h.chunked && c->body_limit == 0))
        c->early = ErrorResponse(413, "request body too large");
    }
    if (!c->early && c->route->streaming) StartStreaming(c);
    const bool has_body_to_read = !c->parser.message_complete();
    if (c->early && has_body_to_read) return Respond(c, *c->early, /*close=*/true);
    if (!c->early && has_body_to_read) {
      if (h.HasToken("Expect", "100-continue") && h.version_minor >= 1) c->out += "HTTP/1.1 100 Continue\r\n\r\n";
    }
  }

  // Asks the streaming route's handler: an answer (into `early`), or a sink for the body.
  void StartStreaming(Conn* c) {
    broker::StreamStart start;
    std::string why;
    try {
      start = c->route->streaming(c->req);
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "an exception that is not a std::exception";
    }
    if (why.empty() && start.response) {
      // An answer wins; a sink returned with it was never started, so it is dropped without a call.
      c->early = Checked(c, [&] { return std::move(*start.response); });
      return;
    }
    if (why.empty() && start.sink) {
      c->sink = std::move(start.sink);
      c->progress = Clock::now();
      return;
    }
    if (why.empty()) why = "neither a response nor a sink";
    spdlog::error("{} {} {}: handler failed: {}", options_.name, Printable(c->req.method),
                  Printable(c->parser.request().path), why);
    c->early = ErrorResponse(500, "internal error");
  }

  // Body bytes of the current (routed, accepted) request: collected whole, or written to the sink.
  void OnBody(Conn* c, std::span<const uint8_t> b) {
    if (c->early || c->body_too_large || c->sink_stopped || c->sink_failed) return;  // refused: discarded
    if (b.size() > c->body_limit - c->body_received) {
      c->body_too_large = true;
      return;
    }
    c->body_received += b.size();
    if (!c->route->streaming) {
      c->req.body.append(reinterpret_cast<const char*>(b.data()), b.size());
      return;
    }
    if (!c->sink) return;
    try {
      if (!c->sink->Write(b)) c->sink_stopped = true;
    } catch (const std::exception& e) {
      spdlog::error("{} {} {}: body sink failed: {}", options_.name, Printable(c->req.method),
                    Printable(c->parser.request().path), e.what());
      c->sink_failed = true;
    } catch (...) {
      spdlog::error("{} {} {}: body sink failed", options_.name, Printable(c->req.method),
                    Printable(c->parser.request().path));
      c->sink_failed = true;
    }
  }

  // A body that cannot go on: too large (413, Abort), a sink that stopped it (its Finish) or threw (500,
  // Abort). Answers and closes; true if it did.
  bool EndBodyEarly(Conn* c) {
    if (c->body_too_large) {
      AbortSink(c);
      Respond(c, ErrorResponse(413, "request body too large"), /*close=*/true);
    } else if (c->sink_failed) {
      AbortSink(c);
      Respond(c, ErrorResponse(500, "internal error"), /*close=*/true);
    } else if (c->sink_stopped) {
      Respond(c, FinishSink(c), /*close=*/true);
    } else {
      return false;
    }
    return true;
  }

  AdminResponse FinishSink(Conn* c) {
    std::unique_ptr<RequestBodySink> sink = std::move(c->sink);
    if (!sink) return ErrorResponse(500, "internal error");  // cannot happen: Finish and Abort take it out
    return Checked(c, [&] { return sink->Finish(); });
  }

  // The body will not end: tells the sink, if there is one (once: it is taken out).
  void AbortSink(Conn* c) {
    std::unique_ptr<RequestBodySink> sink = std::move(c->sink);
    if (!sink) return;
    try {
      sink->Abort();
    } catch (...) {
      spdlog::error("{} {}: a body sink's Abort threw", options_.name, c->peer);
    }
  }

  std::optional<AdminResponse> Prepare(Conn* c) {
    const HttpRequest& h = c->parser.request();
    c->route = nullptr;
    c->req = AdminRequest();
    c->req.method = h.method;
    c->req.peer = c->peer;
    c->req.headers.reserve(h.headers.size());
    for (const HttpHeader& f : h.headers) c->req.headers.emplace_back(f.name, f.value);
    if (h.path.empty() || h.path.front() != '/') return ErrorResponse(400, "the request target is not a path");
    if (!PercentDecode(h.path, false, &c->req.path)) return ErrorResponse(400, "invalid percent-encoding in the path");
    if (!ParseQuery(h.query, &c->req.query)) return ErrorResponse(400, "invalid percent-encoding in the query");
    // Authentication first: without the token, no answer tells which paths exist.
    if (!options_.bearer_token.empty() && !IsPublic(c->req.path) && !Authorized(h)) {
      AdminResponse r = ErrorResponse(401, "a valid bearer token is required");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"parley\"");
      return r;
    }
    std::vector<std::string> segments;
    std::string decoded;
    for (std::string_view s : SplitPath(h.path)) {
      PercentDecode(s, false, &decoded);  // cannot fail: the whole path decoded
      segments.push_back(decoded);
    }
    const Route* best = nullptr;
    const Route* best_get = nullptr;  // HEAD is served by GET routes, unless a HEAD route matches
    std::vector<std::string> allow;
    for (const Route& r : routes_) {
      if (!r.Matches(segments)) continue;
      allow.push_back(r.method);
      if (r.method == h.method && (!best || r.MoreSpecificThan(*best))) best = &r;
      if (r.method == "GET" && (!best_get || r.MoreSpecificThan(*best_get))) best_get = &r;
    }
    if (!best && h.method == "HEAD") best = best_get;
    if (!best) {
      if (allow.empty()) return ErrorResponse(404, "no such path");
      if (std::find(allow.begin(), allow.end(), "GET") != allow.end()) allow.push_back("HEAD");
      std::sort(allow.begin(), allow.end());
      allow.erase(std::unique(allow.begin(), allow.end()), allow.end());
      std::string list;
      for (const std::string& m : allow) list += (list.empty() ? "" : ", ") + m;
      AdminResponse r = ErrorResponse(405, "method " + Printable(h.method) + " not allowed here");
      r.headers.emplace_back("Allow", std::move(list));
      return r;
    }
    c->route = best;
    for (size_t i = 0; i < segments.size(); ++i)
      if (best->segments[i].param) c->req.params[best->segments[i].text] = std::move(segments[i]);
    return std::nullopt;
  }

  bool IsPublic(std::string_view path) const {
    return std::find(options_.public_paths.begin(), options_.public_paths.end(), path) != options_.public_paths.end();
  }

  bool Authorized(const HttpRequest& h) const {
    const std::optional<std::string_view> value = h.Find("Authorization");
    if (!value || h.Count("Authorization") != 1) return false;
    constexpr std::string_view kScheme = "Bearer ";
    if (value->size() < kScheme.size() || !EqualsIgnoreCase(value->substr(0, kScheme.size()), kScheme)) return false;
    return TokenMatches(value->substr(kScheme.size()), options_.bearer_token);
  }

  // The request is complete: answers it (the early answer, or the handler's).
  void Dispatch(Conn* c) {
    const HttpRequest& h = c->parser.request();
    const bool close = h.version_minor == 0 ? !h.HasToken("Connection", "keep-alive") : h.HasToken("Connection", "close");
    if (c->early) {
      Respond(c, *c->early, close || c->early->status == 400);
    } else if (c->route->streaming) {
      Respond(c, FinishSink(c), close);
    } else {
      Respond(c, Checked(c, [c] { return c->route->handler(c->req); }), close);
    }
    // Ready for the next request on this connection.
    c->parser.Reset();
    c->in_request = false;
    c->early.reset();
    c->route = nullptr;
    c->req = AdminRequest();
    c->body_limit = c->body_received = 0;
    c->body_too_large = c->sink_stopped = c->sink_failed = false;
  }

  // Runs `f`, a handler's step that yields the response; an exception or a response the server cannot
  // send (a status outside 200-599, both a body and a stream) is logged and answered 500.
  template <typename F>
  AdminResponse Checked(Conn* c, F&& f) {
    std::string why;
    try {
      AdminResponse r = f();
      const bool bad_status = r.status < 200 || r.status > 599;
      if (!bad_status && !(r.stream && !r.body.empty())) return r;
      why = bad_status ? "invalid status " + std::to_string(r.status)
                       : "a response with both a body and a stream";
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "an exception that is not a std::exception";
    }
    spdlog::error("{} {} {}: handler failed: {}", options_.name, Printable(c->req.method),
                  Printable(c->parser.request().path), why);
    return ErrorResponse(500, "internal error");
  }

  // Queues `r` on the connection (a stream's head, and its body as Pump reads it); `close` ends the
  // connection after it.
  void Respond(Conn* c, const AdminResponse& r, bool close) {
    const HttpRequest& h = c->parser.request();
    const bool head_done = c->parser.head_complete();
    const bool bodiless_status = r.status == 204 || r.status == 304;
    const std::string length = std::to_string(r.stream ? r.stream_length : r.body.size());
    const bool own_cache_control = std::any_of(r.headers.begin(), r.headers.end(), [](const auto& f) {
      return EqualsIgnoreCase(f.first, "Cache-Control");
    });
    std::vector<HttpHeaderView> headers;
    headers.reserve(5 + r.headers.size());
    if (!bodiless_status) {
      if (!r.content_type.empty()) headers.push_back({"Content-Type", r.content_type});
      headers.push_back({"Content-Length", length});
    }
    if (!own_cache_control) headers.push_back({"Cache-Control", "no-store"});
    if (close) headers.push_back({"Connection", "close"});
    else if (h.version_minor == 0) headers.push_back({"Connection", "keep-alive"});
    for (const auto& [name, value] : r.headers) {
      // Framing is ours: a handler's copy of these would contradict it.
      if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
          EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Content-Type"))
        continue;
      headers.push_back({name, value});
    }
    c->out += RenderHttpResponseHead(r.status, headers);
    const bool send_body = !bodiless_status && !(head_done && h.method == "HEAD");
    if (send_body && r.stream && r.stream_length > 0) {
      c->stream = r.stream;
      c->stream_offset = 0;
      c->stream_length = r.stream_length;
      c->close_after_stream = close;
    } else {
      if (send_body) c->out += r.body;
      if (close) c->close_after_flush = true;
    }
    c->last_activity = Clock::now();
    if (spdlog::should_log(spdlog::level::debug)) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - c->request_start).count();
      spdlog::debug("{} {} {} {} {:.2f}ms {}", options_.name, head_done ? Printable(h.method) : "-",
                    head_done ? Printable(h.path) : "-", r.status, c->in_request ? ms : 0.0, c->peer);
    }
  }

  // Over max_connections: a 503, then close.
  void Reject(Conn* c) {
    AdminResponse r = ErrorResponse(503, "too many connections");
    r.headers.emplace_back("Retry-After", "1");
    Respond(c, r, /*close=*/true);
  }

  // ---- output ----

  size_t PendingOutput(const Conn* c) const {
    return c->out.size() + c->writing.size() + (c->filters ? c->filters->wire().size() : 0);
  }

  // Reads a streamed response's body into the output while the output is below kStreamThreshold. A read
  // error ends the connection once what was read is written: the client sees a body shorter than its
  // Content-Length.
  void Pump(Conn* c) {
    while (c->stream && PendingOutput(c) < kStreamThreshold) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(kStreamChunk, c->stream_length - c->stream_offset));
      const size_t old = c->out.size();
      c->out.resize(old + want);
      size_t n = 0;
      std::string why = "read error";
      try {
        n = c->stream->Read(c->stream_offset,
                            std::span(reinterpret_cast<uint8_t*>(c->out.data() + old), want));
        if (n > want) why = "read returned more than asked";
      } catch (const std::exception& e) {
        why = e.what();
      } catch (...) {
        why = "an exception that is not a std::exception";
      }
      if (n == 0 || n > want) {
        c->out.resize(old);
        spdlog::warn("{} {}: streamed response cut at byte {} of {}: {}", options_.name, c->peer,
                     c->stream_offset, c->stream_length, why);
        c->stream.reset();
        c->close_after_flush = true;
        return;
      }
      c->out.resize(old + n);
      c->stream_offset += n;
      if (c->stream_offset == c->stream_length) {
        c->stream.reset();
        if (c->close_after_stream) c->close_after_flush = true;
      }
    }
  }

  // Hands the output to the filters and starts a write if none is in flight (OnWrite calls again). Once the
  // last response is written, lingers.
  void Flush(Conn* c) {
    if (c->closing || c->lingering) return;
    Pump(c);
    if (c->filters) {
      if (!c->out.empty()) (void)c->filters->Output(c->out);  // an error closes the connection anyway
      c->out.clear();
      if (c->close_after_flush && !c->stream) c->filters->Close();  // close_notify after the last response
    }
    if (c->writing_now) return;
    std::string& pending = c->filters ? c->filters->wire() : c->out;
    if (pending.empty()) {
      if (c->close_after_flush && !c->stream) BeginLinger(c);
      return;
    }
    c->writing.swap(pending);
    c->writing_now = true;
    c->write_start = Clock::now();
    c->write_req.data = c;
    const uv_buf_t b = uv_buf_init(c->writing.data(), static_cast<unsigned>(c->writing.size()));
    if (uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, &Impl::OnWrite) != 0) {
      c->writing_now = false;
      CloseNow(c);
    }
  }

  void BeginLinger(Conn* c) {
    if (c->peer_eof) return CloseNow(c);  // nothing unread can follow: a plain close sends no RST
    c->lingering = true;
    c->linger_until = Clock::now() + kLinger;
    auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
    if (c->read_paused) {
      c->read_paused = false;
      c->unread.clear();
      uv_read_start(stream, &Impl::OnAlloc, &Impl::OnRead);
    }
    if (uv_shutdown(&c->shutdown_req, stream, [](uv_shutdown_t*, int) {}) != 0) CloseNow(c);
  }

  // ---- timeouts ----

  void Sweep(Conn* c, Clock::time_point now) {
    if (c->closing) return;
    if (c->lingering) {
      if (now >= c->linger_until) CloseNow(c);
      return;
    }
    if (c->writing_now) {
      if (now - c->write_start > options_.idle_timeout) CloseNow(c);  // the client stopped reading
      return;
    }
    if (c->close_after_flush || c->read_paused) return;
    if (c->filters && !c->filters->ready()) {
      if (now - c->accepted > options_.request_timeout) CloseNow(c);  // a TLS handshake too slow to finish
      return;
    }
    if (c->in_request) {
      // A streamed body's deadline moves with each byte (an upload over a slow link may take hours);
      // anything else must be complete in time.
      if (now - (c->sink ? c->progress : c->request_start) <= options_.request_timeout) return;
      spdlog::debug("{} {}: request not complete after {} ms{}", options_.name, c->peer,
                    options_.request_timeout.count(), c->sink ? " without progress" : "");
      AbortSink(c);
      Respond(c, ErrorResponse(408, "request not complete in time"), /*close=*/true);
      return Flush(c);
    }
    if (now - c->last_activity > options_.idle_timeout) CloseNow(c);
  }

  // Accept trouble and refusals: once a second at most, with how many were not logged.
  void WarnAccept(const std::string& what) {
    ++accept_warnings_;
    const auto now = Clock::now();
    if (now - accept_warned_ < std::chrono::seconds(1)) return;
    spdlog::warn("{} listener: {} ({} such events since the last warning)", options_.name, what, accept_warnings_);
    accept_warnings_ = 0;
    accept_warned_ = now;
  }

  // Set before Start() by the owning thread, then read by the loop thread only.
  HttpServerOptions options_;
  std::vector<Route> routes_;
  uint64_t parser_max_body_ = options_.max_body;  // the largest body any route takes
  uint16_t port_ = 0;
  bool listen_tried_ = false;
  bool listening_ = false;
  bool started_ = false;

  mutable std::mutex tls_mu_;
  std::shared_ptr<const TlsContext> tls_;  // guarded by tls_mu_

  std::mutex stop_mu_;  // serialises Stop() calls (the async send, the join)
  std::thread thread_;

  // Loop thread only, once started.
  uv_loop_t loop_{};
  uv_tcp_t listener_{};
  uv_async_t stop_async_{};
  uv_timer_t sweep_{};
  std::unique_ptr<char[]> read_buffer_;
  Conn* head_ = nullptr;  // every connection not yet freed
  uint32_t active_ = 0;   // connections counted against max_connections
  uint64_t accept_warnings_ = 0;
  Clock::time_point accept_warned_{};
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpServer::~HttpServer() = default;
void HttpServer::Add(std::string_view method, std::string_view pattern, AdminHandler handler) {
  impl_->Add(method, pattern, std::move(handler));
}
void HttpServer::AddStreaming(std::string_view method, std::string_view pattern, StreamingHandler handler,
                              uint64_t max_body) {
  impl_->AddStreaming(method, pattern, std::move(handler), max_body);
}
Status HttpServer::Listen() { return impl_->Listen(); }
uint16_t HttpServer::port() const { return impl_->port(); }
void HttpServer::Start() { impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
void HttpServer::SetTls(std::shared_ptr<const TlsContext> tls) { impl_->SetTls(std::move(tls)); }

}  // namespace parley::net
