// Unit tests of parleyctl's pure parts: text formats and tables, duration parsing, the mapping of API
// errors to exit codes, token lookup, job progress lines, and restore against fake backup dirs.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tools/ctl/api.h"
#include "tools/ctl/context.h"
#include "tools/ctl/http_client.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/progress.h"
#include "tools/ctl/render.h"
#include "tools/ctl/restore.h"
#include "tools/ctl/table.h"

namespace fs = std::filesystem;
using namespace parley::ctl;

namespace {

std::string Render(const Table& t) {
  std::ostringstream out;
  t.Render(out);
  return out.str();
}

// A fresh temporary dir, removed at scope exit.
struct TmpDir {
  fs::path path;
  TmpDir() {
    std::string tmpl = (fs::temp_directory_path() / "parleyctl-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void WriteFile(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A backup dir with `files` (name -> content) and a manifest describing them.
void MakeBackup(const fs::path& dir, const std::map<std::string, std::string>& files) {
  fs::create_directories(dir);
  Json manifest{
      {"format", 1}, {"created_at_ms", 1764300000000}, {"version", "0.1.0"}, {"files", Json::array()}};
  for (const auto& [name, content] : files) {
    WriteFile(dir / name, content);
    manifest["files"].push_back(
        {{"name", name}, {"bytes", content.size()}, {"sha256", Sha256File((dir / name).string())}});
  }
  WriteFile(dir / kManifestName, manifest.dump());
}

const std::map<std::string, std::string> kFiles = {{"CURRENT", "MANIFEST-000005\n"},
                                                   {"MANIFEST-000005", std::string(3000, 'm')},
                                                   {"000012.sst", "sst bytes"}};

// The exit code and message of the CtlError `f` throws.
template <typename F>
std::pair<int, std::string> Catch(F&& f) {
  try {
    f();
  } catch (const CtlError& e) {
    return {e.exit_code(), e.what()};
  }
  return {0, ""};
}

bool NoTempDirs(const fs::path& parent) {
  for (const auto& e : fs::directory_iterator(parent)) {
    if (e.path().filename().string().find(".restore-") != std::string::npos) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("Sanitize escapes control characters and invalid UTF-8") {
  CHECK(Sanitize("phone-1") == "phone-1");
  CHECK(Sanitize("a\nb\tc") == "a\\nb\\tc");
  CHECK(Sanitize("x\x1b[2J") == "x\\x1B[2J");
  CHECK(Sanitize("caf\xc3\xa9") == "caf\xc3\xa9");  // é kept
  CHECK(Sanitize("bad\xff") == "bad\\xFF");
  CHECK(Sanitize("\xc2\x9b") == "\\u009B");     // C1 CSI
  CHECK(Sanitize("\xe2\x82") == "\\xE2\\x82");  // cut sequence
}

TEST_CASE("Truncate counts code points and ends in an ellipsis") {
  CHECK(DisplayWidth("h\xc3\xa9llo") == 5);
  CHECK(Truncate("short", 10) == "short");
  CHECK(Truncate("exactly10!", 10) == "exactly10!");
  CHECK(Truncate("a long client id", 8) == "a long …");
  CHECK(DisplayWidth(Truncate("a long client id", 8)) == 8);
  CHECK(Truncate("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3) == "\xc3\xa9\xc3\xa9…");
  CHECK(Truncate("anything", 0) == "anything");
}

TEST_CASE("HumanBytes") {
  CHECK(HumanBytes(0) == "0 B");
  CHECK(HumanBytes(840) == "840 B");
  CHECK(HumanBytes(1023) == "1023 B");
  CHECK(HumanBytes(1024) == "1.0 KiB");
  CHECK(HumanBytes(1536) == "1.5 KiB");
  CHECK(HumanBytes(4 * 1048576) == "4.0 MiB");
  CHECK(HumanBytes(1048575) == "1.0 MiB");  // not "1024.0 KiB"
  CHECK(HumanBytes(5ULL << 30) == "5.0 GiB");
}

TEST_CASE("HumanDuration and RelativeTime") {
  CHECK(HumanDuration(0) == "0s");
  CHECK(HumanDuration(45) == "45s");
  CHECK(HumanDuration(300) == "5m");
  CHECK(HumanDuration(330) == "5m30s");
  CHECK(HumanDuration(3600) == "1h");
  CHECK(HumanDuration(5400) == "1h30m");
  CHECK(HumanDuration(5405) == "1h30m");  // two units at most
  CHECK(HumanDuration(86400 + 3 * 3600) == "1d3h");
  CHECK(HumanDuration(86405) == "1d");  // never "1d5s"
  CHECK(HumanDuration(-90) == "-1m30s");
  const int64_t now = 1764300000000;
  CHECK(RelativeTime(now - 300'000, now) == "5m ago");
  CHECK(RelativeTime(now + 7'200'000, now) == "in 2h");
  CHECK(RelativeTime(now - 400, now) == "just now");
  CHECK(LocalIso(now).size() == std::string("2025-11-28T03:20:00+00:00").size());
}

TEST_CASE("ParseDuration") {
  CHECK(ParseDuration("1h30m") == 5400);
  CHECK(ParseDuration("90s") == 90);
  CHECK(ParseDuration("45") == 45);
  CHECK(ParseDuration("2d") == 172800);
  CHECK(ParseDuration("1w") == 604800);
  CHECK(ParseDuration("1d12h") == 129600);
  CHECK(ParseDuration("1h1h") == 7200);
  CHECK_FALSE(ParseDuration(""));
  CHECK_FALSE(ParseDuration("0"));
  CHECK_FALSE(ParseDuration("0s"));
  CHECK_FALSE(ParseDuration("h"));
  CHECK_FALSE(ParseDuration("1h30"));
  CHECK_FALSE(ParseDuration("1x"));
  CHECK_FALSE(ParseDuration(" 1h"));
  CHECK_FALSE(ParseDuration("-1h"));
  CHECK_FALSE(ParseDuration("1.5h"));
  CHECK_FALSE(ParseDuration("99999999999999999999s"));
  CHECK_FALSE(ParseDuration("101y"));
}

TEST_CASE("Table aligns, right-aligns numbers, truncates and sanitizes") {
  Table t;
  t.Column("CLIENT ID", Table::Align::kLeft, 8).Column("SUBS", Table::Align::kRight).Column("USERNAME");
  t.Row({"phone-1", "3", "alice"});
  t.Row({"a-very-long-client", "120", "b\nob"});
  t.Row({"x"});
  CHECK(Render(t) ==
        "CLIENT ID  SUBS  USERNAME\n"
        "phone-1       3  alice\n"
        "a-very-…    120  b\\nob\n"
        "x\n");
}

TEST_CASE("KeyValues pads keys and indents continuation lines") {
  KeyValues kv;
  kv.Add("topic", "a/b");
  kv.Add("payload", "line 1\nline\x07 2");
  std::ostringstream out;
  kv.Render(out);
  CHECK(out.str() == "topic    a/b\npayload  line 1\n         line\\x07 2\n");
}

TEST_CASE("FormatField formats by field name") {
  const int64_t now = 1764300000000;
  CHECK(FormatField("uptime_seconds", Json(5400), now) == "1h30m");
  CHECK(FormatField("session_expiry", Json(4294967295LL), now) == "never");
  CHECK(FormatField("disk_bytes", Json(1048576), now) == "1.0 MiB (1048576)");
  CHECK(FormatField("queued_bytes", Json(840), now) == "840 B");
  CHECK(FormatField("online", Json(true), now) == "yes");
  CHECK(FormatField("expires_in_seconds", Json(nullptr), now) == "-");
  CHECK(FormatField("connected_at_ms", Json(now - 300'000), now).ends_with(" (5m ago)"));
  CHECK(FormatField("serverTs", Json(std::to_string(now - 60'000)), now).ends_with(" (1m ago)"));
  CHECK(FormatField("members", Json::parse(R"(["a","b"])"), now) == "a, b");

  KeyValues kv;
  AddObject(kv, Json::parse(R"({"a": 1, "storage": {"enabled": true, "data_dir": "/d"}, "l": [{"x": 1}]})"),
            now);
  std::ostringstream out;
  kv.Render(out);
  CHECK(out.str() ==
        "a                 1\nstorage.enabled   yes\nstorage.data_dir  /d\nl                 1 entry\n");
}

TEST_CASE("json_util reads tolerantly") {
  const Json j =
      Json::parse(R"({"seq": "42", "n": 7, "f": 2.5, "s": "x", "nul": null, "b": false, "joinSeq": "3"})");
  CHECK(Int(j, {"seq"}) == 42);
  CHECK(Int(j, {"n"}) == 7);
  CHECK(Int(j, {"f"}) == 2);
  CHECK_FALSE(Int(j, {"s"}));
  CHECK_FALSE(Int(j, {"nul"}));
  CHECK(Int(j, {"join_seq", "joinSeq"}) == 3);
  CHECK(Text(j, {"nul"}, "-") == "-");
  CHECK(Text(j, {"f"}) == "2.5");
  CHECK(YesNo(j, {"b"}) == "no");
  CHECK(Array(j, "missing").empty());
  CHECK(Array(Json("not an object"), "x").empty());
}

TEST_CASE("API errors map to exit codes and one message") {
  auto e = ErrorFromResponse(404, R"({"error": {"code": "not_found", "message": "no client 'x'"}})");
  CHECK(e.exit_code() == kExitNotFound);
  CHECK(std::string(e.what()) == "no client 'x' (not_found, HTTP 404)");
  CHECK(ErrorFromResponse(401, R"({"error": {"code": "unauthorized", "message": "m"}})").exit_code() == 4);
  CHECK(ErrorFromResponse(409, R"({"error": {"code": "conflict", "message": "m"}})").exit_code() == 6);
  CHECK(ErrorFromResponse(422, R"({"error": {"code": "invalid_config", "message": "m"}})").exit_code() == 1);
  CHECK(ErrorFromResponse(500, "").exit_code() == 1);
  CHECK(std::string(ErrorFromResponse(502, "Bad Gateway\nmore").what()) == "Bad Gateway (HTTP 502)");
  CHECK(std::string(ErrorFromResponse(503, "").what()) == "request failed (HTTP 503)");
  CHECK(std::string(
            ErrorFromResponse(400, R"({"error": {"code": "ERR_NOT_MEMBER", "message": "a\nb"}})").what()) ==
        "a\\nb (ERR_NOT_MEMBER, HTTP 400)");
  TransportError te{"Couldn't connect to server", false};
  CHECK(ErrorFromTransport("http://127.0.0.1:1", te).exit_code() == kExitUnreachable);
  te.usage = true;
  CHECK(ErrorFromTransport("htp:/x", te).exit_code() == kExitUsage);
}

TEST_CASE("Escape percent-encodes path segments and query values") {
  CHECK(Escape("phone-1") == "phone-1");
  CHECK(Escape("a/b c") == "a%2Fb%20c");
  CHECK(Escape("10.0.0.0/8") == "10.0.0.0%2F8");
  CHECK(Escape("\xc3\xa9?&=%+#") == "%C3%A9%3F%26%3D%25%2B%23");
  CHECK(Escape("") == "");
  CHECK(QueryString({}) == "");
  CHECK(QueryString({{"filter", "a/#"}, {"limit", "5"}}) == "?filter=a%2F%23&limit=5");
}

TEST_CASE("Token lookup: options, then environment, then default files") {
  TmpDir d;
  WriteFile(d.path / "tok", "  file-token \r\nsecond line\n");
  WriteFile(d.path / "tok2", "env-file-token\n");
  std::map<std::string, std::string> vars;
  EnvLookup env = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  GlobalOptions o;
  CHECK(ReadTokenFile((d.path / "tok").string()) == "file-token");
  vars["PARLEY_ADMIN_TOKEN_FILE"] = (d.path / "tok2").string();
  CHECK(ResolveToken(o, env) == "env-file-token");
  vars["PARLEY_ADMIN_TOKEN"] = "env-token";
  CHECK(ResolveToken(o, env) == "env-token");
  o.token_file = (d.path / "tok").string();
  CHECK(ResolveToken(o, env) == "file-token");
  o.token = "flag-token";
  CHECK(ResolveToken(o, env) == "flag-token");
  o.token.clear();
  o.token_file = (d.path / "missing").string();
  CHECK(Catch([&] { ResolveToken(o, env); }).first == kExitUsage);

  o = GlobalOptions{};
  CHECK(ResolveUrl(o, env) == "http://127.0.0.1:8080");
  vars["PARLEY_ADMIN_URL"] = "https://h:1";
  CHECK(ResolveUrl(o, env) == "https://h:1");
  o.url = "http://x:2";
  CHECK(ResolveUrl(o, env) == "http://x:2");
}

TEST_CASE("Job progress and summary lines") {
  CHECK(ProgressText(1048576, 4194304, "bytes") == " 25%  1.0 MiB / 4.0 MiB");
  CHECK(ProgressText(3, 7, "families") == " 42%  3 / 7 families");
  CHECK(ProgressText(5, 0, "families") == "5 families");
  CHECK(ProgressText(9, 4, "bytes") == "100%  9 B / 4 B");
  const Json running = Json::parse(R"({"id": "3", "kind": "backup", "state": "running", "phase": "checksums",
      "done": 1048576, "total": 4194304, "unit": "bytes"})");
  CHECK(JobProgressText(running) == "backup  checksums   25%  1.0 MiB / 4.0 MiB");
  const Json done = Json::parse(R"({"id": "3", "kind": "backup", "state": "done", "started_at_ms": 1000,
      "finished_at_ms": 2200, "error": null, "result": {"dir": "/b", "files": 12, "bytes": 4194304}})");
  CHECK(JobSummaryText(done) == "backup done in 1.2s: dir /b, files 12, bytes 4.0 MiB");
  const Json failed = Json::parse(R"({"kind": "compact", "state": "failed", "started_at_ms": 1000,
      "finished_at_ms": 4000, "error": {"code": "io", "message": "disk full"}})");
  CHECK(JobSummaryText(failed) == "compact failed after 3.0s: disk full");
  CHECK(JobErrorText(Json::parse(R"({"error": "plain"})")) == "plain");
}

TEST_CASE("Sha256File") {
  TmpDir d;
  WriteFile(d.path / "abc", "abc");
  CHECK(Sha256File((d.path / "abc").string()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  WriteFile(d.path / "empty", "");
  CHECK(Sha256File((d.path / "empty").string()) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("Restore into a new dir copies and verifies every file") {
  TmpDir d;
  MakeBackup(d.path / "backup", kFiles);
  std::vector<std::string> phases;
  uint64_t last_done = 0;
  RestoreOptions o{(d.path / "backup").string(), (d.path / "sub" / "data").string(), false};
  const RestoreResult r = Restore(o, [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
    last_done = done;
    CHECK(total == 3000 + 16 + 9);
  });
  CHECK(r.manifest.files.size() == 3);
  CHECK(r.manifest.version == "0.1.0");
  CHECK(phases == std::vector<std::string>{"copying", "verifying"});
  CHECK(last_done == 3025);
  for (const auto& [name, content] : kFiles) CHECK(ReadFile(d.path / "sub" / "data" / name) == content);
  CHECK_FALSE(fs::exists(d.path / "sub" / "data" / kManifestName));
  CHECK(NoTempDirs(d.path / "sub"));
}

TEST_CASE("Restore refuses a non-empty data dir unless --force, then replaces it whole") {
  TmpDir d;
  MakeBackup(d.path / "backup", kFiles);
  fs::create_directories(d.path / "data");
  WriteFile(d.path / "data" / "old.sst", "old");
  RestoreOptions o{(d.path / "backup").string(), (d.path / "data").string(), false};
  auto [code, msg] = Catch([&] { Restore(o); });
  CHECK(code == kExitConflict);
  CHECK(msg.find("not empty") != std::string::npos);
  CHECK(ReadFile(d.path / "data" / "old.sst") == "old");

  o.force = true;
  Restore(o);
  CHECK_FALSE(fs::exists(d.path / "data" / "old.sst"));
  CHECK(ReadFile(d.path / "data" / "000012.sst") == "sst bytes");
  CHECK(NoTempDirs(d.path));

  // A data dir that is a symbolic link: restored where it points, the link kept.
  fs::create_directories(d.path / "real");
  fs::create_directory_symlink(d.path / "real", d.path / "link");
  Restore(RestoreOptions{(d.path / "backup").string(), (d.path / "link").string(), false});
  CHECK(fs::is_symlink(d.path / "link"));
  CHECK(ReadFile(d.path / "real" / "000012.sst") == "sst bytes");

  // An empty existing dir needs no --force.
  fs::create_directories(d.path / "empty");
  Restore(RestoreOptions{(d.path / "backup").string(), (d.path / "empty").string(), false});
  CHECK(ReadFile(d.path / "empty" / "CURRENT") == "MANIFEST-000005\n");
}

TEST_CASE("Restore fails on a damaged, short or missing file and leaves the target alone") {
  TmpDir d;
  fs::create_directories(d.path / "data");
  WriteFile(d.path / "data" / "old.sst", "old");

  SUBCASE("damaged (same size)") {
    MakeBackup(d.path / "backup", kFiles);
    WriteFile(d.path / "backup" / "000012.sst", "sst bytez");
    auto [code, msg] = Catch([&] {
      Restore({(d.path / "backup").string(), (d.path / "data").string(), true});
    });
    CHECK(code == kExitFailed);
    CHECK(msg.find("000012.sst") != std::string::npos);
    CHECK(msg.find("SHA-256") != std::string::npos);
  }
  SUBCASE("wrong size") {
    MakeBackup(d.path / "backup", kFiles);
    WriteFile(d.path / "backup" / "CURRENT", "short");
    auto [code, msg] = Catch([&] {
      Restore({(d.path / "backup").string(), (d.path / "data").string(), true});
    });
    CHECK(code == kExitFailed);
    CHECK(msg.find("CURRENT") != std::string::npos);
  }
  SUBCASE("missing") {
    MakeBackup(d.path / "backup", kFiles);
    fs::remove(d.path / "backup" / "MANIFEST-000005");
    auto [code, msg] = Catch([&] {
      Restore({(d.path / "backup").string(), (d.path / "data").string(), true});
    });
    CHECK(code == kExitFailed);
    CHECK(msg.find("MANIFEST-000005 is missing") != std::string::npos);
  }
  CHECK(ReadFile(d.path / "data" / "old.sst") == "old");
  CHECK(fs::directory_iterator(d.path / "data") != fs::directory_iterator());
  CHECK(NoTempDirs(d.path));
}

TEST_CASE("Restore rejects bad manifests") {
  TmpDir d;
  const auto b = d.path / "backup";
  fs::create_directories(b);
  auto fails_with = [&](const std::string& manifest, const std::string& what) {
    WriteFile(b / kManifestName, manifest);
    auto [code, msg] = Catch([&] { ReadManifest(b.string()); });
    CHECK(code == kExitFailed);
    CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
  };
  const std::string sha(64, 'a');
  fails_with("not json", "not a JSON object");
  fails_with(R"({"format": 2, "files": []})", "format 2");
  fails_with(R"({"format": 1, "files": []})", "no \"files\"");
  fails_with(R"({"format": 1, "files": [{"name": "../x", "bytes": 1, "sha256": ")" + sha + R"("}]})",
             "bad file name");
  fails_with(R"({"format": 1, "files": [{"name": "a", "bytes": 1, "sha256": "xyz"}]})", "sha256");
  fails_with(R"({"format": 1, "files": [{"name": "a", "sha256": ")" + sha + R"("}]})", "bytes");
  fails_with(R"({"format": 1, "files": [{"name": "a", "bytes": 1, "sha256": ")" + sha +
                 R"("}, {"name": "a", "bytes": 1, "sha256": ")" + sha + R"("}]})",
             "listed twice");
  fs::remove(b / kManifestName);
  CHECK(Catch([&] { ReadManifest(b.string()); }).first == kExitFailed);
}

TEST_CASE("Restore refuses a data dir whose LOCK a running process holds, even with --force") {
  TmpDir d;
  MakeBackup(d.path / "backup", kFiles);
  fs::create_directories(d.path / "data");
  WriteFile(d.path / "data" / "LOCK", "");
  int ready[2], stop[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(stop) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // holds the lock the way RocksDB does until told to stop
    const int fd = ::open((d.path / "data" / "LOCK").c_str(), O_RDWR);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    char c = ::fcntl(fd, F_SETLK, &fl) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(stop[0], &c, 1);
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  REQUIRE(c == 'y');
  CHECK(LockHolder((d.path / "data").string()) == child);
  auto [code, msg] = Catch([&] {
    Restore({(d.path / "backup").string(), (d.path / "data").string(), true});
  });
  CHECK(code == kExitConflict);
  CHECK(msg.find("in use by a running broker") != std::string::npos);
  CHECK(msg.find("pid " + std::to_string(child)) != std::string::npos);
  CHECK(fs::exists(d.path / "data" / "LOCK"));
  (void)!::write(stop[1], "x", 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK_FALSE(LockHolder((d.path / "data").string()));
  // Released: restore works now (a stale LOCK file alone is no obstacle).
  Restore({(d.path / "backup").string(), (d.path / "data").string(), true});
  CHECK(ReadFile(d.path / "data" / "000012.sst") == "sst bytes");
  for (int fd : {ready[0], ready[1], stop[0], stop[1]}) ::close(fd);
}
