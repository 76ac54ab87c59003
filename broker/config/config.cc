#include "broker/config/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <new>
#include <utility>

#include "broker/config/mosquitto_conf.h"
#include "broker/config/units.h"

namespace parley::config {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxReportedErrors = 20;
// A config file is a few KiB. The cap keeps a mistaken path such as /dev/zero from eating memory.
constexpr size_t kMaxFileBytes = 4 << 20;
constexpr uint64_t kDay = 86'400'000;  // ms

// ---------------------------------------------------------------------------------------------------
// Error collection. Every problem in the file is reported, not just the first, sorted by line, one per
// line of the Status message: "<file>:<line>: <dotted.key>: <what is wrong>".

class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}

  void Add(uint32_t line, const std::string& key, const std::string& what) {
    issues_.push_back({line == 0 ? 1 : line, key + ": " + what});
  }
  bool empty() const { return issues_.empty(); }

  Status ToStatus() {
    std::stable_sort(issues_.begin(), issues_.end(),
                     [](const Issue& a, const Issue& b) { return a.line < b.line; });
    std::string msg;
    for (size_t i = 0; i < issues_.size() && i < kMaxReportedErrors; ++i) {
      if (i > 0) msg += '\n';
      msg += file_ + ":" + std::to_string(issues_[i].line) + ": " + issues_[i].text;
    }
    if (issues_.size() > kMaxReportedErrors) {
      msg += "\n" + file_ + ": (" + std::to_string(issues_.size() - kMaxReportedErrors) + " more errors)";
    }
    return Status::Error(std::move(msg));
  }

 private:
  struct Issue {
    uint32_t line;
    std::string text;
  };
  std::string file_;
  std::vector<Issue> issues_;
};

// A key as it would be written in TOML: bare if it can be, quoted otherwise.
std::string KeyText(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? std::string(key) : QuoteForMessage(key);
}

// "a string", "an integer", ...: for "must be X, not <TypeName>" messages.
const char* TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "a value";
}

// ---------------------------------------------------------------------------------------------------
// TableReader reads the keys of one TOML table. Each read names the key it expects; Finish() reports
// every key in the table that no read asked for, so typos are errors rather than silently ignored.

class TableReader {
 public:
  TableReader(Errors& errors, const toml::table& table, std::string path)
      : errors_(errors), table_(table), path_(std::move(path)) {}

  std::string KeyPath(std::string_view key) const {
    return path_.empty() ? KeyText(key) : path_ + "." + KeyText(key);
  }
  uint32_t line() const { return table_.source().begin.line; }

  // The node under `key`, or null if absent. Marks `key` as a known key of this table.
  const toml::node* Find(std::string_view key) {
    known_.emplace_back(key);
    return table_.get(key);
  }

  void Error(const toml::node& at, std::string_view key, const std::string& what) {
    const uint32_t l = at.source().begin.line;
    errors_.Add(l != 0 ? l : line(), KeyPath(key), what);
  }
  // For something required that is absent: reported at the table's own line.
  void Missing(std::string_view key, const std::string& what) { errors_.Add(line(), KeyPath(key), what); }

  // A sub-table such as [limits]. Null (and an error if present but not a table) otherwise.
  const toml::table* Table(std::string_view key) {
    const toml::node* n = Find(key);
    if (n == nullptr) return nullptr;
    if (const toml::table* t = n->as_table()) return t;
    Error(*n, key, std::string("must be a table ([") + std::string(key) + "]), not " + TypeName(*n));
    return nullptr;
  }

  // Integers in [lo, hi]. `range` replaces the default "must be between lo and hi" wording.
  template <typename T>
  void Integer(std::string_view key, int64_t lo, int64_t hi, T* out, std::string_view range = {}) {
    const toml::node* n = Find(key);
    if (n == nullptr) return;
    const auto* v = n->as_integer();
    if (v == nullptr) {
      Error(*n, key, std::string("must be an integer, not ") + TypeName(*n));
      return;
    }
    const int64_t x = v->get();
    if (x < lo || x > hi) {
      std::string what = range.empty()
                             ? "must be between " + std::to_string(lo) + " and " + std::to_string(hi)
                             : std::string(range);
      Error(*n, key, what + " (got " + std::to_string(x) + ")");
      return;
    }
    *out = static_cast<T>(x);
  }

  void Bool(std::string_view key, bool* out) {
    const toml::node* n = Find(key);
    if (n == nullptr) return;
    if (const auto* v = n->as_boolean()) {
      *out = v->get();
    } else {
      Error(*n, key, std::string("must be true or false, not ") + TypeName(*n));
    }
  }

  // Returns the string node (for callers that validate further), or null if absent or not a string.
  const toml::node* String(std::string_view key, std::string* out) {
    const toml::node* n = Find(key);
    if (n == nullptr) return nullptr;
    if (const auto* v = n->as_string()) {
      // TOML allows \u0000; C APIs taking these strings (addresses, paths) would stop at it.
      if (v->get().find('\0') != std::string::npos) {
        Error(*n, key, "must not contain a NUL character (\\u0000)");
        return nullptr;
      }
      *out = v->get();
      return n;
    }
    Error(*n, key, std::string("must be a string, not ") + TypeName(*n));
    return nullptr;
  }

  // An array of strings (possibly empty).
  void StringArray(std::string_view key, std::vector<std::string>* out) {
    const toml::node* n = Find(key);
    if (n == nullptr) return;
    const toml::array* arr = n->as_array();
    if (arr == nullptr) {
      Error(*n, key, std::string("must be an array of strings, not ") + TypeName(*n));
      return;
    }
    std::vector<std::string> values;
    for (const toml::node& e : *arr) {
      const auto* v = e.as_string();
      if (v == nullptr) {
        Error(e, key, std::string("must be an array of strings; an element is ") + TypeName(e));
        return;
      }
      if (v->get().find('\0') != std::string::npos) {
        Error(e, key, "must not contain a NUL character (\\u0000)");
        return;
      }
      values.push_back(v->get());
    }
    *out = std::move(values);
  }

