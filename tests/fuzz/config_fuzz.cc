// libFuzzer target for the configuration loader (broker/config, docs/configuration.md).
//
// The input is the text of a config file, handed to ParseConfig as if read from /etc/parley/fuzz.toml (a
// directory part, so relative paths get resolved). ParseConfig must return, never crash, hang or throw, and
// keep these contracts (any broken one aborts, so libFuzzer reports it):
//   - An error is a Status whose message has one problem per line, at most 20 plus a "(N more errors)"
//     line, each line "<file>:<line>: ..." with a line number inside the file, in line order, and no control
//     byte but the newlines between problems: text copied from the file must not forge a log line.
//   - A config that loads has what the docs promise: at least one listener, unique valid names, values
//     inside their documented ranges, relative paths resolved against the file's directory, and no NUL byte
//     in an address or a path (used as C strings, they would quietly mean their prefix).
//   - A config that loads, written back as TOML (every key, durations in their shortest unit, sizes as
//     "<n>B"), loads again to an equal Config: what the loader accepts it can also read back, and no value
//     is narrowed or misread on the way.
// toml++ is compiled into this target header-only (tests/fuzz/CMakeLists.txt), so its parser is instrumented
// and checked by ASan too; the broker links the same toml++ version as a shared library. Not covered:
// LoadConfigFile's reading of the file (size cap, directories, errno messages), and what parleyd does with
// the values (binding, opening the password and ACL files).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "broker/config/config.h"
#include "broker/config/units.h"

namespace {

using namespace parley::config;  // NOLINT(google-build-using-namespace)

constexpr const char* kSource = "/etc/parley/fuzz.toml";
constexpr size_t kMaxReportedErrors = 20;  // config.cc

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "config_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// ---- errors

void CheckError(const std::string& msg, std::string_view input) {
  if (msg.empty()) Fail("error without a message");
  const std::string prefix = std::string(kSource) + ":";
  // A line number may point one past the last line (an error at the end of the file).
  const uint64_t last_line = static_cast<uint64_t>(std::count(input.begin(), input.end(), '\n')) + 2;
  uint64_t previous = 0;
  size_t count = 0;
  for (size_t start = 0; start <= msg.size();) {
    size_t end = msg.find('\n', start);
    if (end == std::string::npos) end = msg.size();
    const std::string_view line(msg.data() + start, end - start);
    const bool last = end == msg.size();
    ++count;
    start = end + 1;
    if (!line.starts_with(prefix)) Fail("error line does not start with the file name", msg);
    for (unsigned char c : line)
      if (c < 0x20 || c == 0x7f) Fail("raw control byte in an error message", msg);
    // "<file>:<line>: <key>: ..." or "<file>:<line>:<column>: TOML syntax error: ...", in line order; then
    // perhaps "<file>: (N more errors)". A lone "<file>: ..." is a failure outside the parser (Guard).
    const std::string_view rest = line.substr(prefix.size());
    if (rest.empty() || rest[0] < '0' || rest[0] > '9') {
      if (last && (count == 1 || (rest.starts_with(" (") && rest.ends_with(" more errors)")))) continue;
      Fail("error line without a line number", msg);
    }
    uint64_t n = 0;
    for (size_t i = 0; i < rest.size() && rest[i] >= '0' && rest[i] <= '9' && n <= last_line; ++i)
      n = n * 10 + static_cast<uint64_t>(rest[i] - '0');
    if (n == 0 || n > last_line) Fail("error line number outside the file", msg);
    if (n < previous) Fail("errors not in line order", msg);
    previous = n;
  }
  if (count > kMaxReportedErrors + 1) Fail("more error lines than the cap", msg);
}

// ---- what a loaded config promises

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  return true;
}

bool ResolvedPath(const std::string& p) {
  return p.empty() || p.starts_with('/');
}

// TOML strings may hold U+0000 ("\u0000"), but addresses and paths are used as C strings, which would quietly
// mean their prefix: "127.0.0.1\u0000junk" must be an error, not 127.0.0.1.
bool HasNul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

