// IsValidMqttUtf8 (spec 1.5.4), IsValidTopicName and IsValidTopicFilter (spec 4.7).
#include <doctest/doctest.h>

#include <string>

#include "broker/codec/codec.h"

namespace parley::mqtt {
namespace {

std::string S(std::initializer_list<int> v) {
  std::string s;
  for (int c : v) s.push_back(static_cast<char>(c));
  return s;
}

TEST_CASE("IsValidMqttUtf8 accepts well-formed UTF-8") {
  const std::string good[] = {
      "",
      "abc",
      "\xc3\xa9",             // U+00E9
      "\xe2\x82\xac",         // U+20AC
      "\xf0\x9d\x84\x9e",     // U+1D11E
      "\xf4\x8f\xbf\xbf",     // U+10FFFF, the last code point
      "\xef\xbf\xbf",         // U+FFFF: a non-character, allowed (SHOULD NOT only)
      "\xed\x9f\xbf",         // U+D7FF, just below the surrogates
      "\xee\x80\x80",         // U+E000, just above
      S({0x01, 0x1F, 0x7F}),  // control characters are allowed
      "\xc2\x80",             // U+0080
      "\xef\xbb\xbf"
      "abc",                  // a BOM is not stripped or rejected [MQTT-1.5.4-3]
      std::string(100, 'a'),  // the 8-byte fast path
      std::string(7, 'a') + "\xe2\x82\xac" + std::string(20, 'b'),  // multi-byte across a word boundary
      "sensors/\xe6\xb8\xa9\xe5\xba\xa6",
  };
  for (const std::string& s : good) {
    CAPTURE(s);
    CHECK(IsValidMqttUtf8(s));
  }
}

TEST_CASE("IsValidMqttUtf8 rejects NUL, surrogates, overlongs and broken sequences") {
  const std::string bad[] = {
      S({0x00}),
      S({'a', 'b', 'c', 0x00, 'd'}),
      std::string(13, 'a') + S({0x00}) + std::string(20, 'a'),  // NUL inside the fast path
      std::string(8, 'a') + S({0x00}),
      S({0xC0, 0x80}),                          // overlong U+0000
      S({0xC0, 0xAF}),                          // overlong '/'
      S({0xC1, 0xBF}),                          // overlong
      S({0xE0, 0x80, 0x80}),                    // overlong
      S({0xE0, 0x9F, 0xBF}),                    // overlong U+07FF
      S({0xF0, 0x80, 0x80, 0x80}),              // overlong
      S({0xF0, 0x8F, 0xBF, 0xBF}),              // overlong U+FFFF
      S({0xED, 0xA0, 0x80}),                    // U+D800
      S({0xED, 0xBF, 0xBF}),                    // U+DFFF
      S({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}),  // CESU-8 pair
      S({0xF4, 0x90, 0x80, 0x80}),              // U+110000
      S({0xF5, 0x80, 0x80, 0x80}),
      S({0xF8, 0x88, 0x80, 0x80, 0x80}),
      S({0xFE}),
      S({0xFF}),
      S({0x80}),  // lone continuation byte
      S({'a', 0xBF}),
      S({0xC3}),  // truncated
      S({0xE2, 0x82}),
      S({0xF0, 0x9D, 0x84}),
      S({0xC3, 0x28}),  // bad continuation
      S({0xE2, 0x28, 0xA1}),
      S({0xE2, 0x82, 0x28}),
      S({0xF0, 0x9D, 0x28, 0x9E}),
      std::string(30, 'x') + S({0xE2, 0x82}),
  };
  for (const std::string& s : bad) {
    CAPTURE(s.size());
    CHECK_FALSE(IsValidMqttUtf8(s));
  }
}

TEST_CASE("IsValidMqttUtf8 agrees with a reference decoder on every 1-3 byte sequence") {
  // Reference: decode per RFC 3629, reject overlongs, surrogates, > U+10FFFF and U+0000.
  auto reference = [](const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
      const auto b = static_cast<uint8_t>(s[i]);
      int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
      if (len == 0 || i + len > s.size()) return false;
      uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
      for (int k = 1; k < len; ++k) {
        const auto c = static_cast<uint8_t>(s[i + k]);
        if ((c & 0xC0) != 0x80) return false;
        cp = cp << 6 | (c & 0x3F);
      }
      const uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
      if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) return false;
      i += len;
    }
    return true;
  };
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s = S({a});
    REQUIRE(IsValidMqttUtf8(s) == reference(s));
    for (int b = 0; b < 256; ++b) {
      s = S({a, b});
      REQUIRE(IsValidMqttUtf8(s) == reference(s));
      if (a >= 0xE0) {
        for (int c = 0x70; c < 0xD0; ++c) {  // enough to cover the continuation edges
          s = S({a, b, c});
          REQUIRE(IsValidMqttUtf8(s) == reference(s));
        }
      }
      if (a >= 0xF0) {
        for (int c : {0x00, 0x7F, 0x80, 0xBF, 0xC0}) {
          for (int d : {0x00, 0x7F, 0x80, 0xBF, 0xC0}) {
            s = S({a, b, c, d});
            REQUIRE(IsValidMqttUtf8(s) == reference(s));
          }
        }
      }
    }
  }
}

