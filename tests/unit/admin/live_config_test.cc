// LiveConfig: reloading auth files and reporting what changed; the password file edits of the admin API.
#include "broker/admin/live_config.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "../temp_dir.h"
#include "base/log.h"

namespace {

using parley::admin::LiveConfig;
using parley::broker::Access;
using parley::broker::ClientIdentity;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

struct Fixture {
  parley::testing::TempDir dir{"admin"};
  parley::ManualClock clock;
  parley::broker::BrokerOptions options;
  std::unique_ptr<parley::broker::Broker> broker;
  std::string conf;

  void WriteConf(const std::string& extra) {
    conf = dir.Write("parley.toml", "[[listener]]\nname = \"mqtt\"\nport = 0\n" + extra);
  }
  parley::config::Config Load() {
    auto c = parley::config::LoadConfigFile(conf);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    return c.value();
  }
  Fixture() { broker = std::make_unique<parley::broker::Broker>(options, clock, 1); }
};

bool CanPublish(parley::broker::Broker& b, const char* user, const char* topic) {
  return b.Allowed(ClientIdentity{"c1", std::string_view(user), nullptr}, topic, Access::kWrite);
}

}  // namespace

TEST_CASE("LiveConfig: a reload re-reads a changed ACL file and reports it; unchanged files are not reported") {
  Fixture f;
  const std::string acl = f.dir.Write("acl", "user alice\ntopic write a/#\n");
  f.WriteConf("[auth]\nacl_file = \"acl\"\n");
  LiveConfig live(f.Load(), f.clock);
  REQUIRE(live.InstallAuth(*f.broker).ok());
  CHECK(CanPublish(*f.broker, "alice", "a/1"));
  CHECK_FALSE(CanPublish(*f.broker, "alice", "b/1"));

  auto nothing = live.Reload();
  CHECK(nothing.ok);
  CHECK(nothing.applied.empty());
  CHECK(nothing.restart_required.empty());

  f.dir.Write("acl", "user alice\ntopic write b/#\n");
  auto check = live.Check();  // reports, applies nothing
  CHECK(Has(check.applied, "auth.acl_file"));
  CHECK(CanPublish(*f.broker, "alice", "a/1"));

  auto r = live.Reload();
  CHECK(r.ok);
  CHECK(Has(r.applied, "auth.acl_file"));
  CHECK_FALSE(CanPublish(*f.broker, "alice", "a/1"));
  CHECK(CanPublish(*f.broker, "alice", "b/1"));

  // A broken file keeps the rules in force and says why.
  f.dir.Write("acl", "user alice\nbogus line here\n");
  auto bad = live.Reload();
  CHECK_FALSE(bad.ok);
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].find("auth.acl_file") == 0);
  CHECK(CanPublish(*f.broker, "alice", "b/1"));
}

TEST_CASE("LiveConfig: changed keys that need a restart are reported and keep their running value") {
  Fixture f;
  f.WriteConf("[limits]\nmax_qos = 2\n[log]\nlevel = \"info\"\n");
  LiveConfig live(f.Load(), f.clock);
  REQUIRE(live.InstallAuth(*f.broker).ok());
  f.WriteConf("[limits]\nmax_qos = 1\n[log]\nlevel = \"warn\"\n");
  auto r = live.Reload();
  CHECK(r.ok);
  CHECK(Has(r.applied, "log.level"));
  CHECK(Has(r.restart_required, "limits.max_qos"));
  CHECK(live.running().log.level == "warn");
  CHECK(live.running().limits.max_qos == 2);
  // Asked again, the restart-only change is still pending; the applied one is not.
  auto again = live.Check();
  CHECK(Has(again.restart_required, "limits.max_qos"));
  CHECK_FALSE(Has(again.applied, "log.level"));

  // A file with errors applies nothing and lists them with their line.
  f.WriteConf("[limits]\nmax_qos = 7\n");
  auto bad = live.Reload();
  CHECK_FALSE(bad.ok);
  REQUIRE_FALSE(bad.errors.empty());
  CHECK(bad.errors[0].find("parley.toml:5: limits.max_qos") != std::string::npos);
  CHECK(live.running().log.level == "warn");
  parley::log::Configure("info", "text");
}

