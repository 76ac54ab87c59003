#include "broker/guard/ban_list.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "unit/temp_dir.h"

namespace parley::broker::guard {
namespace {

using testing::TempDir;

constexpr int64_t kNow = 1'700'000'000'000;  // 2023-11-14T22:13:20Z

IpAddress Ip(std::string_view text) {
  auto a = IpAddress::Parse(text);
  REQUIRE(a.has_value());
  return *a;
}

BanRule Rule(BanKind kind, std::string value, std::optional<int64_t> until = std::nullopt,
             std::string reason = "") {
  return BanRule{kind, std::move(value), until, std::move(reason)};
}

void MustAdd(BanList& list, BanRule rule, int64_t now = kNow) {
  const Status st = list.Add(std::move(rule), now);
  INFO(st.message());
  REQUIRE(st.ok());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ParseError(std::string_view text) {
  auto r = BanList::Parse(text, "bans.txt");
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

TEST_CASE("exact address bans, IPv4, IPv6 and mapped") {
  BanList list({});
  CHECK_FALSE(list.CheckAddress(Ip("192.0.2.7"), kNow));  // empty list: the fast path
  MustAdd(list, Rule(BanKind::kAddress, "192.0.2.7", std::nullopt, "stuffing"));
  MustAdd(list, Rule(BanKind::kAddress, "2001:DB8::7"));
  auto hit = list.CheckAddress(Ip("192.0.2.7"), kNow);
  REQUIRE(hit);
  CHECK(hit->kind == BanKind::kAddress);
  CHECK(hit->value == "192.0.2.7");
  CHECK(hit->reason == "stuffing");
  CHECK(list.CheckAddress(Ip("::ffff:192.0.2.7"), kNow));
  CHECK_FALSE(list.CheckAddress(Ip("192.0.2.8"), kNow));
  CHECK(list.CheckAddress(Ip("2001:db8::7"), kNow)->value == "2001:db8::7");
  CHECK_FALSE(list.CheckAddress(Ip("2001:db8::8"), kNow));
  CHECK_FALSE(list.CheckAddress(IpAddress(), kNow));
  CHECK(list.size() == 2);
}

TEST_CASE("prefix bans, the most specific rule first, families kept apart") {
  BanList list({});
  MustAdd(list, Rule(BanKind::kAddress, "10.0.0.0/8", std::nullopt, "wide"));
  MustAdd(list, Rule(BanKind::kAddress, "10.1.0.0/16", std::nullopt, "narrow"));
  MustAdd(list, Rule(BanKind::kAddress, "2001:db8::/32"));
  MustAdd(list, Rule(BanKind::kAddress, "::ffff:172.16.0.0/108"));  // 172.16.0.0/12
  CHECK(list.CheckAddress(Ip("10.1.2.3"), kNow)->reason == "narrow");
  CHECK(list.CheckAddress(Ip("10.2.2.3"), kNow)->reason == "wide");
  CHECK(list.CheckAddress(Ip("10.2.2.3"), kNow)->value == "10.0.0.0/8");
  CHECK_FALSE(list.CheckAddress(Ip("11.0.0.1"), kNow));
  CHECK(list.CheckAddress(Ip("2001:db8:abcd::1"), kNow)->value == "2001:db8::/32");
  CHECK_FALSE(list.CheckAddress(Ip("2001:db9::1"), kNow));
  CHECK(list.CheckAddress(Ip("172.31.255.255"), kNow)->value == "172.16.0.0/12");
  CHECK_FALSE(list.CheckAddress(Ip("::a01:203"), kNow));  // ::10.1.2.3 is IPv6, not 10.1.2.3

  BanList v6all({});
  MustAdd(v6all, Rule(BanKind::kAddress, "::/0"));
  CHECK(v6all.CheckAddress(Ip("2001:db8::1"), kNow));
  CHECK_FALSE(v6all.CheckAddress(Ip("10.0.0.1"), kNow));
}

TEST_CASE("client id and user name bans") {
  BanList list({});
  MustAdd(list, Rule(BanKind::kClientId, "sensor 17", std::nullopt, "loop"));
  MustAdd(list, Rule(BanKind::kUsername, "mallory"));
  CHECK(list.CheckClient("sensor 17", "", kNow)->reason == "loop");
  CHECK(list.CheckClient("sensor 17", "mallory", kNow)->kind == BanKind::kClientId);  // client id first
  CHECK(list.CheckClient("ok", "mallory", kNow)->kind == BanKind::kUsername);
  CHECK_FALSE(list.CheckClient("Sensor 17", "Mallory", kNow));  // case-sensitive
  CHECK_FALSE(list.CheckClient("", "", kNow));
  CHECK_FALSE(list.CheckClient("mallory", "", kNow));  // kinds do not mix
  CHECK_FALSE(list.CheckAddress(Ip("1.2.3.4"), kNow));
}

TEST_CASE("expiry: in force until `until`, then ignored, then swept") {
  BanList list({});
  MustAdd(list, Rule(BanKind::kAddress, "192.0.2.1", kNow + 1000));
  MustAdd(list, Rule(BanKind::kAddress, "10.0.0.0/8", kNow + 2000));
  MustAdd(list, Rule(BanKind::kAddress, "10.0.0.0/16"));
  MustAdd(list, Rule(BanKind::kClientId, "c", kNow + 1000));
  CHECK(list.CheckAddress(Ip("192.0.2.1"), kNow + 999));
  CHECK_FALSE(list.CheckAddress(Ip("192.0.2.1"), kNow + 1000));
  CHECK(list.CheckClient("c", "", kNow + 999));
  CHECK_FALSE(list.CheckClient("c", "", kNow + 1000));
  // An expired wide rule does not hide behind a live one, nor the other way round.
  CHECK(list.CheckAddress(Ip("10.1.0.1"), kNow + 5000) == std::nullopt);
  CHECK(list.CheckAddress(Ip("10.0.0.1"), kNow + 5000)->value == "10.0.0.0/16");
  CHECK(list.List(kNow + 1500).size() == 2);
  CHECK(list.size() == 4);
  CHECK(list.Sweep(kNow + 1500) == 2);
  CHECK(list.size() == 2);
  CHECK(list.Sweep(kNow + 1500) == 0);
  CHECK(list.Sweep(kNow + 2000) == 1);
  CHECK(list.List(kNow + 2000).size() == 1);

  const Status st = list.Add(Rule(BanKind::kUsername, "u", kNow), kNow);
  CHECK_FALSE(st.ok());  // already expired
}

TEST_CASE("Add replaces a rule of the same kind and value; Remove takes any spelling") {
  BanList list({});
  MustAdd(list, Rule(BanKind::kAddress, "10.0.0.5/32", std::nullopt, "first"));
  MustAdd(list, Rule(BanKind::kAddress, "::ffff:10.0.0.5", kNow + 10, "second"));
  CHECK(list.size() == 1);
  const auto rules = list.List(kNow);
  REQUIRE(rules.size() == 1);
  CHECK(rules[0] == Rule(BanKind::kAddress, "10.0.0.5", kNow + 10, "second"));

  CHECK(list.Remove(BanKind::kAddress, "10.0.0.5/32", kNow).ok());
  CHECK(list.size() == 0);
  CHECK_FALSE(list.CheckAddress(Ip("10.0.0.5"), kNow));
  CHECK_FALSE(list.Remove(BanKind::kAddress, "10.0.0.5", kNow).ok());
  CHECK_FALSE(list.Remove(BanKind::kClientId, "nobody", kNow).ok());
  CHECK_FALSE(list.Remove(BanKind::kAddress, "not an address", kNow).ok());

  MustAdd(list, Rule(BanKind::kAddress, "2001:db8::/48"));
  CHECK(list.Remove(BanKind::kAddress, "2001:0db8:0000::/48", kNow).ok());
  CHECK_FALSE(list.CheckAddress(Ip("2001:db8::1"), kNow));
}

TEST_CASE("invalid rules are refused") {
  BanList list({});
  CHECK_FALSE(list.Add(Rule(BanKind::kAddress, "10.1.2.3/8"), kNow).ok());  // host bits
  CHECK_FALSE(list.Add(Rule(BanKind::kAddress, "example.com"), kNow).ok());
  CHECK_FALSE(list.Add(Rule(BanKind::kClientId, ""), kNow).ok());
  CHECK_FALSE(list.Add(Rule(BanKind::kUsername, std::string(BanList::kMaxValueBytes + 1, 'x')), kNow).ok());
  CHECK(list.Add(Rule(BanKind::kUsername, std::string(BanList::kMaxValueBytes, 'x')), kNow).ok());
  CHECK_FALSE(
      list.Add(Rule(BanKind::kUsername, "y", std::nullopt, std::string(BanList::kMaxReasonBytes + 1, 'r')),
               kNow)
          .ok());
  CHECK(list.size() == 1);
}

TEST_CASE("the rule limit: live rules only, replacing is always allowed") {
  BanList list({.max_rules = 3, .path = ""});
  MustAdd(list, Rule(BanKind::kClientId, "a"));
  MustAdd(list, Rule(BanKind::kClientId, "b"));
  MustAdd(list, Rule(BanKind::kClientId, "c", kNow + 10));
  const Status full = list.Add(Rule(BanKind::kClientId, "d"), kNow);
  CHECK_FALSE(full.ok());
  CHECK(full.message().find("full") != std::string::npos);
  MustAdd(list, Rule(BanKind::kClientId, "a", std::nullopt, "updated"));
  MustAdd(list, Rule(BanKind::kClientId, "d"), kNow + 10);  // "c" has expired: purged to make room
  CHECK(list.size() == 3);
  CHECK(list.CheckClient("d", "", kNow + 10));
}

TEST_CASE("many exact bans and prefixes: lookups stay correct") {
  BanList list({});
  for (uint32_t i = 0; i < 20'000; ++i)
    MustAdd(list, Rule(BanKind::kAddress, IpAddress::V4(0x0a000000 + i * 3).ToString()));
  for (int len = 9; len <= 24; ++len)
    MustAdd(list, Rule(BanKind::kAddress, IpPrefix::Of(Ip("172.16.0.0"), len).ToString()));
  CHECK(list.CheckAddress(IpAddress::V4(0x0a000000 + 3 * 777), kNow));
  CHECK_FALSE(list.CheckAddress(IpAddress::V4(0x0a000000 + 3 * 777 + 1), kNow));
  CHECK(list.CheckAddress(Ip("172.16.0.9"), kNow)->value == "172.16.0.0/24");
  CHECK(list.CheckAddress(Ip("172.16.1.9"), kNow)->value == "172.16.0.0/23");
  CHECK(list.CheckAddress(Ip("172.127.1.9"), kNow)->value == "172.0.0.0/9");
  CHECK(list.size() == 20'000 + 16);
}

TEST_CASE("the file format round-trips every byte a value can hold") {
  const std::vector<BanRule> rules = {
      Rule(BanKind::kAddress, "10.0.0.0/8", 1'796'083'200'000, "abuse from this range"),
      Rule(BanKind::kAddress, "2001:db8::/32"),
      Rule(BanKind::kClientId, "sensor 17", 1'709'209'805'250, "firmware \"loop\" \\ here"),
      Rule(BanKind::kClientId, std::string("ctl\x01\x7f\t\n\r#=\0z", 12)),
      Rule(BanKind::kClientId, "until=2026-01-01T00:00:00Z"),
      Rule(BanKind::kClientId, "\xc3\xa9t\xc3\xa9"),  // UTF-8 passes through bare
      Rule(BanKind::kUsername, "mallory", std::nullopt, "x"),
  };
  const std::string text = BanList::Format(rules);
  CHECK(text.find("address 10.0.0.0/8 until=2026-12-01T00:00:00Z reason=\"abuse from this range\"\n") !=
        std::string::npos);
  CHECK(text.find("clientid \"sensor 17\" until=2024-02-29T12:30:05.250Z") != std::string::npos);
  CHECK(text.find("clientid \"ctl\\x01\\x7f\\t\\n\\r#=\\x00z\"") != std::string::npos);
  CHECK(text.find("username mallory reason=\"x\"\n") != std::string::npos);
  auto parsed = BanList::Parse(text, "t");
  INFO(parsed.status().message());
  REQUIRE(parsed.ok());
  CHECK(*parsed == rules);
}

TEST_CASE("the parser: comments, spacing, CRLF, options in any order") {
  auto r = BanList::Parse(
      "# header\n"
      "\n"
      "   \t\n"
      "  address   192.0.2.1\t reason=\"tabs \\t and quotes\"   until=2026-12-01T00:00:00.5Z  \r\n"
      "clientid a#b reason=bare\n"
      "username \"\" \n"
      "   # indented comment\n",
      "t");
  // An empty user name is not a valid rule: the error names line 6.
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().rfind("t:6: ", 0) == 0);

  auto ok = BanList::Parse(
      "  address   192.0.2.1\t reason=\"tabs \\t and quotes\"   until=2026-12-01T00:00:00.5Z  \r\n"
      "clientid a#b reason=bare\n"
      "clientid x reason=\n"
      "username \"\\x41\\x62\"",  // no final newline
      "t");
  INFO(ok.status().message());
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 4);
  CHECK((*ok)[0] == Rule(BanKind::kAddress, "192.0.2.1", 1'796'083'200'500, "tabs \t and quotes"));
  CHECK((*ok)[1] == Rule(BanKind::kClientId, "a#b", std::nullopt, "bare"));
  CHECK((*ok)[2] == Rule(BanKind::kClientId, "x"));
  CHECK((*ok)[3] == Rule(BanKind::kUsername, "Ab"));
}

TEST_CASE("file errors name the file and line") {
  const std::pair<const char*, const char*> cases[] = {
      {"address 10.0.0.0/8\n# ok\nban 1.2.3.4\n", "bans.txt:3: unknown rule kind"},
      {"address\n", "bans.txt:1: missing value"},
      {"address 10.1.2.3/8\n", "bans.txt:1: bad address"},
      {"address 1.2.3.4 until=2026-13-01T00:00:00Z\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 until=2026-02-29T00:00:00Z\n", "bans.txt:1: bad until="},  // not a leap year
      {"address 1.2.3.4 until=2026-12-01T00:00:00\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 until=2026-12-01T00:00:00+01:00\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 until=2026-12-01T24:00:00Z\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 until=2026-12-01T00:00:00.1234Z\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 until=1969-12-31T23:59:59Z\n", "bans.txt:1: bad until="},
      {"address 1.2.3.4 since=2026-12-01T00:00:00Z\n", "bans.txt:1: unknown option"},
      {"address 1.2.3.4 reason=a reason=b\n", "bans.txt:1: reason= given twice"},
      {"\n\nclientid \"open\n", "bans.txt:3: unterminated quoted string"},
      {"clientid \"a\\q\"\n", "bans.txt:1: unknown escape"},
      {"clientid \"a\\x4\"\n", "bans.txt:1: \\x needs two hex digits"},
      {"clientid \"a\"b\n", "bans.txt:1: no space after a quoted string"},
      {"clientid a\"b\n", "bans.txt:1: unexpected quote"},
      {"clientid \"tab\tinside\"\n", "bans.txt:1: control byte"},
      {"username x\nclientid x\naddress 10.0.0.1\naddress 10.0.0.1/32\n",
       "bans.txt:4: duplicate address rule (first at line 3)"},
  };
  for (const auto& [text, expected] : cases) {
    INFO(text);
    const std::string msg = ParseError(text);
    CHECK(msg.rfind(expected, 0) == 0);
    INFO(msg);
  }
}

TEST_CASE("Load and save through a file") {
  TempDir dir("guard");
  const std::string path = dir.Sub("bans.txt");
  {
    BanList list({.max_rules = 100, .path = path});
    CHECK(list.Load().ok());  // missing: empty
    CHECK(list.size() == 0);
    MustAdd(list, Rule(BanKind::kAddress, "10.0.0.0/8", 1'796'083'200'000, "range"));
    MustAdd(list, Rule(BanKind::kClientId, "sensor 17"));
    MustAdd(list, Rule(BanKind::kUsername, "mallory"));
    CHECK(list.Remove(BanKind::kUsername, "mallory", kNow).ok());
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  CHECK(ReadFile(path).find("address 10.0.0.0/8 until=2026-12-01T00:00:00Z reason=\"range\"\n") !=
        std::string::npos);
  BanList again({.max_rules = 100, .path = path});
  REQUIRE(again.Load().ok());
  CHECK(again.List(kNow) ==
        std::vector<BanRule>{Rule(BanKind::kAddress, "10.0.0.0/8", 1'796'083'200'000, "range"),
                             Rule(BanKind::kClientId, "sensor 17")});
  CHECK(again.CheckAddress(Ip("10.9.9.9"), kNow));

  // A bad file is refused with its path and line, and the rules in force stay.
  dir.Write("bans.txt", "clientid ok\naddress nonsense\n");
  const Status st = again.Load();
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind(path + ":2: ", 0) == 0);
  CHECK(again.size() == 2);

  // More rules than allowed.
  dir.Write("bans.txt", "clientid a\nclientid b\nclientid c\n");
  BanList small({.max_rules = 2, .path = path});
  CHECK_FALSE(small.Load().ok());
  CHECK(small.size() == 0);

  BanList no_path({});
  CHECK_FALSE(no_path.Load().ok());
}

TEST_CASE("a failed save changes nothing: the old file is intact and the old rules stay") {
  TempDir dir("guard");
  const std::string path = dir.Sub("bans.txt");
  BanList list({.max_rules = 100, .path = path});
  MustAdd(list, Rule(BanKind::kClientId, "kept"));
  const std::string before = ReadFile(path);

  // The temporary file cannot be created: a directory is in its way (works even as root).
  std::filesystem::create_directory(path + ".tmp");
  const Status st = list.Add(Rule(BanKind::kClientId, "new"), kNow);
  CHECK_FALSE(st.ok());
  CHECK(st.message().find(path + ".tmp") != std::string::npos);
  CHECK_FALSE(list.CheckClient("new", "", kNow));
  CHECK_FALSE(list.Remove(BanKind::kClientId, "kept", kNow).ok());
  CHECK(list.CheckClient("kept", "", kNow));
  CHECK(ReadFile(path) == before);
  std::filesystem::remove(path + ".tmp");

  // A read-only directory (meaningless as root, who may write anywhere).
  if (::geteuid() != 0) {
    ::chmod(dir.path().c_str(), 0500);
    CHECK_FALSE(list.Add(Rule(BanKind::kClientId, "new"), kNow).ok());
    ::chmod(dir.path().c_str(), 0700);
    CHECK(ReadFile(path) == before);
    CHECK_FALSE(list.CheckClient("new", "", kNow));
  }

  // Sweep keeps memory equal to the file when it cannot save.
  MustAdd(list, Rule(BanKind::kClientId, "brief", kNow + 10));
  std::filesystem::create_directory(path + ".tmp");
  Status sweep_status;
  CHECK(list.Sweep(kNow + 10, &sweep_status) == 0);
  CHECK_FALSE(sweep_status.ok());
  std::filesystem::remove(path + ".tmp");
  CHECK(list.Sweep(kNow + 10, &sweep_status) == 1);
  CHECK(sweep_status.ok());
  CHECK(ReadFile(path).find("brief") == std::string::npos);

  MustAdd(list, Rule(BanKind::kClientId, "new"));
  CHECK(list.CheckClient("new", "", kNow));
}

TEST_CASE("lookups from many threads while rules change") {
  BanList list({});
  MustAdd(list, Rule(BanKind::kAddress, "10.0.0.0/8"));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> hits{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      for (int n = 0; n < 2000 || !stop.load(); ++n) {
        if (list.CheckAddress(Ip("10.1.1.1"), kNow)) hits.fetch_add(1);
        (void)list.CheckAddress(Ip("192.0.2.1"), kNow);
        (void)list.CheckClient("c5", "u", kNow);
      }
    });
  }
  for (int i = 0; i < 500; ++i) {
    MustAdd(list, Rule(BanKind::kClientId, "c" + std::to_string(i % 10)));
    MustAdd(list, Rule(BanKind::kAddress, "192.0.2.0/24", kNow + 1 + i));
    (void)list.Remove(BanKind::kClientId, "c" + std::to_string((i + 5) % 10), kNow);
    list.Sweep(kNow + i);
    (void)list.List(kNow);
  }
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(hits.load() > 0);
  CHECK(list.CheckAddress(Ip("10.1.1.1"), kNow));
}

}  // namespace
}  // namespace parley::broker::guard
