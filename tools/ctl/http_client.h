// A minimal HTTP client for the admin API over libcurl's easy interface: one request at a time, a total
// timeout per request, no redirects, http and https only, the bearer token in a header. It knows nothing of
// JSON or of the API's paths (api.h does).
//
// Threads: one HttpClient per thread (it owns a CURL easy handle, reused for keep-alive between a job's
// polls). curl_global_init must have run before the first HttpClient is made (main does it).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::ctl {

struct HttpOptions {
  std::string base_url = "http://127.0.0.1:8080";  // scheme://host[:port][/prefix], no trailing slash needed
  std::string token;                               // "" = send no Authorization header
  std::string cacert;        // a CA file to verify an https server with ("" = the system's)
  bool insecure = false;     // https without verifying the certificate or the host name
  long timeout_ms = 10'000;  // per request, connect included
};

struct HttpResponse {
  long status = 0;           // HTTP status
  std::string content_type;  // as sent ("" if none)
  std::string body;
};

// How a request failed before an HTTP status came back.
struct TransportError {
  std::string
      message;  // curl's text plus its detail, e.g. "Couldn't connect to server: Failed to connect..."
  bool usage =
      false;  // the URL itself is bad (malformed, unsupported scheme): a usage error, not "unreachable"
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method` to base_url + `target` (a path with its query, already percent-encoded: see Escape), with
  // `json_body` as an application/json body when `has_body`. Returns true with *out filled when any HTTP
  // status came back (error statuses included), false with *error otherwise.
  bool Send(std::string_view method, std::string_view target, bool has_body, std::string_view json_body,
            HttpResponse* out, TransportError* error);

  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
  void* curl_;  // CURL*, owned
};

// `s` percent-encoded for one path segment or one query value: every byte but A-Z a-z 0-9 - . _ ~ becomes
// %XX (so '/', ' ', '?', '%', '+' and UTF-8 bytes are all escaped). Uses curl_easy_escape.
std::string Escape(std::string_view s);

// "?k1=v1&k2=v2" from the pairs (keys and values escaped), or "" when there are none.
std::string QueryString(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace parley::ctl
