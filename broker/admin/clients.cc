// Endpoints: /api/v1/clients, /sessions, /subscriptions, /retained, /drain (docs/admin-api.md).
#include "broker/admin/clients.h"

#include <limits>
#include <optional>
#include <vector>

#include "broker/admin/json_util.h"
#include "broker/codec/codec.h"

namespace parley::admin {

using broker::AdminRequest;
using broker::AdminResponse;
using json = nlohmann::json;

namespace {

// Retained payloads in lists: larger ones are shown by size only (GET /retained/message has them whole).
constexpr size_t kListPayloadMax = 4096;
constexpr uint32_t kMaxDrainRate = 1'000'000;
constexpr auto kWaitDurable = std::chrono::seconds(5);

// RFC 4648 base64 with padding.
std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                       static_cast<uint8_t>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 0x3F]);
  }
  if (const size_t rest = in.size() - i; rest > 0) {
    uint32_t v = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (rest == 2) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kAlphabet[(v >> 12) & 0x3F]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
  return out;
}

json Nullable(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

std::string_view VersionName(mqtt::Version v) { return v == mqtt::Version::kV5 ? "5.0" : "3.1.1"; }

json Next(bool more, const std::string& last) { return more ? json(last) : json(nullptr); }

json SubscriptionJson(const broker::SubscriptionInfo& s) {
  return {{"client_id", s.client_id},
          {"filter", s.filter},
          {"qos", s.opts.qos},
          {"no_local", s.opts.no_local},
          {"retain_as_published", s.opts.retain_as_published},
          {"retain_handling", s.opts.retain_handling},
          {"subscription_id", s.subscription_id},
          {"share_group", Nullable(s.share_group)}};
}

json SubscriptionsJson(const std::vector<broker::SubscriptionInfo>& subs) {
  json out = json::array();
  for (const auto& s : subs) out.push_back(SubscriptionJson(s));
  return out;
}

json SessionJson(const broker::SessionInfo& s) {
  return {{"client_id", s.client_id},
          {"username", Nullable(s.username)},
          {"online", s.online},
          {"expiry_interval", s.expiry_interval},
          {"expires_in_seconds", s.expires_in_seconds ? json(*s.expires_in_seconds) : json(nullptr)},
          {"subscriptions", s.subscriptions},
          {"queued", s.queued},
          {"queued_bytes", s.queued_bytes},
          {"inflight", s.inflight}};
}

// A connected client: what its loop knows, plus its session's counts (zero if the session just went away).
json ClientJson(const net::Server::ConnectionInfo& c, const std::optional<broker::SessionInfo>& s) {
  return {{"client_id", c.client_id},
          {"username", Nullable(c.username)},
          {"address", c.address},
          {"listener", c.listener},
          {"protocol", c.protocol},
          {"version", VersionName(c.version)},
          {"keep_alive", c.keep_alive},
          {"clean_start", c.clean_start},
          {"session_expiry", s ? s->expiry_interval : c.session_expiry},
          {"connected_at_ms", c.connected_at_ms},
          {"subscriptions", s ? s->subscriptions : 0},
          {"queued", s ? s->queued : 0},
          {"inflight", s ? s->inflight : 0}};
}

// `whole`: the payload in full (one message); otherwise a list entry, where payloads over 4 KiB are left out.
json RetainedJson(const broker::Message& m, bool whole) {
  json j = {{"topic", m.topic}, {"qos", m.qos}, {"payload_bytes", m.payload.size()}};
  const bool shown = whole || m.payload.size() <= kListPayloadMax;
  j["payload"] = shown && IsUtf8(m.payload) ? json(m.payload) : json(nullptr);
  if (shown) j["payload_base64"] = Base64(m.payload);
  return j;
}

json DrainJson(const net::Server::DrainState& d) {
  return {{"active", d.active},
          {"rate", d.rate},
          {"server_reference", d.server_reference.empty() ? json(nullptr) : json(d.server_reference)},
          {"started_at_ms", d.started_at_ms ? json(*d.started_at_ms) : json(nullptr)},
          {"remaining", d.remaining},
          {"disconnected", d.disconnected}};
}

AdminResponse BadRequest(std::string_view message) { return AdminResponse::Error(400, "bad_request", message); }
AdminResponse NotFound(std::string_view message) { return AdminResponse::Error(404, "not_found", message); }

// The reason codes a server may send in DISCONNECT (MQTT 5, 3.14.2.1; 0x04 is the client's).
bool ServerDisconnectReason(int rc) {
  switch (rc) {
    case 0x00: case 0x80: case 0x81: case 0x82: case 0x83: case 0x87: case 0x89: case 0x8B: case 0x8D:
    case 0x8E: case 0x8F: case 0x90: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97: case 0x98:
    case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D: case 0x9E: case 0x9F: case 0xA0: case 0xA1:
    case 0xA2:
      return true;
    default:
      return false;
  }
}

// The `topic` query parameter of /retained/message: required, a topic name (no wildcards).
std::optional<std::string> TopicParam(const AdminRequest& req, AdminResponse* error) {
  auto topic = req.Query("topic");
  if (!topic || topic->empty()) {
    *error = BadRequest("the query parameter topic is required");
    return std::nullopt;
  }
  if (topic->size() > 65535 || !mqtt::IsValidTopicName(*topic)) {
    *error = BadRequest("topic must be an MQTT topic name (UTF-8, no wildcards)");
    return std::nullopt;
  }
  return std::string(*topic);
}

}  // namespace

