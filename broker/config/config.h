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

struct Listener {
  std::string name;              // unique; used in logs and metrics
  std::string bind = "127.0.0.1";  // IPv4 or IPv6 literal; "0.0.0.0" / "::" for all interfaces
  uint16_t port = 1883;          // 0 = pick a free port (tests)
  std::string protocol = "mqtt";   // "mqtt" (plain TCP). Later: "mqtts", "ws", "wss".
  int backlog = 1024;
  uint32_t max_connections = 0;  // 0 = unlimited (bounded by the process's open-file limit)

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
  uint32_t max_retained_messages = 0;      // 0 = unlimited

  friend bool operator==(const Limits&, const Limits&) = default;
};

struct Auth {
  bool allow_anonymous = true;
  std::string password_file;  // mosquitto_passwd format ($7$ PBKDF2-SHA512, $6$ salted SHA-512)
  std::string acl_file;       // mosquitto ACL file format

  friend bool operator==(const Auth&, const Auth&) = default;
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

struct Config {
  int workers = 0;                  // 0 = one per core
  std::string data_dir = "data";    // storage directory (durable state, later issues)
  std::vector<Listener> listeners;  // at least one
  Limits limits;
  Auth auth;
  Sys sys;
  Storage storage;
  Im im;
  Log log;
  std::string source_path;          // file the config came from ("" = built-in default); absolute
                                    // when loaded by LoadConfigFile, source_name for ParseConfig

  // Field-by-field equality, e.g. for a reload to tell what changed.
  friend bool operator==(const Config&, const Config&) = default;
};

// The embedded default: one MQTT listener on 127.0.0.1:1883, anonymous access, everything else default.
Config DefaultConfig();

// Parses and validates a TOML config. Unknown keys and bad values are errors naming the key and line,
// e.g. "conf/parley.toml:12: limits.max_qos: must be 0, 1 or 2 (got 3)"; every problem in the file is
// reported, one per line of the message, in line order. Relative paths inside the file (password_file,
// acl_file, data_dir) are resolved against the file's directory (for ParseConfig: the directory part of
// source_name, if any). Never throws. Startup and reload; may be called from any thread.
Result<Config> LoadConfigFile(const std::string& path);
Result<Config> ParseConfig(std::string_view toml_text, const std::string& source_name);

}  // namespace parley::config
