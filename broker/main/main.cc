// parleyd: loads the configuration, wires broker core, auth and network, and runs until SIGTERM/SIGINT.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <thread>

#include "base/log.h"
#include "base/metrics.h"
#include "base/process_metrics.h"
#include "broker/admin/alerts.h"
#include "broker/admin/clients.h"
#include "broker/admin/jobs.h"
#include "broker/admin/live_config.h"
#include "broker/admin/ops.h"
#include "broker/admin/token.h"
#include "broker/config/config.h"
#include "broker/core/broker.h"
#include "broker/core/version.h"
#include "broker/net/http_server.h"
#include "broker/net/overload.h"
#include "broker/net/server.h"
#include "broker/net/tls.h"
#include "broker/persist/durable_state.h"
#include "broker/persist/layout.h"
#include "im/admin.h"
#include "im/keys.h"
#include "im/service.h"
#include "storage/executor.h"
#include "storage/mem_store.h"
#include "storage/rocks_store.h"
#include "storage/store_metrics.h"

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

parley::im::FilesOptions ToFilesOptions(const parley::config::Files& c, const std::string& data_dir) {
  parley::im::FilesOptions o;
  o.enabled = c.enabled;
  o.dir = (std::filesystem::path(data_dir) / "files").string();
  o.max_file_size = c.max_file_size;
  o.user_quota = c.user_quota;
  o.allowed_types = c.allowed_types;
  o.upload_expiry = c.upload_expiry;
  o.gc_grace = c.gc_grace;
  o.gc_interval = c.gc_interval;
  o.token_ttl = c.token_ttl;
  o.public_url = c.public_url;
  return o;
}

parley::im::PushOptions ToPushOptions(const parley::config::Push& c) {
  parley::im::PushOptions o;
  auto provider = [](const parley::config::PushProvider& p) {
    parley::im::PushProviderOptions po;
    po.url = p.url;
    po.timeout = p.timeout;
    po.topic = p.topic;
    return po;
  };
  if (c.webhook) o.webhook = provider(*c.webhook);
  if (c.gorush) o.gorush = provider(*c.gorush);
  o.collapse_window = c.collapse_window;
  o.preview_max_chars = c.preview_max_chars;
  o.version = parley::broker::kParleyVersion;
  return o;
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "parleyd: %s\n", msg.c_str());
  return 2;
}

// The TLS context of a listener's [listener.tls] (or [admin.tls]) options. Startup and reload.
parley::Result<std::shared_ptr<const parley::net::TlsContext>> MakeTls(const parley::config::Tls& t,
                                                                       const std::string& name) {
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
  if (!ctx.ok()) return parley::Status::Error("listener " + name + ": " + ctx.status().message());
  if (ctx.value()->ExpiresWithin(std::chrono::hours(24 * 30)))
    spdlog::warn("listener {}: the certificate {} expires within 30 days (or has expired)", name,
                 ctx.value()->subject());
  return ctx;
}

// Reload step: rebuilds the TLS context of every TLS listener (and of the admin listener) from the new
// configuration — certificates are re-read even when no setting changed, since a renewed certificate usually
// keeps its file name. New connections use the new context; open ones keep theirs. A listener whose new
// context fails keeps its old one, and the reload reports the error.
void ReloadTls(const parley::config::Config& running, const parley::config::Config& next, parley::net::Server& server,
               parley::net::HttpServer* admin, parley::admin::ReloadReport& report) {
  for (size_t i = 0; i < running.listeners.size() && i < next.listeners.size(); ++i) {
    const auto& l = next.listeners[i];
    if (!l.tls || !running.listeners[i].tls || l.name != running.listeners[i].name) continue;
    auto ctx = MakeTls(*l.tls, l.name);
    if (!ctx.ok()) {
      report.ok = false;
      report.errors.push_back(ctx.status().message() + " (keeping the previous certificate)");
      continue;
    }
    const std::string subject = ctx.value()->subject();
    server.SetTls(i, std::move(ctx.value()));
    report.applied.push_back("listener[" + std::to_string(i) + "].tls");
    spdlog::info("reload: listener {}: certificate reloaded ({})", l.name, subject);
  }
  if (admin && running.admin.tls && next.admin.tls) {
    auto ctx = MakeTls(*next.admin.tls, "admin");
    if (!ctx.ok()) {
      report.ok = false;
      report.errors.push_back(ctx.status().message() + " (keeping the previous certificate)");
    } else {
      admin->SetTls(std::move(ctx.value()));
      report.applied.push_back("admin.tls");
    }
  }
}