bool IsUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void AddClientRoutes(broker::AdminRouter& router, broker::Broker& broker, net::Server& server) {
  broker::Broker* b = &broker;
  net::Server* srv = &server;

  // ---- connected clients
  router.Add("GET", "/api/v1/clients", [b, srv](const AdminRequest& req) {
    AdminResponse error;
    Page page;
    if (!ParsePage(req, &page, &error)) return error;
    net::Server::ConnectionQuery q;
    q.after = page.after;
    q.limit = page.limit;
    if (auto u = req.Query("username")) q.username = std::string(*u);
    if (auto l = req.Query("listener")) q.listener = std::string(*l);
    bool more = false;
    auto found = srv->ListConnections(q, &more);
    if (!found.ok()) return AdminResponse::Error(503, "unavailable", found.status().message());
    json list = json::array();
    for (const auto& c : found.value()) list.push_back(ClientJson(c, b->GetSession(c.client_id)));
    return Ok({{"clients", std::move(list)}, {"next", Next(more, found->empty() ? "" : found->back().client_id)}});
  });
  router.Add("GET", "/api/v1/clients/{client_id}", [b, srv](const AdminRequest& req) {
    net::Server::ConnectionQuery q;
    q.client_id = std::string(req.Param("client_id"));
    q.limit = 1;
    auto found = srv->ListConnections(q, nullptr);
    if (!found.ok()) return AdminResponse::Error(503, "unavailable", found.status().message());
    if (found->empty()) return NotFound("no connected client with this client id");
    std::vector<broker::SubscriptionInfo> subs;
    const auto session = b->GetSession(q.client_id, &subs);
    return Ok({{"client", ClientJson(found->front(), session)}, {"subscriptions", SubscriptionsJson(subs)}});
  });
  router.Add("POST", "/api/v1/clients/{client_id}/kick", [b](const AdminRequest& req) {
    json body;
    AdminResponse error;
    if (!ParseBody(req, &body, &error)) return error;
    int reason = mqtt::rc::kAdministrativeAction;
    if (auto it = body.find("reason_code"); it != body.end() && !it->is_null()) {
      const int64_t v = it->is_number_integer() ? it->get<int64_t>() : -1;
      if (v < 0 || v > 255 || !ServerDisconnectReason(static_cast<int>(v)))
        return BadRequest("reason_code must be a DISCONNECT reason code a server may send (0, 128..162)");
      reason = static_cast<int>(v);
    }
    if (!b->KickClient(req.Param("client_id"), static_cast<uint8_t>(reason)))
      return NotFound("no connected client with this client id");
    return Ok({{"kicked", true}});
  });

  // ---- sessions
  router.Add("GET", "/api/v1/sessions", [b](const AdminRequest& req) {
    AdminResponse error;
    Page page;
    if (!ParsePage(req, &page, &error)) return error;
    broker::SessionState state = broker::SessionState::kAll;
    if (auto s = req.Query("state")) {
      if (*s == "online") {
        state = broker::SessionState::kOnline;
      } else if (*s == "offline") {
        state = broker::SessionState::kOffline;
      } else if (!s->empty()) {
        return BadRequest("state must be online or offline");
      }
    }
    bool more = false;
    const auto sessions = b->ListSessions(page.after, page.limit, state, &more);
    json list = json::array();
    for (const auto& s : sessions) list.push_back(SessionJson(s));
    return Ok({{"sessions", std::move(list)}, {"next", Next(more, sessions.empty() ? "" : sessions.back().client_id)}});
  });
  router.Add("GET", "/api/v1/sessions/{client_id}", [b](const AdminRequest& req) {
    std::vector<broker::SubscriptionInfo> subs;
    const auto s = b->GetSession(req.Param("client_id"), &subs);
    if (!s) return NotFound("no session with this client id");
    return Ok({{"session", SessionJson(*s)}, {"subscriptions", SubscriptionsJson(subs)}});
  });
  router.Add("DELETE", "/api/v1/sessions/{client_id}", [b](const AdminRequest& req) {
    const broker::DropResult r = b->DropSession(req.Param("client_id"));
    if (!r.found) return NotFound("no session with this client id");
    // "From disk too": answer once the deletion is durable (a crash right after must not bring it back).
    if (!b->WaitDurable(kWaitDurable))
      return AdminResponse::Error(503, "unavailable", "the session was dropped, but storage did not confirm it");
    return Ok({{"dropped", true}, {"kicked", r.kicked}});
  });

  // ---- subscriptions
  router.Add("GET", "/api/v1/subscriptions", [b](const AdminRequest& req) {
    AdminResponse error;
    Page page;
    if (!ParsePage(req, &page, &error)) return error;
    const std::string client_id(req.Query("client_id").value_or(""));
    bool more = false;
    const auto subs = b->ListSubscriptions(client_id, page.after, page.limit, &more);
    return Ok({{"subscriptions", SubscriptionsJson(subs)},
               {"next", Next(more, subs.empty() ? "" : subs.back().client_id)}});
  });

  // ---- retained messages
  router.Add("GET", "/api/v1/retained", [b](const AdminRequest& req) {
    AdminResponse error;
    Page page;
    if (!ParsePage(req, &page, &error)) return error;
    const std::string filter(req.Query("filter").value_or("#"));
    if (filter.empty() || filter.size() > 65535 || !mqtt::IsValidTopicFilter(filter) || !mqtt::IsValidMqttUtf8(filter))
      return BadRequest("filter must be an MQTT topic filter");
    bool more = false;
    const auto msgs = b->ListRetained(filter, page.after, page.limit, &more);
    json list = json::array();
    for (const auto& m : msgs) list.push_back(RetainedJson(*m, false));
    return Ok({{"retained", std::move(list)}, {"next", Next(more, msgs.empty() ? "" : msgs.back()->topic)}});
  });
  router.Add("GET", "/api/v1/retained/message", [b](const AdminRequest& req) {
    AdminResponse error;
    const auto topic = TopicParam(req, &error);
    if (!topic) return error;
    const broker::MessagePtr m = b->GetRetained(*topic);
    if (!m) return NotFound("no retained message on this topic");
    return Ok({{"retained", RetainedJson(*m, true)}});
  });
  router.Add("DELETE", "/api/v1/retained/message", [b](const AdminRequest& req) {
    AdminResponse error;
    const auto topic = TopicParam(req, &error);
    if (!topic) return error;
    if (!b->DeleteRetained(*topic)) return NotFound("no retained message on this topic");
    if (!b->WaitDurable(kWaitDurable))
      return AdminResponse::Error(503, "unavailable", "the message was cleared, but storage did not confirm it");
    return Ok({{"deleted", true}});
  });

  // ---- drain
  router.Add("POST", "/api/v1/drain", [srv](const AdminRequest& req) {
    json body;
    AdminResponse error;
    if (!ParseBody(req, &body, &error)) return error;
    auto rate = body.find("rate");
    if (rate == body.end() || !rate->is_number_integer() || rate->get<int64_t>() < 1 ||
        rate->get<int64_t>() > kMaxDrainRate)
      return BadRequest("rate (disconnects per second) must be an integer 1..1000000");
    std::string reference;
    if (auto r = body.find("server_reference"); r != body.end() && !r->is_null()) {
      if (!r->is_string()) return BadRequest("server_reference must be a string");
      reference = r->get<std::string>();
      if (reference.size() > 65535 || !mqtt::IsValidMqttUtf8(reference))
        return BadRequest("server_reference must be an MQTT UTF-8 string (no U+0000, at most 65535 bytes)");
    }
    return Ok({{"drain", DrainJson(srv->StartDrain(static_cast<uint32_t>(rate->get<int64_t>()), reference))}}, 202);
  });
  router.Add("GET", "/api/v1/drain", [srv](const AdminRequest&) { return Ok({{"drain", DrainJson(srv->DrainStatus())}}); });
  router.Add("DELETE", "/api/v1/drain", [srv](const AdminRequest&) { return Ok({{"drain", DrainJson(srv->StopDrain())}}); });
}

}  // namespace parley::admin
