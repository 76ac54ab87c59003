#include "base/log.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

using parley::log::JsonEscape;

TEST_CASE("log: JsonEscape keeps UTF-8, escapes quotes and control bytes, replaces invalid bytes") {
  CHECK(JsonEscape("plain") == "plain");
  CHECK(JsonEscape("a\"b\\c") == "a\\\"b\\\\c");
  CHECK(JsonEscape("l1\nl2\r\t") == "l1\\nl2\\r\\t");
  CHECK(JsonEscape(std::string("nul\0x", 5)) == "nul\\u0000x");
  CHECK(JsonEscape("\x7f") == "\\u007f");
  CHECK(JsonEscape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  CHECK(JsonEscape("\xff") == "\\ufffd");
  CHECK(JsonEscape("\xc3") == "\\ufffd");                      // truncated sequence
  CHECK(JsonEscape("\xc0\xaf") == "\\ufffd\\ufffd");           // overlong
  CHECK(JsonEscape("\xed\xa0\x80") == "\\ufffd\\ufffd\\ufffd");  // surrogate
  CHECK(JsonEscape("\xf4\x90\x80\x80") == "\\ufffd\\ufffd\\ufffd\\ufffd");  // above U+10FFFF
}

TEST_CASE("log: the JSON format writes one parseable object per line, whatever the message holds") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto saved = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  REQUIRE(parley::log::Configure("debug", "json").ok());
  spdlog::info("connect client_id=\"{}\" user=\"{}\"", "evil\"}\n{\"level\":\"critical", "\xff\xfe");
  spdlog::debug("second");
  spdlog::trace("not shown");
  REQUIRE(parley::log::SetLevel("trace").ok());
  CHECK(parley::log::LevelName() == "trace");
  spdlog::trace("third");
  CHECK_FALSE(parley::log::SetLevel("verbose").ok());
  CHECK_FALSE(parley::log::Configure("info", "xml").ok());
  REQUIRE(parley::log::Configure("info", "text").ok());
  spdlog::set_default_logger(saved);

  std::istringstream lines(out.str());
  std::string line;
  std::vector<nlohmann::json> objects;
  while (std::getline(lines, line)) objects.push_back(nlohmann::json::parse(line));
  REQUIRE(objects.size() == 3);
  CHECK(objects[0]["level"] == "info");
  CHECK(objects[0]["msg"] == "connect client_id=\"evil\"}\n{\"level\":\"critical\" user=\"\xef\xbf\xbd\xef\xbf\xbd\"");
  CHECK(objects[1]["msg"] == "second");
  CHECK(objects[2]["level"] == "trace");
  CHECK(objects[0].contains("ts"));
}
