// BanList: clients refused at the door — by address or address block (IPv4 and IPv6), by client id, or by
// user name — each rule with an optional expiry and a reason. Persisted in a text file (docs/security.md,
// "Ban file"; the grammar is repeated in ban_list.cc):
//
//   # comment
//   address 203.0.113.7 reason="credential stuffing"
//   address 10.0.0.0/8 until=2026-12-01T00:00:00Z
//   address 2001:db8::/32
//   clientid "sensor 17" until=2025-06-01T12:30:00Z reason="firmware loop"
//   username mallory
//
// Threads. Lookups run on every accept and every CONNECT, on every loop thread; changes come from the admin
// API, rarely. The rules sit behind one std::shared_mutex: a lookup holds it shared for a few hash probes
// (one atomic add on the lock word, no allocation unless a rule matches) and skips it entirely while the list
// is empty; a change holds it exclusively only for an O(1) insert or erase — the file is written before,
// outside that lock. An immutable snapshot swapped atomically would cost each lookup the same atomic
// reference-count traffic, and each Add a copy of up to max_rules rules; this way an Add is O(1) in memory.
// Changes (Add, Remove, Sweep, Load) are serialised by a second mutex, so the file always matches memory.
//
// Atomic persistence. When a path is set, Add and Remove first write the complete new list to
// "<path>.tmp" (mode 0600), fsync it, rename it over <path> and fsync the directory, and only then change the
// rules in memory. If any step fails the call returns the error and nothing has changed: the old file is
// intact and the old rules stay in force.
//
// Time is Unix milliseconds passed in by the caller (the wall clock: expiries are calendar dates). A rule is
// in force while now_ms < until; expired rules are ignored by lookups and dropped by Sweep and by the next
// change.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "broker/guard/ip_address.h"

namespace parley::broker::guard {

enum class BanKind : uint8_t { kAddress, kClientId, kUsername };

// One rule; also what a lookup returns when a rule matches (so the caller can log the reason and expiry).
struct BanRule {
  BanKind kind = BanKind::kAddress;
  // kAddress: an address or prefix in canonical text ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32").
  // kClientId / kUsername: the exact bytes the client sends (case-sensitive, 1..65535 bytes).
  std::string value;
  std::optional<int64_t> until_unix_ms;  // nullopt = permanent
  std::string reason;                    // may be empty; at most kMaxReasonBytes

  friend bool operator==(const BanRule&, const BanRule&) = default;
};
using BanInfo = BanRule;

const char* BanKindName(BanKind kind);  // "address", "clientid", "username"

class BanList {
 public:
  static constexpr size_t kDefaultMaxRules = 100'000;
  static constexpr size_t kMaxValueBytes = 65'535;  // the longest MQTT string
  static constexpr size_t kMaxReasonBytes = 1'024;

  struct Options {
    // Refuse an Add beyond this many rules in force, and a file holding more rules than this.
    size_t max_rules = kDefaultMaxRules;
    // The ban file; empty keeps the list in memory only.
    std::string path;
  };

  explicit BanList(Options options);
  BanList(const BanList&) = delete;
  BanList& operator=(const BanList&) = delete;

  // Replaces every rule with the file's. A missing file is an empty list (it is created on the first
  // change). On any error (unreadable file, a bad line — the message names "path:line" — or more than
  // max_rules rules) the current rules are kept. Startup or SIGHUP reload; any thread.
  Status Load();

  // Adds `rule`, or replaces the rule of the same kind and value (new expiry and reason). The value is
  // validated and canonicalised (an address prefix must have no host bits set). Refused when already expired
  // at `now_ms`, or when the list is full. Saved to the file before it takes effect. Any thread; blocks on
  // file I/O when a path is set (call it from the admin thread, not a loop thread).
  Status Add(BanRule rule, int64_t now_ms);
  // Removes the rule of that kind and value (an address in any accepted spelling: "10.0.0.1/32" is
  // "10.0.0.1"). An error when there is none. Saved like Add. Any thread; blocks on file I/O.
  Status Remove(BanKind kind, std::string_view value, int64_t now_ms);
  // Drops rules expired at `now_ms` (and saves when any were dropped); returns how many. Call on a timer
  // (once a minute is plenty) from a thread that may block on I/O. Any thread.
  size_t Sweep(int64_t now_ms, Status* save_status = nullptr);

