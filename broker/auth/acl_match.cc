#include "broker/auth/acl_match.h"

namespace parley::broker::auth {
namespace {

// Walks the '/'-separated levels of a topic or filter without copying. "a/" has two levels, "a" and "".
class Levels {
 public:
  explicit Levels(std::string_view s) : rest_(s) {}

  // Stores the next level in `*level` and returns true, or returns false when no level is left.
  bool Next(std::string_view* level) {
    if (done_) return false;
    const size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      *level = rest_;
      done_ = true;
    } else {
      *level = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

  bool AtEnd() const { return done_; }

 private:
  std::string_view rest_;
  bool done_ = false;
};

bool StartsWithWildcard(std::string_view s) {
  return !s.empty() && (s[0] == '+' || s[0] == '#');
}

}  // namespace

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (filter.empty() || topic.empty()) return false;
  if (topic[0] == '$' && StartsWithWildcard(filter)) return false;  // MQTT 4.7.2
  Levels f(filter);
  Levels t(topic);
  std::string_view fl;
  std::string_view tl;
  while (f.Next(&fl)) {
    if (fl == "#") return true;      // the parent level and everything below it
    if (!t.Next(&tl)) return false;  // the topic ran out before the filter did
    if (fl == "+") continue;         // any single level, including an empty one
    if (fl != tl) return false;
  }
  return t.AtEnd();
}

bool FilterCovers(std::string_view rule, std::string_view sub) {
  if (rule.empty() || sub.empty()) return false;
  // A `sub` starting with '$' may reach '$' topics, which a rule starting with a wildcard never matches. A
  // `sub` starting with a wildcard reaches no '$' topic, so a rule needs no special case for it.
  if (sub[0] == '$' && StartsWithWildcard(rule)) return false;
  Levels r(rule);
  Levels s(sub);
  std::string_view rl;
  std::string_view sl;
  while (r.Next(&rl)) {
    if (rl == "#") return true;  // covers this level and anything below, including nothing ("a/#" ⊇ "a")
    if (!s.Next(&sl)) return false;  // `sub` matches a topic with fewer levels than `rule` accepts
    if (sl == "#") return false;     // only '#' covers '#'
    if (rl == "+") continue;         // covers '+' and any literal level
    if (sl == "+" || rl != sl) return false;
  }
  return s.AtEnd();
}

bool IsValidTopicFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > 65535) return false;
  Levels levels(filter);
  std::string_view level;
  while (levels.Next(&level)) {
    if (level.find('\0') != std::string_view::npos) return false;
    if (level == "+") continue;
    if (level == "#") return levels.AtEnd();
    if (HasWildcard(level)) return false;
  }
  return true;
}

}  // namespace parley::broker::auth
