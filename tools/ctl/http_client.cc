#include "tools/ctl/http_client.h"

#include <curl/curl.h>

#include <cstring>

namespace parley::ctl {
namespace {

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Bounds a response held in memory: the admin API's largest answers (10,000 clients, /metrics) are a few MB.
constexpr curl_off_t kMaxBody = 256LL << 20;

}  // namespace

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)), curl_(curl_easy_init()) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

bool HttpClient::Send(std::string_view method, std::string_view target, bool has_body,
                      std::string_view json_body, HttpResponse* out, TransportError* error) {
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) {
    error->message = "cannot initialise libcurl";
    return false;
  }
  curl_easy_reset(c);
  *out = HttpResponse{};
  const std::string url = options_.base_url + std::string(target);
  const std::string method_s(method);
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, kMaxBody);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "parleyctl/" PARLEY_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
  // Proxies from the environment (http_proxy) would send the token elsewhere: the admin API is reached
  // directly.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (!options_.cacert.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.cacert.c_str());
  if (options_.insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  if (method_s == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method_s.c_str());
  }
  if (has_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
  } else if (method_s == "POST" || method_s == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
  }

  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  if (has_body) headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for small bodies
  std::string auth;
  if (!options_.token.empty()) {
    auth = "Authorization: Bearer " + options_.token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  std::memset(auth.data(), 0, auth.size());  // no copy of the token left behind in freed memory

  if (rc != CURLE_OK) {
    // The error buffer has the detail ("Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect
    // to server"); curl's generic text only when it is empty.
    error->message = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    error->usage = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
    return false;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
  char* ct = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) out->content_type = ct;
  return true;
}

std::string Escape(std::string_view s) {
  if (s.empty()) return {};
  // The handle argument is ignored by curl_easy_escape since 7.82; passing none keeps Escape free-standing.
  char* e = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  if (!e) return {};
  std::string out(e);
  curl_free(e);
  return out;
}

std::string QueryString(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    q += q.empty() ? '?' : '&';
    q += Escape(k);
    q += '=';
    q += Escape(v);
  }
  return q;
}

}  // namespace parley::ctl
