#include "broker/admin/live_config.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "base/file_util.h"
#include "base/log.h"
#include "broker/auth/acl_file.h"
#include "broker/auth/jwt_auth.h"
#include "broker/auth/password_file.h"
#include "broker/auth/scram.h"
#include "broker/codec/codec.h"

namespace parley::admin {
namespace {

using config::Config;

std::string Str(bool b) { return b ? "true" : "false"; }
template <typename T>
std::string Str(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return std::to_string(v);
  } else if constexpr (std::is_same_v<T, std::chrono::seconds> || std::is_same_v<T, std::chrono::milliseconds>) {
    return std::to_string(v.count());
  } else if constexpr (std::is_same_v<T, std::optional<uint32_t>>) {
    return v ? std::to_string(*v) : "none";
  } else {
    static_assert(sizeof(T) == 0, "no text form");
  }
}

void FlattenTls(std::map<std::string, std::string>& m, const std::string& p, const std::optional<config::Tls>& t) {
  if (!t) {
    m[p] = "none";
    return;
  }
  m[p + ".cert_file"] = t->cert_file;
  m[p + ".key_file"] = t->key_file;
  m[p + ".ca_file"] = t->ca_file;
  m[p + ".require_client_cert"] = Str(t->require_client_cert);
  m[p + ".username_from_cert"] = t->username_from_cert;
  m[p + ".min_version"] = t->min_version;
  m[p + ".ciphers"] = t->ciphers;
  m[p + ".ciphersuites"] = t->ciphersuites;
}

// What a file's contents hash to now ("" when it cannot be read: the loader reports why).
std::string Digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return std::to_string(std::hash<std::string>{}(s.str())) + ":" + std::to_string(s.str().size());
}

// Keys whose change a reload applies: prefixes.
bool Reloadable(const std::string& key) {
  static const char* const kPrefixes[] = {"log.", "auth.jwt", "alerts.", "admin.tls"};
  for (const char* p : kPrefixes)
    if (key.rfind(p, 0) == 0) return true;
  // Listener TLS: "listener[i].tls..."
  return key.rfind("listener[", 0) == 0 && key.find("].tls") != std::string::npos;
}

bool ValidUserName(const std::string& name, std::string* why) {
  if (name.empty() || name.size() > 65535) {
    *why = "the user name must be 1 to 65535 bytes";
    return false;
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == ':') {
      *why = "the user name must not contain ':' or control characters";
      return false;
    }
  }
  // The user name a client sends in CONNECT: an MQTT UTF-8 string.
  if (!mqtt::IsValidMqttUtf8(name)) {
    *why = "the user name must be valid UTF-8";
    return false;
  }
  return true;
}

Status ReadLines(const std::string& path, std::vector<std::string>* lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return Status::Ok();  // created by the first AddUser
    return Status::Error("cannot read " + path + ": " + std::strerror(errno));
  }
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines->push_back(line);
  }
  return Status::Ok();
}

// The password file holds hashes: written with mode 0600.
Status WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return ReplaceFileAtomically(path, text, 0600);
}

int FindUser(const std::vector<std::string>& lines, const std::string& name) {
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.empty() || l[0] == '#') continue;
    if (l.size() > name.size() && l.compare(0, name.size(), name) == 0 && l[name.size()] == ':')
      return static_cast<int>(i);
  }
  return -1;
}

broker::auth::JwtOptions JwtOptionsOf(const config::Jwt& j) {
  broker::auth::JwtOptions o;
  o.algorithm = j.algorithm;
  o.secret_file = j.secret_file;
  o.public_key_file = j.public_key_file;
  o.username_claim = j.username_claim;
  o.acl_claim = j.acl_claim;
  o.issuer = j.issuer;
  o.audience = j.audience;
  o.leeway_seconds = j.leeway.count();
  o.require_exp = j.require_exp;
  return o;
}

}  // namespace

