#include "broker/auth/acl_file.h"

#include "broker/auth/acl_match.h"
#include "broker/auth/auth_util.h"

namespace parley::broker::auth {
namespace {

constexpr size_t kMaxFileBytes = 64u << 20;
constexpr uint8_t kDeny = 0;
constexpr uint8_t kReadBit = static_cast<uint8_t>(Access::kRead);
constexpr uint8_t kWriteBit = static_cast<uint8_t>(Access::kWrite);

Status LineError(std::string_view source, int line, std::string_view what) {
  std::string msg(source);
  msg += ':';
  msg += std::to_string(line);
  msg += ": ";
  msg += what;
  return Status::Error(std::move(msg));
}

// Splits off the first blank-separated word; `*rest` gets the remainder with blanks trimmed.
std::string_view FirstWord(std::string_view s, std::string_view* rest) {
  const size_t end = s.find_first_of(" \t");
  if (end == std::string_view::npos) {
    *rest = {};
    return s;
  }
  *rest = TrimBlanks(s.substr(end));
  return s.substr(0, end);
}

// `rule_wild` and `arg_is_filter` say whether each side contains '+' or '#'.
bool RuleMatches(std::string_view rule, bool rule_wild, std::string_view arg, bool arg_is_filter) {
  // A literal rule matches a topic name only by equality, and covers no wildcard filter.
  if (!rule_wild) return !arg_is_filter && rule == arg;
  return arg_is_filter ? FilterCovers(rule, arg) : TopicMatches(rule, arg);
}

// Length of the literal text every match of `topic` must start with: everything before the first wildcard
// or '%' substitution, minus the '/' before a final "#" (because "a/#" also matches "a").
uint32_t LiteralPrefixLength(std::string_view topic, bool pattern) {
  size_t n = 0;
  while (n < topic.size()) {
    const char c = topic[n];
    if (c == '+' || c == '#') break;
    if (pattern && c == '%' && n + 1 < topic.size() && (topic[n + 1] == 'c' || topic[n + 1] == 'u')) break;
    ++n;
  }
  if (n < topic.size() && topic[n] == '#' && n > 0) --n;
  return static_cast<uint32_t>(n);
}

}  // namespace

Result<std::unique_ptr<AclFile>> AclFile::Load(const std::string& path) {
  Result<std::string> text = ReadSmallFile(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

Result<std::unique_ptr<AclFile>> AclFile::Parse(std::string_view text, std::string_view source_name) {
  std::unique_ptr<AclFile> acl(new AclFile());
  RuleSet* current = &acl->anonymous_;
  Status st = ForEachLine(text, [&](int number, std::string_view raw) -> Status {
    const std::string_view line = TrimBlanks(raw);
    if (line.empty() || line[0] == '#') return Status::Ok();
    std::string_view rest;
    const std::string_view keyword = FirstWord(line, &rest);
    if (keyword == "user") {
      if (rest.empty()) return LineError(source_name, number, "\"user\" needs a user name");
      current = &acl->users_[std::string(rest)];  // repeated sections for one user accumulate
      return Status::Ok();
    }
    const bool pattern = keyword == "pattern";
    if (!pattern && keyword != "topic") {
      return LineError(source_name, number,
                       "unknown keyword \"" + std::string(keyword) + "\" (expected topic, pattern or user)");
    }
    if (rest.empty()) return LineError(source_name, number, "\"" + std::string(keyword) + "\" needs a topic");
    std::string_view topic;
    const std::string_view first = FirstWord(rest, &topic);
    Rule rule;
    if (topic.empty()) {
      // One word: it is the topic, with readwrite access (so "topic read" grants readwrite on "read",
      // exactly as in mosquitto).
      topic = first;
      rule.access = kReadBit | kWriteBit;
    } else if (first == "read") {
      rule.access = kReadBit;
    } else if (first == "write") {
      rule.access = kWriteBit;
    } else if (first == "readwrite") {
      rule.access = kReadBit | kWriteBit;
    } else if (first == "deny") {
      rule.access = kDeny;
    } else {
      return LineError(
          source_name, number,
          "unknown access \"" + std::string(first) + "\" (expected read, write, readwrite or deny)");
    }
    if (!IsValidTopicFilter(topic)) return LineError(source_name, number, "invalid topic filter");
    rule.topic = std::string(topic);
    rule.has_wildcard = HasWildcard(topic);
    rule.prefix_len = LiteralPrefixLength(topic, pattern);
    if (pattern) {
      // Split at each %c / %u, the way mosquitto substitutes: a '%' followed by 'c' or 'u' is replaced, any
      // other '%' is literal. Patterns without either are plain rules that apply to every client.
      size_t literal_start = 0;
      for (size_t i = 0; i + 1 < topic.size(); ++i) {
        if (topic[i] != '%' || (topic[i + 1] != 'c' && topic[i + 1] != 'u')) continue;
        rule.pieces.push_back({Piece::kLiteral, static_cast<uint32_t>(literal_start),
                               static_cast<uint32_t>(i - literal_start)});
        rule.pieces.push_back({topic[i + 1] == 'c' ? Piece::kClientId : Piece::kUsername, 0, 0});
        rule.uses_username |= topic[i + 1] == 'u';
        literal_start = i + 2;
        ++i;
      }
      if (!rule.pieces.empty()) {
        rule.pieces.push_back({Piece::kLiteral, static_cast<uint32_t>(literal_start),
                               static_cast<uint32_t>(topic.size() - literal_start)});
      }
    }
    acl->Add(pattern ? &acl->patterns_ : current, std::move(rule));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return acl;
}

void AclFile::Add(RuleSet* set, Rule rule) {
  (rule.access == kDeny ? set->denies : set->grants).push_back(std::move(rule));
  ++rule_count_;
}

bool AclFile::Matches(const Rule& rule, std::string_view topic, bool topic_is_filter) {
  if (topic.compare(0, rule.prefix_len, rule.topic, 0, rule.prefix_len) != 0) return false;
  return RuleMatches(rule.topic, rule.has_wildcard, topic, topic_is_filter);
}

bool AclFile::PatternMatches(const Rule& rule, const ClientIdentity& who, std::string_view topic,
                             bool topic_is_filter) {
  if (rule.pieces.empty()) return Matches(rule, topic, topic_is_filter);
  if (rule.uses_username && !who.username) return false;  // %u never matches an anonymous client
  if (topic.compare(0, rule.prefix_len, rule.topic, 0, rule.prefix_len) != 0) return false;
  const std::string_view username = who.username.value_or(std::string_view());
  auto piece_text = [&](const Piece& p) -> std::string_view {
    switch (p.kind) {
      case Piece::kClientId:
        return who.client_id;
      case Piece::kUsername:
        return username;
      case Piece::kLiteral:
        break;
    }
    return std::string_view(rule.topic).substr(p.begin, p.size);
  };
  size_t len = 0;
  for (const Piece& p : rule.pieces) len += piece_text(p).size();
  // Expand into a stack buffer; only unusually long client ids or user names need the heap.
  char stack_buf[256];
  std::string heap_buf;
  char* out = stack_buf;
  if (len > sizeof stack_buf) {
    heap_buf.resize(len);
    out = heap_buf.data();
  }
  size_t pos = 0;
  for (const Piece& p : rule.pieces) {
    const std::string_view text = piece_text(p);
    text.copy(out + pos, text.size());
    pos += text.size();
  }
  // The identity holds no '+' or '#' (Allowed checks), so expansion adds no wildcards.
  return RuleMatches(std::string_view(out, len), rule.has_wildcard, topic, topic_is_filter);
}

bool AclFile::Allowed(const ClientIdentity& who, std::string_view topic, Access access) const {
  if (topic.empty()) return false;
  const bool is_filter = HasWildcard(topic);
  if (is_filter && access != Access::kRead) return false;  // only subscriptions carry wildcards
  const uint8_t want = static_cast<uint8_t>(access);

  const RuleSet* own = &anonymous_;
  if (who.username) {
    const auto it = users_.find(*who.username);
    own = it == users_.end() ? nullptr : &it->second;
  }
  const bool use_patterns = !patterns_.empty();
  // A '+' or '#' in the identity would turn a pattern into a wider filter than intended (a client named "#"
  // would match "devices/%c/#" for every device). mosquitto refuses such clients when patterns exist; so do
  // we.
  if (use_patterns && (HasWildcard(who.client_id) || (who.username && HasWildcard(*who.username)))) {
    return false;
  }

  if (own) {
    for (const Rule& r : own->denies) {
      if (Matches(r, topic, is_filter)) return false;
    }
  }
  if (use_patterns) {
    for (const Rule& r : patterns_.denies) {
      if (PatternMatches(r, who, topic, is_filter)) return false;
    }
  }
  if (own) {
    for (const Rule& r : own->grants) {
      if ((r.access & want) && Matches(r, topic, is_filter)) return true;
    }
  }
  if (use_patterns) {
    for (const Rule& r : patterns_.grants) {
      if ((r.access & want) && PatternMatches(r, who, topic, is_filter)) return true;
    }
  }
  return false;
}

}  // namespace parley::broker::auth
