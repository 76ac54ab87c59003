// Topic-name and topic-filter matching for ACL rules (MQTT 3.1.1 and 5.0, section 4.7).
// Pure functions: any thread, no allocation, no state.
#pragma once

#include <string_view>

namespace parley::broker::auth {

// True if the topic name `topic` matches the topic filter `filter` (MQTT 4.7):
//   - levels are separated by '/', and a level may be empty ("a//b", "/a", "a/");
//   - '+' matches exactly one level, which may be empty ("sport/+" matches "sport/" but not "sport");
//   - '#' (only as the whole last level) matches the parent level and any number of child levels
//     ("sport/#" matches "sport", "sport/x" and "sport/x/y");
//   - a filter whose first character is a wildcard matches no topic starting with '$' (MQTT 4.7.2), so
//     "#" and "+/monitor" never match "$SYS/..." topics.
// Both arguments are assumed well formed (filters are checked at ACL load, topic names by the codec).
// Empty arguments never match.
bool TopicMatches(std::string_view filter, std::string_view topic);

// True if every topic name matched by the subscription filter `sub` is also matched by the filter `rule`,
// compared level by level: a '+' in `sub` must face '+' or '#' in `rule`, a '#' in `sub` must face '#', a
// literal level must face '+', '#' or the same literal. "a/#" covers "a/+/c", "a/#" and "a"; "a/b" does not
// cover "a/+". A `sub` starting with '$' is covered only by a rule that does not start with a wildcard.
// For a `sub` without wildcards this is exactly TopicMatches(rule, sub).
// Conservative: filters that are equivalent but spelled differently ("+/#" and "#") are not recognised.
bool FilterCovers(std::string_view rule, std::string_view sub);

// True if `filter` is a syntactically valid topic filter: non-empty, no NUL, at most 65,535 bytes, '+' only
// as a whole level, '#' only as the whole last level. (UTF-8 well-formedness is not checked here.)
bool IsValidTopicFilter(std::string_view filter);

// True if `s` contains '+' or '#'. (A plain loop: libstdc++'s find_first_of calls memchr once per character.)
inline bool HasWildcard(std::string_view s) {
  for (const char c : s) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

}  // namespace parley::broker::auth
