#include "broker/auth/auth_util.h"

#include <doctest/doctest.h>

#include <vector>

namespace parley::broker::auth {
namespace {

TEST_CASE("Base64 round-trips the RFC 4648 vectors") {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& v : vectors) {
    const std::string_view plain = v.first;
    const std::string_view encoded = v.second;
    CAPTURE(plain);
    CHECK(Base64Encode(plain) == encoded);
    const auto decoded = Base64Decode(encoded);
    REQUIRE(decoded);
    CHECK(*decoded == plain);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  CHECK(Base64Decode(Base64Encode(all)) == all);
}

TEST_CASE("Base64Decode accepts missing padding and rejects garbage") {
  CHECK(Base64Decode("Zg") == "f");
  CHECK(Base64Decode("Zm8") == "fo");
  for (const char* bad : {"Z", "Zg=", "Zg===", "Z===", "Zm9v=", "Zm 9v", "Zm9v\n", "Zm-v", "Zm_v", "=Zm9",
                          "Zg==Zg==", "Zm9vY"}) {
    CAPTURE(bad);
    CHECK_FALSE(Base64Decode(bad));
  }
}

TEST_CASE("TrimBlanks") {
  CHECK(TrimBlanks("  a b \t\r\n") == "a b");
  CHECK(TrimBlanks(" \t ") == "");
  CHECK(TrimBlanks("") == "");
}

TEST_CASE("ForEachLine numbers lines from 1 and stops at the first error") {
  std::vector<std::pair<int, std::string>> seen;
  auto collect = [&](int n, std::string_view l) {
    seen.emplace_back(n, std::string(l));
    return Status::Ok();
  };
  CHECK(ForEachLine("a\n\nb\r\nc", collect).ok());
  CHECK(seen == std::vector<std::pair<int, std::string>>{{1, "a"}, {2, ""}, {3, "b\r"}, {4, "c"}});
  seen.clear();
  CHECK(ForEachLine("a\n", collect).ok());
  CHECK(seen.size() == 1);
  const Status st = ForEachLine(
      "a\nb\nc\n", [](int n, std::string_view) { return n == 2 ? Status::Error("stop") : Status::Ok(); });
  CHECK(st.message() == "stop");
}

TEST_CASE("ReadSmallFile reports the path") {
  const auto r = ReadSmallFile("/nonexistent/parley-auth-test", 100);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("/nonexistent/parley-auth-test") != std::string::npos);
  const auto dir = ReadSmallFile("/tmp", 100);
  CHECK_FALSE(dir.ok());
}

}  // namespace
}  // namespace parley::broker::auth
