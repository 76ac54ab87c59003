#include "broker/config/config.h"

#include <doctest/doctest.h>

#include "tests/unit/temp_dir.h"
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace parley::config {
namespace {

namespace fs = std::filesystem;

// The repository root (PARLEY_SOURCE_DIR: tests/CMakeLists.txt).
fs::path RepoRoot() {
  return fs::path(PARLEY_SOURCE_DIR);
}

constexpr std::string_view kListener = "[[listener]]\nname = \"mqtt\"\n";

std::string ErrorOf(std::string_view text, const std::string& name = "t.toml") {
  Result<Config> r = ParseConfig(text, name);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

Config Parsed(std::string_view text, const std::string& name = "t.toml") {
  Result<Config> r = ParseConfig(text, name);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r.value();
}


// ------------------------------------------------------------------------------------------------

TEST_CASE("DefaultConfig: one loopback MQTT listener, anonymous, struct defaults") {
  const Config c = DefaultConfig();
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].name == "mqtt");
  CHECK(c.listeners[0].bind == "127.0.0.1");
  CHECK(c.listeners[0].port == 1883);
  CHECK(c.listeners[0].protocol == "mqtt");
  CHECK(c.auth.allow_anonymous);
  CHECK(c.workers == 0);
  CHECK(c.data_dir == "data");
  CHECK(c.limits == Limits{});
  CHECK(c.source_path.empty());
}

TEST_CASE("a file with only a listener gives the defaults") {
  Config c = Parsed(kListener, "<string>");
  CHECK(c.source_path == "<string>");
  c.source_path.clear();
  CHECK(c == DefaultConfig());
}

TEST_CASE("every key set to a non-default value") {
  const Config c = Parsed(R"(
workers = 8
data_dir = "/var/lib/parley"

[log]
level = "debug"
format = "json"

[[listener]]
name = "public"
bind = "0.0.0.0"
port = 8883
protocol = "mqtt"
backlog = 4096
max_connections = 100000

[[listener]]
name = "local-v6"
bind = "::1"
port = 0

[limits]
max_packet_size = "256KiB"
receive_maximum = 100
max_inflight = 20
max_queued_messages = 5000
max_queued_bytes = "1GiB"
topic_alias_maximum = 0
max_keep_alive = "5m"
max_session_expiry = "7d"
max_qos = 1
retain_available = false
wildcard_subscriptions = false
subscription_identifiers = false
shared_subscriptions = false
max_client_id_length = 23
max_topic_length = 1024
max_topic_levels = 16
max_subscriptions_per_client = 50
connect_timeout = "1500ms"
max_outbound_buffer = 4194304
max_retained_messages = 10000

[auth]
allow_anonymous = false
password_file = "/etc/parley/passwd"
acl_file = "/etc/parley/acl"

[sys]
enabled = false
interval = "1m"

[storage]
enabled = false
durability = "batch"
batch_interval = "200ms"
)");
  CHECK(c.workers == 8);
  CHECK(c.data_dir == "/var/lib/parley");
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");
  REQUIRE(c.listeners.size() == 2);
  auto listener = [](std::string name, std::string bind, uint16_t port, int backlog, uint32_t max) {
    Listener x;
    x.name = std::move(name);
    x.bind = std::move(bind);
    x.port = port;
    x.backlog = backlog;
    x.max_connections = max;
    return x;
  };
  CHECK(c.listeners[0] == listener("public", "0.0.0.0", 8883, 4096, 100000));
  CHECK(c.listeners[1] == listener("local-v6", "::1", 0, 1024, 0));
  const Limits& l = c.limits;
  CHECK(l.max_packet_size == 262144);
  CHECK(l.receive_maximum == 100);
  CHECK(l.max_inflight == 20);
  CHECK(l.max_queued_messages == 5000);
  CHECK(l.max_queued_bytes == 1073741824);
  CHECK(l.topic_alias_maximum == 0);
  CHECK(l.max_keep_alive == 300);
  CHECK(l.max_session_expiry == std::optional<uint32_t>(604800));
  CHECK(l.max_qos == 1);
  CHECK_FALSE(l.retain_available);
  CHECK_FALSE(l.wildcard_subscriptions);
  CHECK_FALSE(l.subscription_identifiers);
  CHECK_FALSE(l.shared_subscriptions);
  CHECK(l.max_client_id_length == 23);
  CHECK(l.max_topic_length == 1024);
  CHECK(l.max_topic_levels == 16);
  CHECK(l.max_subscriptions_per_client == 50);
  CHECK(l.connect_timeout == Milliseconds(1500));
  CHECK(l.max_outbound_buffer == 4194304);
  CHECK(l.max_retained_messages == 10000);
  CHECK_FALSE(c.auth.allow_anonymous);
  CHECK(c.auth.password_file == "/etc/parley/passwd");
  CHECK(c.auth.acl_file == "/etc/parley/acl");
  CHECK_FALSE(c.sys.enabled);
  CHECK(c.sys.interval == Seconds(60));
  CHECK_FALSE(c.storage.enabled);
  CHECK(c.storage.durability == "batch");
  CHECK(c.storage.batch_interval == Milliseconds(200));
}

TEST_CASE("inline array of listener tables is accepted") {
  const Config c = Parsed(R"(listener = [{name = "a", port = 1}, {name = "b", port = 2}])");
  REQUIRE(c.listeners.size() == 2);
  CHECK(c.listeners[1].port == 2);
}

TEST_CASE("'none' and limits on keep alive and session expiry") {
  std::string base(kListener);
  CHECK(Parsed(base + "[limits]\nmax_keep_alive = \"none\"\n").limits.max_keep_alive == 0);
  CHECK(Parsed(base + "[limits]\nmax_keep_alive = \"60s\"\n").limits.max_keep_alive == 60);
  CHECK(Parsed(base + "[limits]\nmax_keep_alive = \"65535s\"\n").limits.max_keep_alive == 65535);
  CHECK_FALSE(Parsed(base + "[limits]\nmax_session_expiry = \"none\"\n").limits.max_session_expiry);
  CHECK(Parsed(base + "[limits]\nmax_session_expiry = \"0s\"\n").limits.max_session_expiry ==
        std::optional<uint32_t>(0));
  CHECK(Parsed(base + "[limits]\nmax_session_expiry = \"4294967295s\"\n").limits.max_session_expiry ==
        std::optional<uint32_t>(4294967295u));
  CHECK(Parsed(base + "[limits]\nmax_packet_size = 268435460\n").limits.max_packet_size == 268435460);
  CHECK(Parsed(base + "[limits]\nmax_packet_size = \"16B\"\n").limits.max_packet_size == 16);
}

// ------------------------------------------------------------------------------------------------
// Errors. Each message is "<file>:<line>: <dotted.key>: <what is wrong>"; line numbers are exact.

TEST_CASE("TOML syntax errors carry line and column") {
  CHECK(ErrorOf("workers = 1\nlog = {\n").rfind("t.toml:2:", 0) == 0);
  const std::string e = ErrorOf("a = 1\nb = [1,\n c");
  CHECK(e.rfind("t.toml:3:2: TOML syntax error: ", 0) == 0);
  CHECK(ErrorOf("[[listener]]\nname = \"a\"\nname = \"b\"\n").rfind("t.toml:3:", 0) == 0);
  CHECK(ErrorOf("x = \"unterminated\n", "dir/p.toml").rfind("dir/p.toml:1:", 0) == 0);
}

TEST_CASE("unknown keys are errors, with a suggestion when close") {
  CHECK(ErrorOf("worker = 4\n" + std::string(kListener)) ==
        "t.toml:1: worker: unknown key (did you mean workers?)");
  CHECK(ErrorOf(std::string(kListener) + "[limits]\nmax_qso = 1\n") ==
        "t.toml:4: limits.max_qso: unknown key (did you mean max_qos?)");
  CHECK(ErrorOf(std::string(kListener) + "\n[limit]\nmax_qos = 1\n") ==
        "t.toml:4: limit: unknown key (did you mean limits?)");
  CHECK(ErrorOf(std::string(kListener) + "prot = 1883\n") ==
        "t.toml:3: listener[0].prot: unknown key (did you mean port?)");
  CHECK(ErrorOf(std::string(kListener) + "[auth]\ncolour = 1\n") == "t.toml:4: auth.colour: unknown key");
  CHECK(ErrorOf(std::string(kListener) + "[limits.extra]\nx = 1\n") == "t.toml:3: limits.extra: unknown key");
  // A top-level key written after a [table] header belongs to that table: say so.
  CHECK(
      ErrorOf(std::string(kListener) + "workers = 2\n") ==
      "t.toml:3: listener[0].workers: unknown key (top-level keys such as workers must come before the first "
      "[table] or [[listener]] header)");
  CHECK(ErrorOf(std::string(kListener) + "\"odd key\" = 1\n") ==
        "t.toml:3: listener[0].\"odd key\": unknown key");
}

TEST_CASE("wrong types") {
  const std::string l(kListener);
  CHECK(ErrorOf("workers = \"4\"\n" + l) == "t.toml:1: workers: must be an integer, not a string");
  CHECK(ErrorOf(l + "port = 1883.0\n") ==
        "t.toml:3: listener[0].port: must be an integer, not a floating-point number");
  CHECK(ErrorOf(l + "[limits]\nretain_available = 1\n") ==
        "t.toml:4: limits.retain_available: must be true or false, not an integer");
  CHECK(ErrorOf(l + "[log]\nlevel = 3\n") == "t.toml:4: log.level: must be a string, not an integer");
  CHECK(ErrorOf(l + "log = 5\n") == "t.toml:3: listener[0].log: unknown key");
  CHECK(ErrorOf("log = 5\n" + l) == "t.toml:1: log: must be a table ([log]), not an integer");
  CHECK(ErrorOf(l + "[auth]\nacl_file = [\"a\"]\n") ==
        "t.toml:4: auth.acl_file: must be a string, not an array");
  CHECK(ErrorOf(l + "[limits]\nmax_packet_size = 1.5\n") ==
        "t.toml:4: limits.max_packet_size: must be a size: an integer (bytes) or a string such as \"64KiB\", "
        "not a floating-point number");
  CHECK(ErrorOf("data_dir = 1979-05-27\n" + l) == "t.toml:1: data_dir: must be a string, not a date");
}

TEST_CASE("durations must be strings with a unit") {
  const std::string l(kListener);
  CHECK(ErrorOf(l + "[limits]\nconnect_timeout = 10\n") ==
        "t.toml:4: limits.connect_timeout: durations must be strings with a unit, e.g. \"60s\" "
        "(units: ms, s, m, h, d); got an integer");
  CHECK(ErrorOf(l + "[limits]\nmax_keep_alive = 60\n") ==
        "t.toml:4: limits.max_keep_alive: durations must be strings with a unit, e.g. \"60s\" "
        "(units: ms, s, m, h, d), or \"none\"; got an integer");
  CHECK(ErrorOf(l + "[sys]\ninterval = \"10\"\n") ==
        "t.toml:4: sys.interval: \"10\" has no unit; a duration is a whole number followed by a unit: "
        "ms, s, m, h or d (e.g. \"10s\", \"500ms\")");
  CHECK(ErrorOf(l + "[sys]\ninterval = \"1500ms\"\n") ==
        "t.toml:4: sys.interval: must be a whole number of seconds (got \"1500ms\")");
  CHECK(ErrorOf(l + "[storage]\ndurability = \"always\"\n").starts_with("t.toml:4: storage.durability: "));
  CHECK(ErrorOf(l + "[storage]\nbatch_interval = \"0ms\"\n") ==
        "t.toml:4: storage.batch_interval: must be between 1ms and 1m (got \"0ms\")");
  CHECK(ErrorOf(l + "[sys]\ninterval = \"0s\"\n") ==
        "t.toml:4: sys.interval: must be between 1s and 1d (got \"0s\")");
  CHECK(ErrorOf(l + "[limits]\nmax_keep_alive = \"0s\"\n") ==
        "t.toml:4: limits.max_keep_alive: must be between 1s and 65535s, or \"none\" (got \"0s\")");
  CHECK(ErrorOf(l + "[limits]\nmax_keep_alive = \"1d\"\n") ==
        "t.toml:4: limits.max_keep_alive: must be between 1s and 65535s, or \"none\" (got \"1d\")");
  CHECK(ErrorOf(l + "[limits]\nmax_session_expiry = \"never\"\n") ==
        "t.toml:4: limits.max_session_expiry: \"never\" is not a duration; a duration is a whole number "
        "followed "
        "by a unit: ms, s, m, h or d (e.g. \"10s\", \"500ms\"); or \"none\"");
  CHECK(
      ErrorOf(l + "[limits]\nmax_session_expiry = \"50000d\"\n").find("must be between 0s and 4294967295s") !=
      std::string::npos);
  CHECK(ErrorOf(l + "[limits]\nconnect_timeout = \"0ms\"\n") ==
        "t.toml:4: limits.connect_timeout: must be between 1ms and 1d (got \"0ms\")");
  CHECK(ErrorOf(l + "[sys]\ninterval = \"none\"\n").find("\"none\" is not a duration") != std::string::npos);
}

TEST_CASE("out-of-range values") {
  const std::string l(kListener);
  CHECK(ErrorOf(l + "port = 65536\n") ==
        "t.toml:3: listener[0].port: must be between 0 and 65535 (got 65536)");
  CHECK(ErrorOf(l + "port = -1\n") == "t.toml:3: listener[0].port: must be between 0 and 65535 (got -1)");
  CHECK(ErrorOf(l + "backlog = 0\n") == "t.toml:3: listener[0].backlog: must be between 1 and 65535 (got 0)");
  CHECK(ErrorOf(l + "[limits]\n\nmax_qos = 3\n") == "t.toml:5: limits.max_qos: must be 0, 1 or 2 (got 3)");
  CHECK(ErrorOf(l + "[limits]\nreceive_maximum = 0\n") ==
        "t.toml:4: limits.receive_maximum: must be between 1 and 65535 (got 0)");
  CHECK(ErrorOf(l + "[limits]\nreceive_maximum = 65536\n") ==
        "t.toml:4: limits.receive_maximum: must be between 1 and 65535 (got 65536)");
  CHECK(ErrorOf(l + "[limits]\nmax_packet_size = 15\n") ==
        "t.toml:4: limits.max_packet_size: must be between 16 and 268435460 bytes (got 15)");
  CHECK(ErrorOf(l + "[limits]\nmax_packet_size = \"1GiB\"\n") ==
        "t.toml:4: limits.max_packet_size: must be between 16 and 268435460 bytes (got 1073741824)");
  CHECK(ErrorOf(l + "[limits]\nmax_queued_bytes = -1\n") ==
        "t.toml:4: limits.max_queued_bytes: must not be negative (got -1)");
  CHECK(ErrorOf(l + "[limits]\nmax_outbound_buffer = \"64 KiB\"\n")
            .rfind("t.toml:4: limits.max_outbound_buffer: \"64 KiB\" has an unknown unit \" KiB\"", 0) == 0);
  CHECK(ErrorOf(l + "[limits]\nmax_client_id_length = 22\n") ==
        "t.toml:4: limits.max_client_id_length: must be between 23 (MQTT requires servers to accept 23) and "
        "65535 (got 22)");
  CHECK(ErrorOf(l + "[limits]\nmax_retained_messages = 4294967296\n") ==
        "t.toml:4: limits.max_retained_messages: must be between 0 (unlimited) and 4294967295 (got "
        "4294967296)");
  CHECK(ErrorOf("workers = 1025\n" + l) ==
        "t.toml:1: workers: must be between 0 (one per core) and 1024 (got 1025)");
  CHECK(ErrorOf("workers = -1\n" + l) ==
        "t.toml:1: workers: must be between 0 (one per core) and 1024 (got -1)");
  CHECK(ErrorOf("data_dir = \"\"\n" + l) == "t.toml:1: data_dir: must not be empty");
}

TEST_CASE("values from a fixed list") {
  const std::string l(kListener);
  CHECK(ErrorOf(l + "[log]\nlevel = \"verbose\"\n") ==
        "t.toml:4: log.level: must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", "
        "\"critical\", "
        "\"off\" (got \"verbose\")");
  CHECK(ErrorOf(l + "[log]\nformat = \"xml\"\n") ==
        "t.toml:4: log.format: must be one of \"text\", \"json\" (got \"xml\")");
  CHECK(ErrorOf(l + "protocol = \"quic\"\n") ==
        "t.toml:3: listener[0].protocol: must be one of \"mqtt\", \"mqtts\", \"ws\", \"wss\" (got \"quic\"); "
        "mqtt = TCP, mqtts = TLS, ws = WebSocket, wss = WebSocket over TLS");
  // Case matters, as everywhere in TOML.
  CHECK_FALSE(ParseConfig(l + "[log]\nlevel = \"INFO\"\n", "t.toml").ok());
}

TEST_CASE("listener rules") {
  SUBCASE("at least one") {
    CHECK(ErrorOf("workers = 2\n") ==
          "t.toml:1: listener: at least one [[listener]] is required, e.g. [[listener]] name = \"mqtt\" "
          "bind = \"127.0.0.1\" port = 1883");
    CHECK(ErrorOf("").rfind("t.toml:1: listener: at least one", 0) == 0);
    CHECK(ErrorOf("\nlistener = []\n").rfind("t.toml:2: listener: at least one", 0) == 0);
  }
  SUBCASE("must be an array of tables") {
    CHECK(ErrorOf("\n[listener]\nname = \"a\"\n") ==
          "t.toml:2: listener: must be an array of tables: write [[listener]] with double brackets");
    CHECK(ErrorOf("listener = 1\n") ==
          "t.toml:1: listener: must be an array of tables ([[listener]]), not an integer");
    CHECK(ErrorOf("listener = [1]\n") == "t.toml:1: listener[0]: must be a table, not an integer");
  }
  SUBCASE("name is required, reported at the table's line") {
    CHECK(ErrorOf("[[listener]]\nname = \"a\"\n\n[[listener]]\nport = 1884\n") ==
          "t.toml:4: listener[1].name: required: every [[listener]] needs a unique name (used in logs and "
          "metrics)");
  }
  SUBCASE("names are unique and well formed") {
    CHECK(ErrorOf("[[listener]]\nname = \"a\"\nport = 1\n[[listener]]\nname = \"a\"\nport = 2\n") ==
          "t.toml:5: listener[1].name: \"a\" is already used by listener[0]");
    CHECK(ErrorOf("[[listener]]\nname = \"a b\"\n") ==
          "t.toml:2: listener[0].name: must be 1 to 64 characters from A-Z a-z 0-9 _ - . (got \"a b\")");
    CHECK(ErrorOf("[[listener]]\nname = \"\"\n").find("listener[0].name: must be 1 to 64") !=
          std::string::npos);
  }
  SUBCASE("bind must be an address literal") {
    CHECK(
        ErrorOf(std::string(kListener) + "bind = \"localhost\"\n") ==
        "t.toml:3: listener[0].bind: must be an IPv4 or IPv6 address literal such as \"127.0.0.1\", \"::1\", "
        "\"0.0.0.0\" or \"::\" (got \"localhost\"; host names are not resolved)");
    for (const char* bad : {"", "1.2.3", "256.0.0.1", "[::1]", "::1%lo", " 127.0.0.1", "127.0.0.1:1883"}) {
      CAPTURE(bad);
      CHECK(ErrorOf(std::string(kListener) + "bind = \"" + bad + "\"\n").find("listener[0].bind:") !=
            std::string::npos);
    }
    for (const char* good : {"0.0.0.0", "::", "::1", "10.1.2.3", "fe80::1", "::ffff:127.0.0.1"}) {
      CAPTURE(good);
      CHECK(Parsed(std::string(kListener) + "bind = \"" + good + "\"\n").listeners[0].bind == good);
    }
  }
  SUBCASE("overlapping address and port") {
    CHECK(ErrorOf("[[listener]]\nname = \"a\"\n[[listener]]\nname = \"b\"\n") ==
          "t.toml:3: listener[1].port: port 1883 on \"127.0.0.1\" overlaps listener \"a\"");
    CHECK(ErrorOf(
              "[[listener]]\nname = \"a\"\nbind = \"0.0.0.0\"\n[[listener]]\nname = \"b\"\nport = 1883\n") ==
          "t.toml:6: listener[1].port: port 1883 on \"127.0.0.1\" overlaps listener \"a\"");
    // Different ports, different families, or port 0 are fine.
    Parsed("[[listener]]\nname = \"a\"\n[[listener]]\nname = \"b\"\nport = 1884\n");
    Parsed("[[listener]]\nname = \"a\"\nbind = \"0.0.0.0\"\n[[listener]]\nname = \"b\"\nbind = \"::\"\n");
    Parsed("[[listener]]\nname = \"a\"\nport = 0\n[[listener]]\nname = \"b\"\nport = 0\n");
    Parsed(
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1\"\n[[listener]]\nname = \"b\"\nbind = "
        "\"127.0.0.2\"\n");
  }
}

TEST_CASE("every error is reported, in line order") {
  const std::string e = ErrorOf(R"([sys]
interval = 10

[limits]
max_qos = 5
receive_maximum = 0

[[listener]]
name = "a"
port = 99999

[log]
levle = "info"
)");
  CHECK(
      e ==
      "t.toml:2: sys.interval: durations must be strings with a unit, e.g. \"60s\" (units: ms, s, m, h, d); "
      "got an integer\n"
      "t.toml:5: limits.max_qos: must be 0, 1 or 2 (got 5)\n"
      "t.toml:6: limits.receive_maximum: must be between 1 and 65535 (got 0)\n"
      "t.toml:10: listener[0].port: must be between 0 and 65535 (got 99999)\n"
      "t.toml:13: log.levle: unknown key (did you mean level?)");
}

TEST_CASE("error count is capped") {
  std::string text(kListener);
  text += "[limits]\n";
  for (int i = 0; i < 30; ++i) text += "k" + std::to_string(i) + " = 1\n";
  const std::string e = ErrorOf(text);
  CHECK(std::count(e.begin(), e.end(), '\n') == 20);
  CHECK(e.substr(e.rfind('\n') + 1) == "t.toml: (10 more errors)");
}

TEST_CASE("hostile input never throws") {
  const std::string cases[] = {
      std::string("\0\0\0", 3),
      "\xff\xfe garbage",
      std::string(10000, '['),
      "a = " + std::string(5000, '[') + std::string(5000, ']'),
      "[[listener]]\nname = \"\xc3\x28\"\n",
      "[[listener]]\nname = \"\\u0000\"\n",
  };
  for (const std::string& text : cases) {
    Result<Config> r = ParseConfig(text, "t.toml");
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().rfind("t.toml", 0) == 0);
  }
}