  // The rule that refuses a connection from `address` at `now_ms`, or nullopt. An exact-address rule is
  // preferred, then the longest matching prefix. O(1) in the number of address rules: one hash probe for the
  // exact rules and one per distinct prefix length in use. Any thread.
  std::optional<BanInfo> CheckAddress(const IpAddress& address, int64_t now_ms) const;
  // The rule that refuses a CONNECT with this client id or user name (empty = none given) at `now_ms`, or
  // nullopt; the client id rule first. Any thread.
  std::optional<BanInfo> CheckClient(std::string_view client_id, std::string_view username,
                                     int64_t now_ms) const;

  // The rules in force at `now_ms`, sorted by kind then value. Any thread.
  std::vector<BanRule> List(int64_t now_ms) const;
  // Rules held, expired ones not yet swept included. Any thread.
  size_t size() const { return size_.load(std::memory_order_relaxed); }

  // The file format, for tools and tests. Parse names errors "<source_name>:<line>: ..."; it checks each
  // line and duplicates but not max_rules. Format writes the rules as given, one per line, after a header
  // comment; Parse(Format(rules)) == rules for canonical rules.
  static Result<std::vector<BanRule>> Parse(std::string_view text, std::string_view source_name);
  static std::string Format(const std::vector<BanRule>& rules);
  // Checks and canonicalises one rule's kind-specific value and its reason (Add does this).
  static Status Canonicalize(BanRule* rule);

 private:
  struct Entry {
    std::optional<int64_t> until_unix_ms;
    std::string reason;
  };
  struct StringHash {  // lets lookups take a string_view without building a std::string
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StringMap = std::unordered_map<std::string, Entry, StringHash, std::equal_to<>>;
  using AddressMap = std::unordered_map<IpAddress, Entry, IpAddressHash>;
  struct PrefixBucket {  // the rules of one family and one prefix length, keyed by network address
    IpAddress::Family family;
    int length;
    AddressMap rules;
  };

  struct Rules {
    AddressMap hosts;                    // /32 and /128 rules
    std::vector<PrefixBucket> prefixes;  // sorted longest first; no empty buckets
    StringMap client_ids;
    StringMap usernames;
    size_t size = 0;
  };

  static bool Live(const Entry& e, int64_t now_ms) { return !e.until_unix_ms || now_ms < *e.until_unix_ms; }
  static BanInfo Info(BanKind kind, std::string value, const Entry& e);
  static void Insert(Rules* rules, const BanRule& rule);  // rule canonical
  static bool Erase(Rules* rules, BanKind kind, const std::string& value);
  static const Entry* Find(const Rules& rules, BanKind kind, const std::string& value);  // value canonical
  static std::vector<BanRule> Collect(const Rules& rules, std::optional<int64_t> live_at);
  static Rules BuildRules(const std::vector<BanRule>& list);

  // Writes `list` to path_ atomically (see the file comment). change_mu_ held.
  Status Save(const std::vector<BanRule>& list) const;
  void Publish(Rules rules);  // swaps `rules` in; change_mu_ held

  const Options options_;
  std::mutex change_mu_;  // serialises changes and file writes; taken before mu_
  mutable std::shared_mutex mu_;
  Rules rules_;                  // guarded by mu_ (written only with change_mu_ held too)
  std::atomic<size_t> size_{0};  // rules_.size, readable without mu_: lookups skip the lock when 0
};

}  // namespace parley::broker::guard
