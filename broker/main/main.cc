// parleyd: loads the configuration, wires broker core, auth and network, and runs until SIGTERM/SIGINT.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "broker/auth/acl_file.h"
#include "broker/auth/jwt_auth.h"
#include "broker/auth/password_file.h"
#include "broker/auth/scram.h"
#include "broker/config/config.h"
#include "broker/core/broker.h"
#include "broker/core/version.h"
#include "broker/net/overload.h"
#include "broker/net/server.h"
#include "broker/net/tls.h"
#include "broker/persist/durable_state.h"
#include "broker/persist/layout.h"
#include "im/keys.h"
#include "im/service.h"
#include "storage/executor.h"
#include "storage/mem_store.h"
#include "storage/rocks_store.h"

namespace {

using parley::config::Config;

parley::broker::BrokerOptions ToOptions(const Config& c) {
  parley::broker::BrokerOptions o;
  const auto& l = c.limits;
  o.max_packet_size = l.max_packet_size;
  o.receive_maximum = l.receive_maximum;
  o.max_inflight = l.max_inflight;
  o.max_queued_messages = l.max_queued_messages;
  o.max_queued_bytes = l.max_queued_bytes;
  o.topic_alias_maximum = l.topic_alias_maximum;
  o.max_keep_alive = l.max_keep_alive;
  o.max_session_expiry = l.max_session_expiry;
  o.max_qos = l.max_qos;
  o.retain_available = l.retain_available;
  o.wildcard_subscriptions = l.wildcard_subscriptions;
  o.subscription_identifiers = l.subscription_identifiers;
  o.shared_subscriptions = l.shared_subscriptions;
  o.max_client_id_length = l.max_client_id_length;
  o.max_topic_length = l.max_topic_length;
  o.max_topic_levels = l.max_topic_levels;
  o.max_subscriptions_per_client = l.max_subscriptions_per_client;
  o.connect_timeout = l.connect_timeout;
  o.max_outbound_buffer = l.max_outbound_buffer;
  o.write_timeout = l.write_timeout;
  o.max_retained_messages = l.max_retained_messages;
  o.publish_rate = l.publish_rate;
  o.publish_burst = l.publish_burst;
  o.publish_byte_rate = l.publish_byte_rate;
  o.publish_byte_burst = l.publish_byte_burst;
  o.allow_anonymous = c.auth.allow_anonymous;
  o.sys_enabled = c.sys.enabled;
  o.sys_interval = c.sys.interval;
  return o;
}

parley::im::Options ToImOptions(const parley::config::Im& c) {
  parley::im::Options o;
  o.max_group_members = c.max_group_members;
  o.inbox_fanout_max = c.inbox_fanout_max;
  o.receipts_max_members = c.receipts_max_members;
  o.typing_max_members = c.typing_max_members;
  o.dedup_window = c.dedup_window;
  o.edit_window = c.edit_window;
  o.recall_window = c.recall_window;
  o.max_message_bytes = static_cast<uint32_t>(c.max_message_bytes);
  o.max_mentions = c.max_mentions;
  o.max_versions = c.max_versions;
  o.send_rate = c.send_rate;
  o.send_burst = c.send_burst;
  o.presence_grace = c.presence_grace;
  o.typing_interval = c.typing_interval;
  o.retention_max_age = c.retention_max_age;
  o.retention_max_count = c.retention_max_count;
  o.inbox_retention = c.inbox_retention;
  o.sweep_interval = c.sweep_interval;
  return o;
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "parleyd: %s\n", msg.c_str());
  return 2;
}

// The TLS context of a listener's [listener.tls] options. Startup and reload.
parley::Result<std::shared_ptr<const parley::net::TlsContext>> MakeTls(const parley::config::Listener& l) {
  const parley::config::Tls& t = *l.tls;
  parley::net::TlsOptions o;
  o.cert_file = t.cert_file;
  o.key_file = t.key_file;
  o.ca_file = t.ca_file;
  o.require_client_cert = t.require_client_cert;
  auto identity = parley::net::ParseTlsIdentity(t.username_from_cert);
  if (!identity.ok()) return identity.status();
  o.identity = identity.value();
  o.min_version = t.min_version;
  o.ciphers = t.ciphers;
  o.ciphersuites = t.ciphersuites;
  auto ctx = parley::net::TlsContext::Create(o);
  if (!ctx.ok()) return parley::Status::Error("listener " + l.name + ": " + ctx.status().message());
  if (ctx.value()->ExpiresWithin(std::chrono::hours(24 * 30)))
    spdlog::warn("listener {}: the certificate {} expires within 30 days (or has expired)", l.name,
                 ctx.value()->subject());
  return ctx;
}

