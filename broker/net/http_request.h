// An incremental HTTP/1.1 request parser (a thin layer over Node's http-parser) and the few helpers a
// server needs to answer with an error. Used for the WebSocket upgrade; meant for the admin API and for
// resumable uploads (tus) too, so it reports the head first and streams the body afterwards.
//
// Pure: bytes in, a plain HttpRequest out. No socket, clock or config. Memory is bounded by the limits:
// the head (request line + header fields) is buffered at most once, the body never.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct http_parser;  // <http_parser.h>, kept out of this header.

namespace parley::net {

struct HttpHeader {
  std::string name;   // as sent (case kept)
  std::string value;  // leading and trailing spaces/tabs removed
};

// The head of one request, as received.
struct HttpRequest {
  std::string method;  // "GET", "POST", ... (http-parser's list; an unknown method is a 400)
  std::string target;  // the raw request-target, e.g. "/mqtt?x=1"
  std::string path;    // its path, not percent-decoded ("/" when an absolute-form target has none)
  std::string query;   // what follows '?', without it; empty when there is none
  int version_major = 0;
  int version_minor = 0;
  std::vector<HttpHeader> headers;         // in arrival order; repeated fields are kept apart
  std::optional<uint64_t> content_length;  // declared Content-Length, if any
  bool chunked = false;                    // Transfer-Encoding: chunked

  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
  // The first value of header `name` (ASCII case-insensitive), or nullopt.
  std::optional<std::string_view> Find(std::string_view name) const;
  // How many fields named `name` the request carries.
  size_t Count(std::string_view name) const;
  // True if some `name` field, read as a comma-separated list, holds `token` (both case-insensitive), as
  // Connection and Upgrade are read.
  bool HasToken(std::string_view name, std::string_view token) const;
};

struct HttpLimits {
  size_t max_head = 8 * 1024;  // request line + header fields + the blank line, in bytes
  size_t max_headers = 100;    // header fields
  // Trailer fields of a chunked body are parsed and dropped; http-parser caps them at 80 KiB (431).
  // Largest body accepted: a larger Content-Length is refused when the head completes, a chunked body
  // when its running total passes it. Default: no body at all.
  uint64_t max_body = 0;
};

// Why a request was refused: the HTTP status to answer with and a short reason (static storage) for the
// log and the reply's body.
struct HttpError {
  int status = 0;  // 400, 413, 414, 431 or 505
  std::string_view reason;
};

enum class HttpParseState {
  kNeedMore,         // every byte consumed; feed more
  kHeadComplete,     // the head is complete: request() is filled in; the body (if any) follows
  kMessageComplete,  // the request (head and body) is complete; bytes after it were not consumed
  kError,            // see error(); the parser stays in this state
};

struct HttpParseResult {
  HttpParseState state = HttpParseState::kNeedMore;
  size_t consumed = 0;  // bytes of the input that belong to this request and were parsed
};

// Parses one request; Reset() parses the next one on the same connection. Loop thread only (like any
// plain object: not thread-safe).
//
// Call Parse() with the bytes as they arrive, in pieces of any size, and again with the bytes it did not
// consume. It stops at the end of the head (kHeadComplete, once) so the caller may refuse the body before
// it is read, or treat the remaining bytes as another protocol (an upgrade). Body bytes are passed to the
// body handler as they stream (chunked framing removed) and count as consumed. After kMessageComplete,
// Parse() returns kMessageComplete consuming nothing until Reset().
class HttpRequestParser {
 public:
  // Receives body bytes; the span is only valid during the call. Bytes passed before an error (a chunked
  // body that runs past max_body, a malformed chunk) are part of a refused request: discard them.
  using BodyHandler = std::function<void(std::span<const uint8_t>)>;

  explicit HttpRequestParser(HttpLimits limits = {});
  ~HttpRequestParser();
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  void set_body_handler(BodyHandler handler) { body_handler_ = std::move(handler); }

  HttpParseResult Parse(std::span<const uint8_t> bytes);
  HttpParseResult Parse(std::string_view bytes) {
    return Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  // Forgets the current request and gets ready for the next one.
  void Reset();

  // Valid from kHeadComplete on (also after an error found once the head was complete, e.g. 413).
  const HttpRequest& request() const { return request_; }
  bool head_complete() const { return phase_ != Phase::kHead; }
  bool message_complete() const { return phase_ == Phase::kDone; }
  // Meaningful after kError.
  const HttpError& error() const { return error_; }
  // Body bytes passed to the handler so far.
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class Phase { kHead, kBody, kDone, kError };
  friend struct HttpParserCallbacks;

  // Runs http-parser over `bytes` (never empty); returns the bytes it consumed.
  size_t Execute(std::span<const uint8_t> bytes);
  HttpParseResult Fail(int status, std::string_view reason, size_t consumed);
  HttpParseResult FailFromParser(size_t consumed);
  // Checks what http-parser does not: version, target, declared body size. Sets error_ if refused.
  bool FinishHead();
  // Checks head bytes for what non-strict http-parser lets through; returns why they are refused, or "".
  std::string_view ScanHead(std::span<const uint8_t> head);

  HttpLimits limits_;
  std::unique_ptr<http_parser> parser_;
  BodyHandler body_handler_;
  Phase phase_ = Phase::kHead;
  HttpRequest request_;
  HttpError error_;
  size_t head_bytes_ = 0;  // head bytes consumed so far
  uint64_t body_bytes_ = 0;
  bool in_value_ = false;          // the last header callback was a value: a field name starts a new header
  bool too_many_headers_ = false;  // past max_headers: the rest are not kept, and the head is refused
  bool headers_done_cb_ = false;   // on_headers_complete ran
  bool message_done_cb_ = false;   // on_message_complete ran
  uint8_t last_head_byte_ = 0;     // for ScanHead() across pieces
  // Set by a callback that refused the request; reported instead of http-parser's generic callback error.
  HttpError callback_error_;
};

// ---- Responses ----------------------------------------------------------------------------------------

struct HttpHeaderView {
  std::string_view name;
  std::string_view value;
};

// The standard reason phrase for `status` ("Bad Request"), or "Unknown".
std::string_view HttpReasonPhrase(int status);

// "HTTP/1.1 <status> <phrase>\r\n", one "Name: value\r\n" per header, then "\r\n". CR and LF in names or
// values are replaced by spaces, so a reflected value cannot inject a header.
std::string RenderHttpResponseHead(int status, std::span<const HttpHeaderView> headers);

// A complete reply that ends the connection: the head with Content-Type: text/plain, Content-Length and
// Connection: close, then `extra` headers, then `body` followed by a newline.
std::string RenderHttpErrorResponse(int status, std::string_view body,
                                    std::span<const HttpHeaderView> extra = {});

// ASCII case-insensitive equality, as header names and tokens compare.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace parley::net