// ------------------------------------------------------------------------------------------------
// Paths

TEST_CASE("relative paths resolve against the source's directory") {
  const std::string text = "data_dir = \"state\"\n" + std::string(kListener) +
                           "[auth]\npassword_file = \"../secrets/passwd\"\nacl_file = \"/etc/parley/acl\"\n";
  SUBCASE("source name with a directory") {
    const Config c = Parsed(text, "conf/parley.toml");
    CHECK(c.data_dir == "conf/state");
    CHECK(c.auth.password_file == "secrets/passwd");
    CHECK(c.auth.acl_file == "/etc/parley/acl");
  }
  SUBCASE("source name without a directory: left as written") {
    const Config c = Parsed(text, "<string>");
    CHECK(c.data_dir == "state");
    CHECK(c.auth.password_file == "../secrets/passwd");
  }
  SUBCASE("empty file names stay empty (= not set)") {
    const Config c = Parsed(std::string(kListener) + "[auth]\npassword_file = \"\"\n", "conf/x.toml");
    CHECK(c.auth.password_file.empty());
    CHECK(c.auth.acl_file.empty());
    CHECK(c.data_dir == "conf/data");  // the default is relative too
  }
}

TEST_CASE("LoadConfigFile") {
  parley::testing::TempDir dir("config");
  SUBCASE("resolves against the file's absolute directory") {
    const fs::path p =
        dir.Write("etc/parley.toml", std::string(kListener) + "[auth]\nacl_file = \"x.acl\"\n");
    Result<Config> r = LoadConfigFile(p.string());
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK(r->source_path == p.string());
    CHECK(r->auth.acl_file == (fs::path(dir.path()) / "etc" / "x.acl").string());
    CHECK(r->data_dir == (fs::path(dir.path()) / "etc" / "data").string());
  }
  SUBCASE("a relative path to the file still yields absolute paths") {
    dir.Write("a/b.toml", kListener);
    const fs::path old = fs::current_path();
    fs::current_path(dir.path());
    Result<Config> r = LoadConfigFile("a/../a/b.toml");
    fs::current_path(old);
    REQUIRE(r.ok());
    CHECK(r->source_path == (fs::path(dir.path()) / "a" / "b.toml").string());
    CHECK(r->data_dir == (fs::path(dir.path()) / "a" / "data").string());
  }
  SUBCASE("errors name the path as given") {
    const fs::path p = dir.Write("bad.toml", std::string(kListener) + "[limits]\nmax_qos = 3\n");
    Result<Config> r = LoadConfigFile(p.string());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() == p.string() + ":4: limits.max_qos: must be 0, 1 or 2 (got 3)");
  }
  SUBCASE("missing file, directory") {
    const std::string missing = (fs::path(dir.path()) / "nope.toml").string();
    CHECK(LoadConfigFile(missing).status().message() == missing + ": cannot open: No such file or directory");
    CHECK(LoadConfigFile(dir.path()).status().message() ==
          dir.path() + ": is a directory, not a config file");
  }
  SUBCASE("endless or huge files are refused") {
    CHECK(LoadConfigFile("/dev/zero").status().message() ==
          "/dev/zero: larger than 4 MiB; not a config file?");
  }
  SUBCASE("empty file: needs a listener") {
    const fs::path p = dir.Write("empty.toml", "");
    CHECK(LoadConfigFile(p.string()).status().message().rfind(p.string() + ":1: listener: at least one", 0) ==
          0);
  }
}