std::map<std::string, std::string> FlattenConfig(const Config& c) {
  std::map<std::string, std::string> m;
  m["workers"] = Str(c.workers);
  m["data_dir"] = c.data_dir;
  for (size_t i = 0; i < c.listeners.size(); ++i) {
    const auto& l = c.listeners[i];
    const std::string p = "listener[" + std::to_string(i) + "]";
    m[p + ".name"] = l.name;
    m[p + ".bind"] = l.bind;
    m[p + ".port"] = Str(l.port);
    m[p + ".protocol"] = l.protocol;
    m[p + ".backlog"] = Str(l.backlog);
    m[p + ".max_connections"] = Str(l.max_connections);
    FlattenTls(m, p + ".tls", l.tls);
    m[p + ".websocket.path"] = l.websocket.path;
    std::string origins;
    for (const auto& o : l.websocket.allowed_origins) origins += o + ",";
    m[p + ".websocket.allowed_origins"] = origins;
  }
  const auto& L = c.limits;
#define PARLEY_LIMIT(name) m["limits." #name] = Str(L.name)
  PARLEY_LIMIT(max_packet_size);
  PARLEY_LIMIT(receive_maximum);
  PARLEY_LIMIT(max_inflight);
  PARLEY_LIMIT(max_queued_messages);
  PARLEY_LIMIT(max_queued_bytes);
  PARLEY_LIMIT(topic_alias_maximum);
  PARLEY_LIMIT(max_keep_alive);
  PARLEY_LIMIT(max_session_expiry);
  PARLEY_LIMIT(max_qos);
  PARLEY_LIMIT(retain_available);
  PARLEY_LIMIT(wildcard_subscriptions);
  PARLEY_LIMIT(subscription_identifiers);
  PARLEY_LIMIT(shared_subscriptions);
  PARLEY_LIMIT(max_client_id_length);
  PARLEY_LIMIT(max_topic_length);
  PARLEY_LIMIT(max_topic_levels);
  PARLEY_LIMIT(max_subscriptions_per_client);
  PARLEY_LIMIT(connect_timeout);
  PARLEY_LIMIT(max_outbound_buffer);
  PARLEY_LIMIT(write_timeout);
  PARLEY_LIMIT(max_retained_messages);
  PARLEY_LIMIT(max_connections);
  PARLEY_LIMIT(max_connections_per_address);
  PARLEY_LIMIT(connection_rate_per_address);
  PARLEY_LIMIT(connection_burst_per_address);
  PARLEY_LIMIT(publish_rate);
  PARLEY_LIMIT(publish_burst);
  PARLEY_LIMIT(publish_byte_rate);
  PARLEY_LIMIT(publish_byte_burst);
  PARLEY_LIMIT(flapping_max_connects);
  PARLEY_LIMIT(flapping_window);
  PARLEY_LIMIT(flapping_ban);
#undef PARLEY_LIMIT
  m["auth.allow_anonymous"] = Str(c.auth.allow_anonymous);
  m["auth.password_file"] = c.auth.password_file;
  m["auth.acl_file"] = c.auth.acl_file;
  m["auth.scram_file"] = c.auth.scram_file;
  m["auth.ban_file"] = c.auth.ban_file;
  if (c.auth.jwt) {
    const auto& j = *c.auth.jwt;
    m["auth.jwt.algorithm"] = j.algorithm;
    m["auth.jwt.secret_file"] = j.secret_file;
    m["auth.jwt.public_key_file"] = j.public_key_file;
    m["auth.jwt.username_claim"] = j.username_claim;
    m["auth.jwt.acl_claim"] = j.acl_claim;
    m["auth.jwt.issuer"] = j.issuer;
    m["auth.jwt.audience"] = j.audience;
    m["auth.jwt.leeway"] = Str(j.leeway);
    m["auth.jwt.require_exp"] = Str(j.require_exp);
  } else {
    m["auth.jwt"] = "none";
  }
  m["overload.memory_high"] = Str(c.overload.memory_high);
  m["overload.loop_lag_high"] = Str(c.overload.loop_lag_high);
  m["sys.enabled"] = Str(c.sys.enabled);
  m["sys.interval"] = Str(c.sys.interval);
  m["storage.enabled"] = Str(c.storage.enabled);
  m["storage.durability"] = c.storage.durability;
  m["storage.batch_interval"] = Str(c.storage.batch_interval);
  const auto& im = c.im;
#define PARLEY_IM(name) m["im." #name] = Str(im.name)
  PARLEY_IM(enabled);
  PARLEY_IM(max_group_members);
  PARLEY_IM(inbox_fanout_max);
  PARLEY_IM(receipts_max_members);
  PARLEY_IM(typing_max_members);
  PARLEY_IM(dedup_window);
  PARLEY_IM(edit_window);
  PARLEY_IM(recall_window);
  PARLEY_IM(max_message_bytes);
  PARLEY_IM(max_mentions);
  PARLEY_IM(max_versions);
  PARLEY_IM(send_rate);
  PARLEY_IM(send_burst);
  PARLEY_IM(presence_grace);
  PARLEY_IM(typing_interval);
  PARLEY_IM(retention_max_age);
  PARLEY_IM(retention_max_count);
  PARLEY_IM(inbox_retention);
  PARLEY_IM(sweep_interval);
#undef PARLEY_IM
  m["log.level"] = c.log.level;
  m["log.format"] = c.log.format;
  m["admin.enabled"] = Str(c.admin.enabled);
  m["admin.bind"] = c.admin.bind;
  m["admin.port"] = Str(c.admin.port);
  m["admin.token_file"] = c.admin.token_file;
  m["admin.metrics_public"] = Str(c.admin.metrics_public);
  FlattenTls(m, "admin.tls", c.admin.tls);
  m["files.enabled"] = Str(c.files.enabled);
  m["files.bind"] = c.files.bind;
  m["files.port"] = Str(c.files.port);
  m["files.public_url"] = c.files.public_url;
  m["files.max_file_size"] = Str(c.files.max_file_size);
  m["files.user_quota"] = Str(c.files.user_quota);
  std::string types;
  for (const std::string& t : c.files.allowed_types) types += t + ",";
  m["files.allowed_types"] = types;
  m["files.upload_expiry"] = Str(c.files.upload_expiry);
  m["files.gc_grace"] = Str(c.files.gc_grace);
  m["files.gc_interval"] = Str(c.files.gc_interval);
  m["files.token_ttl"] = Str(c.files.token_ttl);
  m["files.max_connections"] = Str(c.files.max_connections);
  FlattenTls(m, "files.tls", c.files.tls);
  m["push.collapse_window"] = Str(c.push.collapse_window);
  m["push.preview_max_chars"] = Str(c.push.preview_max_chars);
  for (const auto& [name, p] : {std::pair{"webhook", &c.push.webhook}, std::pair{"gorush", &c.push.gorush}}) {
    const std::string k = std::string("push.") + name;
    if (!*p) continue;
    m[k + ".url"] = (*p)->url;
    m[k + ".timeout"] = Str((*p)->timeout);
    m[k + ".topic"] = (*p)->topic;
  }
  m["alerts.interval"] = Str(c.alerts.interval);
  m["alerts.webhook_url"] = c.alerts.webhook_url;
  m["alerts.webhook_timeout"] = Str(c.alerts.webhook_timeout);
  for (size_t i = 0; i < c.alerts.rules.size(); ++i) {
    const auto& r = c.alerts.rules[i];
    std::string labels;
    for (const auto& [k, v] : r.labels) labels += k + "=" + v + ",";
    m["alerts.rule[" + std::to_string(i) + "]"] = r.name + "|" + r.metric + "|" + labels + "|" + r.function + "|" +
                                                  r.op + "|" + std::to_string(r.threshold) + "|" +
                                                  Str(r.for_duration) + "|" + r.severity + "|" + r.description;
  }
  return m;
}