// SIGHUP: re-reads the certificates and keys of every TLS listener from the files named at startup. New
// connections use them; open ones keep theirs. A listener whose files fail to load keeps its old context.
void ReloadCertificates(const parley::config::Config& cfg, parley::net::Server& server) {
  for (size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& l = cfg.listeners[i];
    if (!l.tls) continue;
    auto ctx = MakeTls(l);
    if (!ctx.ok()) {
      spdlog::error("SIGHUP: {}; keeping the previous certificate", ctx.status().message());
      continue;
    }
    const std::string subject = ctx.value()->subject();
    server.SetTls(i, std::move(ctx.value()));
    spdlog::info("SIGHUP: listener {}: certificate reloaded ({})", l.name, subject);
  }
}

}  // namespace

// Every connection is an open file: the soft limit (often 1,024) would cap connections long before memory
// does, so raise it to the hard limit, which only root can raise (systemd's LimitNOFILE, `ulimit -Hn`).
void RaiseOpenFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t soft = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = soft;
  }
  if (rl.rlim_cur == RLIM_INFINITY) {
    spdlog::info("open files: no limit");
  } else if (rl.rlim_cur != soft) {
    spdlog::info("open files: limit raised from {} to {} (the hard limit; about as many connections)", soft,
                 rl.rlim_cur);
  } else {
    spdlog::info("open files: limit {} (about as many connections; raise the hard limit for more)", rl.rlim_cur);
  }
}

