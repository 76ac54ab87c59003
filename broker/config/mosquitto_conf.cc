// mosquitto.conf(5) -> Config. One file on purpose: it is a flat reading of Mosquitto's ~120 options, each a
// few lines (the option tables here, the mapping table in docs/migrating-from-mosquitto.md), in four parts:
// messages (Report), reading lines and values (Translator::Read, Word/Int/Bool/Str), options
// (Translator::Option and friends), and building the Config with its cross-option rules (Translator::Finish).
#include "broker/config/mosquitto_conf.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "broker/config/units.h"

namespace parley::config {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxReportedErrors = 20;
constexpr size_t kMaxReportedWarnings = 100;
constexpr size_t kMaxFileBytes = 4 << 20;  // as the TOML loader: a mistaken path must not eat memory
constexpr uint32_t kMqttMaxPacket = 268'435'460;
// message_size_limit counts the payload only, max_packet_size the whole packet: room for the fixed header,
// the topic, the packet id and MQTT 5 properties of an ordinary PUBLISH.
constexpr uint32_t kPayloadHeadroom = 1024;
constexpr int64_t kU16 = 65535;
constexpr int64_t kU32 = std::numeric_limits<uint32_t>::max();

// clang-format off
// Every option of mosquitto.conf(5) in Mosquitto 2.0, outside bridges.
constexpr auto kOptions = std::to_array<std::string_view>({
    "acl_file", "allow_anonymous", "allow_duplicate_messages", "allow_zero_length_clientid", "auth_plugin",
    "auth_plugin_deny_special_chars", "auto_id_prefix", "autosave_interval", "autosave_on_changes",
    "bind_address", "bind_interface", "cafile", "capath", "certfile", "check_retain_source", "ciphers",
    "ciphers_tls1.3", "clientid_prefixes", "connection_messages", "crlfile", "dhparamfile", "global_plugin",
    "http_dir", "include_dir", "keyfile", "listener", "log_dest", "log_facility", "log_timestamp",
    "log_timestamp_format", "log_type", "max_connections", "max_inflight_bytes", "max_inflight_messages",
    "max_keepalive", "max_packet_size", "max_qos", "max_queued_bytes", "max_queued_messages",
    "max_topic_alias", "maximum_qos", "memory_limit", "message_size_limit", "mount_point", "password_file",
    "per_listener_settings", "persistence", "persistence_file", "persistence_location",
    "persistent_client_expiration", "pid_file", "plugin", "port", "protocol", "psk_file", "psk_hint",
    "queue_qos0_messages", "require_certificate", "retain_available", "retain_expiry_interval",
    "retained_persistence", "retry_interval", "set_tcp_nodelay", "socket_domain", "sys_interval",
    "tls_engine", "tls_engine_kpass_sha1", "tls_keyform", "tls_version", "upgrade_outgoing_qos",
    "use_identity_as_username", "use_subject_as_username", "use_username_as_clientid", "user",
    "websockets_headers_size", "websockets_log_level",
});

// Options that only mean something inside a bridge (after `connection <name>`).
constexpr auto kBridgeOptions = std::to_array<std::string_view>({
    "address", "addresses", "bridge_alpn", "bridge_attempt_unsubscribe", "bridge_bind_address",
    "bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_identity", "bridge_insecure",
    "bridge_keyfile", "bridge_max_packet_size", "bridge_outgoing_retain", "bridge_protocol_version",
    "bridge_psk", "bridge_require_ocsp", "bridge_tls_version", "cleansession", "clientid", "idle_timeout",
    "keepalive_interval", "local_cleansession", "local_clientid", "local_password", "local_username",
    "notification_topic", "notifications", "notifications_local_only", "password", "remote_clientid",
    "remote_password", "remote_username", "restart_timeout", "round_robin", "start_type", "threshold",
    "topic", "try_private", "username",
});
// clang-format on

template <size_t N>
bool Contains(const std::array<std::string_view, N>& a, std::string_view s) {
  return std::find(a.begin(), a.end(), s) != a.end();
}

bool IsPluginOption(std::string_view o) {
  return o.starts_with("auth_opt_") || o.starts_with("plugin_opt_") || o == "auth_plugin_deny_special_chars";
}

bool IsKnownOption(std::string_view o) {
  return Contains(kOptions, o) || Contains(kBridgeOptions, o) || o == "connection" || IsPluginOption(o);
}

bool IsBlank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (IsBlank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (IsBlank(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// Mosquitto's include_dir order: letter by letter, case-insensitively first, then upper before lower case
// ("00.conf", "A.conf", "a.conf", "B.conf").
bool MosquittoFileOrder(const std::string& x, const std::string& y) {
  size_t i = 0;
  for (; i < x.size() && i < y.size(); ++i) {
    const int a = static_cast<unsigned char>(x[i]), b = static_cast<unsigned char>(y[i]);
    const int d = std::toupper(a) - std::toupper(b);
    if (d != 0) return d < 0;
    if (a != b) return a < b;
  }
  return x.size() < y.size();
}

// ---------------------------------------------------------------------------------------------------
// Messages. Errors and warnings are kept apart, each sorted by (file, line) at the end: files in the order
// they were read (the main file first), lines in order within each.

struct Where {
  size_t file = 0;
  uint32_t line = 0;
  bool set() const { return line != 0; }
};

class Report {
 public:
  size_t AddFile(const std::string& name) {
    files_.push_back(Printable(name));
    return files_.size() - 1;
  }
  void Error(Where at, std::string_view option, const std::string& what) { Add(&errors_, at, option, what); }
  void Warn(Where at, std::string_view option, const std::string& what) { Add(&warnings_, at, option, what); }
  bool has_errors() const { return !errors_.empty(); }
  // "line 12" in the same file, "<file>:12" in another.
  std::string Ref(Where at, Where from) const {
    return at.file == from.file ? "line " + std::to_string(at.line)
                                : files_[at.file] + ":" + std::to_string(at.line);
  }

  Status ErrorStatus() {
    std::string msg;
    for (const std::string& line : Render(&errors_, kMaxReportedErrors, "errors")) {
      if (!msg.empty()) msg += '\n';
      msg += line;
    }
    return Status::Error(std::move(msg));
  }
  std::vector<std::string> Warnings() { return Render(&warnings_, kMaxReportedWarnings, "warnings"); }

 private:
  struct Issue {
    Where at;
    std::string text;
  };
  void Add(std::vector<Issue>* to, Where at, std::string_view option, const std::string& what) {
    to->push_back({at.line == 0 ? Where{at.file, 1} : at, Printable(option) + ": " + what});
  }
  std::vector<std::string> Render(std::vector<Issue>* issues, size_t max, const char* noun) const {
    std::stable_sort(issues->begin(), issues->end(), [](const Issue& a, const Issue& b) {
      return a.at.file != b.at.file ? a.at.file < b.at.file : a.at.line < b.at.line;
    });
    std::vector<std::string> out;
    for (size_t i = 0; i < issues->size() && i < max; ++i) {
      const Issue& is = (*issues)[i];
      out.push_back(files_[is.at.file] + ":" + std::to_string(is.at.line) + ": " + is.text);
    }
    if (issues->size() > max)
      out.push_back(files_[0] + ": (" + std::to_string(issues->size() - max) + " more " + noun + ")");
    return out;
  }

  std::vector<std::string> files_;
  std::vector<Issue> errors_;
  std::vector<Issue> warnings_;
};

// One option line: the option name, the rest of the line trimmed (Mosquitto's string values keep inner
// blanks), and the rest split at blanks.
struct Line {
  Where at;
  std::string option;
  std::string rest;
  std::vector<std::string> words;
};

// auth settings; global, or one per listener with per_listener_settings true.
struct Security {
  std::optional<bool> allow_anonymous;
  Where anonymous_at;
  std::string password_file;
  Where password_at;
  std::string acl_file;
  Where acl_at;
};

// One Mosquitto listener while its options are read.
struct Draft {
  Where at;                  // the `listener` line, or the first option of the default listener
  std::string first_option;  // for the default listener: the option that made it
  bool is_default = false;
  uint16_t port = 1883;
  std::string host;  // "" = every interface
  Where host_at;
  int domain = 0;  // AF_INET / AF_INET6 from socket_domain; 0 = both
  Where domain_at;
  bool websockets = false;
  std::string certfile, keyfile, cafile, ciphers, ciphersuites;
  Where cert_at, key_at, ca_at, capath_at;
  std::string min_tls = "1.2";
  bool require_certificate = false;
  Where require_at;
  bool cert_username = false;  // use_identity_as_username or use_subject_as_username
  Where cert_username_at;
  std::string cert_username_option;
  Where tls_option_at;  // the first TLS option, to say it is ignored when the listener has no certificate
  std::string tls_option;
  bool psk = false;
  bool unix_socket = false;
  int64_t max_connections = -1;
  Where max_connections_at;
  std::optional<int64_t> max_qos;
  Where max_qos_at;
  std::optional<int64_t> max_topic_alias;
  Where max_topic_alias_at;
  Security security;
};

struct Bridge {
  Where at;
  std::string name;
  std::string address;
};

// ---------------------------------------------------------------------------------------------------

class Translator {
 public:
  Translator(Report& report, fs::path base, std::string main_file)
      : r_(report), base_(std::move(base)), main_file_(std::move(main_file)) {
    // Parley's defaults for everything a mosquitto.conf cannot say; the listeners come from the file.
    config_ = DefaultConfig();
    config_.listeners.clear();
    // Mosquitto's defaults where they differ from Parley's and clients see them: an in-flight window (and
    // MQTT 5 Receive Maximum) of 20. Topic aliases (10) and anonymous access are settled in Finish().
    config_.limits.max_inflight = config_.limits.receive_maximum = 20;
  }

  void Read(std::string_view text, size_t file, int level);
  Config Finish();

 private:
  // Values. Each reports its own errors and returns nullopt / null on a bad value.
  const std::string* Word(const Line& l);
  std::optional<int64_t> Int(const Line& l, int64_t lo, int64_t hi, std::string_view range = {});
  std::optional<int64_t> IntValue(const Line& l, const std::string& word, int64_t lo, int64_t hi,
                                  std::string_view range = {});
  std::optional<bool> Bool(const Line& l);
  const std::string* Str(const Line& l);
  bool SetOnce(const Line& l, std::string* value, Where* at);
  std::string Path(const std::string& p) const;

  void Option(const Line& l, int level);
  bool ListenerOption(const Line& l);
  bool LogOption(const Line& l);
  bool Unsupported(const Line& l);
  void Ignored(const Line& l, const std::string& why) { r_.Warn(l.at, l.option, why); }
  Draft& Cur(const Line& l);
  Draft& Default(const Line& l);
  Security& Sec(const Line& l);
  void IncludeDir(const Line& l);

  bool Convert(Draft& d, bool local_only, Listener* out);
  void CheckOverlaps(const std::vector<const Draft*>& drafts);
  void FinishAuth(bool local_only, const std::vector<Draft*>& drafts);

  Report& r_;
  fs::path base_;
  std::string main_file_;
  Config config_;

  bool listener_lines_ = false;  // a `listener`, `port` or `bind_address` line: not local only mode
  std::optional<Draft> default_;
  std::vector<Draft> listeners_;
  bool in_listener_ = false;  // options go to listeners_.back()
  std::vector<std::string> names_;

  Security global_;
  bool per_listener_ = false;
  Where per_listener_at_;
  Where security_at_;  // the first security option, for per_listener_settings' order rule

  std::vector<Bridge> bridges_;
  struct Plugin {
    Where at;
    std::string option, path;
  };
  std::vector<Plugin> plugins_;

  std::optional<bool> persistence_;
  Where persistence_at_;
  std::string persistence_location_;
  Where persistence_location_at_;
  std::optional<int64_t> max_packet_size_;
  std::optional<int64_t> message_size_limit_;
  Where message_size_limit_at_;

  enum LogBits : unsigned { kLogDebug = 1, kLogInfo = 2, kLogWarn = 4, kLogError = 8 };
  std::optional<unsigned> log_types_;
  bool log_dest_set_ = false;
  bool log_dest_any_ = false;  // a destination other than none since the last `log_dest none`
  std::optional<bool> connection_messages_;
  Where connection_messages_at_;
};

const std::string* Translator::Word(const Line& l) {
  if (l.words.empty()) {
    r_.Error(l.at, l.option, "needs a value");
    return nullptr;
  }
  if (l.words.size() > 1 && l.words[1][0] != '#') {
    const std::string extra = l.rest.substr(l.rest.find(l.words[1], l.words[0].size()));
    r_.Warn(l.at, l.option, "the text after the value is ignored (" + QuoteForMessage(extra) + ")");
  }
  return &l.words[0];
}

std::optional<int64_t> Translator::Int(const Line& l, int64_t lo, int64_t hi, std::string_view range) {
  const std::string* w = Word(l);
  return w == nullptr ? std::nullopt : IntValue(l, *w, lo, hi, range);
}

std::optional<int64_t> Translator::IntValue(const Line& l, const std::string& word, int64_t lo, int64_t hi,
                                            std::string_view range) {
  const std::string* w = &word;
  int64_t v = 0;
  const char* begin = w->data() + (w->size() > 1 && (*w)[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(begin, w->data() + w->size(), v);
  if (ec == std::errc::result_out_of_range) {
    r_.Error(l.at, l.option, "is out of range (got " + QuoteForMessage(*w) + ")");
    return std::nullopt;
  }
  if (ec != std::errc() || end != w->data() + w->size()) {
    r_.Error(l.at, l.option, "must be an integer (got " + QuoteForMessage(*w) + ")");
    return std::nullopt;
  }
  if (v < lo || v > hi) {
    const std::string what = range.empty()
                                 ? "must be between " + std::to_string(lo) + " and " + std::to_string(hi)
                                 : std::string(range);
    r_.Error(l.at, l.option, what + " (got " + std::to_string(v) + ")");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Translator::Bool(const Line& l) {
  const std::string* w = Word(l);
  if (w == nullptr) return std::nullopt;
  if (*w == "true" || *w == "1") return true;
  if (*w == "false" || *w == "0") return false;
  r_.Error(l.at, l.option, "must be true or false (got " + QuoteForMessage(*w) + ")");
  return std::nullopt;
}

// Mosquitto's string values are the rest of the line, inner blanks included.
const std::string* Translator::Str(const Line& l) {
  if (l.rest.empty()) {
    r_.Error(l.at, l.option, "needs a value");
    return nullptr;
  }
  return &l.rest;
}

// A string option given at most once per listener (or globally), as Mosquitto requires.
bool Translator::SetOnce(const Line& l, std::string* value, Where* at) {
  const std::string* s = Str(l);
  if (s == nullptr) return false;
  if (at->set()) {
    r_.Error(l.at, l.option, "is given twice (first at " + r_.Ref(*at, l.at) + ")");
    return false;
  }
  *value = *s;
  *at = l.at;
  return true;
}

std::string Translator::Path(const std::string& p) const {
  if (p.empty() || base_.empty() || fs::path(p).is_absolute()) return p;
  return (base_ / p).lexically_normal().string();
}

// Listener options before any `listener` line belong to Mosquitto's default listener.
Draft& Translator::Cur(const Line& l) {
  return in_listener_ ? listeners_.back() : Default(l);
}

// Mosquitto's default listener: made by `port`, `bind_address`, or a listener option before any `listener`.
Draft& Translator::Default(const Line& l) {
  if (!default_) {
    default_.emplace();
    default_->is_default = true;
    default_->at = l.at;
    default_->first_option = l.option;
  }
  return *default_;
}

Security& Translator::Sec(const Line& l) {
  if (!security_at_.set()) security_at_ = l.at;
  return per_listener_ && in_listener_ ? listeners_.back().security : global_;
}

void Translator::Read(std::string_view text, size_t file, int level) {
  uint32_t number = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view s = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++number;
    if (s.empty() || s[0] == '#') continue;  // Mosquitto: '#' in the first column; indented ones too here
    Line l;
    l.at = {file, number};
    size_t i = 0;
    while (i < s.size() && !IsBlank(s[i])) ++i;
    l.option = std::string(s.substr(0, i));
    l.rest = std::string(Trim(s.substr(i)));
    if (s.find('\0') != std::string_view::npos) {
      r_.Error(l.at, l.option, "the line contains a NUL byte");
    } else {
      for (size_t p = 0; p < l.rest.size();) {
        while (p < l.rest.size() && IsBlank(l.rest[p])) ++p;
        size_t q = p;
        while (q < l.rest.size() && !IsBlank(l.rest[q])) ++q;
        if (q > p) l.words.push_back(l.rest.substr(p, q - p));
        p = q;
      }
      Option(l, level);
    }
  }
}

void Translator::IncludeDir(const Line& l) {
  const std::string* s = Str(l);
  if (s == nullptr) return;
  const std::string dir = Path(*s);
  std::error_code ec;
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.size() > 5 && name.ends_with(".conf") && !it->is_directory(type_ec)) files.push_back(name);
  }
  if (ec) {
    r_.Error(l.at, l.option, "cannot read the directory " + QuoteForMessage(dir) + ": " + ec.message());
    return;
  }
  std::sort(files.begin(), files.end(), MosquittoFileOrder);
  for (const std::string& name : files) {
    const std::string path = (fs::path(dir) / name).string();
    if (!main_file_.empty() && fs::equivalent(path, main_file_, ec)) {
      r_.Warn(l.at, l.option, QuoteForMessage(path) + " is the main config file itself: skipped");
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::string text;
    char buf[64 * 1024];
    while (in && text.size() <= kMaxFileBytes && (in.read(buf, sizeof(buf)) || in.gcount() > 0))
      text.append(buf, static_cast<size_t>(in.gcount()));
    if (!in.eof() || text.size() > kMaxFileBytes) {
      r_.Error(l.at, l.option,
               "cannot read " + QuoteForMessage(path) +
                   (text.size() > kMaxFileBytes ? ": larger than 4 MiB"
                                                : ": " + std::string(std::strerror(errno))));
      continue;
    }
    Read(text, r_.AddFile(path), 1);
  }
}

// Options without a Parley equivalent. The value is checked as Mosquitto checks it, and the warning is given
// only when the value asks for something Parley does not do (kTrue: `true` does, `false` is what Parley does
// anyway). kSilent: nothing to say at all (deprecated in Mosquitto, always on in Parley, or libwebsockets
// tuning that Parley's own WebSocket code does not need).
enum class WarnIf : uint8_t { kAlways, kBool, kInt, kTrue, kFalse, kPositive, kSilent };
struct UnsupportedOption {
  std::string_view option;
  WarnIf when;
  std::string_view why;
};
constexpr UnsupportedOption kUnsupported[] = {
    // Authentication.
    {"allow_zero_length_clientid", WarnIf::kFalse,
     "not supported: Parley gives an id to a client that sends an empty one (MQTT 5, and 3.1.1 with clean "
     "session); refuse such clients with an acl_file pattern on %c if needed"},
    {"auto_id_prefix", WarnIf::kAlways, "ignored: the client ids Parley assigns have no configurable prefix"},
    {"clientid_prefixes", WarnIf::kAlways,
     "not supported: any client id may connect; restrict clients with password_file and acl_file"},
    {"psk_file", WarnIf::kAlways,
     "not supported: Parley has no TLS-PSK; use certificates (certfile, keyfile) and passwords"},
    {"check_retain_source", WarnIf::kTrue,
     "not supported: a retained message is delivered without re-checking that its publisher may still "
     "publish "
     "there; clear retained messages of revoked publishers explicitly"},
    // Limits.
    {"max_inflight_bytes", WarnIf::kPositive,
     "not supported: Parley limits messages in flight by count only (max_inflight_messages)"},
    {"queue_qos0_messages", WarnIf::kTrue,
     "not supported: QoS 0 messages are not queued for disconnected clients; publish at QoS 1 for clients "
     "that must get them after reconnecting"},
    {"retain_expiry_interval", WarnIf::kAlways,
     "not supported: retained messages have no broker-wide expiry; publish them with an MQTT 5 Message "
     "Expiry Interval"},
    {"upgrade_outgoing_qos", WarnIf::kTrue,
     "not supported: messages are delivered at the lower of the published and the subscribed QoS, as MQTT "
     "requires"},
    {"retry_interval", WarnIf::kAlways, "ignored, as by Mosquitto 2.0: remove it"},
    {"allow_duplicate_messages", WarnIf::kSilent, ""},
    {"set_tcp_nodelay", WarnIf::kSilent, ""},
    {"websockets_log_level", WarnIf::kSilent, ""},
    {"websockets_headers_size", WarnIf::kSilent, ""},
    // Persistence and the process.
    {"persistence_file", WarnIf::kAlways,
     "ignored: Parley keeps its state in a directory (a RocksDB store under persistence_location), not in "
     "one file"},
    {"autosave_interval", WarnIf::kInt,
     "ignored: Parley writes every change to disk before acknowledging it (storage.durability \"fsync\"), so "
     "there is no periodic save to configure"},
    {"autosave_on_changes", WarnIf::kBool,
     "ignored: Parley writes every change to disk before acknowledging it (storage.durability \"fsync\"), so "
     "there is no periodic save to configure"},
    {"pid_file", WarnIf::kAlways,
     "ignored: parleyd writes no pid file; run it under systemd (Type=simple), which tracks the process "
     "itself"},
    {"user", WarnIf::kAlways,
     "ignored: parleyd does not switch users; start it as an unprivileged user (systemd: User=)"},
    // Logging.
    {"log_timestamp", WarnIf::kFalse, "ignored: Parley always starts log lines with a timestamp"},
    {"log_timestamp_format", WarnIf::kAlways,
     "ignored: Parley's timestamp format is fixed (date and time with milliseconds)"},
    {"log_facility", WarnIf::kAlways, "ignored: Parley does not log to syslog"},
    // Listeners (read after the listener they belong to is known).
    {"crlfile", WarnIf::kAlways,
     "not supported: Parley checks no revocation lists, so certificates revoked in this file are ACCEPTED; "
     "ban their user names (auth.ban_file in parley.toml) or issue short-lived certificates"},
    {"dhparamfile", WarnIf::kAlways,
     "ignored: Parley offers ECDHE key exchange only, which needs no DH parameters"},
    {"tls_engine", WarnIf::kAlways, "not supported: Parley reads the private key from keyfile (PEM) only"},
    {"tls_engine_kpass_sha1", WarnIf::kAlways,
     "not supported: Parley reads the private key from keyfile (PEM) only"},
    {"http_dir", WarnIf::kAlways,
     "not supported: Parley serves no files over HTTP; serve that directory with a web server"},
    {"use_username_as_clientid", WarnIf::kTrue,
     "not supported: clients keep the client id they send; give each user their own client ids with acl_file "
     "`pattern` rules on %c and %u"},
    {"bind_interface", WarnIf::kAlways,
     "not supported: give the interface's address instead (`listener <port> <address>`)"},
};

// ---------------------------------------------------------------------------------------------------
// Options.

void Translator::Option(const Line& l, int level) {
  const std::string& o = l.option;

  // Bridges: one warning per `connection` section (at the end, naming the address); its options are
  // absorbed into it. Bridge options outside a section are an error, as in Mosquitto.
  if (o == "connection") {
    const std::string* name = Word(l);
    if (name != nullptr) bridges_.push_back({l.at, *name, ""});
    return;
  }
  if (Contains(kBridgeOptions, o)) {
    if (bridges_.empty()) {
      r_.Error(l.at, o, "is a bridge option: it belongs after a `connection <name>` line");
    } else if ((o == "address" || o == "addresses") && bridges_.back().address.empty()) {
      bridges_.back().address = l.rest;
    }
    return;
  }
  if (o == "plugin" || o == "auth_plugin" || o == "global_plugin") {
    if (const std::string* p = Str(l)) plugins_.push_back({l.at, o, *p});
    return;
  }
  if (IsPluginOption(o)) {
    if (plugins_.empty()) r_.Error(l.at, o, "needs a `plugin` (or `auth_plugin`) line before it");
    return;  // covered by the plugin's warning
  }

  if (ListenerOption(l) || LogOption(l) || Unsupported(l)) return;

  // Authentication and access control.
  if (o == "allow_anonymous") {
    if (auto b = Bool(l)) {
      Security& s = Sec(l);
      s.allow_anonymous = *b;
      s.anonymous_at = l.at;
    }
  } else if (o == "password_file" || o == "acl_file") {
    Security& s = Sec(l);
    const bool pw = o == "password_file";
    std::string value;
    if (SetOnce(l, &value, pw ? &s.password_at : &s.acl_at))
      (pw ? s.password_file : s.acl_file) = Path(value);
  } else if (o == "per_listener_settings") {
    if (auto b = Bool(l)) {
      if (*b && security_at_.set()) {
        r_.Error(l.at, o,
                 "must come before password_file, acl_file and allow_anonymous (first at " +
                     r_.Ref(security_at_, l.at) + ")");
      } else if (*b) {
        per_listener_ = true;
        per_listener_at_ = l.at;
        Ignored(l,
                "Parley's authentication is global: every password_file, acl_file and allow_anonymous "
                "below applies to all listeners (different files are an error, and anonymous access is "
                "refused everywhere unless every listener allows it)");
      }
    }
    // Limits.
  } else if (o == "max_inflight_messages") {
    if (auto v = Int(l, std::numeric_limits<int32_t>::min(), kU16, "must be at most 65535")) {
      // 0, a negative value or 65535: no maximum, as in Mosquitto. Mosquitto also advertises it to MQTT 5
      // clients as Receive Maximum, so both windows follow it.
      const uint16_t n = *v <= 0 ? 65535 : static_cast<uint16_t>(*v);
      config_.limits.max_inflight = config_.limits.receive_maximum = n;
    }
  } else if (o == "max_queued_messages") {
    if (auto v = Int(l, std::numeric_limits<int32_t>::min(), kU32))
      config_.limits.max_queued_messages = *v <= 0 ? static_cast<uint32_t>(kU32) : static_cast<uint32_t>(*v);
  } else if (o == "max_queued_bytes") {
    if (auto v = Int(l, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
      config_.limits.max_queued_bytes =
          *v <= 0 ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(*v);
  } else if (o == "max_packet_size") {
    if (auto v = Int(l, 20, std::numeric_limits<int64_t>::max(), "must be at least 20 bytes"))
      max_packet_size_ = std::min<int64_t>(*v, kMqttMaxPacket);
  } else if (o == "message_size_limit") {
    if (auto v = Int(l, 0, kMqttMaxPacket - 5, "must be between 0 (no limit) and 268435455 bytes")) {
      message_size_limit_ = *v;
      message_size_limit_at_ = l.at;
    }
  } else if (o == "max_keepalive") {
    if (auto v = Int(l, 10, kU16)) config_.limits.max_keep_alive = static_cast<uint16_t>(*v);
  } else if (o == "persistent_client_expiration") {
    const std::string* w = Word(l);
    if (w == nullptr) return;
    static constexpr std::pair<char, int64_t> kUnits[] = {
        {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}, {'m', 30 * 86400}, {'y', 365 * 86400}};
    const auto* unit = std::find_if(std::begin(kUnits), std::end(kUnits),
                                    [&](const auto& u) { return !w->empty() && w->back() == u.first; });
    int64_t n = 0;
    const char* digits_end = w->data() + w->size() - 1;
    const auto [end, ec] = std::from_chars(w->data(), digits_end, n);
    if (unit == std::end(kUnits) || w->size() < 2 || ec != std::errc() || end != digits_end || n <= 0) {
      r_.Error(l.at, o,
               "must be a positive whole number and a unit h, d, w, m (30 days) or y (365 days), "
               "e.g. 14d (got " +
                   QuoteForMessage(*w) + ")");
      return;
    }
    const int64_t seconds = n > kU32 / unit->second ? kU32 : std::min(n * unit->second, kU32);
    config_.limits.max_session_expiry = static_cast<uint32_t>(seconds);
  } else if (o == "retain_available") {
    if (auto b = Bool(l)) config_.limits.retain_available = *b;
  } else if (o == "memory_limit") {
    if (auto v = Int(l, 0, std::numeric_limits<int64_t>::max()); v && *v > 0) {
      config_.overload.memory_high = static_cast<uint64_t>(*v);
      Ignored(l,
              "approximated: Parley does not cap its allocations; it sets overload.memory_high to this value "
              "instead: above it new connections are refused (CONNACK 0x89) and inbound QoS 0 messages "
              "dropped until memory use falls again");
    }
  } else if (o == "sys_interval") {
    if (auto v = Int(l, 0, kU16)) {
      config_.sys.enabled = *v > 0;
      if (*v > 0) config_.sys.interval = Seconds(*v);
    }

    // Persistence.
  } else if (o == "persistence" || o == "retained_persistence") {
    if (auto b = Bool(l)) {
      persistence_ = *b;
      persistence_at_ = l.at;
    }
  } else if (o == "persistence_location") {
    std::string loc;
    if (SetOnce(l, &loc, &persistence_location_at_)) persistence_location_ = Path(loc);
  } else if (o == "include_dir") {
    if (level == 0) {
      IncludeDir(l);
    } else {
      Ignored(l, "ignored: include_dir is read only from the main config file (as Mosquitto does)");
    }
  } else {
    std::string what = "unknown option: ignored";
    std::string_view best;
    size_t best_distance = std::numeric_limits<size_t>::max();
    for (std::string_view candidate : kOptions) {
      const size_t d = EditDistance(o, candidate);
      if (d < best_distance) best_distance = d, best = candidate;
    }
    if (best_distance <= std::max<size_t>(2, best.size() / 4))
      what += " (did you mean " + std::string(best) + "?)";
    r_.Warn(l.at, o, what + "; it is not a Mosquitto 2.0 option this Parley knows");
  }
}

bool Translator::ListenerOption(const Line& l) {
  const std::string& o = l.option;
  if (o == "listener") {
    listener_lines_ = true;
    if (l.words.empty()) {
      r_.Error(l.at, o, "needs a port");
      return true;
    }
    if (l.words.size() > 2 && l.words[2][0] != '#')
      r_.Warn(l.at, o, "the text after the address is ignored (" + QuoteForMessage(l.words[2]) + " ...)");
    Draft d;
    d.at = l.at;
    if (auto port = IntValue(l, l.words[0], 0, kU16, "must be a port between 1 and 65535")) {
      if (*port == 0) {
        d.unix_socket = true;
        r_.Warn(l.at, o,
                "Unix sockets are not supported: this listener is not opened; connect over TCP instead");
      }
      d.port = static_cast<uint16_t>(*port);
    }
    if (l.words.size() > 1 && l.words[1][0] != '#') {
      d.host = l.words[1];
      d.host_at = l.at;
    }
    listeners_.push_back(std::move(d));
    in_listener_ = true;
    return true;
  }
  if (o == "port") {
    listener_lines_ = true;
    if (auto port = Int(l, 1, kU16)) Default(l).port = static_cast<uint16_t>(*port);
    return true;
  }
  if (o == "bind_address") {
    listener_lines_ = true;
    if (const std::string* w = Word(l)) {
      Draft& d = Default(l);
      d.host = *w;
      d.host_at = l.at;
    }
    return true;
  }

  static constexpr auto kTlsOptions = std::to_array<std::string_view>(
      {"cafile", "capath", "ciphers", "ciphers_tls1.3", "crlfile", "dhparamfile", "require_certificate",
       "tls_version", "use_identity_as_username", "use_subject_as_username", "tls_engine", "tls_keyform",
       "tls_engine_kpass_sha1"});
  static constexpr auto kListenerOptions =
      std::to_array<std::string_view>({"certfile", "keyfile", "protocol", "socket_domain", "max_connections",
                                       "max_qos", "maximum_qos", "max_topic_alias", "mount_point", "http_dir",
                                       "use_username_as_clientid", "bind_interface", "psk_hint"});
  const bool tls_option = Contains(kTlsOptions, o);
  if (!tls_option && !Contains(kListenerOptions, o)) return false;
  Draft& d = Cur(l);
  if (tls_option && !d.tls_option_at.set()) {
    d.tls_option_at = l.at;
    d.tls_option = o;
  }
  if (Unsupported(l)) return true;

  if (o == "certfile" || o == "keyfile" || o == "cafile") {
    std::string value;
    Where* at = o == "certfile" ? &d.cert_at : o == "keyfile" ? &d.key_at : &d.ca_at;
    if (SetOnce(l, &value, at))
      (o == "certfile" ? d.certfile : o == "keyfile" ? d.keyfile : d.cafile) = Path(value);
  } else if (o == "capath") {
    d.capath_at = l.at;
    Ignored(l,
            "not supported: concatenate the CA certificates of that directory into one PEM file and name it "
            "in cafile");
  } else if (o == "ciphers") {
    if (const std::string* s = Str(l)) d.ciphers = *s;
  } else if (o == "ciphers_tls1.3") {
    if (const std::string* s = Str(l)) d.ciphersuites = *s;
  } else if (o == "tls_version") {
    const std::string* w = Word(l);
    if (w == nullptr) return true;
    if (*w == "tlsv1.3") {
      d.min_tls = "1.3";
    } else if (*w == "tlsv1.2") {
      d.min_tls = "1.2";
    } else if (*w == "tlsv1.1" || *w == "tlsv1") {
      d.min_tls = "1.2";
      Ignored(l, "Parley offers TLS 1.2 and 1.3 only: clients limited to older versions cannot connect");
    } else {
      r_.Error(l.at, o, "must be tlsv1.3, tlsv1.2 or tlsv1.1 (got " + QuoteForMessage(*w) + ")");
    }
  } else if (o == "require_certificate") {
    if (auto b = Bool(l)) d.require_certificate = *b, d.require_at = l.at;
  } else if (o == "use_identity_as_username" || o == "use_subject_as_username") {
    if (auto b = Bool(l); b && *b) {
      if (o == "use_subject_as_username") {
        Ignored(l,
                "not supported as such: Parley takes the certificate's Common Name as the user name, not the "
                "whole subject (\"CN=...,O=...\"); rename those users to their CN in password_file and "
                "acl_file");
      }
      if (!d.cert_username || o == "use_identity_as_username")
        d.cert_username_at = l.at, d.cert_username_option = o;
      d.cert_username = true;
    }
  } else if (o == "tls_keyform") {
    if (const std::string* w = Word(l); w && *w != "pem")
      Ignored(l, "not supported: Parley reads the private key from keyfile (PEM) only");
  } else if (o == "psk_hint") {
    d.psk = true;
    Ignored(l, "not supported: Parley has no TLS-PSK; use certificates (certfile, keyfile) and passwords");
  } else if (o == "protocol") {
    const std::string* w = Word(l);
    if (w == nullptr) return true;
    if (*w == "mqtt" || *w == "websockets") {
      d.websockets = *w == "websockets";
    } else {
      r_.Error(l.at, o, "must be mqtt or websockets (got " + QuoteForMessage(*w) + ")");
    }
  } else if (o == "socket_domain") {
    const std::string* w = Word(l);
    if (w == nullptr) return true;
    if (*w == "ipv4" || *w == "ipv6") {
      d.domain = *w == "ipv4" ? AF_INET : AF_INET6;
      d.domain_at = l.at;
    } else {
      r_.Error(l.at, o, "must be ipv4 or ipv6 (got " + QuoteForMessage(*w) + ")");
    }
  } else if (o == "max_connections") {
    if (auto v = Int(l, std::numeric_limits<int32_t>::min(), kU32)) {
      if (*v == 0) {
        r_.Error(l.at, o, "0 lets no client connect; write -1 for no limit, or a positive number");
      } else {
        d.max_connections = *v;
        d.max_connections_at = l.at;
      }
    }
  } else if (o == "max_qos" || o == "maximum_qos") {
    if (auto v = Int(l, 0, 2, "must be 0, 1 or 2")) d.max_qos = *v, d.max_qos_at = l.at;
  } else if (o == "max_topic_alias") {
    if (auto v = Int(l, 0, kU16)) d.max_topic_alias = *v, d.max_topic_alias_at = l.at;
  } else if (o == "mount_point") {
    Ignored(l,
            "not supported: clients of this listener share one topic tree with every other listener "
            "instead of seeing only " +
                QuoteForMessage(l.rest) + "; keep them apart with acl_file rules");
  }
  return true;
}

// An option of kUnsupported: checks its value and warns when it asks for something. False for other options.
bool Translator::Unsupported(const Line& l) {
  const auto* u = std::find_if(std::begin(kUnsupported), std::end(kUnsupported),
                               [&](const UnsupportedOption& x) { return x.option == l.option; });
  if (u == std::end(kUnsupported)) return false;
  bool warn = true;
  switch (u->when) {
    case WarnIf::kAlways:
      break;
    case WarnIf::kSilent:
      warn = false;
      break;
    case WarnIf::kBool:
      warn = Bool(l).has_value();
      break;
    case WarnIf::kTrue:
    case WarnIf::kFalse: {
      const std::optional<bool> b = Bool(l);
      warn = b.has_value() && *b == (u->when == WarnIf::kTrue);
      break;
    }
    case WarnIf::kInt:
    case WarnIf::kPositive: {
      const std::optional<int64_t> v =
          Int(l, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
      warn = v.has_value() && (u->when == WarnIf::kInt || *v > 0);
      break;
    }
  }
  if (warn) r_.Warn(l.at, l.option, std::string(u->why));
  return true;
}

bool Translator::LogOption(const Line& l) {
  const std::string& o = l.option;
  if (o == "log_type") {
    const std::string* w = Word(l);
    if (w == nullptr) return true;
    unsigned types = log_types_.value_or(0);
    if (*w == "none") {
      types = 0;
    } else if (*w == "all") {
      types = kLogDebug | kLogInfo | kLogWarn | kLogError;
    } else if (*w == "debug") {
      types |= kLogDebug;
    } else if (*w == "information" || *w == "notice") {
      types |= kLogInfo;
    } else if (*w == "warning") {
      types |= kLogWarn;
    } else if (*w == "error") {
      types |= kLogError;
    } else if (*w == "subscribe" || *w == "unsubscribe" || *w == "websockets" || *w == "internal") {
      Ignored(l, "ignored: Parley has no separate " + *w + " log category");
    } else {
      r_.Error(
          l.at, o,
          "must be debug, error, warning, notice, information, subscribe, unsubscribe, websockets, none or "
          "all (got " +
              QuoteForMessage(*w) + ")");
      return true;
    }
    log_types_ = types;
  } else if (o == "log_dest") {
    if (l.words.empty()) {
      r_.Error(l.at, o, "needs a value");
      return true;
    }
    const std::string* w = &l.words[0];  // `file` takes the rest of the line as its path
    log_dest_set_ = true;
    log_dest_any_ = *w != "none";
    if (*w == "none" || *w == "stdout" || *w == "stderr") {
      // Parley logs to standard output; stderr and stdout both reach the console or the journal.
    } else if (*w == "syslog") {
      Ignored(l,
              "not supported: Parley logs to standard output; under systemd the journal keeps it "
              "(journalctl -u parleyd), or pipe it to logger(1)");
    } else if (*w == "file") {
      const std::string file = l.words.size() > 1 ? std::string(Trim(l.rest.substr(4))) : "";
      Ignored(l,
              "not supported: Parley logs to standard output; redirect it to the file (systemd: "
              "StandardOutput=append:" +
                  Printable(file) + ")");
    } else if (*w == "topic") {
      Ignored(l,
              "not supported: Parley publishes no log messages under $SYS/broker/log; read its standard "
              "output instead");
    } else if (*w == "dlt") {
      Ignored(l, "not supported: Parley logs to standard output only");
    } else {
      r_.Error(l.at, o,
               "must be stdout, stderr, syslog, topic, file <path>, dlt or none (got " + QuoteForMessage(*w) +
                   ")");
    }
  } else if (o == "connection_messages") {
    if (auto b = Bool(l)) connection_messages_ = *b, connection_messages_at_ = l.at;
  } else {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// From the collected options to Config.

bool ParseLiteral(const std::string& text, int* family, std::array<unsigned char, 16>* bytes) {
  for (const int f : {AF_INET, AF_INET6}) {
    bytes->fill(0);
    if (inet_pton(f, text.c_str(), bytes->data()) == 1) {
      *family = f;
      return true;
    }
  }
  return false;
}

bool Translator::Convert(Draft& d, bool local_only, Listener* out) {
  const std::string where = d.is_default ? "port" : "listener";
  const Where at = d.host_at.set() ? d.host_at : d.at;
  if (d.unix_socket) return false;  // warned at the listener line

  // Address. Mosquitto binds every interface of both families when given no address; Parley's listener
  // binds one address.
  Listener l;
  l.port = local_only ? 1883 : d.port;
  if (local_only) {
    l.bind = "127.0.0.1";
  } else if (d.host.empty()) {
    l.bind = d.domain == AF_INET6 ? "::" : "0.0.0.0";
    if (d.domain == 0)
      r_.Warn(d.at, d.is_default ? d.first_option : "listener",
              "Mosquitto listens on every IPv4 and IPv6 address here; Parley listens on 0.0.0.0 (every IPv4 "
              "address): add `listener " +
                  std::to_string(l.port) + " ::` for IPv6 clients");
  } else if (d.host == "localhost") {
    l.bind = d.domain == AF_INET6 ? "::1" : "127.0.0.1";
  } else {
    int family = 0;
    std::array<unsigned char, 16> bytes{};
    if (!ParseLiteral(d.host, &family, &bytes)) {
      r_.Error(at, d.host_at.set() && d.is_default ? "bind_address" : where,
               "must be an IP address such as 127.0.0.1, ::1, 0.0.0.0 or :: (got " + QuoteForMessage(d.host) +
                   "; host names are not resolved)");
      return false;
    }
    if (d.domain != 0 && d.domain != family) {
      r_.Error(d.domain_at, "socket_domain",
               "does not match the address " + QuoteForMessage(d.host) + " of this listener");
      return false;
    }
    l.bind = d.host;
  }

  // TLS: certfile and keyfile make it a TLS listener.
  const bool tls = !d.certfile.empty() && !d.keyfile.empty();
  if (d.certfile.empty() != d.keyfile.empty()) {
    r_.Error(d.certfile.empty() ? d.key_at : d.cert_at, d.certfile.empty() ? "keyfile" : "certfile",
             "certfile and keyfile must be given together (the listener's certificate and its key)");
    return false;
  }
  if (!tls && d.psk) {
    r_.Warn(d.at, where, "this listener uses TLS-PSK only, which Parley does not support: it is not opened");
    return false;
  }
  if (!tls && d.tls_option_at.set()) {
    r_.Warn(d.tls_option_at, d.tls_option,
            "ignored: this listener has no certfile and keyfile, so it does not use TLS");
  }
  if (tls) {
    Tls t;
    t.cert_file = d.certfile;
    t.key_file = d.keyfile;
    t.ca_file = d.cafile;
    t.min_version = d.min_tls;
    t.ciphers = d.ciphers;
    t.ciphersuites = d.ciphersuites;
    const std::string no_ca =
        d.capath_at.set() ? " (capath is not supported: put those CAs in one file)" : "";
    if (d.require_certificate) {
      t.require_client_cert = true;
      if (d.cafile.empty()) {
        r_.Error(d.require_at, "require_certificate",
                 "needs cafile: the CAs that sign client certificates" + no_ca);
        return false;
      }
    }
    if (d.cert_username) {
      // Mosquitto refuses a client without a certificate here (at CONNECT); Parley refuses it in the
      // handshake.
      t.username_from_cert = "cn";
      t.require_client_cert = true;
      if (d.cafile.empty()) {
        r_.Error(d.cert_username_at, d.cert_username_option,
                 "needs cafile: the CAs that sign client certificates" + no_ca);
        return false;
      }
    }
    l.tls = std::move(t);
  }
  l.protocol = d.websockets ? (tls ? "wss" : "ws") : (tls ? "mqtts" : "mqtt");
  if (d.websockets) {
    r_.Warn(
        d.at, where,
        "Parley accepts WebSocket connections on the path /mqtt only (Mosquitto: any path): clients must use "
        "ws" +
            std::string(tls ? "s" : "") + "://<host>:" + std::to_string(l.port) +
            "/mqtt (the default of MQTT.js and Paho JavaScript); for another path, move to parley.toml "
            "([listener.websocket] path)");
  }
  l.max_connections = d.max_connections < 0 ? 0 : static_cast<uint32_t>(d.max_connections);

  std::string name = "listener-" + std::to_string(l.port);
  for (int n = 2; std::find(names_.begin(), names_.end(), name) != names_.end(); ++n)
    name = "listener-" + std::to_string(l.port) + "-" + std::to_string(n);
  names_.push_back(name);
  l.name = std::move(name);
  *out = std::move(l);
  return true;
}

void Translator::CheckOverlaps(const std::vector<const Draft*>& drafts) {
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const Listener& a = config_.listeners[i];
    int fa = 0;
    std::array<unsigned char, 16> ba{};
    if (!ParseLiteral(a.bind, &fa, &ba)) continue;
    for (size_t j = 0; j < i; ++j) {
      const Listener& b = config_.listeners[j];
      int fb = 0;
      std::array<unsigned char, 16> bb{};
      if (!ParseLiteral(b.bind, &fb, &bb) || fa != fb || a.port != b.port) continue;
      const std::array<unsigned char, 16> zero{};
      if (ba == bb || ba == zero || bb == zero) {
        r_.Error(drafts[i]->at, drafts[i]->is_default ? "port" : "listener",
                 "port " + std::to_string(a.port) + " on " + a.bind + " overlaps the listener at " +
                     r_.Ref(drafts[j]->at, drafts[i]->at));
        break;
      }
    }
  }
}

void Translator::FinishAuth(bool local_only, const std::vector<Draft*>& drafts) {
  Auth& auth = config_.auth;
  if (local_only) {
    // Mosquitto 2.0 without a listener: local only mode, anonymous access on whatever the file says.
    auth.allow_anonymous = true;
    if (global_.allow_anonymous == false)
      r_.Warn(global_.anonymous_at, "allow_anonymous",
              "ignored without a listener, as by Mosquitto 2.0 (local only mode: 127.0.0.1:1883, anonymous "
              "clients allowed); add a `listener` line to require passwords");
  } else if (!per_listener_) {
    auth.allow_anonymous = global_.allow_anonymous.value_or(false);
  } else {
    // One global setting: anonymous clients only if every listener let them in. Options before the first
    // `listener` line belong to the default listener.
    bool all = global_.allow_anonymous.value_or(true), any = global_.allow_anonymous.value_or(false);
    for (const Draft* d : drafts) {
      const bool allowed = (d->is_default ? global_ : d->security).allow_anonymous.value_or(false);
      all = all && allowed;
      any = any || allowed;
    }
    auth.allow_anonymous = all;
    if (any && !all)
      r_.Warn(
          per_listener_at_, "per_listener_settings",
          "listeners differ in allow_anonymous; Parley's setting is global, so anonymous clients are refused "
          "on every listener");
  }

  // Files: one each. With per_listener_settings, listeners naming different files cannot be merged.
  auto pick = [&](std::string Security::*file, Where Security::*at, const char* option) {
    std::vector<const Security*> all{&global_};
    for (const Draft* d : drafts) all.push_back(&d->security);
    const Security* first = nullptr;
    for (const Security* s : all) {
      if ((s->*file).empty()) continue;
      if (first == nullptr) {
        first = s;
      } else if (s->*file != first->*file) {
        r_.Error(s->*at, option,
                 "Parley has one " + std::string(option) + " for all listeners, and this one differs from " +
                     r_.Ref(first->*at, s->*at) + ": merge them into one file");
      }
    }
    return first ? first->*file : std::string();
  };
  auth.password_file = pick(&Security::password_file, &Security::password_at, "password_file");
  auth.acl_file = pick(&Security::acl_file, &Security::acl_at, "acl_file");
}

Config Translator::Finish() {
  // Listeners. Without a `listener`, `port` or `bind_address` line Mosquitto 2.0 runs in local only mode.
  const bool local_only = !listener_lines_;
  std::vector<Draft*> drafts;
  Draft local;
  if (local_only) {
    if (default_) {
      r_.Warn(default_->at, default_->first_option,
              "a listener option without a `listener` line: Mosquitto 2.0 would open its default listener on "
              "every address with anonymous access; Parley keeps it on 127.0.0.1:1883 (local only mode): add "
              "`listener 1883` to accept clients from the network");
    }
    drafts.push_back(default_ ? &*default_ : &local);
  } else {
    if (default_) drafts.push_back(&*default_);
    for (Draft& d : listeners_) drafts.push_back(&d);
  }
  std::vector<const Draft*> opened;
  for (Draft* d : drafts) {
    Listener l;
    if (Convert(*d, local_only, &l)) {
      config_.listeners.push_back(std::move(l));
      opened.push_back(d);
    }
  }
  CheckOverlaps(opened);
  if (config_.listeners.empty() && !r_.has_errors())
    r_.Error(drafts.front()->at, "listener", "no listener that Parley can open: add e.g. `listener 1883`");

  // Per-listener limits that are global in Parley: the lowest wins. Mosquitto's defaults: QoS 2, 10 aliases.
  auto lowest = [&](std::optional<int64_t> Draft::*value, Where Draft::*at, int64_t fallback,
                    const char* option, const char* what) {
    int64_t low = std::numeric_limits<int64_t>::max();
    Where low_at;
    bool differ = false;
    for (size_t i = 0; i < opened.size(); ++i) {
      const int64_t v = (opened[i]->*value).value_or(fallback);
      if (i > 0 && v != (opened[0]->*value).value_or(fallback)) differ = true;
      if (v < low) {
        low = v;
        low_at = (opened[i]->*at).set() ? opened[i]->*at : opened[i]->at;
      }
    }
    if (opened.empty()) low = fallback;
    if (differ)
      r_.Warn(low_at, option,
              std::string("Parley's ") + what + " applies to every listener: the lowest, " +
                  std::to_string(low) + ", is used for all");
    return low;
  };
  config_.limits.max_qos =
      static_cast<uint8_t>(lowest(&Draft::max_qos, &Draft::max_qos_at, 2, "max_qos", "max_qos"));
  config_.limits.topic_alias_maximum = static_cast<uint16_t>(
      lowest(&Draft::max_topic_alias, &Draft::max_topic_alias_at, 10, "max_topic_alias", "max_topic_alias"));

  FinishAuth(local_only, drafts);

  // Packet size: max_packet_size counts the whole packet, message_size_limit the payload only.
  uint32_t packet = config_.limits.max_packet_size;
  if (max_packet_size_) packet = static_cast<uint32_t>(*max_packet_size_);
  if (message_size_limit_ && *message_size_limit_ > 0) {
    const auto from_payload =
        static_cast<uint32_t>(std::min<int64_t>(*message_size_limit_ + kPayloadHeadroom, kMqttMaxPacket));
    packet = max_packet_size_ ? std::min(packet, from_payload) : from_payload;
    r_.Warn(message_size_limit_at_, "message_size_limit",
            "approximated by max_packet_size = " + std::to_string(packet) +
                ": Parley limits whole packets (payload, topic, properties and headers), not payloads, and "
                "disconnects a client that sends a larger one where Mosquitto drops just the message; write "
                "max_packet_size instead");
  }
  config_.limits.max_packet_size = packet;
  // A connection's write buffer must hold one whole packet.
  config_.limits.max_outbound_buffer =
      std::max<uint64_t>(config_.limits.max_outbound_buffer, uint64_t{packet} + 64 * 1024);

  // Persistence: off unless `persistence true`, as in Mosquitto.
  config_.storage.enabled = persistence_.value_or(false);
  const fs::path location = persistence_location_.empty() ? base_ : fs::path(persistence_location_);
  config_.data_dir = (location / "parley").lexically_normal().string();
  if (config_.storage.enabled) {
    r_.Warn(
        persistence_at_, "persistence",
        "Parley keeps its own store in " + QuoteForMessage(config_.data_dir) +
            " and does not read Mosquitto's mosquitto.db: retained messages and persistent sessions saved "
            "by Mosquitto are not carried over" +
            (persistence_location_.empty() ? "; set persistence_location (e.g. /var/lib/parley) to choose "
                                             "the directory"
                                           : ""));
  }
  config_.im.enabled = false;  // a Mosquitto config describes a plain MQTT broker: $im/ stays ordinary topics

  // Nor does it describe Parley's admin API: off, so that it neither takes a port the file did not name (8080
  // is a common Mosquitto WebSocket port) nor writes its token file into the data dir of a broker that
  // persists nothing.
  config_.admin.enabled = false;

  // Logging: the most detailed type enabled sets the level.
  if (log_types_) {
    const unsigned t = *log_types_;
    config_.log.level = t & kLogDebug   ? "debug"
                        : t & kLogInfo  ? "info"
                        : t & kLogWarn  ? "warn"
                        : t & kLogError ? "error"
                                        : "off";
  }
  // `log_dest none` (and no destination after it) turns logging off; unsupported destinations were warned
  // about, and Parley writes to standard output for them.
  if (log_dest_set_ && !log_dest_any_) config_.log.level = "off";
  if (connection_messages_ == true && config_.log.level != "debug")
    r_.Warn(connection_messages_at_, "connection_messages",
            "Parley logs client connections at debug level only: add `log_type debug` to see them");

  for (const Bridge& b : bridges_) {
    r_.Warn(b.at, "connection",
            "bridges are not supported: bridge " + QuoteForMessage(b.name) +
                (b.address.empty() ? "" : " to " + QuoteForMessage(b.address)) +
                " and its options are ignored, so no messages flow to or from that broker; run the bridge in "
                "a separate Mosquitto instance, which connects to Parley as an ordinary client");
  }
  for (const Plugin& p : plugins_) {
    const bool dynsec = p.path.find("dynamic_security") != std::string::npos;
    std::string what = "plugins are not supported: " + QuoteForMessage(p.path) + " is not loaded";
    what += dynsec ? "; export the Dynamic Security clients and roles into password_file and acl_file"
                   : "; use password_file and acl_file (or JWT or SCRAM in parley.toml)";
    if (config_.auth.acl_file.empty())
      what += ". With no acl_file, every client may publish and subscribe to every topic";
    r_.Warn(p.at, p.option, what);
  }

  return std::move(config_);
}

}  // namespace

bool IsMosquittoConfig(std::string_view text, std::string_view path) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') return false;
    size_t i = 0;
    while (i < line.size() && !IsBlank(line[i]) && line[i] != '=') ++i;
    const std::string_view word = line.substr(0, i);
    const std::string_view after = Trim(line.substr(i));
    if (!after.empty() && after[0] == '=') return false;  // TOML: key = value
    if (IsKnownOption(word)) return true;
    break;
  }
  return path.ends_with(".conf");
}

Result<Config> ParseMosquittoConfig(std::string_view text, const std::string& source_name,
                                    const std::string& base_dir) {
  try {
    Report report;
    const size_t main = report.AddFile(source_name);
    const fs::path base = base_dir.empty() ? fs::path(source_name).parent_path() : fs::path(base_dir);
    Translator t(report, base, source_name);
    t.Read(text, main, 0);
    Config config = t.Finish();
    if (report.has_errors()) return report.ErrorStatus();
    config.warnings = report.Warnings();
    config.source_path = source_name;
    return config;
  } catch (const std::bad_alloc&) {
    return Status::Error(source_name + ": out of memory while reading the configuration");
  } catch (const std::exception& e) {
    return Status::Error(source_name + ": " + e.what());
  }
}

}  // namespace parley::config