nlohmann::json ReloadReport::ToJson(bool check_only) const {
  nlohmann::json j;
  j["ok"] = ok;
  j["file"] = file;
  j["errors"] = errors;
  j["warnings"] = warnings;
  if (check_only) {
    j["changes"] = nlohmann::json::array();
    for (const auto& k : applied) j["changes"].push_back({{"key", k}, {"reloadable", true}});
    for (const auto& k : restart_required) j["changes"].push_back({{"key", k}, {"reloadable", false}});
  } else {
    j["applied"] = applied;
    j["restart_required"] = restart_required;
  }
  return j;
}

LiveConfig::LiveConfig(Config running, const Clock& clock) : clock_(clock), running_(std::move(running)) {
  broker::guard::BanList::Options o;
  o.path = running_.auth.ban_file;
  bans_ = std::make_unique<broker::guard::BanList>(o);
}

LiveConfig::~LiveConfig() = default;

Status LiveConfig::InstallAuth(broker::Broker& broker) {
  std::lock_guard lock(mu_);
  const auto& a = running_.auth;
  // JWT first: it has no opinion on passwords that are not tokens, while the password file refuses users
  // it does not know.
  if (a.jwt) {
    auto r = broker::auth::JwtAuthenticator::Load(JwtOptionsOf(*a.jwt), clock_);
    if (!r.ok()) return Status::Error("auth.jwt: " + r.status().message());
    jwt_ = std::make_unique<broker::auth::ReloadableAuthenticator>(std::move(r.value()));
    broker.AddAuthenticator(jwt_.get());
    spdlog::info("auth: JWT passwords ({})", a.jwt->algorithm);
  }
  if (!a.password_file.empty()) {
    file_digests_[a.password_file] = Digest(a.password_file);
    auto r = broker::auth::PasswordFile::Load(a.password_file);
    if (!r.ok()) return r.status();
    spdlog::info("auth: {} users in {}", r.value()->user_count(), a.password_file);
    passwords_ = std::make_unique<broker::auth::ReloadableAuthenticator>(std::move(r.value()));
    broker.AddAuthenticator(passwords_.get());
  }
  if (!a.acl_file.empty()) {
    file_digests_[a.acl_file] = Digest(a.acl_file);
    auto r = broker::auth::AclFile::Load(a.acl_file);
    if (!r.ok()) return r.status();
    acl_ = std::make_unique<broker::auth::ReloadableAuthorizer>(std::move(r.value()));
    broker.SetAuthorizer(acl_.get());
  }
  if (!a.scram_file.empty()) {
    file_digests_[a.scram_file] = Digest(a.scram_file);
    auto r = broker::auth::ScramAuthenticator::Load(a.scram_file);
    if (!r.ok()) return r.status();
    spdlog::info("auth: SCRAM-SHA-256 enhanced authentication, {} users", r.value()->user_count());
    scram_ = std::make_unique<broker::auth::ReloadableEnhancedAuthenticator>(std::move(r.value()));
    broker.AddEnhancedAuthenticator(scram_.get());
  }
  if (!a.ban_file.empty()) {
    file_digests_[a.ban_file] = Digest(a.ban_file);
    if (auto st = bans_->Load(); !st.ok()) return st;
    spdlog::info("bans: {} rules from {}", bans_->size(), a.ban_file);
  }
  return Status::Ok();
}

