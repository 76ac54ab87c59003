// The admin API as parleyctl uses it (docs/admin-api.md): JSON requests and responses over HttpClient, and
// the mapping of every failure to parleyctl's exit codes and its one-line error message.
//
// Errors are thrown as CtlError and caught once, in main. A command-line tool is all boundary: STYLE.md's
// "exceptions only at the boundary" allows it, and it keeps each command a straight line of calls.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/ctl/http_client.h"

namespace parley::ctl {

// Key order as the server sent it, so --json prints the response as it came.
using Json = nlohmann::ordered_json;

// parleyctl's exit codes (also in --help and tools/README.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // other server errors, a failed job, config errors, restore failed
inline constexpr int kExitUsage = 2;   // bad command line (every CLI11 parse error), unreadable token file
inline constexpr int kExitUnreachable = 3;   // the admin API cannot be reached: refused, timeout, TLS failure
inline constexpr int kExitUnauthorized = 4;  // 401
inline constexpr int kExitNotFound = 5;      // 404
inline constexpr int kExitConflict = 6;      // 409; restore: the data dir is in use or not empty

// Ends the command: main prints "parleyctl: <message>" on stderr and exits with `exit_code`.
class CtlError : public std::runtime_error {
 public:
  CtlError(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// The exit code for an HTTP error status: 401 -> 4, 404 -> 5, 409 -> 6, anything else -> 1.
int ExitCodeForStatus(long status);

// The error for a non-2xx response: "<message> (<code>, HTTP <status>)" from the body
// {"error": {"code", "message"}}; for a body that is not that shape, its first line (or the status alone).
CtlError ErrorFromResponse(long status, std::string_view body);

// The error for a transport failure: "cannot reach the admin API at <url>: <what>" (exit 3, or 2 for a
// malformed URL).
CtlError ErrorFromTransport(std::string_view base_url, const TransportError& e);

class Api {
 public:
  explicit Api(HttpOptions options) : http_(std::move(options)) {}

  struct Response {
    long status = 0;
    Json body;        // the parsed body (null if empty or not JSON)
    std::string raw;  // the body as sent
  };
  using Query = std::vector<std::pair<std::string, std::string>>;

  // One request. `path` is already escaped (build it with Escape() for parameters); `query` is escaped here.
  // Throws CtlError on a transport failure; with `throw_on_error`, also for a non-2xx status.
  Response Call(std::string_view method, std::string_view path, const Query& query = {},
                const Json* body = nullptr, bool throw_on_error = true);

  Json Get(std::string_view path, const Query& query = {}) { return Call("GET", path, query).body; }
  Json Post(std::string_view path, const Json& body) { return Call("POST", path, {}, &body).body; }
  Json Put(std::string_view path, const Json& body) { return Call("PUT", path, {}, &body).body; }
  Json Delete(std::string_view path, const Query& query = {}) { return Call("DELETE", path, query).body; }
  // A text endpoint (/metrics): the body as is.
  std::string GetText(std::string_view path) { return Call("GET", path).raw; }

  const HttpOptions& options() const { return http_.options(); }

 private:
  HttpClient http_;
};

}  // namespace parley::ctl
