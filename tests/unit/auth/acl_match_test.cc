#include "broker/auth/acl_match.h"

#include <doctest/doctest.h>

#include <string>

namespace parley::broker::auth {
namespace {

struct Case {
  const char* filter;
  const char* topic;
  bool match;
};

// MQTT 5.0 section 4.7 (same text as 3.1.1 section 4.7), plus edge cases.
constexpr Case kTopicCases[] = {
    // 4.7.1.2 multi-level wildcard
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/#", "sport", true},
    {"#", "sport", true},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    // 4.7.1.3 single-level wildcard
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/+/#", "a", false},
    {"a/+/#", "a/b", true},
    {"a/+/#", "a", false},
    // 4.7.2 topics beginning with $
    {"#", "$SYS", false},
    {"#", "$SYS/broker/clients", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/$SYS", "a/$SYS", true},
    {"a/+", "a/$x", true},  // only a leading '$' is special
    // literals, case, empty levels
    {"sport/tennis", "sport/tennis", true},
    {"sport/tennis", "Sport/tennis", false},
    {"sport/tennis", "sport/tennis/", false},
    {"sport/tennis/", "sport/tennis/", true},
    {"sport", "sport/tennis", false},
    {"sport/tennis", "sport", false},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"/", "/", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"#", "", false},
    {"", "a", false},
};

TEST_CASE("TopicMatches follows MQTT 4.7") {
  for (const Case& c : kTopicCases) {
    CAPTURE(c.filter);
    CAPTURE(c.topic);
    CHECK(TopicMatches(c.filter, c.topic) == c.match);
  }
}

struct CoverCase {
  const char* rule;
  const char* sub;
  bool covered;
};

constexpr CoverCase kCoverCases[] = {
    {"a/#", "a/+/c", true},
    {"a/#", "a/#", true},
    {"a/#", "a", true},
    {"a/#", "a/b/c", true},
    {"a/b", "a/+", false},
    {"a/b", "a/#", false},
    {"a/b", "a/b", true},
    {"a/+", "a/+", true},
    {"a/+", "a/b", true},
    {"a/+", "a/#", false},
    {"a/+", "a/+/c", false},
    {"a/+/c", "a/+/c", true},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a/+/+", false},
    {"a/+/#", "a/+/c/#", true},
    {"a/+/#", "a/#", false},  // "a/#" matches "a", which "a/+/#" does not
    {"a/+/#", "a", false},
    {"#", "#", true},
    {"#", "+/+", true},
    {"#", "a/+/#", true},
    {"#", "$SYS/#", false},  // '#' never reaches '$' topics...
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/#", true},  // ...but a rule spelled with '$' does
    {"$SYS/#", "$SYS/+/x", true},
    {"$SYS/#", "#", false},
    {"$SYS/x", "+/x", false},
    {"test/nosubscribe", "test/nosubscribe", true},
    {"test/nosubscribe", "test/#", false},
    {"test/nosubscribe", "#", false},
    {"+/#", "#", false},  // equivalent spelling, conservatively not recognised
    {"", "a", false},
    {"a", "", false},
};

TEST_CASE("FilterCovers checks that a rule covers every topic a subscription can match") {
  for (const CoverCase& c : kCoverCases) {
    CAPTURE(c.rule);
    CAPTURE(c.sub);
    CHECK(FilterCovers(c.rule, c.sub) == c.covered);
  }
}

TEST_CASE("FilterCovers equals TopicMatches for subscriptions without wildcards") {
  for (const Case& c : kTopicCases) {
    if (HasWildcard(c.topic)) continue;
    CAPTURE(c.filter);
    CAPTURE(c.topic);
    CHECK(FilterCovers(c.filter, c.topic) == TopicMatches(c.filter, c.topic));
  }
}

TEST_CASE("IsValidTopicFilter") {
  for (const char* ok : {"a", "#", "+", "a/#", "+/+", "/", "a//b", "+/a/#", "$SYS/#", "dev/%c/#", "a b"}) {
    CAPTURE(ok);
    CHECK(IsValidTopicFilter(ok));
  }
  for (const char* bad : {"", "a#", "a/#/b", "#/a", "a+", "a/+b", "+a/b", "a/b#", "##", "++"}) {
    CAPTURE(bad);
    CHECK_FALSE(IsValidTopicFilter(bad));
  }
  CHECK_FALSE(IsValidTopicFilter(std::string_view("a\0b", 3)));
  CHECK(IsValidTopicFilter(std::string(65535, 'a')));
  CHECK_FALSE(IsValidTopicFilter(std::string(65536, 'a')));
}

}  // namespace
}  // namespace parley::broker::auth