void LiveConfig::AddStep(Step step) { steps_.push_back(std::move(step)); }

config::Config LiveConfig::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

std::string LiveConfig::password_file() const {
  std::lock_guard lock(mu_);
  return running_.auth.password_file;
}

ReloadReport LiveConfig::Check() { return Run(false); }
ReloadReport LiveConfig::Reload() { return Run(true); }

void LiveConfig::ReloadAuth(const Config& next, bool apply, ReloadReport& report) {
  const auto now = clock_.Now();
  // One auth file: `before` / `after` paths of the running and new configuration. Turning a file on or off
  // changes which providers the broker consults: a restart. Otherwise the file (new name or same) is
  // re-read when its name or contents changed.
  auto file = [&](const char* key, const std::string& before, const std::string& after,
                  const std::function<Status(const std::string&)>& load) {
    if (before.empty() != after.empty()) {
      report.restart_required.push_back(key);
      return;
    }
    if (after.empty()) return;
    const std::string digest = Digest(after);
    if (before == after && file_digests_[after] == digest) return;
    if (!apply) {
      report.applied.push_back(key);
      return;
    }
    if (Status st = load(after); !st.ok()) {
      report.ok = false;
      report.errors.push_back(std::string(key) + ": " + st.message() + " (the previous contents stay in force)");
      return;
    }
    file_digests_[after] = digest;
    report.applied.push_back(key);
  };
  file("auth.password_file", running_.auth.password_file, next.auth.password_file, [&](const std::string& p) {
    auto r = broker::auth::PasswordFile::Load(p);
    if (!r.ok()) return r.status();
    spdlog::info("reload: {} users in {}", r.value()->user_count(), p);
    passwords_->Replace(std::move(r.value()), now);
    return Status::Ok();
  });
  file("auth.acl_file", running_.auth.acl_file, next.auth.acl_file, [&](const std::string& p) {
    auto r = broker::auth::AclFile::Load(p);
    if (!r.ok()) return r.status();
    acl_->Replace(std::move(r.value()), now);
    return Status::Ok();
  });
  file("auth.scram_file", running_.auth.scram_file, next.auth.scram_file, [&](const std::string& p) {
    auto r = broker::auth::ScramAuthenticator::Load(p);
    if (!r.ok()) return r.status();
    spdlog::info("reload: {} SCRAM users in {}", r.value()->user_count(), p);
    scram_->Replace(std::move(r.value()), now);
    return Status::Ok();
  });
  // The ban list keeps the path it was opened with: a new name needs a restart; new contents reload.
  if (running_.auth.ban_file != next.auth.ban_file) {
    report.restart_required.push_back("auth.ban_file");
  } else {
    file("auth.ban_file", running_.auth.ban_file, next.auth.ban_file, [&](const std::string& p) {
      if (Status st = bans_->Load(); !st.ok()) return st;
      spdlog::info("reload: bans reloaded: {} rules from {}", bans_->size(), p);
      return Status::Ok();
    });
  }
  // JWT: keys and claims settings; the key files are re-read every time (a rotated key keeps its name).
  if (running_.auth.jwt.has_value() != next.auth.jwt.has_value()) {
    report.restart_required.push_back("auth.jwt");
  } else if (next.auth.jwt) {
    const auto& j = *next.auth.jwt;
    const std::string digest = Digest(j.secret_file.empty() ? j.public_key_file : j.secret_file);
    const std::string& key_path = j.secret_file.empty() ? j.public_key_file : j.secret_file;
    if (running_.auth.jwt != next.auth.jwt || file_digests_[key_path] != digest) {
      if (apply) {
        auto r = broker::auth::JwtAuthenticator::Load(JwtOptionsOf(j), clock_);
        if (!r.ok()) {
          report.ok = false;
          report.errors.push_back("auth.jwt: " + r.status().message() + " (the previous keys stay in force)");
        } else {
          jwt_->Replace(std::move(r.value()), now);
          file_digests_[key_path] = digest;
          report.applied.push_back("auth.jwt");
        }
      } else {
        report.applied.push_back("auth.jwt");
      }
    }
  }
}

