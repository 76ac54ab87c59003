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
#include <optional>
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
  std::string body;          // request body as sent (JSON for /api/v1)
  std::string peer;          // "127.0.0.1:51234"

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

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (e.g. Retry-After)

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

class AdminRouter {
 public:
  virtual ~AdminRouter() = default;
  // Registers `handler` for `method` and `pattern`. A pattern is a path whose segments are literals or
  // "{name}" (one whole segment, any bytes once percent-decoded). Literal segments win over parameters;
  // a path that matches a pattern under another method is answered 405 with an Allow header. Before the
  // server starts.
  virtual void Add(std::string_view method, std::string_view pattern, AdminHandler handler) = 0;
};

}  // namespace parley::broker
