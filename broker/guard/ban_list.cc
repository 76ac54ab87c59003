#include "broker/guard/ban_list.h"

// The ban file, line by line (documented for operators in docs/security.md, "Ban file"):
//
//   file      = *(line LF)          ; the last LF may be missing; a CR before LF is ignored
//   line      = WS* [comment | rule] WS*
//   comment   = "#" *byte           ; a whole line only: "#" inside a rule is an ordinary byte
//   rule      = kind WS+ value *(WS+ option)
//   kind      = "address" | "clientid" | "username"
//   value     = bare | quoted       ; address: an IPv4/IPv6 address or prefix ("10.0.0.0/8")
//   option    = "until=" timestamp | "reason=" [bare | quoted]     ; each at most once, any order
//   timestamp = YYYY "-" MM "-" DD "T" hh ":" mm ":" ss ["." 1*3DIGIT] "Z"   ; UTC, RFC 3339
//   bare      = 1*(any byte but SP, HTAB, '"', '\', 0x00-0x1F, 0x7F)     ; UTF-8 passes through
//   quoted    = DQUOTE *(any byte but '"', '\', 0x00-0x1F, 0x7F | escape) DQUOTE
//   escape    = "\\" | "\"" | "\t" | "\n" | "\r" | "\x" 2HEXDIG
//   WS        = SP | HTAB
//
// Rules are unique by kind and value (addresses compared as canonical prefixes); a repeat is an error.
// Format() quotes a value only when it must (empty, or a byte a bare value cannot hold) and always quotes
// reasons.

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>

#include "base/file_util.h"