  void OneOf(std::string_view key, std::initializer_list<std::string_view> allowed, std::string* out,
             std::string_view note = {}) {
    std::string s;
    const toml::node* n = String(key, &s);
    if (n == nullptr) return;
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) {
      *out = std::move(s);
      return;
    }
    std::string what = "must be one of";
    for (std::string_view a : allowed)
      what += std::string(a == *allowed.begin() ? " " : ", ") + "\"" + std::string(a) + "\"";
    what += " (got " + QuoteForMessage(s) + ")";
    if (!note.empty()) what += "; " + std::string(note);
    Error(*n, key, what);
  }

  // Bytes: an integer, or a string with a unit ("64KiB"). In [lo, hi].
  template <typename T>
  void Size(std::string_view key, uint64_t lo, uint64_t hi, T* out) {
    const toml::node* n = Find(key);
    if (n == nullptr) return;
    uint64_t bytes = 0;
    if (const auto* i = n->as_integer()) {
      if (i->get() < 0) {
        Error(*n, key, "must not be negative (got " + std::to_string(i->get()) + ")");
        return;
      }
      bytes = static_cast<uint64_t>(i->get());
    } else if (const auto* s = n->as_string()) {
      Result<uint64_t> r = ParseSizeBytes(s->get());
      if (!r.ok()) {
        Error(*n, key, r.status().message());
        return;
      }
      bytes = r.value();
    } else {
      Error(*n, key,
            std::string("must be a size: an integer (bytes) or a string such as \"64KiB\", not ") +
                TypeName(*n));
      return;
    }
    if (bytes < lo || bytes > hi) {
      Error(*n, key,
            "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " bytes (got " +
                std::to_string(bytes) + ")");
      return;
    }
    *out = static_cast<T>(bytes);
  }

  // A duration string ("10s") in [lo_ms, hi_ms]. With `whole_seconds`, sub-second parts are an error.
  // With `allow_none`, the string "none" yields std::nullopt in *out. Returns false when absent or bad.
  bool Duration(std::string_view key, uint64_t lo_ms, uint64_t hi_ms, bool whole_seconds, bool allow_none,
                std::optional<uint64_t>* out) {
    const toml::node* n = Find(key);
    if (n == nullptr) return false;
    const std::string none_hint = allow_none ? ", or \"none\"" : "";
    const auto* s = n->as_string();
    if (s == nullptr) {
      Error(*n, key,
            std::string("durations must be strings with a unit, e.g. \"60s\" (units: ms, s, m, h, d)") +
                none_hint + "; got " + TypeName(*n));
      return false;
    }
    if (allow_none && s->get() == "none") {
      *out = std::nullopt;
      return true;
    }
    Result<uint64_t> r = ParseDurationMs(s->get());
    if (!r.ok()) {
      Error(*n, key, r.status().message() + (allow_none ? "; or \"none\"" : ""));
      return false;
    }
    const uint64_t ms = r.value();
    if (whole_seconds && ms % 1000 != 0) {
      Error(*n, key, "must be a whole number of seconds (got " + QuoteForMessage(s->get()) + ")");
      return false;
    }
    if (ms < lo_ms || ms > hi_ms) {
      Error(*n, key,
            "must be between " + FormatDurationMs(lo_ms) + " and " + FormatDurationMs(hi_ms) + none_hint +
                " (got " + QuoteForMessage(s->get()) + ")");
      return false;
    }
    *out = ms;
    return true;
  }

  // Reports keys that no read asked for, with a suggestion when one known key is close.
  void Finish() {
    for (auto&& [key, node] : table_) {
      const std::string_view k = key.str();
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      std::string what = "unknown key";
      std::string_view best;
      size_t best_distance = std::numeric_limits<size_t>::max();
      for (const std::string& candidate : known_) {
        const size_t d = EditDistance(k, candidate);
        if (d < best_distance) {
          best_distance = d;
          best = candidate;
        }
      }
      if (!path_.empty() && (k == "workers" || k == "data_dir")) {
        what += " (top-level keys such as " + std::string(k) +
                " must come before the first [table] or [[listener]] header)";
      } else if (!best.empty() && best_distance <= std::max<size_t>(2, best.size() / 4)) {
        what += " (did you mean " + std::string(best) + "?)";
      }
      const uint32_t l = key.source().begin.line != 0 ? key.source().begin.line : node.source().begin.line;
      errors_.Add(l != 0 ? l : line(), KeyPath(k), what);
    }
  }

 private:
  Errors& errors_;
  const toml::table& table_;
  std::string path_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------------------------------
// Sections.

struct ParsedAddress {
  int family = 0;
  std::array<unsigned char, 16> bytes{};
  bool IsWildcard() const {
    return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
  }
  bool operator==(const ParsedAddress&) const = default;
};

bool ParseAddress(const std::string& text, ParsedAddress* out) {
  if (inet_pton(AF_INET, text.c_str(), out->bytes.data()) == 1) {
    out->family = AF_INET;
    return true;
  }
  out->bytes.fill(0);
  if (inet_pton(AF_INET6, text.c_str(), out->bytes.data()) == 1) {
    out->family = AF_INET6;
    return true;
  }
  return false;
}

bool IsValidListenerName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

struct SeenListener {
  std::string name;
  ParsedAddress address;
  bool address_ok = false;
  uint16_t port = 0;
};

Tls ReadTls(Errors& errors, const toml::table& t, const std::string& path) {
  TableReader r(errors, t, path);
  Tls tls;
  if (const toml::node* n = r.String("cert_file", &tls.cert_file); n && tls.cert_file.empty())
    r.Error(*n, "cert_file", "must not be empty");
  else if (!t.contains("cert_file"))
    r.Missing("cert_file", "required: the server certificate (PEM, chain allowed)");
  if (const toml::node* n = r.String("key_file", &tls.key_file); n && tls.key_file.empty())
    r.Error(*n, "key_file", "must not be empty");
  else if (!t.contains("key_file"))
    r.Missing("key_file", "required: the server certificate's private key (PEM)");
  r.String("ca_file", &tls.ca_file);
  r.Bool("require_client_cert", &tls.require_client_cert);
  if (tls.require_client_cert && tls.ca_file.empty())
    r.Missing("ca_file", "required when require_client_cert = true: the CAs that sign client certificates");
  r.OneOf("username_from_cert", {"none", "cn", "san"}, &tls.username_from_cert);
  if (tls.username_from_cert != "none" && tls.ca_file.empty())
    r.Missing("ca_file", "required when username_from_cert is set: client certificates must be verified");
  r.OneOf("min_version", {"1.2", "1.3"}, &tls.min_version, "older TLS versions are not offered");
  r.String("ciphers", &tls.ciphers);
  r.String("ciphersuites", &tls.ciphersuites);
  r.Finish();
  return tls;
}

void ReadListener(Errors& errors, const toml::table& t, size_t index, std::vector<SeenListener>* seen,
                  Config* config) {
  const std::string path = "listener[" + std::to_string(index) + "]";
  TableReader r(errors, t, path);
  Listener l;
  SeenListener me;

  if (const toml::node* n = r.String("name", &l.name)) {
    if (!IsValidListenerName(l.name)) {
      r.Error(*n, "name",
              "must be 1 to 64 characters from A-Z a-z 0-9 _ - . (got " + QuoteForMessage(l.name) + ")");
    } else {
      for (size_t i = 0; i < seen->size(); ++i) {
        if ((*seen)[i].name == l.name) {
          r.Error(*n, "name",
                  QuoteForMessage(l.name) + " is already used by listener[" + std::to_string(i) + "]");
        }
      }
    }
  } else if (!t.contains("name")) {
    r.Missing("name", "required: every [[listener]] needs a unique name (used in logs and metrics)");
  }

  if (const toml::node* n = r.String("bind", &l.bind)) {
    if (!ParseAddress(l.bind, &me.address)) {
      r.Error(*n, "bind",
              "must be an IPv4 or IPv6 address literal such as \"127.0.0.1\", \"::1\", \"0.0.0.0\" or \"::\" "
              "(got " +
                  QuoteForMessage(l.bind) + "; host names are not resolved)");
    } else {
      me.address_ok = true;
    }
  } else {
    me.address_ok = ParseAddress(l.bind, &me.address);
  }

  r.Integer("port", 0, 65535, &l.port);
  r.OneOf("protocol", {"mqtt", "mqtts", "ws", "wss"}, &l.protocol,
          "mqtt = TCP, mqtts = TLS, ws = WebSocket, wss = WebSocket over TLS");
  r.Integer("backlog", 1, 65535, &l.backlog);
  r.Integer("max_connections", 0, std::numeric_limits<uint32_t>::max(), &l.max_connections,
            "must be between 0 (unlimited) and 4294967295");
  const bool wants_tls = l.protocol == "mqtts" || l.protocol == "wss";
  const bool wants_ws = l.protocol == "ws" || l.protocol == "wss";
  if (const toml::table* tt = r.Table("tls")) {
    if (!wants_tls) {
      r.Error(*tt, "tls", "only for protocol \"mqtts\" or \"wss\" (this listener is " + QuoteForMessage(l.protocol) + ")");
    } else {
      l.tls = ReadTls(errors, *tt, path + ".tls");
    }
  } else if (wants_tls) {
    r.Missing("tls", "required for protocol " + QuoteForMessage(l.protocol) +
                         ": a [listener.tls] table with cert_file and key_file");
  }
  if (const toml::table* wt = r.Table("websocket")) {
    if (!wants_ws) {
      r.Error(*wt, "websocket", "only for protocol \"ws\" or \"wss\" (this listener is " + QuoteForMessage(l.protocol) + ")");
    } else {
      TableReader w(errors, *wt, path + ".websocket");
      if (const toml::node* n = w.String("path", &l.websocket.path)) {
        const std::string& p = l.websocket.path;
        const bool ok = !p.empty() && p[0] == '/' && p.size() <= 1024 &&
                        std::all_of(p.begin(), p.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '?' && c != '#'; });
        if (!ok) w.Error(*n, "path", "must start with / and hold only visible ASCII without ? or # (got " + QuoteForMessage(p) + ")");
      }
      w.StringArray("allowed_origins", &l.websocket.allowed_origins);
      w.Finish();
    }
  }
  r.Finish();

  // Two listeners on the same port and overlapping addresses cannot both bind. Port 0 picks a free port.
  me.name = l.name;
  me.port = l.port;
  if (me.address_ok && me.port != 0) {
    for (const SeenListener& other : *seen) {
      if (!other.address_ok || other.port != me.port || other.address.family != me.address.family) continue;
      if (other.address == me.address || other.address.IsWildcard() || me.address.IsWildcard()) {
        const toml::node* port = t.get("port");
        const std::string what = "port " + std::to_string(me.port) + " on " + QuoteForMessage(l.bind) +
                                 " overlaps listener " + QuoteForMessage(other.name);
        if (port != nullptr) {
          r.Error(*port, "port", what);
        } else {
          r.Missing("port", what);
        }
        break;
      }
    }
  }
  seen->push_back(std::move(me));
  config->listeners.push_back(std::move(l));
}

