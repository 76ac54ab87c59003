#include "broker/auth/password_file.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>

#include "broker/auth/auth_util.h"
#include "temp_dir.h"

namespace parley::broker::auth {
namespace {

using testing::TempDir;

// Written by mosquitto_passwd 2.0.11: "-b -c f user pass" and "-H sha512 -b f old oldpass".
constexpr char kMosquittoFile[] =
    "user:$7$101$Jf6RY5+ldFUbPBth$qJvb+el2cD7ZlEmLR2Srol+"
    "S85D0y9HWeYwYUuf6P6YKayGzuurWqsPCkgxnsBqRHXabLaZXOBm4T4dhMKVEUQ==\n"
    "old:$6$Qa7DHiiLGESJ5cYK$"
    "cusAJ8g8lcqbgiw4E72lDvRIiKuSy8TD4cd6zOMyTZsAEfg6QUdyXvwLWrOhhNnzvot8UrvFwcbxFSL6x5951Q==\n";

constexpr char kMosquittoPasswd[] = "/usr/bin/mosquitto_passwd";

AuthDecision Try(const Authenticator& a, std::optional<std::string_view> user,
                 std::optional<std::string_view> password) {
  ConnectInfo info;
  info.client_id = "c1";
  info.username = user;
  info.password = password;
  info.peer_address = "127.0.0.1:1";
  Grant grant;
  return a.Authenticate(info, grant);
}

std::unique_ptr<PasswordFile> MustParse(std::string_view text, AuthDecision unknown = AuthDecision::kDeny) {
  auto r = PasswordFile::Parse(text, "test.pw", unknown);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

TEST_CASE("verifies $7$ (PBKDF2) and $6$ (SHA-512) lines written by mosquitto_passwd") {
  const auto pw = MustParse(kMosquittoFile);
  CHECK(pw->user_count() == 2);
  CHECK(Try(*pw, "user", "pass") == AuthDecision::kAllow);
  CHECK(Try(*pw, "old", "oldpass") == AuthDecision::kAllow);
  CHECK(Try(*pw, "user", "Pass") == AuthDecision::kDeny);
  CHECK(Try(*pw, "user", "pass ") == AuthDecision::kDeny);
  CHECK(Try(*pw, "user", "") == AuthDecision::kDeny);
  CHECK(Try(*pw, "old", "pass") == AuthDecision::kDeny);
  CHECK(Try(*pw, "user", std::nullopt) == AuthDecision::kDeny);
}

TEST_CASE("unknown users are denied, or left to the next provider") {
  const auto pw = MustParse(kMosquittoFile);
  CHECK(Try(*pw, "nobody", "pass") == AuthDecision::kDeny);
  CHECK(Try(*pw, "nobody", std::nullopt) == AuthDecision::kDeny);
  CHECK(Try(*pw, "User", "pass") == AuthDecision::kDeny);  // names are case-sensitive
  CHECK(Try(*pw, "", "pass") == AuthDecision::kDeny);
  const auto chained = MustParse(kMosquittoFile, AuthDecision::kNoOpinion);
  CHECK(Try(*chained, "nobody", "pass") == AuthDecision::kNoOpinion);
  CHECK(Try(*chained, "user", "wrong") == AuthDecision::kDeny);
}

TEST_CASE("clients without a user name get no opinion: anonymous access is broker policy") {
  const auto pw = MustParse(kMosquittoFile);
  CHECK(Try(*pw, std::nullopt, std::nullopt) == AuthDecision::kNoOpinion);
  CHECK(Try(*pw, std::nullopt, "pass") == AuthDecision::kNoOpinion);
}

TEST_CASE("a file written by the real mosquitto_passwd verifies") {
  if (access(kMosquittoPasswd, X_OK) != 0) {
    MESSAGE("skipped: " << kMosquittoPasswd << " not installed");
    return;
  }
  TempDir dir;
  const std::string file = dir.Sub("passwd");
  const std::string cmd = std::string(kMosquittoPasswd) + " -b -c '" + file + "' alice 's3cret pw' && " +
                          kMosquittoPasswd + " -H sha512 -b '" + file + "' bob hunter2 && " +
                          kMosquittoPasswd + " -b '" + file + "' carol ''";
  REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0);
  auto r = PasswordFile::Load(file);
  INFO(r.status().message());
  REQUIRE(r.ok());
  const PasswordFile& pw = **r;
  CHECK(pw.user_count() == 3);
  CHECK(Try(pw, "alice", "s3cret pw") == AuthDecision::kAllow);
  CHECK(Try(pw, "alice", "s3cret") == AuthDecision::kDeny);
  CHECK(Try(pw, "bob", "hunter2") == AuthDecision::kAllow);
  CHECK(Try(pw, "bob", "hunter3") == AuthDecision::kDeny);
  CHECK(Try(pw, "carol", "") == AuthDecision::kAllow);
  CHECK(Try(pw, "carol", "x") == AuthDecision::kDeny);
  CHECK(Try(pw, "dave", "") == AuthDecision::kDeny);
}

TEST_CASE("HashPassword writes mosquitto's $7$ format, and it verifies") {
  const std::string h = PasswordFile::HashPassword("correct horse");
  REQUIRE(h.rfind("$7$101$", 0) == 0);
  const size_t salt_end = h.find('$', 7);
  REQUIRE(salt_end != std::string::npos);
  const auto salt = Base64Decode(std::string_view(h).substr(7, salt_end - 7));
  REQUIRE(salt);
  CHECK(salt->size() == PasswordFile::kSaltBytes);
  const auto hash = Base64Decode(std::string_view(h).substr(salt_end + 1));
  REQUIRE(hash);
  CHECK(hash->size() == 64);
  CHECK(PasswordFile::HashPassword("correct horse") != h);  // fresh salt each time

  TempDir dir;
  const std::string file = dir.Write("passwd", "# made by parley\n\nalice:" + h + "\n");
  auto r = PasswordFile::Load(file);
  REQUIRE(r.ok());
  CHECK(Try(**r, "alice", "correct horse") == AuthDecision::kAllow);
  CHECK(Try(**r, "alice", "correct horsE") == AuthDecision::kDeny);

  const auto custom = MustParse("u:" + PasswordFile::HashPassword("p", 1000) + "\n");
  CHECK(Try(*custom, "u", "p") == AuthDecision::kAllow);
}

TEST_CASE("passwords are bytes, not C strings") {
  const std::string binary("a\0b\xff\x01", 5);
  const auto pw = MustParse("bin:" + PasswordFile::HashPassword(binary) +
                            "\nempty:" + PasswordFile::HashPassword("") + "\n");
  CHECK(Try(*pw, "bin", binary) == AuthDecision::kAllow);
  CHECK(Try(*pw, "bin", std::string_view("a", 1)) == AuthDecision::kDeny);  // not truncated at NUL
  CHECK(Try(*pw, "bin", std::string_view("a\0b\xff", 4)) == AuthDecision::kDeny);
  CHECK(Try(*pw, "empty", "") == AuthDecision::kAllow);
  CHECK(Try(*pw, "empty", std::string_view("\x01", 1)) == AuthDecision::kDeny);
  // Not tested: trailing NUL bytes. HMAC zero-pads its key, so PBKDF2-HMAC cannot tell "p" from "p\0"
  // (a property of the $7$ scheme itself, shared with mosquitto).
}

TEST_CASE("comments, blank lines, CRLF and blanks around fields are accepted") {
  const std::string line =
      "user:$7$101$Jf6RY5+ldFUbPBth$qJvb+el2cD7ZlEmLR2Srol+"
      "S85D0y9HWeYwYUuf6P6YKayGzuurWqsPCkgxnsBqRHXabLaZXOBm4T4dhMKVEUQ==";
  const auto pw = MustParse("# users\r\n\r\n   \n  # indented comment\n" + line + "\r\n\n");
  CHECK(pw->user_count() == 1);
  CHECK(Try(*pw, "user", "pass") == AuthDecision::kAllow);
  const auto spaced = MustParse(" user : " + line.substr(5) + " \n");
  CHECK(Try(*spaced, "user", "pass") == AuthDecision::kAllow);
  CHECK(MustParse("")->user_count() == 0);
}

TEST_CASE("malformed lines fail the load with file:line and no hash material") {
  const std::string good = PasswordFile::HashPassword("x");
  const std::string salt = "Jf6RY5+ldFUbPBth";
  const std::string hash =
      "qJvb+el2cD7ZlEmLR2Srol+S85D0y9HWeYwYUuf6P6YKayGzuurWqsPCkgxnsBqRHXabLaZXOBm4T4dhMKVEUQ==";
  const std::string bad_lines[] = {
      "no-colon-here",
      ":" + good,                       // empty user name
      "bob:",                           // no hash
      "bob:plaintext",                  // mosquitto -U would hash it first
      "bob:$5$" + salt + "$" + hash,    // unknown type
      "bob:$7$" + salt + "$" + hash,    // $7$ without iterations
      "bob:$7$0$" + salt + "$" + hash,  // zero iterations
      "bob:$7$-5$" + salt + "$" + hash,
      "bob:$7$10x$" + salt + "$" + hash,
      "bob:$7$99999999999$" + salt + "$" + hash,  // overflows / over the limit
      "bob:$7$101$" + salt + "$" + hash + "$extra",
      "bob:$7$101$$" + hash,  // empty salt
      "bob:$7$101$not*base64$" + hash,
      "bob:$7$101$" + salt + "$" + hash.substr(0, 84),  // 63-byte hash
      "bob:$7$101$" + salt + "$" + salt,                // 12-byte hash
      "bob:$6$" + salt,                                 // $6$ missing the hash
      "bob:$6$101$" + salt + "$" + hash,                // $6$ has no iteration field
      "alice:" + good,                                  // duplicate of line 2
  };
  for (const std::string& bad : bad_lines) {
    CAPTURE(bad);
    const std::string text = "# header\nalice:" + good + "\n" + bad + "\n";
    auto r = PasswordFile::Parse(text, "users.pw");
    REQUIRE_FALSE(r.ok());
    const std::string& msg = r.status().message();
    CAPTURE(msg);
    CHECK(msg.rfind("users.pw:3: ", 0) == 0);
    CHECK(msg.find(salt) == std::string::npos);
    CHECK(msg.find(hash.substr(0, 16)) == std::string::npos);
    CHECK(msg.find(good.substr(8, 12)) == std::string::npos);
    CHECK(msg.find("plaintext") == std::string::npos);
  }
  auto dup = PasswordFile::Parse("alice:" + good + "\nalice:" + good + "\n", "p");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().message() == "p:2: duplicate user name (first defined at line 1)");
}

TEST_CASE("Load names the file it cannot read") {
  auto r = PasswordFile::Load("/nonexistent/dir/passwd");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("/nonexistent/dir/passwd") != std::string::npos);
}

}  // namespace
}  // namespace parley::broker::auth
