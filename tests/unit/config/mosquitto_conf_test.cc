// mosquitto.conf -> Config (broker/config/mosquitto_conf.h, docs/migrating-from-mosquitto.md).
#include "broker/config/mosquitto_conf.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/temp_dir.h"

namespace parley::config {
namespace {

namespace fs = std::filesystem;

fs::path RepoRoot() {
  return fs::path(PARLEY_SOURCE_DIR);
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Config Parsed(std::string_view text, const std::string& name = "m.conf") {
  Result<Config> r = ParseMosquittoConfig(text, name);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r.value();
}

std::string ErrorOf(std::string_view text, const std::string& name = "m.conf") {
  Result<Config> r = ParseMosquittoConfig(text, name);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

// The warnings joined, one per line, for "contains" checks.
std::string Warnings(const Config& c) {
  std::string all;
  for (const std::string& w : c.warnings) all += w + "\n";
  return all;
}

// The only warning, which must start with `prefix` (e.g. "m.conf:2: pid_file: ").
std::string OnlyWarning(std::string_view text, std::string_view prefix) {
  const Config c = Parsed(text);
  INFO(Warnings(c));
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].rfind(prefix, 0) == 0);
  return c.warnings[0];
}

constexpr std::string_view kListener = "listener 1883 127.0.0.1\n";

// ------------------------------------------------------------------------------------------------

TEST_CASE("IsMosquittoConfig: the first significant line decides, then the name") {
  CHECK(IsMosquittoConfig("listener 1883\n", "x.toml"));
  CHECK(IsMosquittoConfig("# comment\n\n  allow_anonymous true\n", "parley.cfg"));
  CHECK(IsMosquittoConfig("plugin_opt_x 1\n", "x"));
  CHECK_FALSE(IsMosquittoConfig("[[listener]]\nname = \"mqtt\"\n", "x.conf"));
  CHECK_FALSE(IsMosquittoConfig("workers = 4\n", "x.conf"));
  CHECK_FALSE(IsMosquittoConfig("persistence=true\n", "x.conf"));  // TOML, even with a Mosquitto word
  CHECK_FALSE(IsMosquittoConfig("port = 1883\n", "mosquitto.conf"));
  // Undecided: the name.
  CHECK(IsMosquittoConfig("", "/etc/mosquitto/mosquitto.conf"));
  CHECK(IsMosquittoConfig("# only comments\n", "a.conf"));
  CHECK(IsMosquittoConfig("colour blue\n", "a.conf"));
  CHECK_FALSE(IsMosquittoConfig("", "parley.toml"));
  CHECK_FALSE(IsMosquittoConfig("colour blue\n", "parley.toml"));
}

TEST_CASE("defaults without a listener: Mosquitto 2.0's local only mode") {
  const Config c = Parsed("");
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].name == "listener-1883");
  CHECK(c.listeners[0].bind == "127.0.0.1");
  CHECK(c.listeners[0].port == 1883);
  CHECK(c.listeners[0].protocol == "mqtt");
  CHECK(c.auth.allow_anonymous);
  CHECK(c.auth.password_file.empty());
  CHECK(c.auth.acl_file.empty());
  CHECK_FALSE(c.storage.enabled);  // persistence false
  CHECK_FALSE(c.im.enabled);
  CHECK_FALSE(c.admin.enabled);  // a mosquitto.conf has no admin API
  CHECK(c.limits.max_inflight == 20);
  CHECK(c.limits.receive_maximum == 20);
  CHECK(c.limits.topic_alias_maximum == 10);
  CHECK(c.limits.max_queued_messages == 1000);
  CHECK(c.limits.max_packet_size == Limits{}.max_packet_size);
  CHECK(c.sys.enabled);
  CHECK(c.sys.interval == Seconds(10));
  CHECK(c.log.level == "info");
  CHECK(c.warnings.empty());
  CHECK(c.source_path == "m.conf");

  SUBCASE("allow_anonymous false is ignored there, as by Mosquitto, with a warning") {
    const Config d = Parsed("allow_anonymous false\npassword_file p\n");
    CHECK(d.auth.allow_anonymous);
    CHECK(d.auth.password_file == "p");
    REQUIRE(d.warnings.size() == 1);
    CHECK(d.warnings[0].rfind("m.conf:1: allow_anonymous: ignored without a listener", 0) == 0);
  }
  SUBCASE("listener options without a listener line stay on loopback") {
    const Config d = Parsed("max_connections 10\n");
    REQUIRE(d.listeners.size() == 1);
    CHECK(d.listeners[0].bind == "127.0.0.1");
    CHECK(d.listeners[0].max_connections == 10);
    CHECK(d.auth.allow_anonymous);
    CHECK(Warnings(d).find("m.conf:1: max_connections: a listener option without a `listener` line") == 0);
  }
}

TEST_CASE("defaults with a listener: anonymous refused, as in Mosquitto 2.0") {
  const Config c = Parsed(kListener);
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].bind == "127.0.0.1");
  CHECK_FALSE(c.auth.allow_anonymous);
  CHECK(c.warnings.empty());
  CHECK(Parsed(std::string(kListener) + "allow_anonymous true\n").auth.allow_anonymous);
  CHECK_FALSE(Parsed("port 1883\n").auth.allow_anonymous);
  CHECK_FALSE(Parsed("bind_address 127.0.0.1\n").auth.allow_anonymous);
}

