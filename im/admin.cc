#include "im/admin.h"

#include <openssl/rand.h>

#include <atomic>
#include <charconv>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/codec/codec.h"
#include "im.pb.h"
#include "im/format.h"
#include "im/service.h"

namespace parley::im {

using broker::AdminRequest;
using broker::AdminResponse;
using nlohmann::json;

bool IsValidImUserName(std::string_view user) {
  return !user.empty() && user.size() <= 256 && mqtt::IsValidMqttUtf8(user);
}

bool IsValidConvId(std::string_view id) {
  if (id.size() != 34 || !(id.starts_with("d_") || id.starts_with("g_"))) return false;
  for (char c : id.substr(2))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

namespace {

constexpr size_t kMaxUsers = 1000;  // per request, as the IM layer's own limit (docs/protocol.md)
constexpr uint32_t kDefaultLimit = 50, kMaxLimit = 200;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
AdminResponse Ok(const json& j, int status = 200) { return AdminResponse::Json(status, Dump(j)); }
AdminResponse BadRequest(std::string_view message) { return AdminResponse::Error(400, "bad_request", message); }

// A protobuf value in the JSON form of docs/protocol.md (protobuf's JSON mapping, as the IM JSON format).
json ToJson(const google::protobuf::Message& m) {
  json j = json::parse(Encode(m, Format::kJson), nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(nullptr) : j;
}

// The HTTP status of an IM error (docs/admin-api.md, Errors).
int StatusOf(v1::ErrorCode code) {
  switch (code) {
    case v1::ERR_BAD_REQUEST: return 400;
    case v1::ERR_NOT_MEMBER:
    case v1::ERR_FORBIDDEN: return 403;
    case v1::ERR_NOT_FOUND: return 404;
    case v1::ERR_CONFLICT:
    case v1::ERR_GROUP_FULL:  // the change does not apply to the group as it is
    case v1::ERR_DISSOLVED:
    case v1::ERR_WINDOW_EXPIRED: return 409;
    case v1::ERR_TOO_LARGE: return 413;
    case v1::ERR_RATE_LIMITED: return 429;
    case v1::ERR_UNAVAILABLE:
    case v1::ERR_INTERNAL: return 503;  // storage: unavailable now, logged by the IM layer
    default: return 500;
  }
}

AdminResponse ImError(const v1::Error& e) {
  AdminResponse r = AdminResponse::Error(StatusOf(e.code()), v1::ErrorCode_Name(e.code()), e.message());
  if (e.retry_after_ms() > 0 && (r.status == 429 || r.status == 503))
    r.headers.emplace_back("Retry-After", std::to_string((e.retry_after_ms() + 999) / 1000));
  return r;
}

// The answer slot of one request. If every copy of the callback is destroyed without answering (the service
// stopped with the request queued), the waiter gets ERR_UNAVAILABLE instead of waiting out the timeout.
class Slot {
 public:
  ~Slot() {
    v1::Response r;
    r.mutable_error()->set_code(v1::ERR_UNAVAILABLE);
    r.mutable_error()->set_message("the IM layer stopped before answering");
    Set(r);
  }
  void Set(v1::Response& r) {
    if (!answered_.exchange(true)) promise_.set_value(std::move(r));
  }
  std::future<v1::Response> Future() { return promise_.get_future(); }

 private:
  std::atomic<bool> answered_{false};
  std::promise<v1::Response> promise_;
};

class Routes {
 public:
  Routes(ImService& im, std::chrono::milliseconds timeout) : im_(im), timeout_(timeout) {}

  // Submits `req` (as the operator, "", or as `user`) and waits for the Response; nullopt on timeout.
  std::optional<v1::Response> Call(v1::Request req, const std::string& user = {}) {
    auto slot = std::make_shared<Slot>();
    std::future<v1::Response> f = slot->Future();
    im_.Admin(std::move(req), user, /*operator_rights=*/user.empty(), [slot](v1::Response& r) { slot->Set(r); });
    slot.reset();  // the callbacks hold it now
    if (f.wait_for(timeout_) != std::future_status::ready) return std::nullopt;
    return f.get();
  }

  // Call, with the timeout and IM errors already turned into the HTTP answer (`*out` set, false).
  bool Ask(v1::Request req, v1::Response* resp, AdminResponse* out, const std::string& user = {}) {
    std::optional<v1::Response> r = Call(std::move(req), user);
    if (!r) {
      *out = AdminResponse::Error(503, "unavailable", "the IM layer did not answer in time");
      return false;
    }
    if (r->has_error()) {
      *out = ImError(r->error());
      return false;
    }
    *resp = std::move(*r);
    return true;
  }

  // The operator's view of a conversation ({"conversation": ...}), or the error.
  AdminResponse Conversation(const std::string& conv_id, int status) {
    v1::Request req;
    req.mutable_get_conversation()->set_conv_id(conv_id);
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out)) return out;
    return Ok(json{{"conversation", ToJson(resp.conversation())}}, status);
  }

  // The users of the MSG_MEMBERS entry an ack points at (those actually added or removed).
  std::optional<json> ChangedUsers(const v1::Ack& ack, AdminResponse* out) {
    v1::Request req;
    v1::RangeReq* r = req.mutable_range();
    r->set_conv_id(ack.conv_id());
    r->set_from_seq(ack.seq());
    r->set_to_seq(ack.seq());
    v1::Response resp;
    if (!Ask(std::move(req), &resp, out)) return std::nullopt;
    json users = json::array();
    for (const v1::Message& m : resp.messages().messages())
      if (m.seq() == ack.seq())
        for (const std::string& u : m.change().users()) users.push_back(u);
    return users;
  }

  AdminResponse Create(const AdminRequest& http) {
    json body;
    if (AdminResponse e; !ParseBody(http, &body, &e)) return e;
    const json* type = Field(body, "type");
    if (!type || !type->is_string() || (*type != "group" && *type != "direct"))
      return BadRequest("type must be \"group\" or \"direct\"");
    v1::Request req;
    std::string actor;
    if (*type == "group") {
      const json* owner = Field(body, "owner");
      if (!owner || !owner->is_string() || !IsValidImUserName(owner->get_ref<const std::string&>()))
        return BadRequest("owner must be a user name (1..256 bytes of UTF-8)");
      actor = owner->get<std::string>();
      v1::CreateGroupReq* g = req.mutable_create_group();
      if (const json* name = Field(body, "name")) {
        if (!name->is_string()) return BadRequest("name must be a string");
        g->set_name(name->get<std::string>());
      }
      std::vector<std::string> members;
      if (AdminResponse e; !Users(body, "members", /*required=*/false, &members, &e)) return e;
      for (std::string& m : members) g->add_members(std::move(m));
    } else {
      std::vector<std::string> users;
      if (AdminResponse e; !Users(body, "users", /*required=*/true, &users, &e)) return e;
      if (users.size() != 2 || users[0] == users[1]) return BadRequest("users must name two different users");
      actor = users[0];
      req.mutable_open_direct()->set_peer(users[1]);
    }
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out, actor)) return out;
    // The creator's summary carries their own counters: answer with the operator's view, as GET does.
    return Conversation(resp.conversation().conv_id(), 201);
  }