void ReadListeners(Errors& errors, TableReader& root, Config* config) {
  static const std::string kNeedOne =
      "at least one [[listener]] is required, e.g. [[listener]] name = \"mqtt\" bind = \"127.0.0.1\" port = "
      "1883";
  const toml::node* n = root.Find("listener");
  if (n == nullptr) {
    root.Missing("listener", kNeedOne);
    return;
  }
  const toml::array* arr = n->as_array();
  if (arr == nullptr) {
    root.Error(*n, "listener",
               n->is_table() ? "must be an array of tables: write [[listener]] with double brackets"
                             : std::string("must be an array of tables ([[listener]]), not ") + TypeName(*n));
    return;
  }
  if (arr->empty()) {
    root.Error(*n, "listener", kNeedOne);
    return;
  }
  std::vector<SeenListener> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& element = *arr->get(i);
    if (const toml::table* t = element.as_table()) {
      ReadListener(errors, *t, i, &seen, config);
    } else {
      const uint32_t l = element.source().begin.line;
      errors.Add(l != 0 ? l : n->source().begin.line, "listener[" + std::to_string(i) + "]",
                 std::string("must be a table, not ") + TypeName(element));
    }
  }
}

void ReadLimits(Errors& errors, const toml::table& t, Limits* limits) {
  TableReader r(errors, t, "limits");
  constexpr int64_t kU16 = 65535;
  constexpr int64_t kU32 = std::numeric_limits<uint32_t>::max();
  constexpr uint64_t kU64 = std::numeric_limits<uint64_t>::max();

  r.Size("max_packet_size", 16, 268'435'460, &limits->max_packet_size);
  r.Integer("receive_maximum", 1, kU16, &limits->receive_maximum);
  r.Integer("max_inflight", 1, kU16, &limits->max_inflight);
  r.Integer("max_queued_messages", 1, kU32, &limits->max_queued_messages);
  r.Size("max_queued_bytes", 1, kU64, &limits->max_queued_bytes);
  r.Integer("topic_alias_maximum", 0, kU16, &limits->topic_alias_maximum);

  std::optional<uint64_t> ms;
  if (r.Duration("max_keep_alive", 1000, kU16 * 1000, /*whole_seconds=*/true, /*allow_none=*/true, &ms)) {
    limits->max_keep_alive = ms ? static_cast<uint16_t>(*ms / 1000) : 0;
  }
  if (r.Duration("max_session_expiry", 0, kU32 * 1000, true, true, &ms)) {
    limits->max_session_expiry =
        ms ? std::optional<uint32_t>(static_cast<uint32_t>(*ms / 1000)) : std::optional<uint32_t>();
  }

  r.Integer("max_qos", 0, 2, &limits->max_qos, "must be 0, 1 or 2");
  r.Bool("retain_available", &limits->retain_available);
  r.Bool("wildcard_subscriptions", &limits->wildcard_subscriptions);
  r.Bool("subscription_identifiers", &limits->subscription_identifiers);
  r.Bool("shared_subscriptions", &limits->shared_subscriptions);
  r.Integer("max_client_id_length", 23, kU16, &limits->max_client_id_length,
            "must be between 23 (MQTT requires servers to accept 23) and 65535");
  r.Integer("max_topic_length", 1, kU16, &limits->max_topic_length);
  r.Integer("max_topic_levels", 1, kU16, &limits->max_topic_levels);
  r.Integer("max_subscriptions_per_client", 0, kU32, &limits->max_subscriptions_per_client,
            "must be between 0 (unlimited) and 4294967295");
  if (r.Duration("connect_timeout", 1, kDay, false, false, &ms)) {
    limits->connect_timeout = Milliseconds(static_cast<int64_t>(*ms));
  }
  r.Size("max_outbound_buffer", 1, kU64, &limits->max_outbound_buffer);
  if (r.Duration("write_timeout", 1000, kDay, false, true, &ms))
    limits->write_timeout = Milliseconds(ms ? static_cast<int64_t>(*ms) : 0);
  r.Integer("max_retained_messages", 0, kU32, &limits->max_retained_messages,
            "must be between 0 (unlimited) and 4294967295");
  constexpr std::string_view kUnlimited = "must be between 0 (unlimited) and 4294967295";
  r.Integer("max_connections", 0, kU32, &limits->max_connections, kUnlimited);
  r.Integer("max_connections_per_address", 0, kU32, &limits->max_connections_per_address, kUnlimited);
  r.Integer("connection_rate_per_address", 0, kU32, &limits->connection_rate_per_address, kUnlimited);
  r.Integer("connection_burst_per_address", 0, kU32, &limits->connection_burst_per_address,
            "must be between 0 (same as the rate) and 4294967295");
  r.Integer("publish_rate", 0, kU32, &limits->publish_rate, kUnlimited);
  r.Integer("publish_burst", 0, kU32, &limits->publish_burst, "must be between 0 (same as the rate) and 4294967295");
  r.Size("publish_byte_rate", 0, kU64, &limits->publish_byte_rate);
  r.Size("publish_byte_burst", 0, kU64, &limits->publish_byte_burst);
  if (limits->publish_byte_rate && limits->publish_byte_burst &&
      limits->publish_byte_burst < limits->max_packet_size) {
    if (const toml::node* n = t.get("publish_byte_burst"))
      r.Error(*n, "publish_byte_burst", "must be at least max_packet_size (" + std::to_string(limits->max_packet_size) +
                                             " bytes), or one large PUBLISH could never pass");
  }
  r.Integer("flapping_max_connects", 0, 1000, &limits->flapping_max_connects, "must be between 0 (off) and 1000");
  if (r.Duration("flapping_window", 1000, kDay, true, false, &ms))
    limits->flapping_window = Seconds(static_cast<int64_t>(*ms / 1000));
  if (r.Duration("flapping_ban", 1000, 366 * kDay, true, false, &ms))
    limits->flapping_ban = Seconds(static_cast<int64_t>(*ms / 1000));
  r.Finish();
}

