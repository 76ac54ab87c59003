#include "broker/config/units.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

namespace parley::config {
namespace {

TEST_CASE("durations: valid spellings") {
  struct Case {
    const char* text;
    uint64_t ms;
  };
  const Case cases[] = {
      {"0s", 0},
      {"0ms", 0},
      {"1ms", 1},
      {"500ms", 500},
      {"10s", 10'000},
      {"90s", 90'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"7d", 604'800'000},
      {"0010s", 10'000},
      {"65535s", 65'535'000},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<uint64_t> r = ParseDurationMs(c.text);
    REQUIRE(r.ok());
    CHECK(r.value() == c.ms);
  }
}

TEST_CASE("durations: invalid spellings say what is wrong") {
  struct Case {
    const char* text;
    const char* message_part;
  };
  const Case cases[] = {
      {"", "is not a duration"},
      {"10", "has no unit"},
      {"s", "is not a duration"},
      {"-5s", "is not a duration"},
      {"+5s", "is not a duration"},
      {" 5s", "is not a duration"},
      {"5 s", "unknown unit \" s\""},
      {"1.5s", "unknown unit \".5s\""},
      {"10S", "unknown unit \"S\""},
      {"10sec", "unknown unit \"sec\""},
      {"1h30m", "unknown unit \"h30m\""},
      {"5w", "unknown unit \"w\""},
      {"99999999999999999999s", "too large"},
      {"18446744073709551615d", "too large"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<uint64_t> r = ParseDurationMs(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(c.message_part) != std::string::npos);
  }
  CHECK(ParseDurationMs("10").status().message() ==
        "\"10\" has no unit; a duration is a whole number followed by a unit: ms, s, m, h or d "
        "(e.g. \"10s\", \"500ms\")");
}

TEST_CASE("sizes: valid spellings") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"0B", 0},
      {"512B", 512},
      {"512b", 512},
      {"1KB", 1'000},
      {"1kB", 1'000},
      {"1MB", 1'000'000},
      {"2GB", 2'000'000'000},
      {"1TB", 1'000'000'000'000},
      {"64KiB", 65'536},
      {"64kib", 65'536},
      {"1MiB", 1'048'576},
      {"1GiB", 1'073'741'824},
      {"1TiB", 1'099'511'627'776},
      {"256MiB", 268'435'456},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<uint64_t> r = ParseSizeBytes(c.text);
    REQUIRE(r.ok());
    CHECK(r.value() == c.bytes);
  }
}

TEST_CASE("sizes: invalid spellings") {
  const char* cases[] = {"",           "64",  "KiB",  "-1KiB", "1.5MiB",
                         "64 KiB",     "64K", "64Ki", "1PiB",  "99999999999999999999B",
                         "20000000TiB"};
  for (const char* text : cases) {
    CAPTURE(text);
    CHECK_FALSE(ParseSizeBytes(text).ok());
  }
  CHECK(ParseSizeBytes("64K").status().message().find("unknown unit \"K\"") != std::string::npos);
  CHECK(ParseSizeBytes("20000000TiB").status().message() == "\"20000000TiB\" is too large");
}

TEST_CASE("FormatDurationMs picks the largest exact unit") {
  CHECK(FormatDurationMs(0) == "0s");
  CHECK(FormatDurationMs(1) == "1ms");
  CHECK(FormatDurationMs(1500) == "1500ms");
  CHECK(FormatDurationMs(90'000) == "90s");
  CHECK(FormatDurationMs(120'000) == "2m");
  CHECK(FormatDurationMs(86'400'000) == "1d");
}

TEST_CASE("QuoteForMessage escapes what could forge a log line") {
  CHECK(QuoteForMessage("abc") == "\"abc\"");
  CHECK(QuoteForMessage("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(QuoteForMessage("x\ny") == "\"x\\x0ay\"");
}

}  // namespace
}  // namespace parley::config