TEST_CASE("listeners: port, address, names, socket_domain, the default listener") {
  SUBCASE("no address: every IPv4 address, with a warning about IPv6") {
    const Config c = Parsed("listener 1883\n");
    CHECK(c.listeners[0].bind == "0.0.0.0");
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0] ==
          "m.conf:1: listener: Mosquitto listens on every IPv4 and IPv6 address here; Parley listens on "
          "0.0.0.0 "
          "(every IPv4 address): add `listener 1883 ::` for IPv6 clients");
  }
  SUBCASE("socket_domain picks the family, silently") {
    const Config c = Parsed("listener 1883\nsocket_domain ipv6\nlistener 1884\nsocket_domain ipv4\n");
    CHECK(c.listeners[0].bind == "::");
    CHECK(c.listeners[1].bind == "0.0.0.0");
    CHECK(c.warnings.empty());
  }
  SUBCASE("localhost, literals, names unique per port") {
    const Config c = Parsed(
        "listener 1883 localhost\nlistener 1883 ::1\nlistener 1884 10.0.0.1\n"
        "listener 1885 localhost\nsocket_domain ipv6\n");
    REQUIRE(c.listeners.size() == 4);
    CHECK(c.listeners[0].bind == "127.0.0.1");
    CHECK(c.listeners[0].name == "listener-1883");
    CHECK(c.listeners[1].bind == "::1");
    CHECK(c.listeners[1].name == "listener-1883-2");
    CHECK(c.listeners[2].name == "listener-1884");
    CHECK(c.listeners[3].bind == "::1");
  }
  SUBCASE("port and bind_address make the default listener, first") {
    const Config c = Parsed("listener 8883 127.0.0.1\nport 1884\nbind_address 127.0.0.2\n");
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[0].port == 1884);
    CHECK(c.listeners[0].bind == "127.0.0.2");
    CHECK(c.listeners[1].port == 8883);
  }
  SUBCASE("max_connections: -1 is unlimited") {
    const Config c =
        Parsed("listener 1 127.0.0.1\nmax_connections -1\nlistener 2 127.0.0.1\nmax_connections 7\n");
    CHECK(c.listeners[0].max_connections == 0);
    CHECK(c.listeners[1].max_connections == 7);
  }
  SUBCASE("a Unix socket listener is skipped with a warning") {
    const Config c = Parsed("listener 0 /run/mosquitto.sock\nlistener 1883 127.0.0.1\n");
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].port == 1883);
    CHECK(Warnings(c).find("m.conf:1: listener: Unix sockets are not supported") == 0);
  }
  SUBCASE("errors") {
    CHECK(ErrorOf("listener 70000\n") ==
          "m.conf:1: listener: must be a port between 1 and 65535 (got 70000)");
    CHECK(ErrorOf("listener\n") == "m.conf:1: listener: needs a port");
    CHECK(ErrorOf("listener 1883 broker.example.com\n") ==
          "m.conf:1: listener: must be an IP address such as 127.0.0.1, ::1, 0.0.0.0 or :: (got "
          "\"broker.example.com\"; host names are not resolved)");
    CHECK(ErrorOf("bind_address example.com\n").rfind("m.conf:1: bind_address: must be an IP address", 0) ==
          0);
    CHECK(ErrorOf("listener 1883 127.0.0.1\nsocket_domain ipv6\n") ==
          "m.conf:2: socket_domain: does not match the address \"127.0.0.1\" of this listener");
    CHECK(ErrorOf("listener 1883 0.0.0.0\nlistener 1883 127.0.0.1\n") ==
          "m.conf:2: listener: port 1883 on 127.0.0.1 overlaps the listener at line 1");
    CHECK(ErrorOf("listener 1883 127.0.0.1\nmax_connections 0\n") ==
          "m.conf:2: max_connections: 0 lets no client connect; write -1 for no limit, or a positive number");
    CHECK(ErrorOf("listener 1883\nprotocol mqttsn\n") ==
          "m.conf:2: protocol: must be mqtt or websockets (got \"mqttsn\")");
    CHECK(ErrorOf("listener 0 /tmp/sock\n") ==
          "m.conf:1: listener: no listener that Parley can open: add e.g. `listener 1883`");
  }
}