ReloadReport LiveConfig::Run(bool apply) {
  std::lock_guard lock(mu_);
  ReloadReport report;
  report.file = running_.source_path;
  if (running_.source_path.empty()) {
    report.ok = false;
    report.errors.push_back("parleyd runs on its built-in default configuration (no -c file): nothing to reload");
    return report;
  }
  auto loaded = config::LoadConfigFile(running_.source_path);
  if (!loaded.ok()) {
    report.ok = false;
    std::istringstream lines(loaded.status().message());
    for (std::string line; std::getline(lines, line);) report.errors.push_back(line);
    return report;
  }
  Config next = std::move(loaded.value());
  if (overrides_) overrides_(next);
  report.warnings = next.warnings;

  // Every changed key, sorted: the ones a reload applies (their section's step reports them) and the rest.
  const auto before = FlattenConfig(running_);
  const auto after = FlattenConfig(next);
  std::vector<std::string> changed;
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end() || it->second != v) changed.push_back(k);
  }
  for (const auto& [k, v] : before)
    if (!after.count(k)) changed.push_back(k);
  std::vector<std::string> reloadable;
  for (const auto& k : changed) {
    if (k.rfind("auth.", 0) == 0 && k.rfind("auth.jwt", 0) != 0 && k != "auth.allow_anonymous") continue;  // ReloadAuth
    (Reloadable(k) ? reloadable : report.restart_required).push_back(k);
  }

  ReloadAuth(next, apply, report);
  if (!apply) {
    for (const auto& k : reloadable)
      if (k.rfind("auth.jwt", 0) != 0) report.applied.push_back(k);
    return report;
  }
  if (running_.log != next.log) {
    if (auto st = log::Configure(next.log.level, next.log.format); !st.ok()) {
      report.ok = false;
      report.errors.push_back("log: " + st.message());
    }
  }
  for (const auto& k : reloadable)
    if (k.rfind("log.", 0) == 0) report.applied.push_back(k);
  for (const Step& step : steps_) step(running_, next, report);

  // What is now in effect: the reloaded sections of `next`; the rest stays as it runs until a restart.
  running_.log = next.log;
  running_.alerts = next.alerts;
  running_.admin.tls = next.admin.tls;
  for (size_t i = 0; i < running_.listeners.size() && i < next.listeners.size(); ++i)
    if (running_.listeners[i].name == next.listeners[i].name) running_.listeners[i].tls = next.listeners[i].tls;
  const bool auth_shape_same = running_.auth.password_file.empty() == next.auth.password_file.empty() &&
                               running_.auth.acl_file.empty() == next.auth.acl_file.empty() &&
                               running_.auth.scram_file.empty() == next.auth.scram_file.empty() &&
                               running_.auth.jwt.has_value() == next.auth.jwt.has_value();
  if (auth_shape_same) {
    const std::string ban_file = running_.auth.ban_file;
    const bool anonymous = running_.auth.allow_anonymous;
    running_.auth = next.auth;
    running_.auth.ban_file = ban_file;
    running_.auth.allow_anonymous = anonymous;
  }
  std::sort(report.applied.begin(), report.applied.end());
  report.applied.erase(std::unique(report.applied.begin(), report.applied.end()), report.applied.end());
  std::sort(report.restart_required.begin(), report.restart_required.end());
  for (const auto& k : report.applied) spdlog::info("reload: applied {}", k);
  for (const auto& k : report.restart_required) spdlog::warn("reload: {} changed; takes effect after a restart", k);
  for (const auto& e : report.errors) spdlog::error("reload: {}", e);
  if (report.applied.empty() && report.restart_required.empty() && report.errors.empty())
    spdlog::info("reload: {} re-read; nothing changed", report.file);
  return report;
}