  AdminResponse Get(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    return Conversation(conv, 200);
  }

  AdminResponse Members(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    v1::Request req;
    req.mutable_list_members()->set_conv_id(conv);
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out)) return out;
    json members = json::array();
    for (const v1::Member& m : resp.members().members()) members.push_back(ToJson(m));
    return Ok(json{{"members", std::move(members)}});
  }

  AdminResponse AddMembers(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    json body;
    if (AdminResponse e; !ParseBody(http, &body, &e)) return e;
    std::vector<std::string> users;
    if (AdminResponse e; !Users(body, "users", /*required=*/true, &users, &e)) return e;
    if (users.empty()) return BadRequest("users must name at least one user");
    v1::Request req;
    req.mutable_add_members()->set_conv_id(conv);
    for (std::string& u : users) req.mutable_add_members()->add_users(std::move(u));
    return Change(std::move(req), "added");
  }

  AdminResponse RemoveMember(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    const std::string user(http.Param("user"));
    if (!IsValidImUserName(user)) return BadRequest("user must be a user name (1..256 bytes of UTF-8)");
    v1::Request req;
    req.mutable_remove_members()->set_conv_id(conv);
    req.mutable_remove_members()->add_users(user);
    return Change(std::move(req), "removed");
  }

  AdminResponse History(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    uint64_t before = 0, limit = kDefaultLimit;
    if (auto v = http.Query("before_seq"); v && !v->empty() && !Number(*v, &before))
      return BadRequest("before_seq must be a non-negative integer");
    if (auto v = http.Query("limit"); v && !v->empty() && (!Number(*v, &limit) || limit < 1 || limit > kMaxLimit))
      return BadRequest("limit must be 1..200");
    v1::Request req;
    v1::HistoryReq* h = req.mutable_history();
    h->set_conv_id(conv);
    h->set_before_seq(before);
    h->set_limit(static_cast<uint32_t>(limit));
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out)) return out;
    json messages = json::array();
    for (const v1::Message& m : resp.messages().messages()) messages.push_back(ToJson(m));
    return Ok(json{{"messages", std::move(messages)}, {"has_more", resp.messages().has_more()}});
  }

  AdminResponse SystemMessage(const AdminRequest& http) {
    std::string conv;
    if (AdminResponse e; !ConvParam(http, &conv, &e)) return e;
    json body;
    if (AdminResponse e; !ParseBody(http, &body, &e)) return e;
    const json* text = Field(body, "text");
    if (!text || !text->is_string() || text->get_ref<const std::string&>().empty())
      return BadRequest("text must be a non-empty string");
    if (!mqtt::IsValidMqttUtf8(text->get_ref<const std::string&>())) return BadRequest("text must be UTF-8");
    std::string cmid;
    if (const json* c = Field(body, "client_msg_id")) {
      if (!c->is_string() || c->get_ref<const std::string&>().empty() || c->get_ref<const std::string&>().size() > 64 ||
          !mqtt::IsValidMqttUtf8(c->get_ref<const std::string&>()))
        return BadRequest("client_msg_id must be 1..64 bytes of UTF-8");
      cmid = c->get<std::string>();
    } else {
      cmid = RandomId();  // not idempotent then: every call is a new message
    }
    v1::Request req;
    v1::SendReq* s = req.mutable_send();
    s->set_conv_id(conv);
    s->set_type(v1::MSG_SYSTEM);
    s->set_text(text->get<std::string>());
    s->set_client_msg_id(std::move(cmid));
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out)) return out;
    return Ok(json{{"ack", ToJson(resp.ack())}}, 201);
  }

 private:
  // An add or remove: {"<key>": [users actually changed], "ack": Ack}.
  AdminResponse Change(v1::Request req, const char* key) {
    v1::Response resp;
    AdminResponse out;
    if (!Ask(std::move(req), &resp, &out)) return out;
    std::optional<json> users = ChangedUsers(resp.ack(), &out);
    if (!users) return out;
    return Ok(json{{key, std::move(*users)}, {"ack", ToJson(resp.ack())}});
  }

  static const json* Field(const json& body, const char* name) {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  }

  static bool ParseBody(const AdminRequest& http, json* out, AdminResponse* error) {
    *out = json::parse(http.body.empty() ? std::string_view("{}") : std::string_view(http.body), nullptr,
                       /*allow_exceptions=*/false);
    if (out->is_discarded() || !out->is_object()) {
      *error = BadRequest("the body must be a JSON object");
      return false;
    }
    return true;
  }

  static bool ConvParam(const AdminRequest& http, std::string* conv, AdminResponse* error) {
    *conv = std::string(http.Param("conv_id"));
    if (IsValidConvId(*conv)) return true;
    *error = BadRequest("conv_id must be \"d_\" or \"g_\" and 32 lowercase hex digits");
    return false;
  }

  // body[name]: an array of user names (absent = empty unless required).
  static bool Users(const json& body, const char* name, bool required, std::vector<std::string>* out,
                    AdminResponse* error) {
    const json* v = Field(body, name);
    const std::string field(name);
    if (!v) {
      if (required) *error = BadRequest(field + " is required (an array of user names)");
      return !required;
    }
    if (!v->is_array() || v->size() > kMaxUsers) {
      *error = BadRequest(field + " must be an array of at most 1000 user names");
      return false;
    }
    for (const json& u : *v) {
      if (!u.is_string() || !IsValidImUserName(u.get_ref<const std::string&>())) {
        *error = BadRequest(field + " must hold user names (1..256 bytes of UTF-8)");
        return false;
      }
      out->push_back(u.get<std::string>());
    }
    return true;
  }

  static bool Number(std::string_view s, uint64_t* out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
  }

  static std::string RandomId() {
    unsigned char r[12];
    if (RAND_bytes(r, sizeof(r)) != 1)  // never seen; a clock value is unique enough for one admin thread
      return "admin-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    static const char kHex[] = "0123456789abcdef";
    std::string out = "admin-";
    for (unsigned char c : r) {
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
    return out;
  }

  ImService& im_;
  const std::chrono::milliseconds timeout_;
};