TEST_CASE("TLS listeners") {
  SUBCASE("certfile and keyfile make mqtts; cafile, require_certificate, identity, version, ciphers") {
    const Config c = Parsed(R"(listener 8883 127.0.0.1
certfile tls/server.pem
keyfile /etc/tls/server.key
cafile tls/ca.pem
require_certificate true
use_identity_as_username true
tls_version tlsv1.3
ciphers ECDHE-ECDSA-AES128-GCM-SHA256
ciphers_tls1.3 TLS_AES_128_GCM_SHA256
)",
                            "/etc/mosquitto/m.conf");
    REQUIRE(c.listeners.size() == 1);
    const Listener& l = c.listeners[0];
    CHECK(l.protocol == "mqtts");
    REQUIRE(l.tls);
    CHECK(l.tls->cert_file == "/etc/mosquitto/tls/server.pem");
    CHECK(l.tls->key_file == "/etc/tls/server.key");
    CHECK(l.tls->ca_file == "/etc/mosquitto/tls/ca.pem");
    CHECK(l.tls->require_client_cert);
    CHECK(l.tls->username_from_cert == "cn");
    CHECK(l.tls->min_version == "1.3");
    CHECK(l.tls->ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256");
    CHECK(l.tls->ciphersuites == "TLS_AES_128_GCM_SHA256");
    CHECK(c.warnings.empty());
  }
  SUBCASE("a server-only TLS listener keeps cafile and asks for no certificate") {
    const Config c = Parsed("listener 8883 127.0.0.1\ncertfile s.pem\nkeyfile s.key\ncafile ca.pem\n");
    REQUIRE(c.listeners[0].tls);
    CHECK(c.listeners[0].tls->ca_file == "ca.pem");
    CHECK_FALSE(c.listeners[0].tls->require_client_cert);
    CHECK(c.listeners[0].tls->username_from_cert == "none");
    CHECK(c.listeners[0].tls->min_version == "1.2");
  }
  SUBCASE("use_identity_as_username alone also requires a certificate (Mosquitto refuses clients without)") {
    const Config c =
        Parsed("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncafile ca\nuse_identity_as_username true\n");
    CHECK(c.listeners[0].tls->require_client_cert);
    CHECK(c.listeners[0].tls->username_from_cert == "cn");
  }
  SUBCASE("use_subject_as_username: the CN, with a warning") {
    OnlyWarning(
        "listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncafile ca\nrequire_certificate true\n"
        "use_subject_as_username true\n",
        "m.conf:6: use_subject_as_username: not supported as such");
    CHECK(Parsed("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncafile ca\nuse_subject_as_username true\n")
              .listeners[0]
              .tls->username_from_cert == "cn");
  }
  SUBCASE("tls_version tlsv1.1: TLS 1.2 with a warning") {
    OnlyWarning("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ntls_version tlsv1.1\n",
                "m.conf:4: tls_version: ");
  }
  SUBCASE("unsupported TLS options") {
    OnlyWarning(
        "listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncrlfile r.pem\n",
        "m.conf:4: crlfile: not supported: Parley checks no revocation lists, so certificates revoked in "
        "this file are ACCEPTED");
    OnlyWarning("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ndhparamfile d.pem\n",
                "m.conf:4: dhparamfile: ignored");
    OnlyWarning("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncapath /etc/ssl/certs\n",
                "m.conf:4: capath: not supported: concatenate");
    OnlyWarning("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ntls_engine pkcs11\n",
                "m.conf:4: tls_engine: not supported");
    CHECK(Parsed("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ntls_keyform pem\n").warnings.empty());
  }
  SUBCASE("TLS options on a listener without a certificate are ignored, with a warning") {
    const Config c = Parsed("listener 1883 127.0.0.1\ncafile ca.pem\nrequire_certificate true\n");
    CHECK(c.listeners[0].protocol == "mqtt");
    CHECK_FALSE(c.listeners[0].tls);
    CHECK(Warnings(c) ==
          "m.conf:2: cafile: ignored: this listener has no certfile and keyfile, so it does not use TLS\n");
  }
  SUBCASE("a TLS-PSK-only listener is not opened") {
    const Config c = Parsed("listener 8884 127.0.0.1\npsk_hint h\nlistener 1883 127.0.0.1\n");
    REQUIRE(c.listeners.size() == 1);
    CHECK(c.listeners[0].port == 1883);
    CHECK(Warnings(c).find("m.conf:1: listener: this listener uses TLS-PSK only") != std::string::npos);
    CHECK(Warnings(c).find("m.conf:2: psk_hint: not supported") != std::string::npos);
  }
  SUBCASE("errors") {
    CHECK(ErrorOf("listener 8883 127.0.0.1\ncertfile s.pem\n") ==
          "m.conf:2: certfile: certfile and keyfile must be given together (the listener's certificate and "
          "its key)");
    CHECK(ErrorOf("listener 8883 127.0.0.1\ncertfile s\nkeyfile k\nrequire_certificate true\n") ==
          "m.conf:4: require_certificate: needs cafile: the CAs that sign client certificates");
    CHECK(ErrorOf(
              "listener 8883 127.0.0.1\ncertfile s\nkeyfile k\ncapath /c\nuse_identity_as_username true\n") ==
          "m.conf:5: use_identity_as_username: needs cafile: the CAs that sign client certificates (capath "
          "is not "
          "supported: put those CAs in one file)");
    CHECK(ErrorOf("listener 8883 127.0.0.1\ncertfile a\nkeyfile k\ncertfile b\n") ==
          "m.conf:4: certfile: is given twice (first at line 2)");
    CHECK(ErrorOf("listener 8883 127.0.0.1\ntls_version tlsv2\n") ==
          "m.conf:2: tls_version: must be tlsv1.3, tlsv1.2 or tlsv1.1 (got \"tlsv2\")");
  }
}

TEST_CASE("websockets listeners") {
  const Config c = Parsed(
      "listener 8080 127.0.0.1\nprotocol websockets\nlistener 8443 127.0.0.1\n"
      "protocol websockets\ncertfile s\nkeyfile k\n");
  CHECK(c.listeners[0].protocol == "ws");
  CHECK(c.listeners[1].protocol == "wss");
  CHECK(c.listeners[0].websocket.path == "/mqtt");
  const std::string w = Warnings(c);
  CHECK(w.find("m.conf:1: listener: Parley accepts WebSocket connections on the path /mqtt only") !=
        std::string::npos);
  CHECK(w.find("clients must use wss://<host>:8443/mqtt") != std::string::npos);
  CHECK(Parsed("listener 9001 127.0.0.1\nprotocol websockets\nhttp_dir /www\nwebsockets_log_level 255\n")
            .warnings.size() == 2);  // the path, http_dir; websockets_log_level is silently irrelevant
}