LiveConfig::UserResult LiveConfig::EditUsers(
    const std::string& name, const std::function<UserResult(std::vector<std::string>&, int)>& edit) {
  std::lock_guard lock(mu_);
  const std::string path = running_.auth.password_file;
  if (path.empty() || !passwords_)
    return {UserError::kNoFile, "no password file is configured (auth.password_file)"};
  std::string why;
  if (!ValidUserName(name, &why)) return {UserError::kInvalid, why};
  std::vector<std::string> lines;
  if (auto st = ReadLines(path, &lines); !st.ok()) return {UserError::kIo, st.message()};
  UserResult r = edit(lines, FindUser(lines, name));
  if (r.error != UserError::kNone) return r;
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  // Never write a file the broker could not load back.
  auto parsed = broker::auth::PasswordFile::Parse(text, path);
  if (!parsed.ok()) return {UserError::kInvalid, parsed.status().message()};
  if (auto st = WriteLines(path, lines); !st.ok()) return {UserError::kIo, st.message()};
  passwords_->Replace(std::move(parsed.value()), clock_.Now());
  file_digests_[path] = Digest(path);
  return {};
}

LiveConfig::UserResult LiveConfig::AddUser(const std::string& name, const std::string& password) {
  if (password.empty() || password.size() > 65535) return {UserError::kInvalid, "the password must be 1 to 65535 bytes"};
  return EditUsers(name, [&](std::vector<std::string>& lines, int index) -> UserResult {
    if (index >= 0) return {UserError::kExists, "user " + name + " exists"};
    lines.push_back(name + ":" + broker::auth::PasswordFile::HashPassword(password));
    spdlog::info("users: added {}", name);
    return {};
  });
}

LiveConfig::UserResult LiveConfig::SetPassword(const std::string& name, const std::string& password) {
  if (password.empty() || password.size() > 65535) return {UserError::kInvalid, "the password must be 1 to 65535 bytes"};
  return EditUsers(name, [&](std::vector<std::string>& lines, int index) -> UserResult {
    if (index < 0) return {UserError::kUnknown, "no user " + name};
    lines[static_cast<size_t>(index)] = name + ":" + broker::auth::PasswordFile::HashPassword(password);
    spdlog::info("users: changed the password of {}", name);
    return {};
  });
}

LiveConfig::UserResult LiveConfig::DeleteUser(const std::string& name) {
  return EditUsers(name, [&](std::vector<std::string>& lines, int index) -> UserResult {
    if (index < 0) return {UserError::kUnknown, "no user " + name};
    lines.erase(lines.begin() + index);
    spdlog::info("users: deleted {}", name);
    return {};
  });
}

std::vector<std::string> LiveConfig::ListUsers(UserResult* result) {
  std::lock_guard lock(mu_);
  std::vector<std::string> users;
  const std::string path = running_.auth.password_file;
  if (path.empty()) {
    *result = {UserError::kNoFile, "no password file is configured (auth.password_file)"};
    return users;
  }
  std::vector<std::string> lines;
  if (auto st = ReadLines(path, &lines); !st.ok()) {
    *result = {UserError::kIo, st.message()};
    return users;
  }
  for (const auto& l : lines) {
    if (l.empty() || l[0] == '#') continue;
    const size_t colon = l.find(':');
    if (colon != std::string::npos) users.push_back(l.substr(0, colon));
  }
  std::sort(users.begin(), users.end());
  *result = {};
  return users;
}

}  // namespace parley::admin
