// AclFile: an Authorizer backed by a mosquitto-format ACL file (docs/authentication.md).
//
//   # comment
//   topic read $SYS/#                     before any `user` line: rules for clients without a user name
//   user alice                            the following `topic` lines are alice's
//   topic readwrite home/alice/#
//   topic deny home/alice/secret
//   pattern write devices/%c/status       for every client; %c = client id, %u = user name
//
// Decision for (client, topic, access), as mosquitto 2.0 with one documented difference:
//   1. the client's own rules are its `user` section (or the anonymous rules when it has no user name),
//      plus every `pattern` (those using %u only when it has a user name);
//   2. if any of those `deny` rules matches, refuse (deny wins over any grant, pattern or not);
//   3. else allow if a read/write/readwrite rule granting `access` matches;
//   4. else refuse (default deny).
// Immutable once loaded; const methods may be called from any thread at the same time. Reload = build a new
// object and swap the pointer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "broker/api/auth.h"

namespace parley::broker::auth {

class AclFile final : public Authorizer {
 public:
  // Reads and parses `path`. Errors name "path:line". Startup / reload thread.
  static Result<std::unique_ptr<AclFile>> Load(const std::string& path);
  // As Load, from text in memory; `source_name` is used in error messages.
  static Result<std::unique_ptr<AclFile>> Parse(std::string_view text, std::string_view source_name);

  // kWrite: `topic` is the PUBLISH topic name (a name with '+' or '#' is refused).
  // kRead with '+' or '#' in `topic`: a SUBSCRIBE filter (without any "$share/<group>/" prefix). A grant must
  // cover every topic the filter can match (FilterCovers): "a/#" allows "a/+/c", "a/b" does not allow
  // "a/+". A deny rule refuses the filter when it covers it likewise; a filter that only overlaps a deny
  // rule ("test/#" against "deny test/secret") is allowed, and the deny is enforced per message.
  // kRead without wildcards: a topic name, at SUBSCRIBE time or before delivering a message.
  // No allocation unless a pattern expands to more than 256 bytes. Any thread.
  bool Allowed(const ClientIdentity& who, std::string_view topic, Access access) const override;

  // Number of topic and pattern rules loaded (for the startup log).
  size_t rule_count() const { return rule_count_; }

 private:
  // A run of a pattern after load-time splitting: literal text of the rule, or a substitution.
  struct Piece {
    enum Kind : uint8_t { kLiteral, kClientId, kUsername };
    Kind kind = kLiteral;
    uint32_t begin = 0;  // kLiteral: bytes [begin, begin + size) of Rule::topic
    uint32_t size = 0;
  };
  struct Rule {
    std::string topic;          // as written; patterns still contain %c / %u
    uint8_t access = 0;         // bits of Access; 0 = deny
    bool has_wildcard = false;  // false: a plain comparison decides the match
    bool uses_username = false;
    // Every topic or filter this rule can match or cover starts with topic[0, prefix_len): a cheap reject
    // before any matching or pattern expansion.
    uint32_t prefix_len = 0;
    std::vector<Piece> pieces;  // patterns with %c / %u only; empty otherwise
  };
  struct RuleSet {
    std::vector<Rule> denies;
    std::vector<Rule> grants;
    bool empty() const { return denies.empty() && grants.empty(); }
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  AclFile() = default;
  void Add(RuleSet* set, Rule rule);
  static bool Matches(const Rule& rule, std::string_view topic, bool topic_is_filter);
  static bool PatternMatches(const Rule& rule, const ClientIdentity& who, std::string_view topic,
                             bool topic_is_filter);

  RuleSet anonymous_;                                                            // `topic` before any `user`
  std::unordered_map<std::string, RuleSet, StringHash, std::equal_to<>> users_;  // `topic` after `user X`
  RuleSet patterns_;                                                             // every `pattern` line
  size_t rule_count_ = 0;
};

}  // namespace parley::broker::auth
