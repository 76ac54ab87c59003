// Small helpers the admin endpoints share: parsing a JSON body, paging parameters, JSON answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "broker/api/admin.h"

namespace parley::admin {

// Serialises `j` for a response; invalid UTF-8 from clients (ids, topics) is replaced, never thrown on.
inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
inline broker::AdminResponse Ok(const nlohmann::json& j, int status = 200) {
  return broker::AdminResponse::Json(status, Dump(j));
}

// The request body as a JSON object. Empty body = {}. On failure returns false and sets *error to a 400.
inline bool ParseBody(const broker::AdminRequest& req, nlohmann::json* out, broker::AdminResponse* error) {
  if (req.body.empty()) {
    *out = nlohmann::json::object();
    return true;
  }
  *out = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded() || !out->is_object()) {
    *error = broker::AdminResponse::Error(400, "bad_request", "the body must be a JSON object");
    return false;
  }
  return true;
}

// Paging: `limit` (default 100, 1..10000) and `after`. False with *error (400) on a bad limit.
struct Page {
  size_t limit = 100;
  std::string after;  // exclusive; "" = from the start
};
inline bool ParsePage(const broker::AdminRequest& req, Page* page, broker::AdminResponse* error) {
  if (auto l = req.Query("limit")) {
    size_t v = 0;
    bool ok = !l->empty() && l->size() <= 6;
    for (char c : *l) ok = ok && c >= '0' && c <= '9', v = v * 10 + static_cast<size_t>(c - '0');
    if (!ok || v < 1 || v > 10'000) {
      *error = broker::AdminResponse::Error(400, "bad_request", "limit must be 1..10000");
      return false;
    }
    page->limit = v;
  }
  if (auto a = req.Query("after")) page->after = std::string(*a);
  return true;
}

}  // namespace parley::admin