// ------------------------------------------------------------------------------------------------
// The files shipped in conf/

TEST_CASE("conf/parley.toml is exactly the defaults") {
  const fs::path conf = RepoRoot() / "conf";
  Result<Config> r = LoadConfigFile((conf / "parley.toml").string());
  INFO(r.status().message());
  REQUIRE(r.ok());
  Config expected = DefaultConfig();
  expected.data_dir = (fs::absolute(conf).lexically_normal() / "data").string();
  expected.source_path = r->source_path;
  CHECK(r.value() == expected);
  CHECK(r->limits == Limits{});
}

TEST_CASE("conf/interop.toml suits the Paho interop suites") {
  const fs::path conf = RepoRoot() / "conf";
  Result<Config> r = LoadConfigFile((conf / "interop.toml").string());
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(r->listeners.size() == 1);
  CHECK(r->listeners[0].bind == "127.0.0.1");
  CHECK(r->listeners[0].port == 1883);
  CHECK(r->auth.allow_anonymous);
  CHECK(r->limits.max_keep_alive == 60);
  CHECK(r->limits.receive_maximum == 10);
  CHECK(r->auth.acl_file == (fs::absolute(conf).lexically_normal() / "interop.acl").string());
  CHECK(fs::is_regular_file(r->auth.acl_file));
}