// A new ban also ends the connections it matches (DISCONNECT 0x98 Administrative action to MQTT 5 clients: 0x8A
// Banned exists only in CONNACK); their sessions stay. Returns how many were disconnected. The admin thread.
size_t KickAdministrativeAction(parley::net::Server& server, parley::broker::Broker& broker, const parley::broker::guard::BanRule& rule) {
  using parley::broker::guard::BanKind;
  constexpr uint8_t kAdministrativeAction = 0x98;
  if (rule.kind == BanKind::kClientId) return broker.KickClient(rule.value, kAdministrativeAction) ? 1 : 0;
  parley::net::Server::ConnectionQuery q;
  q.limit = std::numeric_limits<size_t>::max();
  if (rule.kind == BanKind::kUsername) q.username = rule.value;
  bool more = false;
  auto conns = server.ListConnections(q, &more);
  if (!conns.ok()) {
    spdlog::warn("ban {}: cannot list connections to disconnect the banned ones: {}", rule.value,
                 conns.status().message());
    return 0;
  }
  std::optional<parley::broker::guard::IpPrefix> prefix;
  if (rule.kind == BanKind::kAddress) {
    auto p = parley::broker::guard::IpPrefix::Parse(rule.value);
    if (!p.ok()) return 0;
    prefix = p.value();
  }
  size_t kicked = 0;
  for (const auto& c : conns.value()) {
    if (prefix) {
      const auto peer = parley::broker::guard::IpAddress::ParsePeer(c.address);
      if (!peer || !prefix->Contains(*peer)) continue;
    }
    if (broker.KickClient(c.client_id, kAdministrativeAction)) ++kicked;
  }
  return kicked;
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
  int admin_port = -1;
  int files_port = -1;
  std::string log_level;
  app.add_option("-c,--config", config_path, "Configuration file: TOML, or a Mosquitto mosquitto.conf "
                                              "(docs/migrating-from-mosquitto.md); without it the embedded "
                                              "default is used: MQTT on 127.0.0.1:1883")
      ->check(CLI::ExistingFile);
  app.add_option("-p,--port", port, "Port of the first plain-TCP MQTT listener (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--bind", bind, "Address of the first MQTT listener (0.0.0.0 or :: for all interfaces)");
  app.add_option("--data-dir", data_dir, "Storage directory");
  app.add_option("--admin-port", admin_port, "Port of the admin API (0 = any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--files-port", files_port, "Port of the file upload/download listener (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--workers", workers, "Worker threads (0 = one per core)")->check(CLI::Range(0, 1024));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  app.set_version_flag("--version", std::string("parleyd ") + parley::broker::kParleyVersion);
  CLI11_PARSE(app, argc, argv);

  Config cfg = parley::config::DefaultConfig();
  if (!config_path.empty()) {
    auto loaded = parley::config::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(loaded.status().message());
    cfg = std::move(loaded.value());
    // Options of a mosquitto.conf that Parley does not support, each with what to do instead.
    for (const std::string& w : cfg.warnings) spdlog::warn("config: {}", w);
  }
  // The command line's overrides; a reload applies them to the re-read file too.
  auto overrides = [=](Config& c) {
    if (!data_dir.empty()) c.data_dir = data_dir;
    if (workers >= 0) c.workers = workers;
    if (!log_level.empty()) c.log.level = log_level;
    if (admin_port >= 0) c.admin.port = static_cast<uint16_t>(admin_port);
    if (files_port >= 0) c.files.port = static_cast<uint16_t>(files_port);
    for (auto& l : c.listeners) {
      if (l.protocol != "mqtt") continue;
      if (port >= 0) l.port = static_cast<uint16_t>(port);
      if (!bind.empty()) l.bind = bind;
      break;
    }
  };
  overrides(cfg);

  if (auto st = parley::log::Configure(cfg.log.level, cfg.log.format); !st.ok()) return Fail(st.message());

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

  // Auth providers (JWT, password file, ACL file, SCRAM verifiers, bans), reloadable on SIGHUP.
  parley::admin::LiveConfig live(cfg, parley::SystemClock::Instance());
  live.SetOverrides(overrides);
  if (auto st = live.InstallAuth(broker); !st.ok()) return Fail(st.message());

  // Admission control: bans, per-address limits, flapping (docs/security.md).
  const auto& lim = cfg.limits;
  parley::broker::Broker::Guards guards;
  guards.bans = &live.bans();  // always: bans added through the admin API apply even without a ban file
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
    // Files need a directory that survives restarts, as their metadata does: only with storage.
    if (cfg.files.enabled && !cfg.storage.enabled) {
      spdlog::warn("files: disabled because storage is disabled (file transfer keeps its files under the data dir)");
    } else if (cfg.files.enabled) {
      if (auto st = im->EnableFiles(ToFilesOptions(cfg.files, cfg.data_dir)); !st.ok())
        return Fail("files: " + st.message());
    }
    if (cfg.push.webhook || cfg.push.gorush) {
      if (auto st = im->EnablePush(ToPushOptions(cfg.push)); !st.ok()) return Fail("push: " + st.message());
    }
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
      auto ctx = MakeTls(*l.tls, l.name);
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

  // Metrics: each module's collector; /metrics, the admin API and the alert rules all read them here.
  parley::metrics::Registry registry;
  registry.Add([&broker](auto& out) { broker.CollectMetrics(out); });
  registry.Add([&server](auto& out) {
    server.CollectMetrics(out);
    server.CollectDrainMetrics(out);
  });
  if (executor) registry.Add([&executor](auto& out) { executor->CollectMetrics(out); });
  if (store && cfg.storage.enabled)
    registry.Add([&store, dir = cfg.data_dir](auto& out) { parley::storage::CollectStoreMetrics(*store, dir, out); });
  if (im) registry.Add([&im](auto& out) { im->CollectMetrics(out); });
  registry.Add([](auto& out) { parley::metrics::CollectProcess(out); });

  // Alert rules over those metrics.
  auto alerts = parley::admin::AlertEngine::Create(cfg.alerts, registry, parley::SystemClock::Instance());
  if (!alerts.ok()) return Fail("alerts: " + alerts.status().message());
  parley::admin::AlertEngine& alert_engine = *alerts.value();
  registry.Add([&alert_engine](auto& out) { alert_engine.CollectMetrics(out); });

  // The admin API (docs/admin-api.md): its own listener and thread.
  std::unique_ptr<parley::net::HttpServer> admin;
  std::atomic<bool> stopping{false};
  parley::admin::Jobs jobs;
  if (cfg.admin.enabled) {
    parley::net::HttpServerOptions o;
    o.name = "admin";
    o.bind = cfg.admin.bind;
    o.port = cfg.admin.port;
    if (cfg.admin.metrics_public) o.public_paths.push_back("/metrics");
    std::string token_file = cfg.admin.token_file;
    if (token_file.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(cfg.data_dir, ec);
      token_file = (std::filesystem::path(cfg.data_dir) / "admin.token").string();
    }
    auto token = parley::admin::LoadOrCreateToken(token_file, cfg.admin.token_file.empty());
    if (!token.ok()) return Fail(token.status().message());
    o.bearer_token = std::move(token.value());
    if (cfg.admin.tls) {
      auto ctx = MakeTls(*cfg.admin.tls, "admin");
      if (!ctx.ok()) return Fail(ctx.status().message());
      o.tls = std::move(ctx.value());
    }
    admin = std::make_unique<parley::net::HttpServer>(std::move(o));

    parley::admin::OpsContext ops;
    ops.broker = &broker;
    ops.live = &live;
    ops.metrics = &registry;
    ops.jobs = &jobs;
    ops.store = cfg.storage.enabled ? store.get() : nullptr;
    ops.workers = nworkers;
    ops.stopping = &stopping;
    ops.listeners = [&cfg, &server, &registry] {
      const auto families = registry.Collect();
      nlohmann::json list = nlohmann::json::array();
      for (size_t i = 0; i < cfg.listeners.size(); ++i) {
        const auto& l = cfg.listeners[i];
        list.push_back({{"name", l.name},
                        {"protocol", l.protocol},
                        {"bind", l.bind},
                        {"port", server.BoundPort(i)},
                        {"connections", static_cast<int64_t>(parley::metrics::Sum(
                                            families, "parley_connections", {{"listener", l.name}}).value_or(0))}});
      }
      return list;
    };
    ops.stalled_workers = [&server] { return server.StalledWorkers(std::chrono::seconds(5)); };
    ops.draining = [&server] { return server.DrainStatus().active; };
    ops.alerts_firing = [&alert_engine] { return static_cast<int>(alert_engine.FiringCount()); };
    ops.kick_banned = [&server, &broker](const parley::broker::guard::BanRule& rule) {
      return KickAdministrativeAction(server, broker, rule);
    };
    parley::admin::AddOpsRoutes(*admin, ops);
    parley::admin::AddClientRoutes(*admin, broker, server);
    parley::admin::AddAlertRoutes(*admin, alert_engine);
    if (im) {
      parley::im::AddImRoutes(*admin, *im);
    } else {
      parley::im::AddDisabledImRoutes(*admin);
    }
    if (auto st = admin->Listen(); !st.ok()) return Fail(st.message());
  }
  // File uploads and downloads (docs/files.md): their own listener, reachable by the apps, separate from the
  // admin API (which stays on loopback with its token).
  std::unique_ptr<parley::net::HttpServer> files_http;
  if (im && im->files()) {
    parley::net::HttpServerOptions o;
    o.name = "files";
    o.bind = cfg.files.bind;
    o.port = cfg.files.port;
    o.public_paths.clear();  // no bearer token: each route checks its own upload or download token
    o.max_connections = cfg.files.max_connections;
    o.max_body = 64 * 1024;  // non-streaming requests (creation, termination) carry no real body
    if (cfg.files.tls) {
      auto ctx = MakeTls(*cfg.files.tls, "files");
      if (!ctx.ok()) return Fail(ctx.status().message());
      o.tls = std::move(ctx.value());
    }
    files_http = std::make_unique<parley::net::HttpServer>(std::move(o));
    im->files()->AddRoutes(*files_http);
    if (auto st = files_http->Listen(); !st.ok()) return Fail(st.message());
  }

  live.AddStep([&server, &admin](const Config& running, const Config& next, parley::admin::ReloadReport& report) {
    ReloadTls(running, next, server, admin.get(), report);
  });
  live.AddStep([&alert_engine](const Config& running, const Config& next, parley::admin::ReloadReport& report) {
    if (running.alerts == next.alerts) return;
    if (auto st = alert_engine.Reconfigure(next.alerts); !st.ok()) {
      report.ok = false;
      report.errors.push_back("alerts: " + st.message());
    } else {
      report.applied.push_back("alerts");
    }
  });

  server.Start();
  alert_engine.Start();
  if (admin) admin->Start();
  if (files_http) files_http->Start();
  for (size_t i = 0; i < specs.size(); ++i)
    spdlog::info("listening on {}:{} ({}, {})", specs[i].bind, server.BoundPort(i), specs[i].name,
                 parley::net::ListenerProtocolName(specs[i].protocol));
  if (admin) spdlog::info("admin API on {}://{}:{}", cfg.admin.tls ? "https" : "http", cfg.admin.bind, admin->port());
  if (files_http)
    spdlog::info("files on {}://{}:{}", cfg.files.tls ? "https" : "http", cfg.files.bind, files_http->port());
  spdlog::info("parleyd {} started with {} workers", parley::broker::kParleyVersion, nworkers);

  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", cfg.source_path.empty() ? "(built-in default)" : cfg.source_path);
      live.Reload();
      continue;
    }
    spdlog::info("signal {}: shutting down", sig);
    break;
  }
  // Graceful stop: readiness fails first, then the MQTT listeners stop accepting and every client is told
  // (DISCONNECT 0x8B to MQTT 5) and closed; running jobs finish; then storage is flushed.
  stopping = true;
  alert_engine.Stop();
  server.Stop();
  if (admin) admin->Stop();
  if (files_http) files_http->Stop();  // uploads in progress keep what they have sent (tus resumes them)
  if (im) im->Stop();  // finishes queued IM work (its writes go to the executor)
  if (executor) executor->Shutdown();  // every accepted write reaches the disk; then nothing calls back
  spdlog::info("stopped");
  return 0;
}