void ReadOverload(Errors& errors, const toml::table& t, Overload* o) {
  TableReader r(errors, t, "overload");
  r.Size("memory_high", 0, std::numeric_limits<uint64_t>::max(), &o->memory_high);
  std::optional<uint64_t> ms;
  if (r.Duration("loop_lag_high", 0, 3'600'000, false, true, &ms)) o->loop_lag_high = Milliseconds(ms ? *ms : 0);
  r.Finish();
}

void ReadJwt(Errors& errors, const toml::table& t, Jwt* jwt) {
  TableReader r(errors, t, "auth.jwt");
  if (!t.contains("algorithm")) r.Missing("algorithm", "required: \"HS256\", \"RS256\" or \"ES256\"");
  r.OneOf("algorithm", {"HS256", "RS256", "ES256"}, &jwt->algorithm);
  r.String("secret_file", &jwt->secret_file);
  r.String("public_key_file", &jwt->public_key_file);
  if (jwt->algorithm == "HS256" && jwt->secret_file.empty())
    r.Missing("secret_file", "required for HS256: a file holding the shared secret");
  if ((jwt->algorithm == "RS256" || jwt->algorithm == "ES256") && jwt->public_key_file.empty())
    r.Missing("public_key_file", "required for " + jwt->algorithm + ": the PEM public key that verifies tokens");
  if (const toml::node* n = r.String("username_claim", &jwt->username_claim); n && jwt->username_claim.empty())
    r.Error(*n, "username_claim", "must not be empty");
  r.String("acl_claim", &jwt->acl_claim);
  r.String("issuer", &jwt->issuer);
  r.String("audience", &jwt->audience);
  std::optional<uint64_t> ms;
  if (r.Duration("leeway", 0, 3'600'000, true, false, &ms)) jwt->leeway = Seconds(static_cast<int64_t>(*ms / 1000));
  r.Bool("require_exp", &jwt->require_exp);
  r.Finish();
}