TEST_CASE("limits") {
  const Config c = Parsed(std::string(kListener) + R"(max_inflight_messages 5
max_queued_messages 200
max_queued_bytes 1048576
max_packet_size 65536
max_keepalive 120
persistent_client_expiration 2d
retain_available false
sys_interval 60
listener 1884 127.0.0.1
max_qos 1
max_topic_alias 3
)");
  CHECK(c.limits.max_inflight == 5);
  CHECK(c.limits.receive_maximum == 5);
  CHECK(c.limits.max_queued_messages == 200);
  CHECK(c.limits.max_queued_bytes == 1048576);
  CHECK(c.limits.max_packet_size == 65536);
  CHECK(c.limits.max_keep_alive == 120);
  REQUIRE(c.limits.max_session_expiry);
  CHECK(*c.limits.max_session_expiry == 2 * 86400);
  CHECK_FALSE(c.limits.retain_available);
  CHECK(c.sys.enabled);
  CHECK(c.sys.interval == Seconds(60));
  // Per-listener in Mosquitto, global in Parley: the lowest wins, with a warning.
  CHECK(c.limits.max_qos == 1);
  CHECK(c.limits.topic_alias_maximum == 3);
  CHECK(Warnings(c) ==
        "m.conf:11: max_qos: Parley's max_qos applies to every listener: the lowest, 1, is used for all\n"
        "m.conf:12: max_topic_alias: Parley's max_topic_alias applies to every listener: the lowest, 3, is "
        "used "
        "for all\n");

  SUBCASE("0 (or less) means no limit") {
    const Config d = Parsed(std::string(kListener) +
                            "max_inflight_messages 0\nmax_queued_messages 0\nmax_queued_bytes 0\n");
    CHECK(d.limits.max_inflight == 65535);
    CHECK(d.limits.receive_maximum == 65535);
    CHECK(d.limits.max_queued_messages == 4294967295u);
    CHECK(d.limits.max_queued_bytes == UINT64_MAX);
    CHECK(Parsed(std::string(kListener) + "max_inflight_messages -1\n").limits.max_inflight == 65535);
  }
  SUBCASE("sys_interval 0 turns $SYS off") {
    CHECK_FALSE(Parsed("sys_interval 0\n").sys.enabled);
  }
  SUBCASE("persistent_client_expiration units") {
    CHECK(*Parsed("persistent_client_expiration 3h\n").limits.max_session_expiry == 3 * 3600);
    CHECK(*Parsed("persistent_client_expiration 1w\n").limits.max_session_expiry == 7 * 86400);
    CHECK(*Parsed("persistent_client_expiration 1m\n").limits.max_session_expiry == 30 * 86400);
    CHECK(*Parsed("persistent_client_expiration 1y\n").limits.max_session_expiry == 365 * 86400);
    CHECK(*Parsed("persistent_client_expiration 500y\n").limits.max_session_expiry == 4294967295u);
  }
  SUBCASE("message_size_limit: a packet limit with headroom, and a warning") {
    const Config d = Parsed("message_size_limit 10000\n");
    CHECK(d.limits.max_packet_size == 11024);
    REQUIRE(d.warnings.size() == 1);
    CHECK(d.warnings[0].rfind("m.conf:1: message_size_limit: approximated by max_packet_size = 11024: Parley "
                              "limits whole packets",
                              0) == 0);
    CHECK(Parsed("max_packet_size 5000\nmessage_size_limit 10000\n").limits.max_packet_size == 5000);
    CHECK(Parsed("message_size_limit 0\n").limits.max_packet_size == Limits{}.max_packet_size);
  }
  SUBCASE("a large max_packet_size raises the outbound buffer to hold one packet") {
    const Config d = Parsed("max_packet_size 100000000\n");
    CHECK(d.limits.max_packet_size == 100000000);
    CHECK(d.limits.max_outbound_buffer == 100000000 + 65536);
    CHECK(Parsed("max_packet_size 999999999\n").limits.max_packet_size == 268435460);
  }
  SUBCASE("memory_limit: overload.memory_high, with a warning") {
    const Config d = Parsed("memory_limit 1000000000\n");
    CHECK(d.overload.memory_high == 1000000000);
    CHECK(d.warnings.size() == 1);
  }
  SUBCASE("errors") {
    CHECK(ErrorOf("max_keepalive 5\n") == "m.conf:1: max_keepalive: must be between 10 and 65535 (got 5)");
    CHECK(ErrorOf("max_inflight_messages 70000\n") ==
          "m.conf:1: max_inflight_messages: must be at most 65535 (got 70000)");
    CHECK(ErrorOf("max_packet_size 10\n") == "m.conf:1: max_packet_size: must be at least 20 bytes (got 10)");
    CHECK(ErrorOf("max_queued_messages lots\n") ==
          "m.conf:1: max_queued_messages: must be an integer (got \"lots\")");
    CHECK(ErrorOf("max_queued_messages 99999999999999999999\n") ==
          "m.conf:1: max_queued_messages: is out of range (got \"99999999999999999999\")");
    CHECK(ErrorOf("sys_interval\n") == "m.conf:1: sys_interval: needs a value");
    CHECK(ErrorOf("listener 1 127.0.0.1\nmax_qos 3\n") == "m.conf:2: max_qos: must be 0, 1 or 2 (got 3)");
    CHECK(ErrorOf("persistent_client_expiration 14\n") ==
          "m.conf:1: persistent_client_expiration: must be a positive whole number and a unit h, d, w, m (30 "
          "days) or y (365 days), e.g. 14d (got \"14\")");
    CHECK(ErrorOf("persistent_client_expiration 0d\n")
              .rfind("m.conf:1: persistent_client_expiration: must", 0) == 0);
    CHECK(ErrorOf("message_size_limit 268435456\n") ==
          "m.conf:1: message_size_limit: must be between 0 (no limit) and 268435455 bytes (got 268435456)");
  }
  SUBCASE("a trailing comment is ignored; other trailing text with a warning") {
    CHECK(Parsed("max_queued_messages 10 # per client\n").warnings.empty());
    const std::string w = OnlyWarning("max_queued_messages 10 messages\n", "m.conf:1: max_queued_messages: ");
    CHECK(w == "m.conf:1: max_queued_messages: the text after the value is ignored (\"messages\")");
  }
}