// Every key the loader reads, as "section.key". Kept by hand: the test below checks that the loader,
// conf/parley.toml and docs/configuration.md all agree with it.
const char* const kAllKeys[] = {
    "workers",
    "data_dir",
    "log.level",
    "log.format",
    "storage.enabled",
    "storage.durability",
    "storage.batch_interval",
    "listener.name",
    "listener.bind",
    "listener.port",
    "listener.protocol",
    "listener.backlog",
    "listener.max_connections",
    "limits.max_packet_size",
    "limits.receive_maximum",
    "limits.max_inflight",
    "limits.max_queued_messages",
    "limits.max_queued_bytes",
    "limits.topic_alias_maximum",
    "limits.max_keep_alive",
    "limits.max_session_expiry",
    "limits.max_qos",
    "limits.retain_available",
    "limits.wildcard_subscriptions",
    "limits.subscription_identifiers",
    "limits.shared_subscriptions",
    "limits.max_client_id_length",
    "limits.max_topic_length",
    "limits.max_topic_levels",
    "limits.max_subscriptions_per_client",
    "limits.connect_timeout",
    "limits.max_outbound_buffer",
    "limits.max_retained_messages",
    "limits.write_timeout",
    "limits.max_connections",
    "limits.max_connections_per_address",
    "limits.connection_rate_per_address",
    "limits.connection_burst_per_address",
    "limits.publish_rate",
    "limits.publish_burst",
    "limits.publish_byte_rate",
    "limits.publish_byte_burst",
    "limits.flapping_max_connects",
    "limits.flapping_window",
    "limits.flapping_ban",
    "auth.allow_anonymous",
    "auth.password_file",
    "auth.acl_file",
    "auth.scram_file",
    "auth.ban_file",
    "overload.memory_high",
    "overload.loop_lag_high",
    "sys.enabled",
    "sys.interval",
    "im.enabled",
    "im.max_group_members",
    "im.inbox_fanout_max",
    "im.receipts_max_members",
    "im.typing_max_members",
    "im.dedup_window",
    "im.edit_window",
    "im.recall_window",
    "im.max_message_bytes",
    "im.max_mentions",
    "im.max_versions",
    "im.send_rate",
    "im.send_burst",
    "im.presence_grace",
    "im.typing_interval",
    "im.retention_max_age",
    "im.retention_max_count",
    "im.inbox_retention",
    "im.sweep_interval",
    "admin.enabled",
    "admin.bind",
    "admin.port",
    "admin.token_file",
    "admin.metrics_public",
    "files.enabled",
    "files.bind",
    "files.port",
    "files.public_url",
    "files.max_file_size",
    "files.user_quota",
    "files.allowed_types",
    "files.upload_expiry",
    "files.gc_grace",
    "files.gc_interval",
    "files.token_ttl",
    "files.max_connections",
    "push.collapse_window",
    "push.preview_max_chars",
    "alerts.interval",
    "alerts.webhook_url",
    "alerts.webhook_timeout",
    "alerts.rule.name",
    "alerts.rule.metric",
    "alerts.rule.labels",
    "alerts.rule.function",
    "alerts.rule.op",
    "alerts.rule.threshold",
    "alerts.rule.for",
    "alerts.rule.severity",
    "alerts.rule.description",
};

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST_CASE("loader, conf/parley.toml and docs/configuration.md list the same keys") {
  // The loader knows every key: a value of the wrong type is a type error, not "unknown key".
  for (const char* dotted : kAllKeys) {
    const std::string_view k(dotted);
    CAPTURE(k);
    const size_t dot = k.find('.');
    std::string text;
    if (dot == std::string_view::npos) {
      text = std::string(k) + " = [[]]\n" + std::string(kListener);
    } else if (k.substr(0, dot) == "listener") {
      text = "[[listener]]\n" + std::string(k.substr(dot + 1)) + " = [[]]\n";
    } else {
      text = std::string(kListener) + "[" + std::string(k.substr(0, dot)) + "]\n" +
             std::string(k.substr(dot + 1)) + " = [[]]\n";
    }
    const std::string e = ErrorOf(text);
    CHECK(e.find("unknown key") == std::string::npos);
    CHECK(e.find("must be") != std::string::npos);
  }

  // conf/parley.toml sets exactly these keys.
  std::set<std::string> in_file;
  std::istringstream file(ReadText(RepoRoot() / "conf" / "parley.toml"));
  std::string line, section;
  while (std::getline(file, line)) {
    if (line.rfind("[[", 0) == 0) {
      section = line.substr(2, line.find("]]") - 2) + ".";
    } else if (line.rfind("[", 0) == 0) {
      section = line.substr(1, line.find(']') - 1) + ".";
    } else if (const size_t eq = line.find(" = "); eq != std::string::npos && line[0] != '#') {
      in_file.insert(section + line.substr(0, eq));
    }
  }
  CHECK(in_file == std::set<std::string>(std::begin(kAllKeys), std::end(kAllKeys)));

  // docs/configuration.md documents each key.
  const std::string docs = ReadText(RepoRoot() / "docs" / "configuration.md");
  REQUIRE_FALSE(docs.empty());
  for (const char* dotted : kAllKeys) {
    const std::string_view k(dotted);
    CAPTURE(k);
    const std::string leaf(k.substr(k.find('.') == std::string_view::npos ? 0 : k.find('.') + 1));
    CHECK(docs.find("| `" + leaf + "` |") + docs.find("| `" + std::string(k) + "` |") !=
          2 * std::string::npos);
  }
}

