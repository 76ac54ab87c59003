// The admin API seam: plain HTTP request / response values and the router that modules register their
// endpoints on (docs/admin-api.md). The HTTP server that implements AdminRouter lives in broker/net; the broker's
// own endpoints in broker/admin; the IM layer's in im/admin. None of them sees the others.
//
// Threads: handlers run on the admin HTTP thread, one request at a time. They may block for a short while
// (a lookup, a file write, waiting up to a few seconds for the worker loops to answer); anything longer runs
// as a job on its own thread and is polled (docs/admin-api.md, "Jobs").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace parley::broker {

struct AdminRequest {
  std::string method;  // "GET", "POST", "PUT", "DELETE"
  std::string path;    // percent-decoded, without the query ("/api/v1/clients/sensor 1")
  // Path parameters matched by the route pattern ("/api/v1/clients/{id}" -> params["id"]), percent-decoded.
  std::map<std::string, std::string, std::less<>> params;
  // Query string parameters, percent-decoded; a repeated key keeps the last value.
  std::map<std::string, std::string, std::less<>> query;
  std::string body;          // request body as sent (JSON for /api/v1); empty for streaming routes
  std::string peer;          // "127.0.0.1:51234"
  // Header fields as received (names as sent, values trimmed), in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;

  // The first value of header `name` (ASCII case-insensitive), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < n.size() && same; ++i) {
        char a = n[i], b = name[i];
        if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
        same = a == b;
      }
      if (same) return std::string_view(v);
    }
    return std::nullopt;
  }

  // The query parameter `name`, or nullopt.
  std::optional<std::string_view> Query(std::string_view name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return std::string_view(it->second);
  }
  std::string_view Param(std::string_view name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string_view() : std::string_view(it->second);
  }
};

// A response body produced piece by piece (a file download), so that it is never held whole in memory.
class ResponseBody {
 public:
  virtual ~ResponseBody() = default;
  // Copies up to out.size() bytes of the body, starting `offset` bytes into it, into `out`; returns how many
  // (> 0), or 0 on a read error: the server then closes the connection (the client sees a short body).
  // Called on the server's thread, only as fast as the client reads.
  virtual size_t Read(uint64_t offset, std::span<uint8_t> out) = 0;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";  // "" = no Content-Type header
  std::string body;
  // Extra headers (e.g. Retry-After). A "Cache-Control" here replaces the server's default "no-store".
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: the body is `stream_length` bytes read from `stream` (then `body` must be empty). HEAD sends the
  // same head (Content-Length: stream_length) and never reads the stream.
  std::shared_ptr<ResponseBody> stream;
  uint64_t stream_length = 0;

  // A JSON body ({"error": {"code": ..., "message": ...}} for errors: see Error).
  static AdminResponse Json(int status, std::string json_text) {
    AdminResponse r;
    r.status = status;
    r.body = std::move(json_text);
    return r;
  }
  static AdminResponse Text(int status, std::string text, std::string content_type = "text/plain; charset=utf-8") {
    AdminResponse r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(text);
    return r;
  }
  // The uniform error body of /api/v1: {"error": {"code": "<code>", "message": "<message>"}}. `code` is one of
  // the stable codes in docs/admin-api.md ("bad_request", "not_found", "conflict", "unauthorized", ...).
  static AdminResponse Error(int status, std::string_view code, std::string_view message) {
    nlohmann::json j;
    j["error"] = {{"code", code}, {"message", message}};
    // A message may quote client bytes that are not UTF-8: replace rather than throw.
    return Json(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// A request body consumed as it arrives (a resumable upload's PATCH), never held whole in memory.
class RequestBodySink {
 public:
  virtual ~RequestBodySink() = default;
  // Body bytes, in order, as they arrive (valid only during the call). Return false to stop: the server
  // reads no more of the body, answers with Finish() at once and closes the connection after the answer.
  virtual bool Write(std::span<const uint8_t> bytes) = 0;
  // The body ended (all of it, or Write returned false): the response. Called at most once.
  virtual AdminResponse Finish() = 0;
  // The connection closed, failed or timed out before the body ended (or the server stops): no response can
  // be sent. What Write() accepted stays accepted. Called at most once, never after Finish().
  virtual void Abort() = 0;
};

// What a streaming handler decides once the head is in: answer at once (`response`; if the request announced
// a body, it is not read and the connection is closed after the answer), or take the body (`sink`). With
// both set, `response` wins and the sink is dropped uncalled; with neither, the server answers 500.
struct StreamStart {
  std::optional<AdminResponse> response;
  std::unique_ptr<RequestBodySink> sink;
};
using StreamingHandler = std::function<StreamStart(const AdminRequest& head)>;

class AdminRouter {
 public:
  virtual ~AdminRouter() = default;
  // Registers `handler` for `method` and `pattern`. A pattern is a path whose segments are literals or
  // "{name}" (one whole segment, any bytes once percent-decoded). Literal segments win over parameters;
  // a path that matches a pattern under another method is answered 405 with an Allow header. Before the
  // server starts. "HEAD" may be registered explicitly; otherwise HEAD is answered by the GET route.
  virtual void Add(std::string_view method, std::string_view pattern, AdminHandler handler) = 0;
  // Registers a handler that sees the head before the body and may stream the body through a sink, up to
  // `max_body` bytes (beyond: 413; a Content-Length over it is refused before the handler is asked, a
  // chunked body that passes it aborts the sink). For such a request request_timeout bounds the head and
  // each wait for more body bytes, not the whole body (an upload over a slow link may take hours). Routers
  // that cannot stream (test doubles) keep this default, which refuses every request with 501.
  virtual void AddStreaming(std::string_view method, std::string_view pattern, StreamingHandler handler,
                            uint64_t max_body) {
    (void)max_body;
    Add(method, pattern, [h = std::move(handler)](const AdminRequest&) {
      return AdminResponse::Error(501, "not_implemented", "this router does not stream request bodies");
    });
  }
};

}  // namespace parley::broker