TEST_CASE("authentication and access control") {
  SUBCASE("files resolve against the config's directory") {
    const Config c = Parsed(std::string(kListener) + "password_file passwd\nacl_file /etc/mosquitto/acl\n",
                            "/etc/mosquitto/mosquitto.conf");
    CHECK(c.auth.password_file == "/etc/mosquitto/passwd");
    CHECK(c.auth.acl_file == "/etc/mosquitto/acl");
    CHECK(ParseMosquittoConfig("password_file p\n", "x/m.conf", "/base")->auth.password_file == "/base/p");
  }
  SUBCASE("allow_anonymous: the last one wins; booleans are true/false/1/0") {
    CHECK(Parsed(std::string(kListener) + "allow_anonymous true\nallow_anonymous 0\n").auth.allow_anonymous ==
          false);
    CHECK(Parsed(std::string(kListener) + "allow_anonymous 1\n").auth.allow_anonymous);
    CHECK(ErrorOf("allow_anonymous yes\n") ==
          "m.conf:1: allow_anonymous: must be true or false (got \"yes\")");
  }
  SUBCASE("a file given twice is an error, as in Mosquitto") {
    CHECK(ErrorOf("password_file a\npassword_file b\n") ==
          "m.conf:2: password_file: is given twice (first at line 1)");
    CHECK(ErrorOf("acl_file\n") == "m.conf:1: acl_file: needs a value");
  }
  SUBCASE("per_listener_settings: global in Parley") {
    const Config c = Parsed(R"(per_listener_settings true
listener 1883 127.0.0.1
allow_anonymous true
password_file passwd
listener 8883 127.0.0.1
password_file passwd
acl_file acl
)");
    CHECK_FALSE(c.auth.allow_anonymous);  // 8883 refused anonymous clients
    CHECK(c.auth.password_file == "passwd");
    CHECK(c.auth.acl_file == "acl");
    const std::string w = Warnings(c);
    CHECK(w.find("m.conf:1: per_listener_settings: Parley's authentication is global") == 0);
    CHECK(w.find("m.conf:1: per_listener_settings: listeners differ in allow_anonymous") !=
          std::string::npos);

    CHECK(Parsed(
              "per_listener_settings true\nlistener 1 127.0.0.1\nallow_anonymous true\nlistener 2 127.0.0.1\n"
              "allow_anonymous true\n")
              .auth.allow_anonymous);
    CHECK(
        ErrorOf("per_listener_settings true\nlistener 1 127.0.0.1\npassword_file a\nlistener 2 127.0.0.1\n"
                "password_file b\n") ==
        "m.conf:5: password_file: Parley has one password_file for all listeners, and this one differs from "
        "line 3: merge them into one file");
    CHECK(ErrorOf("allow_anonymous true\nper_listener_settings true\n") ==
          "m.conf:2: per_listener_settings: must come before password_file, acl_file and allow_anonymous "
          "(first "
          "at line 1)");
  }
  SUBCASE("options without an equivalent") {
    OnlyWarning("allow_zero_length_clientid false\n", "m.conf:1: allow_zero_length_clientid: not supported");
    CHECK(Parsed("allow_zero_length_clientid true\n").warnings.empty());
    OnlyWarning("auto_id_prefix dev-\n", "m.conf:1: auto_id_prefix: ignored");
    OnlyWarning("clientid_prefixes secure-\n", "m.conf:1: clientid_prefixes: not supported");
    OnlyWarning("psk_file /etc/psk\n", "m.conf:1: psk_file: not supported");
    OnlyWarning("listener 1 127.0.0.1\nmount_point tenant1/\n",
                "m.conf:2: mount_point: not supported: clients of "
                "this listener share one topic tree");
    OnlyWarning("listener 1 127.0.0.1\nuse_username_as_clientid true\n",
                "m.conf:2: use_username_as_clientid: ");
    OnlyWarning("listener 1 127.0.0.1\nbind_interface eth0\n", "m.conf:2: bind_interface: not supported");
  }
  SUBCASE("plugins: a warning naming the plugin, and what an absent ACL means") {
    const Config c =
        Parsed("plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file /d.json\n");
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0] ==
          "m.conf:1: plugin: plugins are not supported: \"/usr/lib/mosquitto_dynamic_security.so\" is not "
          "loaded; "
          "export the Dynamic Security clients and roles into password_file and acl_file. With no acl_file, "
          "every "
          "client may publish and subscribe to every topic");
    const Config d = Parsed("auth_plugin /usr/lib/auth.so\nauth_opt_backends mysql\nacl_file acl\n");
    REQUIRE(d.warnings.size() == 1);
    CHECK(d.warnings[0].rfind("m.conf:1: auth_plugin: plugins are not supported: \"/usr/lib/auth.so\" is not "
                              "loaded; use password_file and acl_file",
                              0) == 0);
    CHECK(d.warnings[0].find("With no acl_file") == std::string::npos);
    CHECK(ErrorOf("auth_opt_x 1\n") ==
          "m.conf:1: auth_opt_x: needs a `plugin` (or `auth_plugin`) line before it");
  }
}

