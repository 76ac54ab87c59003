// Parley's configuration: the parsed, validated form of conf/parley.toml (docs/configuration.md).
// Loaded once at start (and again on SIGHUP for what can reload). Plain values; no behaviour.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace parley::config {

using Seconds = std::chrono::seconds;
using Milliseconds = std::chrono::milliseconds;

// [listener.tls]: for protocol "mqtts" and "wss" (docs/security.md).
struct Tls {
  std::string cert_file;            // PEM, chain allowed; required
  std::string key_file;             // PEM; required
  std::string ca_file;              // PEM CAs that sign client certificates; "" = none requested
  bool require_client_cert = false;  // needs ca_file
  std::string username_from_cert = "none";  // "none" | "cn" | "san": the verified certificate's name is the user name
  std::string min_version = "1.2";  // "1.2" | "1.3"
  std::string ciphers;              // TLS 1.2 cipher list; "" = OpenSSL's default
  std::string ciphersuites;         // TLS 1.3 suites; "" = OpenSSL's default

  friend bool operator==(const Tls&, const Tls&) = default;
};

// [listener.websocket]: for protocol "ws" and "wss".
struct WebSocket {
  std::string path = "/mqtt";
  std::vector<std::string> allowed_origins;  // empty = any Origin (or none)

  friend bool operator==(const WebSocket&, const WebSocket&) = default;
};

struct Listener {
  std::string name;              // unique; used in logs and metrics
  std::string bind = "127.0.0.1";  // IPv4 or IPv6 literal; "0.0.0.0" / "::" for all interfaces
  uint16_t port = 1883;          // 0 = pick a free port (tests)
  std::string protocol = "mqtt";   // "mqtt" (TCP), "mqtts" (TLS), "ws" (WebSocket), "wss" (WebSocket over TLS)
  int backlog = 1024;
  uint32_t max_connections = 0;  // 0 = unlimited (bounded by the process's open-file limit)
  std::optional<Tls> tls;        // set for mqtts / wss
  WebSocket websocket;           // ws / wss only

  friend bool operator==(const Listener&, const Listener&) = default;
};