void CheckConfig(const Config& c) {
  if (c.workers < 0 || c.workers > 1024) Fail("workers out of range");
  if (c.data_dir.empty()) Fail("empty data_dir accepted");
  if (!ResolvedPath(c.data_dir) || !ResolvedPath(c.auth.password_file) || !ResolvedPath(c.auth.acl_file))
    Fail("relative path not resolved against the file's directory");
  if (HasNul(c.data_dir) || HasNul(c.auth.password_file) || HasNul(c.auth.acl_file))
    Fail("a path with a NUL byte accepted");
  if (c.source_path != kSource) Fail("source_path is not the source name", c.source_path);
  if (c.listeners.empty()) Fail("no listener");
  std::set<std::string> names;
  for (const Listener& l : c.listeners) {
    if (!ValidName(l.name)) Fail("invalid listener name accepted", l.name);
    if (!names.insert(l.name).second) Fail("duplicate listener name accepted", l.name);
    if (l.bind.empty() || HasNul(l.bind)) Fail("an empty bind, or one with a NUL byte, accepted", l.bind);
    if (l.protocol != "mqtt") Fail("unknown protocol accepted", l.protocol);
    if (l.backlog < 1 || l.backlog > 65535) Fail("backlog out of range");
  }
  const Limits& m = c.limits;
  if (m.max_packet_size < 16 || m.max_packet_size > 268'435'460) Fail("max_packet_size out of range");
  if (m.receive_maximum == 0 || m.max_inflight == 0 || m.max_queued_messages == 0 ||
      m.max_queued_bytes == 0 || m.max_outbound_buffer == 0)
    Fail("a limit that must be at least 1 is 0");
  if (m.max_qos > 2) Fail("max_qos out of range");
  if (m.max_client_id_length < 23 || m.max_client_id_length > 65535)
    Fail("max_client_id_length out of range");
  if (m.max_topic_length < 1 || m.max_topic_length > 65535) Fail("max_topic_length out of range");
  if (m.max_topic_levels < 1 || m.max_topic_levels > 65535) Fail("max_topic_levels out of range");
  if (m.connect_timeout.count() < 1 || m.connect_timeout.count() > 86'400'000)
    Fail("connect_timeout out of range");
  if (c.sys.interval.count() < 1 || c.sys.interval.count() > 86'400) Fail("sys.interval out of range");
  if (c.storage.durability != "fsync" && c.storage.durability != "batch" && c.storage.durability != "none")
    Fail("unknown durability accepted", c.storage.durability);
  if (c.storage.batch_interval.count() < 1 || c.storage.batch_interval.count() > 60'000)
    Fail("batch_interval out of range");
  const Im& im = c.im;
  if (im.max_group_members < 2 || im.max_group_members > 1'000'000) Fail("im.max_group_members out of range");
  if (im.max_message_bytes < 1 || im.max_message_bytes > (16u << 20))
    Fail("im.max_message_bytes out of range");
  if (im.send_burst < 1) Fail("im.send_burst is 0");
  if (im.dedup_window.count() < 1 || im.inbox_retention.count() < 1 || im.sweep_interval.count() < 1)
    Fail("an im window that must be at least 1s is 0");
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (!kLevels.count(c.log.level)) Fail("unknown log level accepted", c.log.level);
  if (c.log.format != "text" && c.log.format != "json") Fail("unknown log format accepted", c.log.format);
}

// ---- writing a Config back as TOML

std::string Str(std::string_view s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);  // toml++ accepted the text, so it is valid UTF-8
    }
  }
  return out + "\"";
}

std::string Dur(uint64_t ms) {
  return Str(FormatDurationMs(ms));
}
std::string Secs(std::chrono::seconds s) {
  return Dur(static_cast<uint64_t>(s.count()) * 1000);
}
// Sizes as strings: a TOML integer cannot hold a uint64 past INT64_MAX, "<n>B" can.
std::string Size(uint64_t bytes) {
  return Str(std::to_string(bytes) + "B");
}