TEST_CASE("persistence") {
  SUBCASE("off by default, as in Mosquitto") {
    CHECK_FALSE(Parsed("persistence false\n").storage.enabled);
  }
  SUBCASE("on, in a parley/ directory under persistence_location") {
    const Config c = Parsed("persistence true\npersistence_location /var/lib/mosquitto/\n");
    CHECK(c.storage.enabled);
    CHECK(c.storage.durability == "fsync");
    CHECK(c.data_dir == "/var/lib/mosquitto/parley");
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0] ==
          "m.conf:1: persistence: Parley keeps its own store in \"/var/lib/mosquitto/parley\" and does not "
          "read "
          "Mosquitto's mosquitto.db: retained messages and persistent sessions saved by Mosquitto are not "
          "carried over");
  }
  SUBCASE("without persistence_location: next to the config file") {
    const Config c = Parsed("persistence true\n", "/etc/mosquitto/mosquitto.conf");
    CHECK(c.data_dir == "/etc/mosquitto/parley");
    CHECK(Warnings(c).find("set persistence_location") != std::string::npos);
    CHECK(Parsed("retained_persistence true\npersistence_location data\n", "/srv/m.conf").data_dir ==
          "/srv/data/parley");
  }
  SUBCASE("nothing to configure") {
    OnlyWarning("autosave_interval 1800\n",
                "m.conf:1: autosave_interval: ignored: Parley writes every change to "
                "disk before acknowledging it");
    OnlyWarning("autosave_on_changes true\n", "m.conf:1: autosave_on_changes: ignored");
    OnlyWarning("persistence_file mosquitto.db\n", "m.conf:1: persistence_file: ignored");
    CHECK(ErrorOf("autosave_on_changes maybe\n") ==
          "m.conf:1: autosave_on_changes: must be true or false (got \"maybe\")");
  }
}

TEST_CASE("logging") {
  CHECK(Parsed("log_type error\n").log.level == "error");
  CHECK(Parsed("log_type error\nlog_type warning\n").log.level == "warn");
  CHECK(Parsed("log_type notice\n").log.level == "info");
  CHECK(Parsed("log_type all\n").log.level == "debug");
  CHECK(Parsed("log_type debug\nlog_type none\nlog_type error\n").log.level == "error");
  CHECK(Parsed("log_type none\n").log.level == "off");
  CHECK(Parsed("log_dest none\n").log.level == "off");
  CHECK(Parsed("log_dest none\nlog_dest stderr\n").log.level == "info");
  CHECK(Parsed("log_dest stdout\nlog_dest stderr\nlog_timestamp true\nconnection_messages false\n")
            .warnings.empty());
  OnlyWarning("log_dest syslog\n",
              "m.conf:1: log_dest: not supported: Parley logs to standard output; under systemd");
  CHECK(OnlyWarning("log_dest file /var/log/mosquitto/mosquitto.log\n", "m.conf:1: log_dest: ")
            .find("StandardOutput=append:/var/log/mosquitto/mosquitto.log") != std::string::npos);
  OnlyWarning("log_dest topic\n", "m.conf:1: log_dest: not supported");
  OnlyWarning("log_type subscribe\n",
              "m.conf:1: log_type: ignored: Parley has no separate subscribe log category");
  OnlyWarning("log_timestamp false\n", "m.conf:1: log_timestamp: ignored");
  OnlyWarning("log_timestamp_format %Y-%m-%dT%H:%M:%S\n", "m.conf:1: log_timestamp_format: ignored");
  OnlyWarning("log_facility 5\n", "m.conf:1: log_facility: ignored");
  OnlyWarning("connection_messages true\n",
              "m.conf:1: connection_messages: Parley logs client connections at debug");
  CHECK(Parsed("connection_messages true\nlog_type all\n").warnings.empty());
  CHECK(ErrorOf("log_type verbose\n").rfind("m.conf:1: log_type: must be debug, error,", 0) == 0);
  CHECK(ErrorOf("log_dest printer\n").rfind("m.conf:1: log_dest: must be stdout, stderr,", 0) == 0);
}