TEST_CASE("TLS and WebSocket listeners") {
  const auto c = Parsed(R"([[listener]]
name = "tls"
protocol = "mqtts"
port = 8883
[listener.tls]
cert_file = "certs/server.pem"
key_file = "/etc/parley/server.key"
ca_file = "certs/ca.pem"
require_client_cert = true
username_from_cert = "san"
min_version = "1.3"

[[listener]]
name = "ws"
protocol = "ws"
port = 8080
[listener.websocket]
path = "/mqtt/v1"
allowed_origins = ["https://app.example.com"]

[[listener]]
name = "wss"
protocol = "wss"
port = 8443
[listener.tls]
cert_file = "s.pem"
key_file = "s.key"
)", "/etc/parley/parley.toml");
  REQUIRE(c.listeners.size() == 3);
  REQUIRE(c.listeners[0].tls);
  const Tls& t = *c.listeners[0].tls;
  CHECK(t.cert_file == "/etc/parley/certs/server.pem");  // relative to the file's directory
  CHECK(t.key_file == "/etc/parley/server.key");
  CHECK(t.ca_file == "/etc/parley/certs/ca.pem");
  CHECK(t.require_client_cert);
  CHECK(t.username_from_cert == "san");
  CHECK(t.min_version == "1.3");
  CHECK_FALSE(c.listeners[1].tls);
  CHECK(c.listeners[1].websocket.path == "/mqtt/v1");
  CHECK(c.listeners[1].websocket.allowed_origins == std::vector<std::string>{"https://app.example.com"});
  REQUIRE(c.listeners[2].tls);
  CHECK(c.listeners[2].websocket.path == "/mqtt");  // the default
  CHECK(c.listeners[2].tls->min_version == "1.2");

  const std::string head = "[[listener]]\nname = \"a\"\n";
  CHECK(ErrorOf(head + "protocol = \"mqtts\"\n") ==
        "t.toml:1: listener[0].tls: required for protocol \"mqtts\": a [listener.tls] table with cert_file and "
        "key_file");
  CHECK(ErrorOf(head + "[listener.tls]\ncert_file = \"a\"\nkey_file = \"b\"\n") ==
        "t.toml:3: listener[0].tls: only for protocol \"mqtts\" or \"wss\" (this listener is \"mqtt\")");
  CHECK(ErrorOf(head + "protocol = \"wss\"\n[listener.tls]\nkey_file = \"b\"\n") ==
        "t.toml:4: listener[0].tls.cert_file: required: the server certificate (PEM, chain allowed)");
  CHECK(ErrorOf(head + "protocol = \"mqtts\"\n[listener.tls]\ncert_file = \"a\"\nkey_file = \"b\"\n"
                       "require_client_cert = true\n") ==
        "t.toml:4: listener[0].tls.ca_file: required when require_client_cert = true: the CAs that sign client "
        "certificates");
  CHECK(ErrorOf(head + "protocol = \"mqtts\"\n[listener.tls]\ncert_file = \"a\"\nkey_file = \"b\"\n"
                       "min_version = \"1.1\"\n") ==
        "t.toml:7: listener[0].tls.min_version: must be one of \"1.2\", \"1.3\" (got \"1.1\"); older TLS versions "
        "are not offered");
  CHECK(ErrorOf(head + "[listener.websocket]\npath = \"/x\"\n") ==
        "t.toml:3: listener[0].websocket: only for protocol \"ws\" or \"wss\" (this listener is \"mqtt\")");
  CHECK(ErrorOf(head + "protocol = \"ws\"\n[listener.websocket]\npath = \"mqtt\"\n") ==
        "t.toml:5: listener[0].websocket.path: must start with / and hold only visible ASCII without ? or # "
        "(got \"mqtt\")");
  CHECK(ErrorOf(head + "protocol = \"ws\"\n[listener.websocket]\nallowed_origins = [\"a\", 1]\n") ==
        "t.toml:5: listener[0].websocket.allowed_origins: must be an array of strings; an element is an integer");
}

