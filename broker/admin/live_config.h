// LiveConfig: the configuration parleyd runs with, the auth providers built from it, and reloading (SIGHUP,
// `parleyctl config reload`, docs/operations.md "Reload").
//
// What a reload applies while running: the log level and format; the contents of the password, ACL, SCRAM
// and ban files and the JWT keys (re-read on every reload, reported when their contents changed, also when
// the file name changed); TLS settings and certificates of the MQTT listeners and of the admin listener; alert
// rules. Everything else (listeners, limits, storage, workers, IM options, turning an auth file on or off)
// is reported as needing a restart and keeps its running value. A file with errors applies nothing.
//
// Threads: InstallAuth before serving; Check / Reload from any one thread at a time (they serialise on a
// mutex: the signal thread and the admin thread may both ask).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/status.h"
#include "broker/auth/reloadable.h"
#include "broker/config/config.h"
#include "broker/core/broker.h"
#include "broker/guard/ban_list.h"

namespace parley::admin {

struct ReloadReport {
  bool ok = true;
  std::string file;
  std::vector<std::string> applied;           // keys whose new value (or file contents) is now in effect
  std::vector<std::string> restart_required;  // changed keys that keep their running value until a restart
  std::vector<std::string> errors;            // the file's errors (nothing applied), or a reload step's failure
  std::vector<std::string> warnings;
  nlohmann::json ToJson(bool check_only) const;
};

class LiveConfig {
 public:
  LiveConfig(config::Config running, const Clock& clock);
  ~LiveConfig();

  // Builds the auth providers the configuration names (JWT, password file, ACL file, SCRAM verifiers, ban
  // file) and registers them on `broker`. Startup, before serving.
  Status InstallAuth(broker::Broker& broker);
  // The ban list (always present; persisted when auth.ban_file is set). Any thread.
  broker::guard::BanList& bans() { return *bans_; }

  // A step of the reload that another module applies: called with the running and the new configuration
  // (already valid); it applies what it owns and reports into the report. Before serving.
  using Step = std::function<void(const config::Config& running, const config::Config& next, ReloadReport& report)>;
  void AddStep(Step step);
  // Applied to every re-read configuration before it is compared and applied: the command line's
  // overrides (--port, --data-dir, ...), which the file does not hold. Before serving.
  void SetOverrides(std::function<void(config::Config&)> overrides) { overrides_ = std::move(overrides); }

  // Re-reads the file and reports what a reload would change, applying nothing.
  ReloadReport Check();
  // Re-reads the file and applies what can change while running.
  ReloadReport Reload();

  // The configuration in effect (reloaded parts updated). Any thread.
  config::Config running() const;

  // Users of the password file (docs/admin-api.md "Users"): the file is rewritten atomically and reloaded.
  // Errors: kNoFile (no password file configured), kExists, kUnknown, or an I/O or validation error.
  enum class UserError { kNone, kNoFile, kExists, kUnknown, kInvalid, kIo };
  struct UserResult {
    UserError error = UserError::kNone;
    std::string message;
  };
  UserResult AddUser(const std::string& name, const std::string& password);
  UserResult SetPassword(const std::string& name, const std::string& password);
  UserResult DeleteUser(const std::string& name);
  std::vector<std::string> ListUsers(UserResult* result);
  std::string password_file() const;

 private:
  ReloadReport Run(bool apply);
  // Auth files: reloads what changed; caller holds mu_.
  void ReloadAuth(const config::Config& next, bool apply, ReloadReport& report);
  UserResult EditUsers(const std::string& name, const std::function<UserResult(std::vector<std::string>& lines, int index)>& edit);

  const Clock& clock_;
  mutable std::mutex mu_;
  config::Config running_;                   // guarded by mu_
  std::map<std::string, std::string> file_digests_;  // path -> hash of the contents last loaded; mu_
  std::vector<Step> steps_;
  std::function<void(config::Config&)> overrides_;

  std::unique_ptr<broker::auth::ReloadableAuthenticator> jwt_;
  std::unique_ptr<broker::auth::ReloadableAuthenticator> passwords_;
  std::unique_ptr<broker::auth::ReloadableAuthorizer> acl_;
  std::unique_ptr<broker::auth::ReloadableEnhancedAuthenticator> scram_;
  std::unique_ptr<broker::guard::BanList> bans_;
};

// Every setting of `c` as "dotted.key" -> value text, for telling what changed between two configurations.
std::map<std::string, std::string> FlattenConfig(const config::Config& c);

}  // namespace parley::admin
