#include "broker/net/http_request.h"

#include <http_parser.h>

#include <algorithm>

namespace parley::net {

namespace {

char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// RFC 9110 section 5.6.2: token = 1*tchar.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// http-parser's errors, as the status a server answers with. Its descriptions are static strings.
HttpError MapParserError(http_errno e) {
  switch (e) {
    case HPE_HEADER_OVERFLOW:
      return {431, "request header fields too large"};
    default:
      return {400, http_errno_description(e)};
  }
}

void AppendSanitized(std::string* out, std::string_view s) {
  for (char c : s) out->push_back((c == '\r' || c == '\n') ? ' ' : c);
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// ---- HttpRequest --------------------------------------------------------------------------------------

std::optional<std::string_view> HttpRequest::Find(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

size_t HttpRequest::Count(std::string_view name) const {
  return static_cast<size_t>(std::count_if(
      headers.begin(), headers.end(), [&](const HttpHeader& h) { return EqualsIgnoreCase(h.name, name); }));
}

bool HttpRequest::HasToken(std::string_view name, std::string_view token) const {
  for (const HttpHeader& h : headers) {
    if (!EqualsIgnoreCase(h.name, name)) continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = TrimOws(rest.substr(0, comma));
      if (EqualsIgnoreCase(item, token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

// ---- HttpRequestParser --------------------------------------------------------------------------------

// http-parser's callbacks. A callback that refuses the request records why in callback_error_ and returns
// -1; http-parser then stops with a generic HPE_CB_* error that FailFromParser() replaces by ours. (Not 1:
// from on_headers_complete, 1 means "no body" and 2 "upgrade".)
struct HttpParserCallbacks {
  static HttpRequestParser& Self(http_parser* p) { return *static_cast<HttpRequestParser*>(p->data); }

  static int Refuse(HttpRequestParser& s, int status, std::string_view reason) {
    s.callback_error_ = {status, reason};
    return -1;
  }

  static int OnUrl(http_parser* p, const char* at, size_t len) {
    Self(p).request_.target.append(at, len);  // bounded: Parse() feeds at most max_head head bytes
    return 0;
  }

  // Limits that depend on where a field ends are checked when the head is complete, not here: http-parser
  // also calls these at the end of every input piece, and the outcome must not depend on the pieces.
  static int OnHeaderField(http_parser* p, const char* at, size_t len) {
    HttpRequestParser& s = Self(p);
    if (s.headers_done_cb_) return 0;  // a trailer of a chunked body: parsed, not kept
    std::vector<HttpHeader>& headers = s.request_.headers;
    if (s.in_value_ || headers.empty()) {
      s.in_value_ = false;
      if (headers.size() >= s.limits_.max_headers) s.too_many_headers_ = true;  // refused at the end
      if (!s.too_many_headers_) headers.emplace_back();
    }
    if (!s.too_many_headers_) headers.back().name.append(at, len);
    return 0;
  }

  static int OnHeaderValue(http_parser* p, const char* at, size_t len) {
    HttpRequestParser& s = Self(p);
    if (s.headers_done_cb_) return 0;
    s.in_value_ = true;
    if (s.too_many_headers_) return 0;
    if (s.request_.headers.empty()) return Refuse(s, 400, "header value without a name");
    s.request_.headers.back().value.append(at, len);
    return 0;
  }

  static int OnHeadersComplete(http_parser* p) {
    HttpRequestParser& s = Self(p);
    HttpRequest& r = s.request_;
    r.method = http_method_str(static_cast<http_method>(p->method));
    r.version_major = p->http_major;
    r.version_minor = p->http_minor;
    r.chunked = (p->flags & F_CHUNKED) != 0;
    if (p->flags & F_CONTENTLENGTH) r.content_length = p->content_length;
    for (HttpHeader& h : r.headers) {
      const std::string_view v = TrimOws(h.value);
      if (v.size() != h.value.size()) h.value = std::string(v);
    }
    s.headers_done_cb_ = true;
    s.in_value_ = false;
    if (s.too_many_headers_) return Refuse(s, 431, "too many header fields");
    // Stop at the end of the head: Parse() reports it before any body byte is read.
    http_parser_pause(p, 1);
    return 0;
  }

  static int OnBody(http_parser* p, const char* at, size_t len) {
    HttpRequestParser& s = Self(p);
    if (len > s.limits_.max_body - s.body_bytes_) return Refuse(s, 413, "request body too large");
    s.body_bytes_ += len;
    if (s.body_handler_) s.body_handler_(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(at), len));
    return 0;
  }

  static int OnMessageComplete(http_parser* p) {
    Self(p).message_done_cb_ = true;
    http_parser_pause(p, 1);  // one request per parser: what follows is not ours to consume
    return 0;
  }

  static const http_parser_settings kSettings;
};

const http_parser_settings HttpParserCallbacks::kSettings = [] {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_url = &HttpParserCallbacks::OnUrl;
  s.on_header_field = &HttpParserCallbacks::OnHeaderField;
  s.on_header_value = &HttpParserCallbacks::OnHeaderValue;
  s.on_headers_complete = &HttpParserCallbacks::OnHeadersComplete;
  s.on_body = &HttpParserCallbacks::OnBody;
  s.on_message_complete = &HttpParserCallbacks::OnMessageComplete;
  return s;
}();

HttpRequestParser::HttpRequestParser(HttpLimits limits)
    : limits_(limits), parser_(std::make_unique<http_parser>()) {
  Reset();
}

HttpRequestParser::~HttpRequestParser() = default;

void HttpRequestParser::Reset() {
  http_parser_init(parser_.get(), HTTP_REQUEST);
  parser_->data = this;
  phase_ = limits_.max_head == 0 ? Phase::kError : Phase::kHead;
  request_ = HttpRequest();
  error_ = limits_.max_head == 0 ? HttpError{431, "request head limit is zero"} : HttpError{};
  callback_error_ = HttpError{};
  head_bytes_ = 0;
  body_bytes_ = 0;
  in_value_ = too_many_headers_ = headers_done_cb_ = message_done_cb_ = false;
  last_head_byte_ = 0;
}

size_t HttpRequestParser::Execute(std::span<const uint8_t> bytes) {
  return http_parser_execute(parser_.get(), &HttpParserCallbacks::kSettings,
                             reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

HttpParseResult HttpRequestParser::Fail(int status, std::string_view reason, size_t consumed) {
  phase_ = Phase::kError;
  error_ = {status, reason};
  return {HttpParseState::kError, consumed};
}

HttpParseResult HttpRequestParser::FailFromParser(size_t consumed) {
  const HttpError e =
      callback_error_.status != 0 ? callback_error_ : MapParserError(HTTP_PARSER_ERRNO(parser_.get()));
  return Fail(e.status, e.reason, consumed);
}

bool HttpRequestParser::FinishHead() {
  HttpRequest& r = request_;
  if (r.version_major != 1) {
    error_ = {505, "HTTP version not supported"};
    return false;
  }
  // Debian's libhttp-parser is built non-strict, which lets a space into a field name ("Content-Length :
  // 5" would then be an unknown header and its body unseen: a request-smuggling shape). RFC 9112 section
  // 5.1 says to refuse it.
  for (const HttpHeader& h : r.headers) {
    if (!IsToken(h.name)) {
      error_ = {400, "invalid header field name"};
      return false;
    }
  }
  if (r.target == "*") {
    r.path = "*";  // OPTIONS * HTTP/1.1
  } else {
    const bool is_connect = parser_->method == HTTP_CONNECT;
    http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(r.target.data(), r.target.size(), is_connect ? 1 : 0, &u) != 0) {
      error_ = {400, "invalid request target"};
      return false;
    }
    if (u.field_set & (1u << UF_PATH)) {
      r.path = r.target.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    } else if (!is_connect) {
      r.path = "/";
    }
    if (u.field_set & (1u << UF_QUERY)) {
      r.query = r.target.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
  }
  if (r.content_length && *r.content_length > limits_.max_body) {
    error_ = {413, "request body too large"};
    return false;
  }
  if (r.chunked && limits_.max_body == 0) {
    error_ = {413, "request body not accepted"};
    return false;
  }
  return true;
}

HttpParseResult HttpRequestParser::Parse(std::span<const uint8_t> bytes) {
  switch (phase_) {
    case Phase::kError:
      return {HttpParseState::kError, 0};
    case Phase::kDone:
      return {HttpParseState::kMessageComplete, 0};
    case Phase::kBody: {
      if (bytes.empty()) return {HttpParseState::kNeedMore, 0};
      const size_t n = Execute(bytes);
      if (message_done_cb_) {
        phase_ = Phase::kDone;
        return {HttpParseState::kMessageComplete, n};
      }
      if (HTTP_PARSER_ERRNO(parser_.get()) != HPE_OK) return FailFromParser(n);
      return {HttpParseState::kNeedMore, n};
    }
    case Phase::kHead:
      break;
  }

  if (bytes.empty()) return {HttpParseState::kNeedMore, 0};
  // Never show http-parser more than the head may still take, so the limit holds whatever the pieces.
  const std::span<const uint8_t> window = bytes.first(std::min(bytes.size(), limits_.max_head - head_bytes_));
  size_t n = Execute(window);
  const bool head_done = headers_done_cb_;
  if (head_done && HTTP_PARSER_ERRNO(parser_.get()) == HPE_PAUSED) {
    // http-parser paused on the byte that ends the head (the final LF), without consuming it. Hand it
    // that byte alone: it sets up the body, or completes a bodiless message, without reading body bytes.
    // (Unpausing is only allowed when paused: libhttp-parser asserts otherwise.)
    http_parser_pause(parser_.get(), 0);
    n += Execute(window.subspan(n, 1));
  }
  head_bytes_ += n;
  if (const std::string_view why = ScanHead(window.first(n)); !why.empty()) return Fail(400, why, n);
  const http_errno e = HTTP_PARSER_ERRNO(parser_.get());

  if (!head_done) {
    if (e != HPE_OK) {
      if (e == HPE_HEADER_OVERFLOW && request_.headers.empty())
        return Fail(414, "request target too long", n);
      return FailFromParser(n);
    }
    if (head_bytes_ >= limits_.max_head) {
      // No header field started yet: the request line (in practice its target) took the whole budget.
      if (request_.headers.empty()) return Fail(414, "request target too long", n);
      return Fail(431, "request header fields too large", n);
    }
    return {HttpParseState::kNeedMore, n};
  }
  if (e != HPE_OK && !(e == HPE_PAUSED && message_done_cb_)) return FailFromParser(n);
  if (!FinishHead()) {
    phase_ = Phase::kError;
    return {HttpParseState::kError, n};
  }
  phase_ = message_done_cb_ ? Phase::kDone : Phase::kBody;
  return {HttpParseState::kHeadComplete, n};
}

std::string_view HttpRequestParser::ScanHead(std::span<const uint8_t> head) {
  for (const uint8_t b : head) {
    // Debian's http-parser is built non-strict: it takes any byte after a CR as the LF. A bare CR is a
    // request-smuggling shape (RFC 9112 section 2.2), so refuse it.
    if (last_head_byte_ == '\r' && b != '\n') return "bare CR in the request head";
    // Obsolete line folding: RFC 9112 section 5.2 lets a server refuse it, and it is never needed.
    if (last_head_byte_ == '\n' && (b == ' ' || b == '\t'))
      return "obsolete line folding in the request head";
    last_head_byte_ = b;
  }
  return {};
}

// ---- Responses ----------------------------------------------------------------------------------------

std::string_view HttpReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string RenderHttpResponseHead(int status, std::span<const HttpHeaderView> headers) {
  std::string out;
  out.reserve(64 + headers.size() * 32);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += HttpReasonPhrase(status);
  out += "\r\n";
  for (const HttpHeaderView& h : headers) {
    AppendSanitized(&out, h.name);
    out += ": ";
    AppendSanitized(&out, h.value);
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

std::string RenderHttpErrorResponse(int status, std::string_view body,
                                    std::span<const HttpHeaderView> extra) {
  const std::string length = std::to_string(body.size() + 1);
  std::vector<HttpHeaderView> headers = {
      {"Content-Type", "text/plain; charset=utf-8"},
      {"Content-Length", length},
      {"Connection", "close"},
  };
  headers.insert(headers.end(), extra.begin(), extra.end());
  std::string out = RenderHttpResponseHead(status, headers);
  out += body;
  out += '\n';
  return out;
}

}  // namespace parley::net