struct Limits {
  uint32_t max_packet_size = 1024 * 1024;  // bytes, both directions, fixed header included
  uint16_t receive_maximum = 64;           // inbound QoS 1/2 window we advertise (v5 Receive Maximum)
  uint16_t max_inflight = 64;              // outbound QoS 1/2 window cap per client (min with client's)
  uint32_t max_queued_messages = 1000;     // per session, QoS 0 and 1/2 together
  uint64_t max_queued_bytes = 64ull * 1024 * 1024;  // per session
  uint16_t topic_alias_maximum = 64;       // inbound aliases we accept (v5 Topic Alias Maximum)
  uint16_t max_keep_alive = 0;             // cap on client keep alive in seconds; 0 = no cap
  std::optional<uint32_t> max_session_expiry;  // cap on session expiry interval, seconds; unset = no cap
  uint8_t max_qos = 2;
  bool retain_available = true;
  bool wildcard_subscriptions = true;
  bool subscription_identifiers = true;
  bool shared_subscriptions = true;
  uint32_t max_client_id_length = 256;
  uint32_t max_topic_length = 65535;
  uint32_t max_topic_levels = 128;
  uint32_t max_subscriptions_per_client = 0;  // 0 = unlimited
  Milliseconds connect_timeout{10'000};    // time from TCP accept to a complete CONNECT
  uint64_t max_outbound_buffer = 16ull * 1024 * 1024;  // bytes pending to a slow reader before we cut it
  Milliseconds write_timeout{60'000};  // a write the peer has not taken for this long closes it; 0 = never
  uint32_t max_retained_messages = 0;      // 0 = unlimited
  uint32_t max_connections = 0;  // across all listeners; 0 = unlimited (the open-file limit still applies)
  // Per client address (IPv6 by /64), across listeners. 0 = unlimited.
  uint32_t max_connections_per_address = 0;
  uint32_t connection_rate_per_address = 0;   // new connections per second; 0 = unlimited
  uint32_t connection_burst_per_address = 0;  // 0 = same as the rate
  // Per client: inbound PUBLISH packets and bytes per second (token buckets); past them the broker stops
  // reading the client's socket until the bucket refills. 0 = unlimited.
  uint32_t publish_rate = 0;
  uint32_t publish_burst = 0;                 // 0 = same as the rate
  uint64_t publish_byte_rate = 0;
  uint64_t publish_byte_burst = 0;            // 0 = same as the rate
  // Flapping: more than flapping_max_connects CONNECTs of one client id within flapping_window bans that
  // client id for flapping_ban. 0 = off.
  uint32_t flapping_max_connects = 0;
  Seconds flapping_window{60};
  Seconds flapping_ban{300};

  friend bool operator==(const Limits&, const Limits&) = default;
};

// [auth.jwt]: a JSON Web Token as the MQTT password (docs/security.md).
struct Jwt {
  std::string algorithm;        // "HS256" | "RS256" | "ES256"
  std::string secret_file;      // HS256: the shared secret (file contents, trailing newline stripped)
  std::string public_key_file;  // RS256 / ES256: PEM public key
  std::string username_claim = "sub";
  std::string acl_claim;        // "" = tokens carry no ACL
  std::string issuer;           // "" = not checked
  std::string audience;         // "" = not checked
  Seconds leeway{30};
  bool require_exp = true;

  friend bool operator==(const Jwt&, const Jwt&) = default;
};

struct Auth {
  bool allow_anonymous = true;
  std::string password_file;  // mosquitto_passwd format ($7$ PBKDF2-SHA512, $6$ salted SHA-512)
  std::string acl_file;       // mosquitto ACL file format
  std::string scram_file;     // SCRAM-SHA-256 verifiers for MQTT 5 enhanced authentication; "" = off
  std::string ban_file;       // persistent bans (client id, user name, address / CIDR); "" = none
  std::optional<Jwt> jwt;     // set when [auth.jwt] is present

  friend bool operator==(const Auth&, const Auth&) = default;
};

// [overload]: above a watermark new connections are refused (v5 CONNACK 0x89 Server busy) and inbound
// QoS 0 messages are dropped, until the broker is back under it.
struct Overload {
  uint64_t memory_high = 0;         // bytes of resident memory; 0 = not watched
  Milliseconds loop_lag_high{1000};  // event-loop lag of any worker; 0 = not watched

  friend bool operator==(const Overload&, const Overload&) = default;
};

struct Sys {
  bool enabled = true;
  Seconds interval{10};  // how often $SYS/broker/... topics are republished

  friend bool operator==(const Sys&, const Sys&) = default;
};

struct Storage {
  bool enabled = true;             // false: nothing persisted, every session and message lives in memory only
  std::string durability = "fsync";  // "fsync" | "batch" | "none" (docs/configuration.md, docs/reliability.md)
  Milliseconds batch_interval{50};   // "batch": how often the WAL is synced (the window of loss on power failure)

  friend bool operator==(const Storage&, const Storage&) = default;
};

// [im]: the IM layer (docs/protocol.md; mapped onto parley::im::Options by parleyd).
struct Im {
  bool enabled = true;
  uint32_t max_group_members = 10'000;
  uint32_t inbox_fanout_max = 500;
  uint32_t receipts_max_members = 100;
  uint32_t typing_max_members = 100;
  Seconds dedup_window{7 * 24 * 3600};
  Seconds edit_window{24 * 3600};
  Seconds recall_window{24 * 3600};
  uint64_t max_message_bytes = 64 * 1024;
  uint32_t max_mentions = 50;
  uint32_t max_versions = 20;
  uint32_t send_rate = 50;   // per second per user; 0 = unlimited
  uint32_t send_burst = 200;
  Milliseconds presence_grace{5000};
  Milliseconds typing_interval{2000};
  Seconds retention_max_age{0};      // 0 ("none") = forever
  uint64_t retention_max_count = 0;  // 0 = no limit
  Seconds inbox_retention{30 * 24 * 3600};
  Seconds sweep_interval{60};
  friend bool operator==(const Im&, const Im&) = default;
};

struct Log {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // "text" or "json"

  friend bool operator==(const Log&, const Log&) = default;
};

// [admin]: the admin HTTP API, /metrics and health endpoints (docs/admin-api.md).
struct Admin {
  bool enabled = true;
  std::string bind = "127.0.0.1";
  uint16_t port = 8080;             // 0 = any free port (tests)
  std::string token_file;           // "" = <data_dir>/admin.token, created on first start
  bool metrics_public = false;      // serve /metrics without the token
  std::optional<Tls> tls;           // [admin.tls]: HTTPS (cert_file, key_file, min_version, ciphers...)

  friend bool operator==(const Admin&, const Admin&) = default;
};

// [files]: file uploads (tus 1.0) and downloads for the IM layer, on their own HTTP listener (docs/files.md).
// Needs storage (the files live under <data_dir>/files).
struct Files {
  bool enabled = true;
  std::string bind = "127.0.0.1";
  uint16_t port = 8081;               // 0 = any free port (tests)
  std::string public_url;             // prefix of the URLs handed to clients; "" = relative ("/files/v1/...")
  uint64_t max_file_size = 100ull << 20;
  uint64_t user_quota = 1ull << 30;   // 0 = no quota
  std::vector<std::string> allowed_types;  // "image/*", "application/pdf"; empty = any
  Seconds upload_expiry{24 * 3600};
  Seconds gc_grace{24 * 3600};
  Seconds gc_interval{600};
  Seconds token_ttl{3600};
  uint32_t max_connections = 1024;
  std::optional<Tls> tls;             // [files.tls]: HTTPS

  friend bool operator==(const Files&, const Files&) = default;
};

// [push.webhook], [push.gorush]: one push provider (docs/push.md).
struct PushProvider {
  std::string url;
  Milliseconds timeout{5000};
  std::string topic;  // gorush: the APNs topic (the app's bundle id)

  friend bool operator==(const PushProvider&, const PushProvider&) = default;
};

// [push]: push notifications for users with no device online. Off until a provider is configured.
struct Push {
  Milliseconds collapse_window{3000};
  uint32_t preview_max_chars = 100;
  std::optional<PushProvider> webhook;
  std::optional<PushProvider> gorush;

  friend bool operator==(const Push&, const Push&) = default;
};

// [[alerts.rule]]: a condition over one metric family (docs/operations.md, "Alerts").
struct AlertRule {
  std::string name;                   // unique
  std::string metric;                 // a family of /metrics, e.g. "parley_disconnects_total"
  std::vector<std::pair<std::string, std::string>> labels;  // only samples with these labels; empty = all
  std::string function = "value";     // "value" (sum), "max", "rate" (per second), "p50", "p90", "p99"
  std::string op = ">";               // ">", ">=", "<", "<="
  double threshold = 0;
  Seconds for_duration{0};            // the condition must hold this long before the rule fires ("for")
  std::string severity = "warning";   // free text, passed to the webhook
  std::string description;

  friend bool operator==(const AlertRule&, const AlertRule&) = default;
};

// [alerts]: rules evaluated every `interval`; a rule that fires or resolves is logged and posted to
// `webhook_url` (through a circuit breaker).
struct Alerts {
  Seconds interval{10};
  std::string webhook_url;            // "" = log only; http:// or https://
  Milliseconds webhook_timeout{5000};
  std::vector<AlertRule> rules;       // without a `rule` key: DefaultAlertRules()

  friend bool operator==(const Alerts&, const Alerts&) = default;
};

struct Config {
  int workers = 0;                  // 0 = one per core
  std::string data_dir = "data";    // storage directory (durable state, later issues)
  std::vector<Listener> listeners;  // at least one
  Limits limits;
  Auth auth;
  Overload overload;
  Sys sys;
  Storage storage;
  Im im;
  Log log;
  Admin admin;
  Alerts alerts;
  Files files;
  Push push;
  std::string source_path;          // file the config came from ("" = built-in default); absolute
                                    // when loaded by LoadConfigFile, source_name for ParseConfig
  // Messages for the operator, one line each, that parleyd logs at startup (spdlog::warn) and that do not stop
  // it: "<file>:<line>: <option>: <what Parley does instead>; <what to do>". Only a Mosquitto config makes
  // them (options without a Parley equivalent, docs/migrating-from-mosquitto.md); TOML problems are errors.
  std::vector<std::string> warnings;

  // Field-by-field equality, e.g. for a reload to tell what changed.
  friend bool operator==(const Config&, const Config&) = default;
};

// The alert rules used when the configuration names none (docs/operations.md, "Alerts"): disconnect storm,
// slow storage, queue saturation, low disk, event-loop lag, overload.
std::vector<AlertRule> DefaultAlertRules();

// The embedded default: one MQTT listener on 127.0.0.1:1883, anonymous access, everything else default.
Config DefaultConfig();

// Reads the config file at `path`: TOML, or a Mosquitto mosquitto.conf. The first line that is not blank or a
// comment decides: `[table]` or `key = value` is TOML, a Mosquitto option name (`listener 1883`) is Mosquitto;
// when it does not (empty file, only comments, an unknown word), a name ending in ".conf" is Mosquitto and
// anything else TOML (IsMosquittoConfig in mosquitto_conf.h). A Mosquitto file goes to ParseMosquittoConfig
// (mosquitto_conf.h), which reports its errors in the same form and fills Config::warnings.
//
// Parses and validates a TOML config. Unknown keys and bad values are errors naming the key and line,
// e.g. "conf/parley.toml:12: limits.max_qos: must be 0, 1 or 2 (got 3)"; every problem in the file is
// reported, one per line of the message, in line order. Relative paths inside the file (password_file,
// acl_file, data_dir) are resolved against the file's directory (for ParseConfig: the directory part of
// source_name, if any). Never throws. Startup and reload; may be called from any thread.
Result<Config> LoadConfigFile(const std::string& path);
Result<Config> ParseConfig(std::string_view toml_text, const std::string& source_name);

}  // namespace parley::config