namespace parley::broker::guard {
namespace {

constexpr off_t kMaxFileBytes = off_t{64} << 20;
constexpr char kHeader[] =
    "# Parley ban list: one rule per line, see docs/security.md (\"Ban file\").\n"
    "# Written by parleyd on every change made through the admin API; hand edits are read on reload.\n";

bool IsWs(char c) {
  return c == ' ' || c == '\t';
}
bool IsControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}
bool IsBareByte(unsigned char c) {
  return !IsControl(c) && c != ' ' && c != '"' && c != '\\';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads a bare or quoted token at the start of `*in`, consuming it. Errors say what is wrong.
Status ReadToken(std::string_view* in, std::string* out) {
  out->clear();
  std::string_view s = *in;
  if (s.empty() || IsWs(s.front())) return Status::Error("missing value");
  if (s.front() != '"') {
    size_t i = 0;
    while (i < s.size() && !IsWs(s[i])) {
      if (!IsBareByte(static_cast<unsigned char>(s[i]))) {
        return Status::Error("unexpected quote, backslash or control byte in an unquoted value");
      }
      ++i;
    }
    out->assign(s.substr(0, i));
    *in = s.substr(i);
    return Status::Ok();
  }
  size_t i = 1;
  while (true) {
    if (i >= s.size()) return Status::Error("unterminated quoted string");
    const char c = s[i];
    if (c == '"') break;
    if (IsControl(static_cast<unsigned char>(c))) return Status::Error("control byte in a quoted string");
    if (c != '\\') {
      out->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= s.size()) return Status::Error("unterminated escape");
    const char e = s[i + 1];
    i += 2;
    switch (e) {
      case '\\':
      case '"':
        out->push_back(e);
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 'x': {
        const int hi = i < s.size() ? HexValue(s[i]) : -1;
        const int lo = i + 1 < s.size() ? HexValue(s[i + 1]) : -1;
        if (hi < 0 || lo < 0) return Status::Error("\\x needs two hex digits");
        out->push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      default:
        return Status::Error("unknown escape (use \\\\, \\\", \\t, \\n, \\r or \\xHH)");
    }
  }
  *in = s.substr(i + 1);
  if (!in->empty() && !IsWs(in->front())) return Status::Error("no space after a quoted string");
  return Status::Ok();
}

void AppendToken(std::string* out, std::string_view v, bool always_quote) {
  const bool bare = !always_quote && !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return IsBareByte(static_cast<unsigned char>(c));
  });
  if (bare) {
    out->append(v);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (IsControl(u)) {
          out->append("\\x");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 15]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Fixed-width decimal digits at s[pos, pos+n).
bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

std::optional<int64_t> ParseTimestamp(std::string_view s) {
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || s[10] != 'T' || !Digits(s, 11, 2, &h) || s[13] != ':' ||
      !Digits(s, 14, 2, &mi) || s[16] != ':' || !Digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  size_t pos = 19;
  int ms = 0;
  if (s[pos] == '.') {
    size_t n = 0;
    while (pos + 1 + n < s.size() && s[pos + 1 + n] >= '0' && s[pos + 1 + n] <= '9') ++n;
    if (n == 0 || n > 3 || !Digits(s, pos + 1, n, &ms)) return std::nullopt;
    for (size_t i = n; i < 3; ++i) ms *= 10;
    pos += 1 + n;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (y < 1970 || !ymd.ok() || h > 23 || mi > 59 || sec > 59) return std::nullopt;
  const auto tp = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{ms};
  return duration_cast<milliseconds>(tp.time_since_epoch()).count();
}

std::string FormatTimestamp(int64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> tp{milliseconds{unix_ms}};
  const auto day_start = floor<days>(tp);
  const year_month_day ymd{day_start};
  const hh_mm_ss<milliseconds> t{tp - day_start};
  char buf[40];
  const int ms = static_cast<int>(t.subseconds().count());
  std::snprintf(buf, sizeof(buf),
                ms ? "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ" : "%04d-%02u-%02uT%02d:%02d:%02dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(t.hours().count()),
                static_cast<int>(t.minutes().count()), static_cast<int>(t.seconds().count()), ms);
  return buf;
}

std::optional<BanKind> KindFromName(std::string_view s) {
  if (s == "address") return BanKind::kAddress;
  if (s == "clientid") return BanKind::kClientId;
  if (s == "username") return BanKind::kUsername;
  return std::nullopt;
}

Status ParseLine(std::string_view line, BanRule* rule) {
  size_t k = 0;
  while (k < line.size() && !IsWs(line[k])) ++k;
  const auto kind = KindFromName(line.substr(0, k));
  if (!kind) return Status::Error("unknown rule kind (expected address, clientid or username)");
  rule->kind = *kind;
  std::string_view rest = line.substr(k);
  if (rest.empty()) return Status::Error("missing value");
  while (!rest.empty() && IsWs(rest.front())) rest.remove_prefix(1);
  if (Status st = ReadToken(&rest, &rule->value); !st.ok()) return st;

  bool have_until = false, have_reason = false;
  while (true) {
    while (!rest.empty() && IsWs(rest.front())) rest.remove_prefix(1);
    if (rest.empty()) break;
    std::string text;
    if (rest.substr(0, 6) == "until=") {
      if (have_until) return Status::Error("until= given twice");
      have_until = true;
      rest.remove_prefix(6);
      if (Status st = ReadToken(&rest, &text); !st.ok()) return st;
      const auto ms = ParseTimestamp(text);
      if (!ms) return Status::Error("bad until= time (expected UTC like 2026-12-01T00:00:00Z)");
      rule->until_unix_ms = *ms;
    } else if (rest.substr(0, 7) == "reason=") {
      if (have_reason) return Status::Error("reason= given twice");
      have_reason = true;
      rest.remove_prefix(7);
      if (rest.empty() || IsWs(rest.front())) {
        rule->reason.clear();  // reason= with nothing after it: an empty reason
        continue;
      }
      if (Status st = ReadToken(&rest, &rule->reason); !st.ok()) return st;
    } else {
      return Status::Error("unknown option (expected until= or reason=)");
    }
  }
  return BanList::Canonicalize(rule);
}

std::string Located(std::string_view source, size_t line, std::string_view message) {
  return std::string(source) + ":" + std::to_string(line) + ": " + std::string(message);
}

std::string Errno(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

}  // namespace

const char* BanKindName(BanKind kind) {
  switch (kind) {
    case BanKind::kAddress:
      return "address";
    case BanKind::kClientId:
      return "clientid";
    case BanKind::kUsername:
      return "username";
  }
  return "?";
}

BanList::BanList(Options options) : options_(std::move(options)) {}

Status BanList::Canonicalize(BanRule* rule) {
  if (rule->kind == BanKind::kAddress) {
    auto prefix = IpPrefix::Parse(rule->value);
    if (!prefix.ok()) return Status::Error("bad address: " + prefix.status().message());
    rule->value = prefix->ToString();
  } else if (rule->kind == BanKind::kClientId || rule->kind == BanKind::kUsername) {
    if (rule->value.empty()) return Status::Error(std::string("empty ") + BanKindName(rule->kind));
    if (rule->value.size() > kMaxValueBytes)
      return Status::Error(std::string(BanKindName(rule->kind)) + " too long");
  } else {
    return Status::Error("unknown rule kind");
  }
  if (rule->reason.size() > kMaxReasonBytes) return Status::Error("reason too long");
  return Status::Ok();
}

Result<std::vector<BanRule>> BanList::Parse(std::string_view text, std::string_view source_name) {
  std::vector<BanRule> rules;
  std::map<std::pair<BanKind, std::string>, size_t> seen;  // -> line of first definition
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && IsWs(line.front())) line.remove_prefix(1);
    while (!line.empty() && IsWs(line.back())) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    BanRule rule;
    if (Status st = ParseLine(line, &rule); !st.ok()) {
      return Status::Error(Located(source_name, line_no, st.message()));
    }
    auto [it, inserted] = seen.emplace(std::make_pair(rule.kind, rule.value), line_no);
    if (!inserted) {
      return Status::Error(Located(source_name, line_no,
                                   std::string("duplicate ") + BanKindName(rule.kind) +
                                       " rule (first at line " + std::to_string(it->second) + ")"));
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::string BanList::Format(const std::vector<BanRule>& rules) {
  std::string out = kHeader;
  for (const BanRule& r : rules) {
    out.append(BanKindName(r.kind));
    out.push_back(' ');
    AppendToken(&out, r.value, /*always_quote=*/false);
    if (r.until_unix_ms) {
      out.append(" until=");
      out.append(FormatTimestamp(*r.until_unix_ms));
    }
    if (!r.reason.empty()) {
      out.append(" reason=");
      AppendToken(&out, r.reason, /*always_quote=*/true);
    }
    out.push_back('\n');
  }
  return out;
}

BanInfo BanList::Info(BanKind kind, std::string value, const Entry& e) {
  return BanInfo{kind, std::move(value), e.until_unix_ms, e.reason};
}

void BanList::Insert(Rules* rules, const BanRule& rule) {
  Entry entry{rule.until_unix_ms, rule.reason};
  bool added = false;
  switch (rule.kind) {
    case BanKind::kAddress: {
      auto prefix = IpPrefix::Parse(rule.value);  // canonical already: cannot fail
      if (!prefix.ok()) return;
      if (prefix->is_host()) {
        added = rules->hosts.insert_or_assign(prefix->network(), std::move(entry)).second;
        break;
      }
      const auto family = prefix->network().family();
      auto it = std::find_if(rules->prefixes.begin(), rules->prefixes.end(), [&](const PrefixBucket& b) {
        return b.family == family && b.length == prefix->length();
      });
      if (it == rules->prefixes.end()) {
        rules->prefixes.push_back(PrefixBucket{family, prefix->length(), {}});
        std::sort(rules->prefixes.begin(), rules->prefixes.end(),
                  [](const PrefixBucket& a, const PrefixBucket& b) { return a.length > b.length; });
        it = std::find_if(rules->prefixes.begin(), rules->prefixes.end(), [&](const PrefixBucket& b) {
          return b.family == family && b.length == prefix->length();
        });
      }
      added = it->rules.insert_or_assign(prefix->network(), std::move(entry)).second;
      break;
    }
    case BanKind::kClientId:
      added = rules->client_ids.insert_or_assign(rule.value, std::move(entry)).second;
      break;
    case BanKind::kUsername:
      added = rules->usernames.insert_or_assign(rule.value, std::move(entry)).second;
      break;
  }
  if (added) ++rules->size;
}

bool BanList::Erase(Rules* rules, BanKind kind, const std::string& value) {
  size_t n = 0;
  switch (kind) {
    case BanKind::kAddress: {
      auto prefix = IpPrefix::Parse(value);
      if (!prefix.ok()) return false;
      if (prefix->is_host()) {
        n = rules->hosts.erase(prefix->network());
        break;
      }
      for (auto it = rules->prefixes.begin(); it != rules->prefixes.end(); ++it) {
        if (it->family != prefix->network().family() || it->length != prefix->length()) continue;
        n = it->rules.erase(prefix->network());
        if (it->rules.empty()) rules->prefixes.erase(it);  // lookups visit only lengths in use
        break;
      }
      break;
    }
    case BanKind::kClientId:
      n = rules->client_ids.erase(value);
      break;
    case BanKind::kUsername:
      n = rules->usernames.erase(value);
      break;
  }
  rules->size -= n;
  return n != 0;
}

std::vector<BanRule> BanList::Collect(const Rules& rules, std::optional<int64_t> live_at) {
  std::vector<BanRule> out;
  out.reserve(rules.size);
  auto keep = [&](const Entry& e) { return !live_at || Live(e, *live_at); };
  for (const auto& [addr, e] : rules.hosts) {
    if (keep(e)) out.push_back(Info(BanKind::kAddress, addr.ToString(), e));
  }
  for (const PrefixBucket& b : rules.prefixes) {
    for (const auto& [net, e] : b.rules) {
      if (keep(e)) out.push_back(Info(BanKind::kAddress, IpPrefix::Of(net, b.length).ToString(), e));
    }
  }
  for (const auto& [id, e] : rules.client_ids) {
    if (keep(e)) out.push_back(Info(BanKind::kClientId, id, e));
  }
  for (const auto& [name, e] : rules.usernames) {
    if (keep(e)) out.push_back(Info(BanKind::kUsername, name, e));
  }
  std::sort(out.begin(), out.end(), [](const BanRule& a, const BanRule& b) {
    return std::tie(a.kind, a.value) < std::tie(b.kind, b.value);
  });
  return out;
}

BanList::Rules BanList::BuildRules(const std::vector<BanRule>& list) {
  Rules rules;
  for (const BanRule& r : list) Insert(&rules, r);
  return rules;
}

void BanList::Publish(Rules rules) {
  {
    std::unique_lock lock(mu_);
    std::swap(rules_, rules);
    size_.store(rules_.size, std::memory_order_release);
  }
  // `rules`, now the old set, is freed here, outside the lock.
}

Status BanList::Load() {
  std::lock_guard change(change_mu_);
  if (options_.path.empty()) return Status::Error("no ban file configured");
  std::string text;
  const int fd = ::open(options_.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) return Status::Error(Errno("cannot open ban file", options_.path));
  } else {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size > kMaxFileBytes) {
      ::close(fd);
      return Status::Error("ban file " + options_.path + " unreadable or larger than 64 MiB");
    }
    text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (true) {
      if (got == text.size()) text.resize(got + 4096);  // the file may have grown since fstat
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const Status err = Status::Error(Errno("cannot read ban file", options_.path));
        ::close(fd);
        return err;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
      if (got > static_cast<size_t>(kMaxFileBytes)) {
        ::close(fd);
        return Status::Error("ban file " + options_.path + " larger than 64 MiB");
      }
    }
    ::close(fd);
    text.resize(got);
  }
  auto parsed = Parse(text, options_.path);
  if (!parsed.ok()) return parsed.status();
  if (parsed->size() > options_.max_rules) {
    return Status::Error("ban file " + options_.path + " has " + std::to_string(parsed->size()) +
                         " rules, more than the limit of " + std::to_string(options_.max_rules));
  }
  Publish(BuildRules(*parsed));
  return Status::Ok();
}

Status BanList::Save(const std::vector<BanRule>& list) const {
  return ReplaceFileAtomically(options_.path, Format(list), 0600);
}

const BanList::Entry* BanList::Find(const Rules& rules, BanKind kind, const std::string& value) {
  switch (kind) {
    case BanKind::kAddress: {
      auto prefix = IpPrefix::Parse(value);
      if (!prefix.ok()) return nullptr;
      if (prefix->is_host()) {
        auto it = rules.hosts.find(prefix->network());
        return it == rules.hosts.end() ? nullptr : &it->second;
      }
      for (const PrefixBucket& b : rules.prefixes) {
        if (b.family != prefix->network().family() || b.length != prefix->length()) continue;
        auto it = b.rules.find(prefix->network());
        return it == b.rules.end() ? nullptr : &it->second;
      }
      return nullptr;
    }
    case BanKind::kClientId: {
      auto it = rules.client_ids.find(value);
      return it == rules.client_ids.end() ? nullptr : &it->second;
    }
    case BanKind::kUsername: {
      auto it = rules.usernames.find(value);
      return it == rules.usernames.end() ? nullptr : &it->second;
    }
  }
  return nullptr;
}

namespace {

bool SameKey(const BanRule& a, const BanRule& b) {
  return a.kind == b.kind && a.value == b.value;
}
bool KeyLess(const BanRule& a, const BanRule& b) {
  return std::tie(a.kind, a.value) < std::tie(b.kind, b.value);
}

}  // namespace

// Add and Remove are O(1) in memory. Only with a file, or when the list is full and expired rules must make
// room, do they handle the whole list (the file holds all of it), and rebuild the tables only when expired
// rules are being dropped along the way.
Status BanList::Add(BanRule rule, int64_t now_ms) {
  if (Status st = Canonicalize(&rule); !st.ok()) return st;
  if (rule.until_unix_ms && *rule.until_unix_ms <= now_ms)
    return Status::Error("the ban has already expired");
  std::lock_guard change(change_mu_);
  // Only changes write rules_, and they are serialised by change_mu_: reading it without mu_ is safe here.
  const bool exists = Find(rules_, rule.kind, rule.value) != nullptr;
  std::optional<std::vector<BanRule>> live;  // the rules in force, when the whole list is needed
  if (!exists && rules_.size >= options_.max_rules) {
    live = Collect(rules_, now_ms);
    if (live->size() >= options_.max_rules) {
      return Status::Error("ban list full (" + std::to_string(options_.max_rules) + " rules)");
    }
  }
  if (!options_.path.empty() && !live) live = Collect(rules_, now_ms);
  if (!live) {
    std::unique_lock lock(mu_);
    Insert(&rules_, rule);
    size_.store(rules_.size, std::memory_order_release);
    return Status::Ok();
  }
  const size_t live_before = live->size();
  auto pos = std::lower_bound(live->begin(), live->end(), rule, KeyLess);
  if (pos != live->end() && SameKey(*pos, rule)) {
    *pos = rule;
  } else {
    live->insert(pos, rule);
  }
  if (!options_.path.empty()) {
    if (Status st = Save(*live); !st.ok()) return st;
  }
  if (live_before != rules_.size) {
    Publish(BuildRules(*live));  // expired rules go too
  } else {
    std::unique_lock lock(mu_);
    Insert(&rules_, rule);
    size_.store(rules_.size, std::memory_order_release);
  }
  return Status::Ok();
}

Status BanList::Remove(BanKind kind, std::string_view value, int64_t now_ms) {
  BanRule key{kind, std::string(value), std::nullopt, ""};
  if (Status st = Canonicalize(&key); !st.ok()) return st;
  std::lock_guard change(change_mu_);
  if (Find(rules_, kind, key.value) == nullptr) {
    return Status::Error(std::string("no such ") + BanKindName(kind) + " rule");
  }
  if (!options_.path.empty()) {
    std::vector<BanRule> live = Collect(rules_, now_ms);
    const size_t live_before = live.size();
    std::erase_if(live, [&](const BanRule& r) { return SameKey(r, key); });
    if (Status st = Save(live); !st.ok()) return st;
    if (live_before != rules_.size) {
      Publish(BuildRules(live));
      return Status::Ok();
    }
  }
  std::unique_lock lock(mu_);
  Erase(&rules_, kind, key.value);
  size_.store(rules_.size, std::memory_order_release);
  return Status::Ok();
}

size_t BanList::Sweep(int64_t now_ms, Status* save_status) {
  if (save_status) *save_status = Status::Ok();
  std::lock_guard change(change_mu_);
  std::vector<BanRule> live = Collect(rules_, now_ms);
  const size_t dropped = rules_.size - live.size();
  if (dropped == 0) return 0;
  if (!options_.path.empty()) {
    if (Status st = Save(live); !st.ok()) {
      // Expired rules match nothing anyway; keep memory equal to the file and try again next time.
      if (save_status) *save_status = st;
      return 0;
    }
  }
  Publish(BuildRules(live));
  return dropped;
}

std::optional<BanInfo> BanList::CheckAddress(const IpAddress& address, int64_t now_ms) const {
  if (size_.load(std::memory_order_acquire) == 0 || !address.valid()) return std::nullopt;
  std::shared_lock lock(mu_);
  if (auto it = rules_.hosts.find(address); it != rules_.hosts.end() && Live(it->second, now_ms)) {
    return Info(BanKind::kAddress, address.ToString(), it->second);
  }
  for (const PrefixBucket& b : rules_.prefixes) {  // longest first: the most specific rule wins
    if (b.family != address.family()) continue;
    const IpAddress net = address.Masked(b.length);
    if (auto it = b.rules.find(net); it != b.rules.end() && Live(it->second, now_ms)) {
      return Info(BanKind::kAddress, IpPrefix::Of(net, b.length).ToString(), it->second);
    }
  }
  return std::nullopt;
}

std::optional<BanInfo> BanList::CheckClient(std::string_view client_id, std::string_view username,
                                            int64_t now_ms) const {
  if (size_.load(std::memory_order_acquire) == 0) return std::nullopt;
  std::shared_lock lock(mu_);
  if (!client_id.empty()) {
    if (auto it = rules_.client_ids.find(client_id);
        it != rules_.client_ids.end() && Live(it->second, now_ms)) {
      return Info(BanKind::kClientId, it->first, it->second);
    }
  }
  if (!username.empty()) {
    if (auto it = rules_.usernames.find(username); it != rules_.usernames.end() && Live(it->second, now_ms)) {
      return Info(BanKind::kUsername, it->first, it->second);
    }
  }
  return std::nullopt;
}

std::vector<BanRule> BanList::List(int64_t now_ms) const {
  std::shared_lock lock(mu_);
  return Collect(rules_, now_ms);
}

}  // namespace parley::broker::guard
