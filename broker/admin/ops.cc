#include "broker/admin/ops.h"

#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "base/log.h"
#include "broker/admin/backup.h"
#include "broker/admin/json_util.h"
#include "broker/core/version.h"

namespace parley::admin {
namespace {

using broker::AdminRequest;
using broker::AdminResponse;
using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

AdminResponse UserErrorResponse(const LiveConfig::UserResult& r) {
  switch (r.error) {
    case LiveConfig::UserError::kNoFile:
    case LiveConfig::UserError::kExists:
      return AdminResponse::Error(409, "conflict", r.message);
    case LiveConfig::UserError::kUnknown:
      return AdminResponse::Error(404, "not_found", r.message);
    case LiveConfig::UserError::kInvalid:
      return AdminResponse::Error(400, "bad_request", r.message);
    default:
      return AdminResponse::Error(500, "internal", r.message);
  }
}

// A string field of `body`, or an error response naming it.
bool StringField(const json& body, const char* name, std::string* out, AdminResponse* error, bool required = true) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (!required) return true;
    *error = AdminResponse::Error(400, "bad_request", std::string("missing field \"") + name + "\"");
    return false;
  }
  if (!it->is_string()) {
    *error = AdminResponse::Error(400, "bad_request", std::string("\"") + name + "\" must be a string");
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

json BanJson(const broker::guard::BanRule& b) {
  return {{"kind", broker::guard::BanKindName(b.kind)},
          {"value", b.value},
          {"until_ms", b.until_unix_ms ? json(*b.until_unix_ms) : json(nullptr)},
          {"reason", b.reason}};
}

std::optional<broker::guard::BanKind> ParseBanKind(std::string_view s) {
  if (s == "address") return broker::guard::BanKind::kAddress;
  if (s == "clientid") return broker::guard::BanKind::kClientId;
  if (s == "username") return broker::guard::BanKind::kUsername;
  return std::nullopt;
}

json MetricsJson(const std::vector<metrics::Family>& families, std::string_view prefix) {
  json out = json::array();
  auto labels_json = [](const metrics::Labels& labels) {
    json l = json::object();
    for (const auto& [k, v] : labels) l[k] = v;
    return l;
  };
  for (const auto& f : families) {
    if (f.name.rfind(prefix, 0) != 0) continue;
    json j;
    j["name"] = f.name;
    j["help"] = f.help;
    j["type"] = f.type == metrics::Type::kCounter ? "counter" : f.type == metrics::Type::kGauge ? "gauge" : "histogram";
    j["samples"] = json::array();
    for (const auto& s : f.samples) j["samples"].push_back({{"labels", labels_json(s.labels)}, {"value", s.value}});
    j["histograms"] = json::array();
    for (const auto& h : f.histograms) {
      auto q = [&](double p) {
        auto v = metrics::Quantile(h, p);
        return v ? json(*v) : json(nullptr);
      };
      j["histograms"].push_back(
          {{"labels", labels_json(h.labels)}, {"count", h.count}, {"sum", h.sum}, {"p50", q(0.5)}, {"p99", q(0.99)}});
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

void AddOpsRoutes(broker::AdminRouter& router, const OpsContext& c) {
  // ---- health
  router.Add("GET", "/healthz", [c](const AdminRequest&) {
    const std::vector<int> stalled = c.stalled_workers ? c.stalled_workers() : std::vector<int>{};
    if (!stalled.empty()) return Ok({{"status", "stalled"}, {"workers", stalled}}, 503);
    return Ok({{"status", "ok"}});
  });
  router.Add("GET", "/readyz", [c](const AdminRequest&) {
    std::vector<std::string> reasons;
    if (c.stopping && c.stopping->load()) reasons.push_back("stopping");
    if (c.draining && c.draining()) reasons.push_back("draining");
    if (c.broker->overloaded()) reasons.push_back("overloaded");
    if (c.broker->persistence() && !c.broker->persistence()->Writable()) reasons.push_back("storage_read_only");
    if (!reasons.empty()) return Ok({{"ready", false}, {"reasons", reasons}}, 503);
    return Ok({{"ready", true}});
  });

  // ---- metrics
  router.Add("GET", "/metrics", [c](const AdminRequest&) {
    return AdminResponse::Text(200, metrics::RenderPrometheus(c.metrics->Collect()),
                               std::string(metrics::kPrometheusContentType));
  });
  router.Add("GET", "/api/v1/metrics", [c](const AdminRequest& req) {
    return Ok({{"metrics", MetricsJson(c.metrics->Collect(), req.Query("prefix").value_or(""))}});
  });

  // ---- status
  router.Add("GET", "/api/v1/status", [c](const AdminRequest&) {
    const broker::StatsSnapshot s = c.broker->Stats();
    const config::Config cfg = c.live->running();
    json j;
    j["version"] = broker::kParleyVersion;
    j["pid"] = static_cast<int64_t>(::getpid());
    j["workers"] = c.workers;
    j["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(c.broker->clock().Now() - c.broker->started()).count();
    j["listeners"] = c.listeners ? c.listeners() : json::array();
    j["clients_connected"] = s.clients_connected;
    j["sessions"] = s.sessions;
    j["subscriptions"] = s.subscriptions;
    j["retained"] = s.retained;
    j["messages_received"] = s.messages_received;
    j["messages_sent"] = s.messages_sent;
    j["messages_dropped"] = s.dropped_total;
    j["overloaded"] = c.broker->overloaded();
    j["draining"] = c.draining ? c.draining() : false;
    json storage = {{"enabled", cfg.storage.enabled}, {"data_dir", cfg.data_dir}, {"durability", cfg.storage.durability}};
    if (c.store) {
      uint64_t bytes = 0;
      for (uint32_t f = 0; f < c.store->family_count(); ++f) bytes += c.store->ApproximateSize(storage::FamilyId(f));
      storage["disk_bytes"] = bytes;
    }
    j["storage"] = storage;
    j["im"] = {{"enabled", cfg.im.enabled}};
    j["alerts_firing"] = c.alerts_firing ? c.alerts_firing() : 0;
    j["log_level"] = log::LevelName();
    j["config_file"] = cfg.source_path;
    return Ok(j);
  });

  // ---- users
  router.Add("GET", "/api/v1/users", [c](const AdminRequest&) {
    LiveConfig::UserResult r;
    const auto users = c.live->ListUsers(&r);
    if (r.error != LiveConfig::UserError::kNone) return UserErrorResponse(r);
    json list = json::array();
    for (const auto& u : users) list.push_back({{"username", u}});
    return Ok({{"users", list}, {"file", c.live->password_file()}});
  });
  router.Add("POST", "/api/v1/users", [c](const AdminRequest& req) {
    json body;
    AdminResponse err;
    std::string name, password;
    if (!ParseBody(req, &body, &err) || !StringField(body, "username", &name, &err) ||
        !StringField(body, "password", &password, &err))
      return err;
    const auto r = c.live->AddUser(name, password);
    if (r.error != LiveConfig::UserError::kNone) return UserErrorResponse(r);
    return Ok({{"username", name}}, 201);
  });
  router.Add("PUT", "/api/v1/users/{username}/password", [c](const AdminRequest& req) {
    json body;
    AdminResponse err;
    std::string password;
    if (!ParseBody(req, &body, &err) || !StringField(body, "password", &password, &err)) return err;
    const std::string name(req.Param("username"));
    const auto r = c.live->SetPassword(name, password);
    if (r.error != LiveConfig::UserError::kNone) return UserErrorResponse(r);
    return Ok({{"username", name}});
  });
  router.Add("DELETE", "/api/v1/users/{username}", [c](const AdminRequest& req) {
    const auto r = c.live->DeleteUser(std::string(req.Param("username")));
    if (r.error != LiveConfig::UserError::kNone) return UserErrorResponse(r);
    return Ok({{"deleted", true}});
  });

  // ---- bans
  router.Add("GET", "/api/v1/bans", [c](const AdminRequest&) {
    json list = json::array();
    for (const auto& b : c.live->bans().List(NowMs())) list.push_back(BanJson(b));
    return Ok({{"bans", list}});
  });
  router.Add("POST", "/api/v1/bans", [c](const AdminRequest& req) {
    json body;
    AdminResponse err;
    std::string kind, value, reason;
    if (!ParseBody(req, &body, &err) || !StringField(body, "kind", &kind, &err) ||
        !StringField(body, "value", &value, &err) || !StringField(body, "reason", &reason, &err, false))
      return err;
    broker::guard::BanRule rule;
    const auto k = ParseBanKind(kind);
    if (!k) return AdminResponse::Error(400, "bad_request", "\"kind\" must be address, clientid or username");
    rule.kind = *k;
    rule.value = value;
    rule.reason = reason;
    const int64_t now = NowMs();
    if (auto it = body.find("duration_seconds"); it != body.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > int64_t{100} * 365 * 86400)
        return AdminResponse::Error(400, "bad_request", "\"duration_seconds\" must be a positive integer (at most 100 years)");
      rule.until_unix_ms = now + it->get<int64_t>() * 1000;
    }
    if (auto st = broker::guard::BanList::Canonicalize(&rule); !st.ok())
      return AdminResponse::Error(400, "bad_request", st.message());
    if (auto st = c.live->bans().Add(rule, now); !st.ok()) return AdminResponse::Error(409, "conflict", st.message());
    spdlog::info("bans: added {} {}{}", broker::guard::BanKindName(rule.kind), rule.value,
                 rule.reason.empty() ? "" : " (" + rule.reason + ")");
    const size_t kicked = c.kick_banned ? c.kick_banned(rule) : 0;
    return Ok({{"ban", BanJson(rule)}, {"kicked", kicked}}, 201);
  });
  router.Add("DELETE", "/api/v1/bans/{kind}/{value}", [c](const AdminRequest& req) {
    const auto k = ParseBanKind(req.Param("kind"));
    if (!k) return AdminResponse::Error(400, "bad_request", "the kind must be address, clientid or username");
    if (auto st = c.live->bans().Remove(*k, req.Param("value"), NowMs()); !st.ok())
      return AdminResponse::Error(404, "not_found", st.message());
    spdlog::info("bans: removed {} {}", req.Param("kind"), req.Param("value"));
    return Ok({{"deleted", true}});
  });

  // ---- configuration and log level
  router.Add("GET", "/api/v1/config/check", [c](const AdminRequest&) {
    const ReloadReport r = c.live->Check();
    return Ok(r.ToJson(true), r.ok ? 200 : 422);
  });
  router.Add("POST", "/api/v1/config/reload", [c](const AdminRequest&) {
    spdlog::info("reload requested through the admin API");
    const ReloadReport r = c.live->Reload();
    return Ok(r.ToJson(false), r.ok ? 200 : 422);
  });
  router.Add("GET", "/api/v1/log/level", [](const AdminRequest&) { return Ok({{"level", log::LevelName()}}); });
  router.Add("PUT", "/api/v1/log/level", [](const AdminRequest& req) {
    json body;
    AdminResponse err;
    std::string level;
    if (!ParseBody(req, &body, &err) || !StringField(body, "level", &level, &err)) return err;
    if (auto st = log::SetLevel(level); !st.ok()) return AdminResponse::Error(400, "bad_request", st.message());
    spdlog::warn("log level set to {} through the admin API", level);
    return Ok({{"level", log::LevelName()}});
  });

  // ---- jobs
  router.Add("POST", "/api/v1/backup", [c](const AdminRequest& req) {
    if (!c.store) return AdminResponse::Error(503, "unavailable", "storage is disabled: there is nothing to back up");
    json body;
    AdminResponse err;
    std::string dir;
    if (!ParseBody(req, &body, &err) || !StringField(body, "dir", &dir, &err)) return err;
    if (auto st = CheckBackupTarget(dir); !st.ok()) {
      const bool exists = st.message().find("already exists") != std::string::npos;
      return AdminResponse::Error(exists ? 409 : 400, exists ? "conflict" : "bad_request", st.message());
    }
    storage::Store* store = c.store;
    auto job = c.jobs->Start("backup", "bytes", [store, dir](JobProgress& p) { return RunBackup(*store, dir, p); });
    if (!job.ok()) return AdminResponse::Error(409, "conflict", job.status().message());
    return Ok({{"job", job.value()}}, 202);
  });
  router.Add("POST", "/api/v1/compact", [c](const AdminRequest&) {
    if (!c.store) return AdminResponse::Error(503, "unavailable", "storage is disabled: there is nothing to compact");
    storage::Store* store = c.store;
    auto job = c.jobs->Start("compact", "families", [store](JobProgress& p) { return RunCompaction(*store, p); });
    if (!job.ok()) return AdminResponse::Error(409, "conflict", job.status().message());
    return Ok({{"job", job.value()}}, 202);
  });
  router.Add("GET", "/api/v1/jobs", [c](const AdminRequest&) { return Ok({{"jobs", c.jobs->List()}}); });
  router.Add("GET", "/api/v1/jobs/{id}", [c](const AdminRequest& req) {
    json j = c.jobs->Get(std::string(req.Param("id")));
    if (j.is_null()) return AdminResponse::Error(404, "not_found", "no job " + std::string(req.Param("id")));
    return Ok({{"job", j}});
  });
}

}  // namespace parley::admin