TEST_CASE("process, bridges, unknown and silently irrelevant options") {
  OnlyWarning("pid_file /run/m.pid\n", "m.conf:1: pid_file: ignored: parleyd writes no pid file");
  OnlyWarning("user mosquitto\n", "m.conf:1: user: ignored: parleyd does not switch users");
  OnlyWarning("queue_qos0_messages true\n", "m.conf:1: queue_qos0_messages: not supported");
  OnlyWarning("upgrade_outgoing_qos true\n", "m.conf:1: upgrade_outgoing_qos: not supported");
  OnlyWarning("check_retain_source true\n", "m.conf:1: check_retain_source: not supported");
  OnlyWarning("max_inflight_bytes 1000\n", "m.conf:1: max_inflight_bytes: not supported");
  OnlyWarning("retain_expiry_interval 10\n", "m.conf:1: retain_expiry_interval: not supported");
  OnlyWarning("retry_interval 20\n", "m.conf:1: retry_interval: ignored, as by Mosquitto 2.0");
  CHECK(Parsed("set_tcp_nodelay true\nallow_duplicate_messages false\nwebsockets_headers_size 4096\n"
               "queue_qos0_messages false\nupgrade_outgoing_qos false\ncheck_retain_source false\n")
            .warnings.empty());

  SUBCASE("a bridge is one warning, whatever its options") {
    const Config c = Parsed(R"(connection cloud
address mqtt.example.com:1883
topic sensors/# out 1
remote_username u
listener 1883 127.0.0.1
connection backup
addresses a:1 b:2
cleansession true
)");
    REQUIRE(c.listeners.size() == 1);  // the listener line inside the bridge section is still a listener
    REQUIRE(c.warnings.size() == 2);
    CHECK(c.warnings[0] ==
          "m.conf:1: connection: bridges are not supported: bridge \"cloud\" to \"mqtt.example.com:1883\" "
          "and its "
          "options are ignored, so no messages flow to or from that broker; run the bridge in a separate "
          "Mosquitto instance, which connects to Parley as an ordinary client");
    CHECK(c.warnings[1].rfind(
              "m.conf:6: connection: bridges are not supported: bridge \"backup\" to \"a:1 b:2\"", 0) == 0);
    CHECK(ErrorOf("topic sensors/# out 1\n") ==
          "m.conf:1: topic: is a bridge option: it belongs after a `connection <name>` line");
  }
  SUBCASE("unknown options: a warning, with a suggestion when close") {
    const std::string w = OnlyWarning("max_queued_mesages 10\n", "m.conf:1: max_queued_mesages: ");
    CHECK(w ==
          "m.conf:1: max_queued_mesages: unknown option: ignored (did you mean max_queued_messages?); it is "
          "not a Mosquitto 2.0 option this Parley knows");
    CHECK(OnlyWarning("colour\x01 blue\n", "m.conf:1: colour\\x01: unknown option").find('\x01') ==
          std::string::npos);
  }
}

TEST_CASE("file format: comments, blanks, CRLF, tabs") {
  const Config c = Parsed(
      "# comment\r\n\r\n   # indented comment\n\tlistener\t1883  127.0.0.1 \r\n"
      "allow_anonymous true\r\n");
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].bind == "127.0.0.1");
  CHECK(c.auth.allow_anonymous);
  CHECK(c.warnings.empty());
  // String values are the rest of the line, inner blanks included (as in Mosquitto).
  CHECK(Parsed("password_file /etc/my files/passwd  \n").auth.password_file == "/etc/my files/passwd");
  CHECK(ErrorOf(std::string("allow_anonymous true\nuser a\0b\n", 30)) ==
        "m.conf:2: user: the line contains a NUL byte");
}

TEST_CASE("every error is reported, in line order, capped at 20") {
  CHECK(ErrorOf("max_keepalive 1\nallow_anonymous maybe\nlistener 99999\n") ==
        "m.conf:1: max_keepalive: must be between 10 and 65535 (got 1)\n"
        "m.conf:2: allow_anonymous: must be true or false (got \"maybe\")\n"
        "m.conf:3: listener: must be a port between 1 and 65535 (got 99999)");
  std::string many;
  for (int i = 0; i < 25; ++i) many += "retain_available perhaps\n";
  const std::string e = ErrorOf(many);
  CHECK(std::count(e.begin(), e.end(), '\n') == 20);
  CHECK(e.substr(e.rfind('\n') + 1) == "m.conf: (5 more errors)");
}

TEST_CASE("include_dir: *.conf files in Mosquitto's order, errors naming the included file") {
  parley::testing::TempDir dir("mosq");
  dir.Write("conf.d/b.conf", "max_queued_messages 2\n");
  dir.Write("conf.d/A.conf", "max_queued_messages 1\nlistener 1883 127.0.0.1\n");
  dir.Write("conf.d/a.conf", "pid_file /run/x.pid\n");
  dir.Write("conf.d/00.conf", "include_dir elsewhere\n");
  dir.Write("conf.d/B.conf", "max_queued_messages 3\n");
  dir.Write("conf.d/notes.txt", "this is not read\n");
  dir.Write("conf.d/.conf", "not read either\n");
  const std::string main = dir.Write("mosquitto.conf", "allow_anonymous true\ninclude_dir conf.d\n");
  Result<Config> r = LoadConfigFile(main);
  INFO(r.status().message());
  REQUIRE(r.ok());
  // 00, A, a, B, b: the last max_queued_messages is b's.
  CHECK(r->limits.max_queued_messages == 2);
  REQUIRE(r->listeners.size() == 1);
  CHECK(r->auth.allow_anonymous);
  const std::string d = dir.path() + "/conf.d/";
  REQUIRE(r->warnings.size() == 2);
  CHECK(r->warnings[0] ==
        d + "00.conf:1: include_dir: ignored: include_dir is read only from the main config file "
            "(as Mosquitto does)");
  CHECK(r->warnings[1].rfind(d + "a.conf:1: pid_file: ", 0) == 0);

  SUBCASE("errors in an included file name it") {
    dir.Write("conf.d/c.conf", "\n\nmax_keepalive 3\n");
    CHECK(LoadConfigFile(main).status().message() ==
          d + "c.conf:3: max_keepalive: must be between 10 and 65535 (got 3)");
  }
  SUBCASE("a missing directory is an error") {
    const std::string m2 = dir.Write("m2.conf", "\ninclude_dir nope\n");
    CHECK(LoadConfigFile(m2).status().message().rfind(
              m2 + ":2: include_dir: cannot read the directory \"" + dir.path() + "/nope\"", 0) == 0);
  }
}