std::string Emit(const Config& c) {
  std::string t;
  auto kv = [&t](const char* key, const std::string& value) {
    t.append(key).append(" = ").append(value) += '\n';
  };
  auto num = [](auto v) { return std::to_string(v); };
  auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };

  kv("workers", num(c.workers));
  kv("data_dir", Str(c.data_dir));
  t += "[log]\n";
  kv("level", Str(c.log.level));
  kv("format", Str(c.log.format));
  for (const Listener& l : c.listeners) {
    t += "[[listener]]\n";
    kv("name", Str(l.name));
    kv("bind", Str(l.bind));
    kv("port", num(l.port));
    kv("protocol", Str(l.protocol));
    kv("backlog", num(l.backlog));
    kv("max_connections", num(l.max_connections));
  }
  const Limits& m = c.limits;
  t += "[limits]\n";
  kv("max_packet_size", Size(m.max_packet_size));
  kv("receive_maximum", num(m.receive_maximum));
  kv("max_inflight", num(m.max_inflight));
  kv("max_queued_messages", num(m.max_queued_messages));
  kv("max_queued_bytes", Size(m.max_queued_bytes));
  kv("topic_alias_maximum", num(m.topic_alias_maximum));
  kv("max_keep_alive", m.max_keep_alive == 0 ? Str("none") : Dur(uint64_t{m.max_keep_alive} * 1000));
  kv("max_session_expiry", m.max_session_expiry ? Dur(uint64_t{*m.max_session_expiry} * 1000) : Str("none"));
  kv("max_qos", num(m.max_qos));
  kv("retain_available", boolean(m.retain_available));
  kv("wildcard_subscriptions", boolean(m.wildcard_subscriptions));
  kv("subscription_identifiers", boolean(m.subscription_identifiers));
  kv("shared_subscriptions", boolean(m.shared_subscriptions));
  kv("max_client_id_length", num(m.max_client_id_length));
  kv("max_topic_length", num(m.max_topic_length));
  kv("max_topic_levels", num(m.max_topic_levels));
  kv("max_subscriptions_per_client", num(m.max_subscriptions_per_client));
  kv("connect_timeout", Dur(static_cast<uint64_t>(m.connect_timeout.count())));
  kv("max_outbound_buffer", Size(m.max_outbound_buffer));
  kv("max_retained_messages", num(m.max_retained_messages));
  t += "[auth]\n";
  kv("allow_anonymous", boolean(c.auth.allow_anonymous));
  kv("password_file", Str(c.auth.password_file));
  kv("acl_file", Str(c.auth.acl_file));
  t += "[sys]\n";
  kv("enabled", boolean(c.sys.enabled));
  kv("interval", Secs(c.sys.interval));
  t += "[storage]\n";
  kv("enabled", boolean(c.storage.enabled));
  kv("durability", Str(c.storage.durability));
  kv("batch_interval", Dur(static_cast<uint64_t>(c.storage.batch_interval.count())));
  const Im& im = c.im;
  t += "[im]\n";
  kv("enabled", boolean(im.enabled));
  kv("max_group_members", num(im.max_group_members));
  kv("inbox_fanout_max", num(im.inbox_fanout_max));
  kv("receipts_max_members", num(im.receipts_max_members));
  kv("typing_max_members", num(im.typing_max_members));
  kv("dedup_window", Secs(im.dedup_window));
  kv("edit_window", Secs(im.edit_window));
  kv("recall_window", Secs(im.recall_window));
  kv("max_message_bytes", Size(im.max_message_bytes));
  kv("max_mentions", num(im.max_mentions));
  kv("max_versions", num(im.max_versions));
  kv("send_rate", num(im.send_rate));
  kv("send_burst", num(im.send_burst));
  kv("presence_grace", Dur(static_cast<uint64_t>(im.presence_grace.count())));
  kv("typing_interval", Dur(static_cast<uint64_t>(im.typing_interval.count())));
  kv("retention_max_age", im.retention_max_age.count() == 0 ? Str("none") : Secs(im.retention_max_age));
  kv("retention_max_count", num(im.retention_max_count));
  kv("inbox_retention", Secs(im.inbox_retention));
  kv("sweep_interval", Secs(im.sweep_interval));
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  parley::Result<Config> r = ParseConfig(text, kSource);
  if (!r.ok()) {
    CheckError(r.status().message(), text);
    return 0;
  }
  CheckConfig(*r);
  const std::string again = Emit(*r);
  parley::Result<Config> r2 = ParseConfig(again, kSource);
  if (!r2.ok()) Fail("a loaded config written back does not load", r2.status().message() + "\n" + again);
  if (!(*r2 == *r)) Fail("a loaded config written back loads differently", again);
  return 0;
}