int main(int argc, char** argv) {
  CLI::App app{"parleyd — MQTT 3.1.1/5.0 broker with instant messaging built in"};
  std::string config_path;
  int port = -1;
  std::string data_dir;
  std::string bind;
  int workers = -1;
  std::string log_level;
  app.add_option("-c,--config", config_path, "Configuration file (TOML); without it the embedded default "
                                              "is used: MQTT on 127.0.0.1:1883")
      ->check(CLI::ExistingFile);
  app.add_option("-p,--port", port, "Port of the first plain-TCP MQTT listener (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--bind", bind, "Address of the first MQTT listener (0.0.0.0 or :: for all interfaces)");
  app.add_option("--data-dir", data_dir, "Storage directory");
  app.add_option("--workers", workers, "Worker threads (0 = one per core)")->check(CLI::Range(0, 1024));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  app.set_version_flag("--version", std::string("parleyd ") + parley::broker::kParleyVersion);
  CLI11_PARSE(app, argc, argv);

  Config cfg = parley::config::DefaultConfig();
  if (!config_path.empty()) {
    auto loaded = parley::config::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(loaded.status().message());
    cfg = std::move(loaded.value());
  }
  if (!data_dir.empty()) cfg.data_dir = data_dir;
  if (workers >= 0) cfg.workers = workers;
  if (!log_level.empty()) cfg.log.level = log_level;
  for (auto& l : cfg.listeners) {
    if (l.protocol != "mqtt") continue;
    if (port >= 0) l.port = static_cast<uint16_t>(port);
    if (!bind.empty()) l.bind = bind;
    break;
  }

  auto level = spdlog::level::from_str(cfg.log.level);
  if (level == spdlog::level::off && cfg.log.level != "off") return Fail("bad log level '" + cfg.log.level + "'");
  spdlog::set_level(level);
  if (cfg.log.format == "json")
    spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");

  RaiseOpenFileLimit();

  // Block the signals we handle before any thread starts, so only sigwait below sees them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int nworkers = cfg.workers > 0 ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  parley::broker::Broker broker(ToOptions(cfg), parley::SystemClock::Instance(), nworkers);

  // JWT first: it has no opinion on passwords that are not tokens, while the password file refuses users
  // it does not know.
  std::unique_ptr<parley::broker::auth::JwtAuthenticator> jwt;
  if (cfg.auth.jwt) {
    const auto& j = *cfg.auth.jwt;
    parley::broker::auth::JwtOptions o;
    o.algorithm = j.algorithm;
    o.secret_file = j.secret_file;
    o.public_key_file = j.public_key_file;
    o.username_claim = j.username_claim;
    o.acl_claim = j.acl_claim;
    o.issuer = j.issuer;
    o.audience = j.audience;
    o.leeway_seconds = j.leeway.count();
    o.require_exp = j.require_exp;
    auto r = parley::broker::auth::JwtAuthenticator::Load(o, parley::SystemClock::Instance());
    if (!r.ok()) return Fail("auth.jwt: " + r.status().message());
    jwt = std::move(r.value());
    broker.AddAuthenticator(jwt.get());
    spdlog::info("auth: JWT passwords ({})", j.algorithm);
  }
  std::unique_ptr<parley::broker::auth::PasswordFile> passwords;
  std::unique_ptr<parley::broker::auth::AclFile> acl;
  if (!cfg.auth.password_file.empty()) {
    auto r = parley::broker::auth::PasswordFile::Load(cfg.auth.password_file);
    if (!r.ok()) return Fail(r.status().message());
    passwords = std::move(r.value());
    broker.AddAuthenticator(passwords.get());
  }
  if (!cfg.auth.acl_file.empty()) {
    auto r = parley::broker::auth::AclFile::Load(cfg.auth.acl_file);
    if (!r.ok()) return Fail(r.status().message());
    acl = std::move(r.value());
    broker.SetAuthorizer(acl.get());
  }
  std::unique_ptr<parley::broker::auth::ScramAuthenticator> scram;
  if (!cfg.auth.scram_file.empty()) {
    auto r = parley::broker::auth::ScramAuthenticator::Load(cfg.auth.scram_file);
    if (!r.ok()) return Fail(r.status().message());
    scram = std::move(r.value());
    broker.AddEnhancedAuthenticator(scram.get());
    spdlog::info("auth: SCRAM-SHA-256 enhanced authentication, {} users", scram->user_count());
  }

  // Admission control: bans, per-address limits, flapping (docs/security.md).
  const auto& lim = cfg.limits;
  parley::broker::guard::BanList::Options ban_options;
  ban_options.path = cfg.auth.ban_file;
  parley::broker::guard::BanList bans(ban_options);
  parley::broker::Broker::Guards guards;
  if (!cfg.auth.ban_file.empty()) {
    if (auto st = bans.Load(); !st.ok()) return Fail(st.message());
    guards.bans = &bans;
    spdlog::info("bans: {} rules from {}", bans.size(), cfg.auth.ban_file);
  }
  std::unique_ptr<parley::broker::guard::AddressLimiter> addresses;
  if (lim.max_connections_per_address || lim.connection_rate_per_address) {
    parley::broker::guard::AddressLimiter::Options o;
    o.limits.max_connections = lim.max_connections_per_address;
    o.limits.connect_rate = lim.connection_rate_per_address;
    o.limits.connect_burst = lim.connection_burst_per_address ? lim.connection_burst_per_address
                                                               : std::max<uint32_t>(lim.connection_rate_per_address, 1);
    addresses = std::make_unique<parley::broker::guard::AddressLimiter>(o);
    guards.addresses = addresses.get();
  }
  std::unique_ptr<parley::broker::guard::FlapDetector> flaps;
  if (lim.flapping_max_connects) {
    parley::broker::guard::FlapDetector::Options o;
    o.max_connects = lim.flapping_max_connects;
    o.window = lim.flapping_window;
    o.ban_duration = lim.flapping_ban;
    flaps = std::make_unique<parley::broker::guard::FlapDetector>(o);
    guards.flaps = flaps.get();
  }
  broker.SetGuards(guards);
  for (const auto& l : cfg.listeners)
    if (l.tls && l.tls->username_from_cert != "none") broker.SetCertificateUsernames(true);

  // Durable state: open the data dir (refusing one that is locked, unreadable, corrupt or too new, without
  // touching it), load it into the broker, then persist every change through one group-commit executor.
  // One store for the broker's state and the IM layer's: the broker's families first, then the IM's.
  std::unique_ptr<parley::storage::Store> store;
  std::unique_ptr<parley::storage::WriteExecutor> executor;
  std::unique_ptr<parley::broker::persist::DurableState> durable;
  std::vector<std::string> families;
  if (cfg.storage.enabled) families = parley::broker::persist::FamilyNames();
  const auto im_base = static_cast<uint32_t>(families.size());
  if (cfg.im.enabled)
    families.insert(families.end(), parley::im::FamilyNames().begin(), parley::im::FamilyNames().end());
  parley::storage::ExecutorOptions eo;
  eo.durability = *parley::storage::ParseDurability(cfg.storage.durability);
  eo.batch_sync_interval = cfg.storage.batch_interval;
  // Bounded in practice by the clients' in-flight windows (acks wait for the writes); refused beyond.
  eo.max_queue_bytes = size_t{1} << 30;
  if (cfg.storage.enabled) {
    const auto t0 = std::chrono::steady_clock::now();
    parley::storage::OpenOptions oo;
    oo.families = families;
    auto opened = parley::storage::RocksStore::Open(cfg.data_dir, oo);
    if (!opened.ok()) return Fail("cannot open the data dir: " + opened.status().ToString());
    store = std::move(opened.value());
    const auto t_open = std::chrono::steady_clock::now();
    executor = std::make_unique<parley::storage::WriteExecutor>(store.get(), eo);
    durable = std::make_unique<parley::broker::persist::DurableState>(store.get(), executor.get(),
                                                                       parley::SystemClock::Instance());
    auto loaded = durable->Load();
    if (!loaded.ok()) return Fail("cannot load the data dir " + cfg.data_dir + ": " + loaded.status().ToString());
    const size_t nsessions = loaded->sessions.size(), ndeliveries = loaded->deliveries;
    broker.SetPersistence(durable.get());
    broker.Restore(std::move(loaded->sessions), std::move(loaded->retained));
    malloc_trim(0);  // the load's temporary state is freed by now: give its pages back to the OS
    using std::chrono::milliseconds;
    const auto open_ms = std::chrono::duration_cast<milliseconds>(t_open - t0).count();
    const auto load_ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t_open).count();
    spdlog::info("storage: {} ({} durability); opened in {} ms (WAL replay included); loaded {} sessions, {} queued "
                 "messages in {} ms",
                 cfg.data_dir, cfg.storage.durability, open_ms, nsessions, ndeliveries, load_ms);
  } else if (cfg.im.enabled) {
    // No data dir: the IM layer keeps its state in memory (lost at exit), as the broker does.
    auto opened = parley::storage::MemStore::Open(families);
    if (!opened.ok()) return Fail("cannot create the in-memory store: " + opened.status().ToString());
    store = std::move(opened.value());
    executor = std::make_unique<parley::storage::WriteExecutor>(store.get(), eo);
    spdlog::warn("storage disabled: IM conversations live in memory only");
  }

  // The IM layer: a plugin on the broker's hooks, sharing the store and its group-commit executor.
  std::unique_ptr<parley::im::ImService> im;
  if (cfg.im.enabled) {
    im = std::make_unique<parley::im::ImService>(ToImOptions(cfg.im), store.get(), executor.get(), im_base,
                                                 parley::SystemClock::Instance());
    if (auto st = im->Start(); !st.ok()) return Fail("cannot start the IM layer: " + st.message());
    broker.AddHooks(im.get());
    spdlog::info("im: enabled (topics $im/v1/...)");
  }

  parley::net::Server server(broker, nworkers);
  std::vector<parley::net::ListenSpec> specs;
  for (const auto& l : cfg.listeners) {
    parley::net::ListenSpec s;
    s.name = l.name;
    s.bind = l.bind;
    s.port = l.port;
    s.backlog = l.backlog;
    s.max_connections = l.max_connections;
    s.protocol = parley::net::ParseListenerProtocol(l.protocol);
    if (l.tls) {
      auto ctx = MakeTls(l);
      if (!ctx.ok()) return Fail(ctx.status().message());
      s.tls = std::move(ctx.value());
    }
    s.websocket.path = l.websocket.path;
    s.websocket.allowed_origins = l.websocket.allowed_origins;
    // One WebSocket message usually carries one MQTT packet; allow a few more beside the largest one.
    s.websocket.max_message_size = uint64_t{cfg.limits.max_packet_size} + 64 * 1024;
    specs.push_back(std::move(s));
  }
  server.SetMaxConnections(cfg.limits.max_connections);
  if (auto st = server.Listen(specs); !st.ok()) return Fail(st.message());
  server.WatchOverload({cfg.overload.memory_high, cfg.overload.loop_lag_high});
  server.Start();
  for (size_t i = 0; i < specs.size(); ++i)
    spdlog::info("listening on {}:{} ({}, {})", specs[i].bind, server.BoundPort(i), specs[i].name,
                 parley::net::ListenerProtocolName(specs[i].protocol));
  spdlog::info("parleyd {} started with {} workers", parley::broker::kParleyVersion, nworkers);

  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGHUP) {
      // Certificates and the ban file are reloaded; the rest of the configuration needs a restart for now.
      ReloadCertificates(cfg, server);
      if (guards.bans) {
        if (auto st = bans.Load(); st.ok()) {
          spdlog::info("SIGHUP: bans reloaded: {} rules from {}", bans.size(), cfg.auth.ban_file);
        } else {
          spdlog::error("SIGHUP: {}; keeping the bans already loaded", st.message());
        }
      }
      continue;
    }
    spdlog::info("signal {}: shutting down", sig);
    break;
  }
  server.Stop();
  if (im) im->Stop();  // finishes queued IM work (its writes go to the executor)
  if (executor) executor->Shutdown();  // every accepted write reaches the disk; then nothing calls back
  spdlog::info("stopped");
  return 0;
}