TEST_CASE("LoadConfigFile dispatches on content, then on the name") {
  parley::testing::TempDir dir("mosq");
  SUBCASE("a .conf file is Mosquitto; paths are absolute") {
    const std::string p = dir.Write("etc/mosquitto.conf", "listener 1883 127.0.0.1\npassword_file passwd\n");
    Result<Config> r = LoadConfigFile(p);
    REQUIRE(r.ok());
    CHECK(r->source_path == p);
    CHECK(r->auth.password_file == dir.path() + "/etc/passwd");
    CHECK_FALSE(r->auth.allow_anonymous);
  }
  SUBCASE("Mosquitto content under another name") {
    const std::string p = dir.Write("broker.cfg", "listener 1883 127.0.0.1\n");
    Result<Config> r = LoadConfigFile(p);
    REQUIRE(r.ok());
    CHECK_FALSE(r->auth.allow_anonymous);
  }
  SUBCASE("TOML stays TOML, even named .conf") {
    const std::string p = dir.Write("parley.conf", "[[listener]]\nname = \"mqtt\"\n");
    Result<Config> r = LoadConfigFile(p);
    REQUIRE(r.ok());
    CHECK(r->listeners[0].name == "mqtt");
    CHECK(r->auth.allow_anonymous);  // TOML's default
    CHECK(r->warnings.empty());
  }
  SUBCASE("errors name the path as given") {
    const std::string p = dir.Write("bad.conf", "listener 1883 127.0.0.1\nmax_keepalive 0\n");
    CHECK(LoadConfigFile(p).status().message() ==
          p + ":2: max_keepalive: must be between 10 and 65535 (got 0)");
  }
}

TEST_CASE("hostile input never throws and keeps one problem per line") {
  std::mt19937 rng(7);
  const std::string words[] = {"listener", "port",       "certfile", "keyfile",    "include_dir",
                               "max_qos",  "connection", "1883",     "::",         "true",
                               "#",        "\t",         "\n",       "\r",         "\x01",
                               "\xff",     " ",          "-1",       "99999999999"};
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    const int n = static_cast<int>(rng() % 30);
    for (int j = 0; j < n; ++j) text += words[rng() % std::size(words)] + std::string(rng() % 2 ? " " : "");
    Result<Config> r = ParseMosquittoConfig(text, "f.conf", "/nonexistent");
    if (!r.ok()) {
      std::istringstream lines(r.status().message());
      for (std::string line; std::getline(lines, line);) CHECK(line.rfind("f.conf", 0) == 0);
    } else {
      for (const std::string& w : r->warnings) CHECK(w.find_first_of("\r\n\x01") == std::string::npos);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// The shipped sample and the doc that walks through it.

TEST_CASE("conf/mosquitto-example.conf: its translation and warnings") {
  const fs::path conf = RepoRoot() / "conf" / "mosquitto-example.conf";
  Result<Config> r = ParseMosquittoConfig(ReadText(conf), "mosquitto-example.conf");
  INFO(r.status().message());
  REQUIRE(r.ok());
  const Config& c = *r;
  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].name == "listener-1883");
  CHECK(c.listeners[0].bind == "192.168.1.10");
  CHECK(c.listeners[0].max_connections == 5000);
  CHECK(c.listeners[1].protocol == "mqtts");
  CHECK(c.listeners[1].tls->username_from_cert == "cn");
  CHECK(c.listeners[2].protocol == "ws");
  CHECK_FALSE(c.auth.allow_anonymous);
  CHECK(c.storage.enabled);
  CHECK(c.data_dir == "/var/lib/mosquitto/parley");
  std::vector<std::string> options;  // "<line>: <option>" of each warning
  for (const std::string& w : c.warnings) {
    const size_t a = w.find(':'), b = w.find(':', w.find(':', a + 1) + 1);
    options.push_back(w.substr(a + 1, b - a - 1));
  }
  std::vector<std::string> expected = {"10: pid_file",          "11: user",     "14: persistence",
                                       "16: autosave_interval", "18: log_dest", "24: connection_messages",
                                       "45: listener",          "54: listener"};
  expected.push_back("58: connection");
  CHECK(options == expected);
}

TEST_CASE("docs/migrating-from-mosquitto.md: the TOML it shows is the sample's translation") {
  const std::string doc = ReadText(RepoRoot() / "docs" / "migrating-from-mosquitto.md");
  const std::string marker = "<!-- mosquitto-example.toml -->\n```toml\n";
  const size_t start = doc.find(marker);
  REQUIRE(start != std::string::npos);
  const size_t body = start + marker.size();
  const std::string toml = doc.substr(body, doc.find("```", body) - body);
  Result<Config> native = ParseConfig(toml, "mosquitto-example.toml");
  INFO(native.status().message());
  REQUIRE(native.ok());
  Result<Config> translated = ParseMosquittoConfig(ReadText(RepoRoot() / "conf" / "mosquitto-example.conf"),
                                                   "mosquitto-example.conf");
  REQUIRE(translated.ok());
  Config a = *native, b = *translated;
  a.source_path = b.source_path = "";
  b.warnings.clear();
  CHECK(a.listeners == b.listeners);
  CHECK(a.limits == b.limits);
  CHECK(a.auth == b.auth);
  CHECK(a.storage == b.storage);
  CHECK(a.log == b.log);
  CHECK(a == b);
}

}  // namespace
}  // namespace parley::config
