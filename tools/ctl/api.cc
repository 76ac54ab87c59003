#include "tools/ctl/api.h"

#include "tools/ctl/table.h"

namespace parley::ctl {

int ExitCodeForStatus(long status) {
  switch (status) {
    case 401:
      return kExitUnauthorized;
    case 404:
      return kExitNotFound;
    case 409:
      return kExitConflict;
    default:
      return kExitFailed;
  }
}

CtlError ErrorFromResponse(long status, std::string_view body) {
  const std::string suffix = "HTTP " + std::to_string(status);
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const Json& e = j["error"];
    const std::string code = e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
    std::string message =
        e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    if (message.empty()) message = code.empty() ? "request failed" : code;
    return CtlError(ExitCodeForStatus(status),
                    Sanitize(message) + " (" + (code.empty() ? "" : Sanitize(code) + ", ") + suffix + ")");
  }
  // Not the API's error shape (a proxy, an older server): the first line of what came back.
  std::string_view first = body.substr(0, body.find('\n'));
  if (first.size() > 200) first = first.substr(0, 200);
  std::string message = first.empty() ? "request failed" : Sanitize(first);
  return CtlError(ExitCodeForStatus(status), message + " (" + suffix + ")");
}

CtlError ErrorFromTransport(std::string_view base_url, const TransportError& e) {
  if (e.usage) return CtlError(kExitUsage, "bad --url '" + std::string(base_url) + "': " + e.message);
  return CtlError(kExitUnreachable,
                  "cannot reach the admin API at " + std::string(base_url) + ": " + e.message);
}

Api::Response Api::Call(std::string_view method, std::string_view path, const Query& query, const Json* body,
                        bool throw_on_error) {
  const std::string target = std::string(path) + QueryString(query);
  const std::string payload =
      body ? body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : std::string();
  HttpResponse r;
  TransportError te;
  if (!http_.Send(method, target, body != nullptr, payload, &r, &te)) {
    throw ErrorFromTransport(http_.options().base_url, te);
  }
  if (throw_on_error && (r.status < 200 || r.status > 299)) {
    CtlError e = ErrorFromResponse(r.status, r.body);
    if (r.status == 401 && http_.options().token.empty()) {
      // A second line, so the first keeps the one-line format scripts may parse.
      throw CtlError(e.exit_code(),
                     std::string(e.what()) +
                         "\nparleyctl: no token given: use --token, --token-file or PARLEY_ADMIN_TOKEN");
    }
    throw e;
  }
  Response out;
  out.status = r.status;
  out.body = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (out.body.is_discarded()) out.body = nullptr;
  out.raw = std::move(r.body);
  return out;
}

}  // namespace parley::ctl