TEST_CASE("IsValidTopicName") {
  for (const char* t :
       {"sport/tennis/player1", "sport/tennis/player1/ranking", "/", "//", "a//b", "/finance",
        "$SYS/broker/uptime", " ", "\xe2\x82\xac/x", "sport/tennis/player1/score/wimbledon"}) {
    CAPTURE(t);
    CHECK(IsValidTopicName(t));
  }
  for (const std::string& t : {std::string(""), std::string("+"), std::string("#"), std::string("a/+"),
                               std::string("sport/tennis#"), std::string("a/#"), std::string("+/b"),
                               std::string("a\0b", 3), std::string("\xc0\xaf"), std::string(65536, 'a')}) {
    CAPTURE(t.size());
    CHECK_FALSE(IsValidTopicName(t));
  }
  CHECK(IsValidTopicName(std::string(65535, 'a')));
}

TEST_CASE("IsValidTopicName finds a wildcard at every position") {
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (char w : {'+', '#'}) {
        std::string t(len, 'a');
        t[pos] = w;
        CAPTURE(t);
        CHECK_FALSE(IsValidTopicName(t));
      }
    }
    // Neighbours of '+' (0x2B) and '#' (0x23), and "\xc2\xab" whose low bits match '+', are fine.
    CHECK(IsValidTopicName(std::string(len, '*')));
    CHECK(IsValidTopicName(std::string(len, ',')));
    CHECK(IsValidTopicName(std::string(len, '"')));
    CHECK(IsValidTopicName(std::string(len, '$')));
    std::string guillemets;
    for (size_t i = 0; i < len; ++i) guillemets += "\xc2\xab";
    CHECK(IsValidTopicName(guillemets));
  }
}

TEST_CASE("IsValidTopicFilter: examples from spec 4.7.1") {
  for (const char* f : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1", "/+",
                        "+/+", "sport/tennis/#", "sport/tennis/player1", "a//b", "/", "/#", "+/", "+/+/+",
                        "$SYS/#", "$share/group/a/+", "a/+/#", "\xe2\x82\xac/+"}) {
    CAPTURE(f);
    CHECK(IsValidTopicFilter(f));
  }
  for (const std::string& f :
       {std::string(""), std::string("sport/tennis#"), std::string("sport/tennis/#/ranking"),
        std::string("sport+"), std::string("a/b+"), std::string("+a"), std::string("a/+b/c"),
        std::string("##"), std::string("#/"), std::string("a/#b"), std::string("#+"), std::string("+#"),
        std::string("a/#/"), std::string("a\0", 2), std::string("\xed\xa0\x80"), std::string(65536, 'a')}) {
    CAPTURE(f.size());
    CHECK_FALSE(IsValidTopicFilter(f));
  }
  CHECK(IsValidTopicFilter(std::string(65535, 'a')));
}

}  // namespace
}  // namespace parley::mqtt