TEST_CASE("LiveConfig: turning an auth file on is a restart; without a config file nothing reloads") {
  Fixture f;
  f.WriteConf("");
  LiveConfig live(f.Load(), f.clock);
  REQUIRE(live.InstallAuth(*f.broker).ok());
  f.dir.Write("passwd", "");
  f.WriteConf("[auth]\npassword_file = \"passwd\"\n");
  auto r = live.Reload();
  CHECK(Has(r.restart_required, "auth.password_file"));

  LiveConfig builtin(parley::config::DefaultConfig(), f.clock);
  auto none = builtin.Reload();
  CHECK_FALSE(none.ok);
  CHECK(none.errors.at(0).find("built-in default") != std::string::npos);
}

TEST_CASE("LiveConfig: users are added, changed and deleted in the password file, which the broker reloads") {
  Fixture f;
  const std::string passwd = f.dir.Write("passwd", "# operators\n");
  f.WriteConf("[auth]\nallow_anonymous = false\npassword_file = \"passwd\"\n");
  LiveConfig live(f.Load(), f.clock);
  REQUIRE(live.InstallAuth(*f.broker).ok());
  auto login = [&](const char* user, const char* pw) {
    parley::broker::ConnectInfo info;
    info.client_id = "c";
    info.username = user;
    info.password = pw;
    parley::broker::Grant g;
    return f.broker->Authenticate(info, g) == parley::broker::AuthDecision::kAllow;
  };
  CHECK_FALSE(login("bob", "secret1"));
  CHECK(live.AddUser("bob", "secret1").error == LiveConfig::UserError::kNone);
  CHECK(login("bob", "secret1"));
  CHECK(live.AddUser("bob", "x").error == LiveConfig::UserError::kExists);
  CHECK(live.AddUser("bad:name", "x").error == LiveConfig::UserError::kInvalid);
  CHECK(live.AddUser("bad\nname", "x").error == LiveConfig::UserError::kInvalid);
  CHECK(live.AddUser(std::string("\xff"), "x").error == LiveConfig::UserError::kInvalid);
  CHECK(live.AddUser("carol", "").error == LiveConfig::UserError::kInvalid);

  CHECK(live.SetPassword("bob", "secret2").error == LiveConfig::UserError::kNone);
  CHECK_FALSE(login("bob", "secret1"));
  CHECK(login("bob", "secret2"));
  CHECK(live.SetPassword("nobody", "x").error == LiveConfig::UserError::kUnknown);

  REQUIRE(live.AddUser("carol", "pw").error == LiveConfig::UserError::kNone);
  LiveConfig::UserResult lr;
  CHECK(live.ListUsers(&lr) == std::vector<std::string>{"bob", "carol"});
  const std::string text = Read(passwd);
  CHECK(text.rfind("# operators\n", 0) == 0);  // comments kept
  CHECK(text.find("bob:$7$") != std::string::npos);
  CHECK(text.find("secret2") == std::string::npos);  // hashed, never stored
  struct stat st {};
  REQUIRE(stat(passwd.c_str(), &st) == 0);
  CHECK((st.st_mode & 077) == 0);

  CHECK(live.DeleteUser("bob").error == LiveConfig::UserError::kNone);
  CHECK_FALSE(login("bob", "secret2"));
  CHECK(live.DeleteUser("bob").error == LiveConfig::UserError::kUnknown);
  // A reload after these edits sees no change: the edits updated what it compares with.
  CHECK(live.Reload().applied.empty());
}

TEST_CASE("LiveConfig: user edits need a password file") {
  Fixture f;
  f.WriteConf("");
  LiveConfig live(f.Load(), f.clock);
  REQUIRE(live.InstallAuth(*f.broker).ok());
  CHECK(live.AddUser("bob", "pw").error == LiveConfig::UserError::kNoFile);
}

TEST_CASE("FlattenConfig names every changed setting") {
  auto a = parley::config::DefaultConfig();
  auto b = a;
  b.limits.max_inflight = 7;
  b.listeners[0].port = 1;
  b.alerts.rules.pop_back();
  const auto fa = parley::admin::FlattenConfig(a), fb = parley::admin::FlattenConfig(b);
  std::vector<std::string> changed;
  for (const auto& [k, v] : fa)
    if (!fb.count(k) || fb.at(k) != v) changed.push_back(k);
  CHECK(changed == std::vector<std::string>{"alerts.rule[5]", "limits.max_inflight", "listener[0].port"});
}