TEST_CASE("abuse limits, overload and token auth") {
  const auto c = Parsed(std::string(kListener) + R"(
[limits]
max_connections_per_address = 100
connection_rate_per_address = 20
publish_rate = 1000
publish_byte_rate = "1MiB"
flapping_max_connects = 10
flapping_window = "1m"
flapping_ban = "10m"
write_timeout = "none"

[auth]
scram_file = "scram.txt"
ban_file = "bans.txt"
[auth.jwt]
algorithm = "RS256"
public_key_file = "jwt.pub"
acl_claim = "acl"
leeway = "5s"

[overload]
memory_high = "8GiB"
loop_lag_high = "none"
)", "/etc/p/parley.toml");
  CHECK(c.limits.max_connections_per_address == 100);
  CHECK(c.limits.connection_rate_per_address == 20);
  CHECK(c.limits.publish_rate == 1000);
  CHECK(c.limits.publish_byte_rate == 1024 * 1024);
  CHECK(c.limits.flapping_max_connects == 10);
  CHECK(c.limits.flapping_window == std::chrono::seconds(60));
  CHECK(c.limits.flapping_ban == std::chrono::seconds(600));
  CHECK(c.limits.write_timeout == std::chrono::milliseconds(0));
  CHECK(DefaultConfig().limits.write_timeout == std::chrono::seconds(60));
  CHECK(c.auth.scram_file == "/etc/p/scram.txt");
  CHECK(c.auth.ban_file == "/etc/p/bans.txt");
  REQUIRE(c.auth.jwt);
  CHECK(c.auth.jwt->algorithm == "RS256");
  CHECK(c.auth.jwt->public_key_file == "/etc/p/jwt.pub");
  CHECK(c.auth.jwt->username_claim == "sub");
  CHECK(c.auth.jwt->acl_claim == "acl");
  CHECK(c.auth.jwt->leeway == std::chrono::seconds(5));
  CHECK(c.overload.memory_high == 8ull << 30);
  CHECK(c.overload.loop_lag_high == std::chrono::milliseconds(0));
  CHECK(DefaultConfig().overload.loop_lag_high == std::chrono::milliseconds(1000));

  const std::string l(kListener);
  CHECK(ErrorOf(l + "[auth.jwt]\nalgorithm = \"HS256\"\n") ==
        "t.toml:3: auth.jwt.secret_file: required for HS256: a file holding the shared secret");
  CHECK(ErrorOf(l + "[auth.jwt]\nalgorithm = \"none\"\nsecret_file = \"s\"\n") ==
        "t.toml:4: auth.jwt.algorithm: must be one of \"HS256\", \"RS256\", \"ES256\" (got \"none\")");
  CHECK(ErrorOf(l + "[limits]\npublish_byte_rate = 1000\npublish_byte_burst = 1000\n") ==
        "t.toml:5: limits.publish_byte_burst: must be at least max_packet_size (1048576 bytes), or one large "
        "PUBLISH could never pass");
}