constexpr std::string_view kConversations = "/api/v1/conversations";
constexpr std::string_view kConversation = "/api/v1/conversations/{conv_id}";
constexpr std::string_view kMembers = "/api/v1/conversations/{conv_id}/members";
constexpr std::string_view kMember = "/api/v1/conversations/{conv_id}/members/{user}";
constexpr std::string_view kMessages = "/api/v1/conversations/{conv_id}/messages";

}  // namespace

void AddImRoutes(broker::AdminRouter& router, ImService& im, std::chrono::milliseconds timeout) {
  auto routes = std::make_shared<Routes>(im, timeout);
  auto bind = [routes](AdminResponse (Routes::*fn)(const AdminRequest&)) {
    return [routes, fn](const AdminRequest& r) { return ((*routes).*fn)(r); };
  };
  router.Add("POST", kConversations, bind(&Routes::Create));
  router.Add("GET", kConversation, bind(&Routes::Get));
  router.Add("GET", kMembers, bind(&Routes::Members));
  router.Add("POST", kMembers, bind(&Routes::AddMembers));
  router.Add("DELETE", kMember, bind(&Routes::RemoveMember));
  router.Add("GET", kMessages, bind(&Routes::History));
  router.Add("POST", kMessages, bind(&Routes::SystemMessage));
}

void AddDisabledImRoutes(broker::AdminRouter& router) {
  auto off = [](const AdminRequest&) { return AdminResponse::Error(503, "unavailable", "the IM layer is disabled"); };
  router.Add("POST", kConversations, off);
  router.Add("GET", kConversation, off);
  router.Add("GET", kMembers, off);
  router.Add("POST", kMembers, off);
  router.Add("DELETE", kMember, off);
  router.Add("GET", kMessages, off);
  router.Add("POST", kMessages, off);
}

}  // namespace parley::im