void ReadAuth(Errors& errors, const toml::table& t, Auth* auth) {
  TableReader r(errors, t, "auth");
  r.Bool("allow_anonymous", &auth->allow_anonymous);
  r.String("password_file", &auth->password_file);
  r.String("acl_file", &auth->acl_file);
  r.String("scram_file", &auth->scram_file);
  r.String("ban_file", &auth->ban_file);
  if (const toml::table* j = r.Table("jwt")) {
    Jwt jwt;
    ReadJwt(errors, *j, &jwt);
    auth->jwt = std::move(jwt);
  }
  r.Finish();
}

void ReadSys(Errors& errors, const toml::table& t, Sys* sys) {
  TableReader r(errors, t, "sys");
  r.Bool("enabled", &sys->enabled);
  std::optional<uint64_t> ms;
  if (r.Duration("interval", 1000, kDay, /*whole_seconds=*/true, /*allow_none=*/false, &ms)) {
    sys->interval = Seconds(static_cast<int64_t>(*ms / 1000));
  }
  r.Finish();
}

void ReadStorage(Errors& errors, const toml::table& t, Storage* st) {
  TableReader r(errors, t, "storage");
  r.Bool("enabled", &st->enabled);
  r.OneOf("durability", {"fsync", "batch", "none"}, &st->durability);
  std::optional<uint64_t> ms;
  if (r.Duration("batch_interval", 1, 60'000, /*whole_seconds=*/false, /*allow_none=*/false, &ms))
    st->batch_interval = Milliseconds(static_cast<int64_t>(*ms));
  r.Finish();
}

void ReadIm(Errors& errors, const toml::table& t, Im* im) {
  TableReader r(errors, t, "im");
  constexpr int64_t kU32 = std::numeric_limits<uint32_t>::max();
  constexpr uint64_t kYear = 366 * kDay;
  r.Bool("enabled", &im->enabled);
  r.Integer("max_group_members", 2, 1'000'000, &im->max_group_members);
  r.Integer("inbox_fanout_max", 0, 1'000'000, &im->inbox_fanout_max);
  r.Integer("receipts_max_members", 0, 1'000'000, &im->receipts_max_members);
  r.Integer("typing_max_members", 0, 1'000'000, &im->typing_max_members);
  std::optional<uint64_t> ms;
  auto seconds = [&](std::string_view key, uint64_t lo_ms, bool allow_none, Seconds* out) {
    if (r.Duration(key, lo_ms, kYear * 10, /*whole_seconds=*/true, allow_none, &ms))
      *out = Seconds(ms ? static_cast<int64_t>(*ms / 1000) : 0);
  };
  seconds("dedup_window", 1000, false, &im->dedup_window);
  seconds("edit_window", 0, false, &im->edit_window);
  seconds("recall_window", 0, false, &im->recall_window);
  r.Size("max_message_bytes", 1, 16ull << 20, &im->max_message_bytes);
  r.Integer("max_mentions", 0, 10'000, &im->max_mentions);
  r.Integer("max_versions", 0, 10'000, &im->max_versions);
  r.Integer("send_rate", 0, kU32, &im->send_rate, "must be between 0 (unlimited) and 4294967295");
  r.Integer("send_burst", 1, kU32, &im->send_burst);
  if (r.Duration("presence_grace", 0, kDay, false, false, &ms)) im->presence_grace = Milliseconds(*ms);
  if (r.Duration("typing_interval", 0, kDay, false, false, &ms)) im->typing_interval = Milliseconds(*ms);
  seconds("retention_max_age", 1000, true, &im->retention_max_age);
  r.Integer("retention_max_count", 0, std::numeric_limits<int64_t>::max(), &im->retention_max_count,
            "must be 0 (no limit) or more");
  seconds("inbox_retention", 1000, false, &im->inbox_retention);
  seconds("sweep_interval", 1000, false, &im->sweep_interval);
  r.Finish();
}

void ReadLog(Errors& errors, const toml::table& t, Log* log) {
  TableReader r(errors, t, "log");
  r.OneOf("level", {"trace", "debug", "info", "warn", "error", "critical", "off"}, &log->level);
  r.OneOf("format", {"text", "json"}, &log->format);
  r.Finish();
}

void ReadBind(TableReader& r, std::string* bind);

void ReadAdmin(Errors& errors, const toml::table& t, Admin* admin) {
  TableReader r(errors, t, "admin");
  r.Bool("enabled", &admin->enabled);
  ReadBind(r, &admin->bind);
  r.Integer("port", 0, 65535, &admin->port);
  r.String("token_file", &admin->token_file);
  r.Bool("metrics_public", &admin->metrics_public);
  if (const toml::table* tt = r.Table("tls")) admin->tls = ReadTls(errors, *tt, "admin.tls");
  r.Finish();
}

// An address literal for a listener's `bind`; reports the error itself.
void ReadBind(TableReader& r, std::string* bind) {
  if (const toml::node* n = r.String("bind", bind)) {
    in6_addr a6{};
    in_addr a4{};
    if (inet_pton(AF_INET, bind->c_str(), &a4) != 1 && inet_pton(AF_INET6, bind->c_str(), &a6) != 1)
      r.Error(*n, "bind", "must be an IPv4 or IPv6 address literal such as \"127.0.0.1\" or \"::1\" (got " +
                              QuoteForMessage(*bind) + ")");
  }
}

bool IsHttpUrl(std::string_view u) {
  return (u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0) && u.size() > 8 &&
         std::none_of(u.begin(), u.end(), [](char c) { return c <= 0x20 || c == 0x7f; });
}

// A MIME type pattern: "type/subtype", "type/*" or "*/*" (token characters of RFC 9110).
bool IsTypePattern(std::string_view s) {
  auto token = [](std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
    });
  };
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view type = s.substr(0, slash), sub = s.substr(slash + 1);
  if (type == "*") return sub == "*";
  return token(type) && (sub == "*" || token(sub));
}

void ReadFiles(Errors& errors, const toml::table& t, Files* f) {
  TableReader r(errors, t, "files");
  constexpr uint64_t kYear = 366 * kDay;
  r.Bool("enabled", &f->enabled);
  ReadBind(r, &f->bind);
  r.Integer("port", 0, 65535, &f->port);
  if (const toml::node* n = r.String("public_url", &f->public_url)) {
    if (!f->public_url.empty() && (!IsHttpUrl(f->public_url) || f->public_url.find_first_of("?#") != std::string::npos))
      r.Error(*n, "public_url", "must be an http:// or https:// URL without spaces, query or fragment (got " +
                                    QuoteForMessage(f->public_url) + ")");
    while (!f->public_url.empty() && f->public_url.back() == '/') f->public_url.pop_back();
  }
  r.Size("max_file_size", 1, uint64_t{1} << 40, &f->max_file_size);
  r.Size("user_quota", 0, std::numeric_limits<uint64_t>::max(), &f->user_quota);
  if (const toml::node* n = r.Find("allowed_types")) {
    r.StringArray("allowed_types", &f->allowed_types);
    for (const std::string& p : f->allowed_types)
      if (!IsTypePattern(p))
        r.Error(*n, "allowed_types", "each entry must be a media type such as \"image/png\", \"image/*\" or \"*/*\" (got " +
                                         QuoteForMessage(p) + ")");
  }
  std::optional<uint64_t> ms;
  auto seconds = [&](std::string_view key, uint64_t lo_ms, Seconds* out) {
    if (r.Duration(key, lo_ms, kYear, /*whole_seconds=*/true, /*allow_none=*/false, &ms))
      *out = Seconds(static_cast<int64_t>(*ms / 1000));
  };
  seconds("upload_expiry", 60'000, &f->upload_expiry);
  seconds("gc_grace", 0, &f->gc_grace);
  seconds("gc_interval", 1000, &f->gc_interval);
  seconds("token_ttl", 60'000, &f->token_ttl);
  r.Integer("max_connections", 1, 100'000, &f->max_connections);
  if (const toml::table* tt = r.Table("tls")) f->tls = ReadTls(errors, *tt, "files.tls");
  r.Finish();
}

PushProvider ReadPushProvider(Errors& errors, const toml::table& t, const std::string& path, bool gorush) {
  TableReader r(errors, t, path);
  PushProvider p;
  if (const toml::node* n = r.String("url", &p.url)) {
    if (!IsHttpUrl(p.url)) r.Error(*n, "url", "must be an http:// or https:// URL without spaces (got " + QuoteForMessage(p.url) + ")");
  } else if (!t.contains("url")) {
    r.Missing("url", gorush ? "required: the gorush server, e.g. \"http://127.0.0.1:8088\" (Parley posts to <url>/api/push)"
                            : "required: where Parley POSTs push jobs");
  }
  std::optional<uint64_t> ms;
  if (r.Duration("timeout", 100, 600'000, false, false, &ms)) p.timeout = Milliseconds(*ms);
  if (gorush) r.String("topic", &p.topic);
  r.Finish();
  return p;
}

void ReadPush(Errors& errors, const toml::table& t, Push* push) {
  TableReader r(errors, t, "push");
  std::optional<uint64_t> ms;
  if (r.Duration("collapse_window", 0, 3'600'000, false, false, &ms)) push->collapse_window = Milliseconds(*ms);
  r.Integer("preview_max_chars", 0, 4096, &push->preview_max_chars);
  if (const toml::table* tt = r.Table("webhook")) push->webhook = ReadPushProvider(errors, *tt, "push.webhook", false);
  if (const toml::table* tt = r.Table("gorush")) push->gorush = ReadPushProvider(errors, *tt, "push.gorush", true);
  r.Finish();
}

bool IsRuleName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

void ReadAlertRule(Errors& errors, const toml::table& t, size_t index, Alerts* alerts) {
  const std::string path = "alerts.rule[" + std::to_string(index) + "]";
  TableReader r(errors, t, path);
  AlertRule rule;
  if (const toml::node* n = r.String("name", &rule.name)) {
    if (!IsRuleName(rule.name)) {
      r.Error(*n, "name", "must be 1 to 64 characters from A-Z a-z 0-9 _ - . (got " + QuoteForMessage(rule.name) + ")");
    } else {
      for (const AlertRule& other : alerts->rules)
        if (other.name == rule.name) r.Error(*n, "name", QuoteForMessage(rule.name) + " is used by another rule");
    }
  } else if (!t.contains("name")) {
    r.Missing("name", "required: a unique name for the rule");
  }
  if (const toml::node* n = r.String("metric", &rule.metric)) {
    const bool ok = !rule.metric.empty() && rule.metric.size() <= 200 &&
                    std::all_of(rule.metric.begin(), rule.metric.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                             c == ':';
                    });
    if (!ok) r.Error(*n, "metric", "must be a metric family name such as \"parley_disconnects_total\" (docs/metrics.md)");
  } else if (!t.contains("metric")) {
    r.Missing("metric", "required: the metric family the rule watches (docs/metrics.md)");
  }
  if (const toml::node* n = r.Find("labels")) {
    if (const toml::table* lt = n->as_table()) {
      for (const auto& [k, v] : *lt) {
        if (const auto* sv = v.as_string()) {
          rule.labels.emplace_back(std::string(k.str()), sv->get());
        } else {
          r.Error(v, "labels", "label values must be strings (label " + QuoteForMessage(k.str()) + ")");
        }
      }
    } else {
      r.Error(*n, "labels", std::string("must be a table such as { reason = \"network\" }, not ") + TypeName(*n));
    }
  }
  r.OneOf("function", {"value", "max", "rate", "p50", "p90", "p99"}, &rule.function,
          "value = sum of the samples, max = largest sample, rate = per second, pNN = histogram quantile");
  r.OneOf("op", {">", ">=", "<", "<="}, &rule.op);
  if (const toml::node* n = r.Find("threshold")) {
    if (const auto* i = n->as_integer()) {
      rule.threshold = static_cast<double>(i->get());
    } else if (const auto* f = n->as_floating_point()) {
      rule.threshold = f->get();
      if (!std::isfinite(rule.threshold)) r.Error(*n, "threshold", "must be a finite number");
    } else {
      r.Error(*n, "threshold", std::string("must be a number, not ") + TypeName(*n));
    }
  } else {
    r.Missing("threshold", "required: the value the metric is compared with");
  }
  std::optional<uint64_t> ms;
  if (r.Duration("for", 0, kDay, /*whole_seconds=*/true, /*allow_none=*/false, &ms))
    rule.for_duration = Seconds(static_cast<int64_t>(*ms / 1000));
  r.String("severity", &rule.severity);
  r.String("description", &rule.description);
  r.Finish();
  alerts->rules.push_back(std::move(rule));
}

void ReadAlerts(Errors& errors, const toml::table& t, Alerts* alerts) {
  TableReader r(errors, t, "alerts");
  std::optional<uint64_t> ms;
  if (r.Duration("interval", 1000, kDay, /*whole_seconds=*/true, /*allow_none=*/false, &ms))
    alerts->interval = Seconds(static_cast<int64_t>(*ms / 1000));
  if (const toml::node* n = r.String("webhook_url", &alerts->webhook_url)) {
    const std::string& u = alerts->webhook_url;
    const bool ok = u.empty() || ((u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0) &&
                                  std::none_of(u.begin(), u.end(), [](char c) { return c <= 0x20 || c == 0x7f; }));
    if (!ok) r.Error(*n, "webhook_url", "must be an http:// or https:// URL without spaces (got " + QuoteForMessage(u) + ")");
  }
  if (r.Duration("webhook_timeout", 100, 600'000, false, false, &ms)) alerts->webhook_timeout = Milliseconds(*ms);
  if (const toml::node* n = r.Find("rule")) {
    const toml::array* arr = n->as_array();
    alerts->rules.clear();  // the file's rules replace the recommended ones; `rule = []` means none
    if (arr == nullptr || (!arr->empty() && !arr->is_array_of_tables())) {
      r.Error(*n, "rule", "must be an array of tables: write [[alerts.rule]] with double brackets");
    } else {
      size_t i = 0;
      for (const toml::node& e : *arr) ReadAlertRule(errors, *e.as_table(), i++, alerts);
    }
  }
  r.Finish();
}

// Relative paths in the file are relative to the file's directory, so a config works wherever the
// daemon is started from. Empty means "not set" and stays empty.
void ResolvePath(const fs::path& base, std::string* p) {
  if (p->empty() || base.empty()) return;
  const fs::path path(*p);
  if (path.is_absolute()) return;
  *p = (base / path).lexically_normal().string();
}

Result<Config> Parse(std::string_view text, const std::string& name, const fs::path& base_dir) {
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return Status::Error(name + ":" + std::to_string(at.line == 0 ? 1 : at.line) + ":" +
                         std::to_string(at.column) + ": TOML syntax error: " + Printable(e.description()));
  }

  Errors errors(name);
  Config config;
  config.alerts.rules = DefaultAlertRules();
  TableReader root(errors, doc, "");
  root.Integer("workers", 0, 1024, &config.workers, "must be between 0 (one per core) and 1024");
  if (const toml::node* n = root.String("data_dir", &config.data_dir)) {
    if (config.data_dir.empty()) root.Error(*n, "data_dir", "must not be empty");
  }
  if (const toml::table* t = root.Table("log")) ReadLog(errors, *t, &config.log);
  ReadListeners(errors, root, &config);
  if (const toml::table* t = root.Table("limits")) ReadLimits(errors, *t, &config.limits);
  if (const toml::table* t = root.Table("auth")) ReadAuth(errors, *t, &config.auth);
  if (const toml::table* t = root.Table("overload")) ReadOverload(errors, *t, &config.overload);
  if (const toml::table* t = root.Table("sys")) ReadSys(errors, *t, &config.sys);
  if (const toml::table* t = root.Table("storage")) ReadStorage(errors, *t, &config.storage);
  if (const toml::table* t = root.Table("im")) ReadIm(errors, *t, &config.im);
  if (const toml::table* t = root.Table("admin")) ReadAdmin(errors, *t, &config.admin);
  if (const toml::table* t = root.Table("alerts")) ReadAlerts(errors, *t, &config.alerts);
  if (const toml::table* t = root.Table("files")) ReadFiles(errors, *t, &config.files);
  if (const toml::table* t = root.Table("push")) ReadPush(errors, *t, &config.push);
  root.Finish();
  if (!errors.empty()) return errors.ToStatus();

  ResolvePath(base_dir, &config.data_dir);
  ResolvePath(base_dir, &config.auth.password_file);
  ResolvePath(base_dir, &config.auth.acl_file);
  ResolvePath(base_dir, &config.auth.scram_file);
  ResolvePath(base_dir, &config.auth.ban_file);
  if (config.auth.jwt) {
    ResolvePath(base_dir, &config.auth.jwt->secret_file);
    ResolvePath(base_dir, &config.auth.jwt->public_key_file);
  }
  ResolvePath(base_dir, &config.admin.token_file);
  if (config.files.tls) {
    ResolvePath(base_dir, &config.files.tls->cert_file);
    ResolvePath(base_dir, &config.files.tls->key_file);
    ResolvePath(base_dir, &config.files.tls->ca_file);
  }
  if (config.admin.tls) {
    ResolvePath(base_dir, &config.admin.tls->cert_file);
    ResolvePath(base_dir, &config.admin.tls->key_file);
    ResolvePath(base_dir, &config.admin.tls->ca_file);
  }
  for (Listener& l : config.listeners) {
    if (!l.tls) continue;
    ResolvePath(base_dir, &l.tls->cert_file);
    ResolvePath(base_dir, &l.tls->key_file);
    ResolvePath(base_dir, &l.tls->ca_file);
  }
  config.source_path = name;
  return config;
}

// toml++ is built with exceptions; anything it (or an allocation) throws stops here.
template <typename F>
Result<Config> Guard(const std::string& name, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::Error(name + ": out of memory while reading the configuration");
  } catch (const std::exception& e) {
    return Status::Error(name + ": " + e.what());
  } catch (...) {
    return Status::Error(name + ": unknown error while reading the configuration");
  }
}

}  // namespace

std::vector<AlertRule> DefaultAlertRules() {
  auto rule = [](std::string name, std::string metric, std::string function, std::string op, double threshold,
                 int64_t for_seconds, std::string description) {
    AlertRule r;
    r.name = std::move(name);
    r.metric = std::move(metric);
    r.function = std::move(function);
    r.op = std::move(op);
    r.threshold = threshold;
    r.for_duration = Seconds(for_seconds);
    r.description = std::move(description);
    return r;
  };
  return {
      rule("disconnect-storm", "parley_disconnects_total", "rate", ">", 100, 60,
           "more than 100 disconnects per second for a minute: a network or client problem"),
      rule("storage-slow", "parley_storage_write_seconds", "p99", ">", 0.5, 60,
           "the slowest 1 % of durable writes take over 500 ms: acknowledgements are delayed"),
      rule("queue-saturation", "parley_queue_fill_ratio_max", "value", ">=", 0.9, 60,
           "some session's queue is over 90 % full: its messages will soon be dropped"),
      rule("disk-low", "parley_storage_disk_free_ratio", "value", "<", 0.1, 60,
           "less than 10 % of the data dir's file system is free"),
      rule("loop-lag", "parley_event_loop_lag_seconds", "max", ">", 0.5, 30,
           "an event loop is more than 500 ms late: every client on it waits"),
      rule("overloaded", "parley_overloaded", "value", ">=", 1, 0,
           "overload protection is refusing connections and dropping QoS 0 messages"),
  };
}

Config DefaultConfig() {
  Config config;
  config.alerts.rules = DefaultAlertRules();
  Listener l;
  l.name = "mqtt";
  l.bind = "127.0.0.1";
  l.port = 1883;
  config.listeners.push_back(std::move(l));
  return config;
}

Result<Config> LoadConfigFile(const std::string& path) {
  return Guard(path, [&]() -> Result<Config> {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return Status::Error(path + ": is a directory, not a config file");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::Error(path + ": cannot open: " + std::strerror(errno));
    std::string text;
    char buf[64 * 1024];
    while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
      text.append(buf, static_cast<size_t>(in.gcount()));
      if (text.size() > kMaxFileBytes) {
        return Status::Error(path + ": larger than " + std::to_string(kMaxFileBytes >> 20) +
                             " MiB; not a config file?");
      }
    }
    if (in.bad()) return Status::Error(path + ": cannot read: " + std::strerror(errno));

    fs::path absolute = fs::absolute(path, ec);
    if (ec) absolute = path;
    absolute = absolute.lexically_normal();
    Result<Config> config = IsMosquittoConfig(text, path)
                                ? ParseMosquittoConfig(text, path, absolute.parent_path().string())
                                : Parse(text, path, absolute.parent_path());
    if (config.ok()) config->source_path = absolute.string();
    return config;
  });
}

Result<Config> ParseConfig(std::string_view toml_text, const std::string& source_name) {
  return Guard(source_name, [&]() -> Result<Config> {
    return Parse(toml_text, source_name, fs::path(source_name).parent_path());
  });
}

}  // namespace parley::config