// Found by fuzz_config: both slipped through before.
TEST_CASE("NUL characters and control bytes") {
  CHECK(ErrorOf("[[listener]]\nname = \"m\"\nbind = \"127.0.0.1\\u0000junk\"\n") ==
        "t.toml:3: listener[0].bind: must not contain a NUL character (\\u0000)");
  CHECK(ErrorOf(std::string(kListener) + "[auth]\nacl_file = \"a\\u0000b\"\n") ==
        "t.toml:4: auth.acl_file: must not contain a NUL character (\\u0000)");
  // A syntax error quoting the file's bytes stays one printable line.
  const std::string msg = ErrorOf(std::string("a = t\x01\n"));
  CHECK(msg.find('\x01') == std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
  CHECK(ErrorOf("a = i\n").find('\n') == std::string::npos);
}

TEST_CASE("[files] and [push]") {
  const std::string base(kListener);
  const Config d = Parsed(base);
  CHECK(d.files.enabled);
  CHECK(d.files.port == 8081);
  CHECK(d.files.max_file_size == 100ull << 20);
  CHECK_FALSE(d.push.webhook);
  CHECK_FALSE(d.push.gorush);

  const Config c = Parsed(base + R"([files]
bind = "::1"
port = 9000
public_url = "https://chat.example.com:9000/"
max_file_size = "5MiB"
user_quota = 0
allowed_types = ["image/*", "application/pdf", "*/*"]
upload_expiry = "2h"
gc_grace = "0s"
gc_interval = "30s"
token_ttl = "10m"
max_connections = 10
[push]
collapse_window = "0s"
preview_max_chars = 20
[push.gorush]
url = "http://127.0.0.1:8088"
topic = "com.example.app"
timeout = "2s"
[push.webhook]
url = "https://push.example.com/hook"
)");
  CHECK(c.files.bind == "::1");
  CHECK(c.files.port == 9000);
  CHECK(c.files.public_url == "https://chat.example.com:9000");  // the trailing slash is dropped
  CHECK(c.files.max_file_size == 5ull << 20);
  CHECK(c.files.user_quota == 0);
  CHECK(c.files.allowed_types == std::vector<std::string>{"image/*", "application/pdf", "*/*"});
  CHECK(c.files.upload_expiry == std::chrono::seconds(7200));
  CHECK(c.files.gc_grace == std::chrono::seconds(0));
  CHECK(c.files.token_ttl == std::chrono::seconds(600));
  CHECK(c.push.collapse_window == std::chrono::milliseconds(0));
  CHECK(c.push.preview_max_chars == 20);
  REQUIRE(c.push.gorush);
  CHECK(c.push.gorush->url == "http://127.0.0.1:8088");
  CHECK(c.push.gorush->topic == "com.example.app");
  CHECK(c.push.gorush->timeout == std::chrono::milliseconds(2000));
  REQUIRE(c.push.webhook);
  CHECK(c.push.webhook->timeout == std::chrono::milliseconds(5000));

  // Errors name the file, the line and the key.
  CHECK(ErrorOf(base + "[files]\nallowed_types = [\"image\"]\n").find("t.toml:4") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\nallowed_types = [\"image\"]\n").find("media type") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\nallowed_types = [\"*/png\"]\n").find("allowed_types") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\npublic_url = \"ftp://x\"\n").find("public_url") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\npublic_url = \"https://x/?a\"\n").find("public_url") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\nbind = \"localhost\"\n").find("bind") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\nmax_file_size = 0\n").find("max_file_size") != std::string::npos);
  CHECK(ErrorOf(base + "[files]\nupload_expiry = \"1s\"\n").find("upload_expiry") != std::string::npos);
  CHECK(ErrorOf(base + "[push.gorush]\ntopic = \"x\"\n").find("url") != std::string::npos);
  CHECK(ErrorOf(base + "[push.webhook]\nurl = \"not a url\"\n").find("push.webhook") != std::string::npos);
  CHECK(ErrorOf(base + "[push]\ncolapse_window = \"1s\"\n").find("collapse_window") != std::string::npos);
}

}  // namespace
}  // namespace parley::config
