#include "tools/ctl/table.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace parley::ctl {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one (overlong forms, surrogates
// and code points past U+10FFFF are invalid too).
size_t Utf8SeqLen(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

void AppendEscaped(std::string& out, unsigned char c) {
  switch (c) {
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
}

std::string Pad(std::string_view s, size_t width, Table::Align align) {
  const size_t w = DisplayWidth(s);
  if (w >= width) return std::string(s);
  std::string fill(width - w, ' ');
  return align == Table::Align::kLeft ? std::string(s) + fill : fill + std::string(s);
}

}  // namespace

std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = Utf8SeqLen(s, i);
    if (n == 0 || c < 0x20 || c == 0x7F) {
      AppendEscaped(out, c);
      ++i;
      continue;
    }
    // C1 controls (U+0080..U+009F) can drive terminals too.
    if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {
      out += "\\u00";
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02X", static_cast<unsigned char>(s[i + 1]));
      out += buf;
      i += 2;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t DisplayWidth(std::string_view utf8) {
  size_t w = 0;
  for (unsigned char c : utf8) w += (c & 0xC0) != 0x80;
  return w;
}

std::string Truncate(std::string_view s, size_t max_width) {
  if (max_width == 0 || DisplayWidth(s) <= max_width) return std::string(s);
  if (max_width == 1) return "…";
  // Keep max_width - 1 code points, then the ellipsis.
  size_t kept = 0, i = 0;
  while (i < s.size()) {
    size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
    if (kept + 1 > max_width - 1) break;
    i += n;
    ++kept;
  }
  return std::string(s.substr(0, i)) + "…";
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
  // 1023.95 KiB would print as "1024.0 KiB": round first, then carry.
  if (v >= 1023.95 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string HumanDuration(int64_t seconds) {
  if (seconds < 0) return "-" + HumanDuration(-seconds);
  static constexpr std::pair<int64_t, const char*> kUnits[] = {
      {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  if (seconds == 0) return "0s";
  std::string out;
  int parts = 0;
  for (auto [size, name] : kUnits) {
    if (parts == 2) break;
    const int64_t n = seconds / size;
    if (n > 0) {
      out += std::to_string(n) + name;
      seconds -= n * size;
      ++parts;
    } else if (parts > 0) {
      break;  // "1h" rather than "1h0m"; and never skip a unit between two shown ("1d5s" would mislead)
    }
  }
  return out;
}

std::string RelativeTime(int64_t at_ms, int64_t now_ms) {
  const int64_t diff = now_ms - at_ms;
  if (diff > -1000 && diff < 1000) return "just now";
  if (diff > 0) return HumanDuration(diff / 1000) + " ago";
  return "in " + HumanDuration(-diff / 1000);
}

std::string LocalIso(int64_t at_ms) {
  const std::time_t t = static_cast<std::time_t>(at_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);  // ...+0100
  std::string s = buf;
  if (s.size() >= 5 && (s[s.size() - 5] == '+' || s[s.size() - 5] == '-')) s.insert(s.size() - 2, ":");
  return s;
}

std::string TimeWithRelative(int64_t at_ms, int64_t now_ms) {
  return LocalIso(at_ms) + " (" + RelativeTime(at_ms, now_ms) + ")";
}

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::optional<int64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  constexpr int64_t kMax = 100LL * 366 * 86400;
  int64_t total = 0;
  size_t i = 0;
  bool bare = true;
  while (i < text.size()) {
    int64_t n = 0;
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMax) return std::nullopt;
      ++i;
    }
    if (i == start) return std::nullopt;  // a unit without a number, or junk
    int64_t unit = 0;
    if (i == text.size()) {
      if (!bare) return std::nullopt;  // "1h30": the trailing number needs a unit
      unit = 1;
    } else {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        case 'w':
          unit = 7 * 86400;
          break;
        default:
          return std::nullopt;
      }
      ++i;
      bare = false;
    }
    total += n * unit;
    if (total > kMax) return std::nullopt;
  }
  if (total == 0) return std::nullopt;
  return total;
}

Table& Table::Column(std::string title, Align align, size_t max_width) {
  cols_.push_back(Col{std::move(title), align, max_width});
  return *this;
}

void Table::Row(std::vector<std::string> cells) {
  cells.resize(cols_.size());
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = Truncate(Sanitize(cells[i]), cols_[i].max_width);
  rows_.push_back(std::move(cells));
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> widths(cols_.size());
  for (size_t i = 0; i < cols_.size(); ++i) {
    widths[i] = DisplayWidth(cols_[i].title);
    for (const auto& r : rows_) widths[i] = std::max(widths[i], DisplayWidth(r[i]));
  }
  auto line = [&](auto cell_of) {
    std::string s;
    for (size_t i = 0; i < cols_.size(); ++i) {
      if (i) s += "  ";
      const bool last = i + 1 == cols_.size();
      const std::string cell = cell_of(i);
      s += (last && cols_[i].align == Align::kLeft) ? cell : Pad(cell, widths[i], cols_[i].align);
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();  // empty trailing cells
    out << s << '\n';
  };
  line([&](size_t i) { return cols_[i].title; });
  for (const auto& r : rows_) line([&](size_t i) { return r[i]; });
}

void KeyValues::Render(std::ostream& out) const {
  size_t width = 0;
  for (const auto& [k, v] : pairs_) width = std::max(width, DisplayWidth(k));
  for (const auto& [k, v] : pairs_) {
    out << Pad(k, width, Table::Align::kLeft) << "  ";
    // Each line of the value sanitized on its own, continuation lines indented under the first.
    size_t start = 0;
    bool first = true;
    while (true) {
      const size_t nl = v.find('\n', start);
      const std::string_view part =
          std::string_view(v).substr(start, nl == std::string::npos ? nl : nl - start);
      if (!first) out << std::string(width + 2, ' ');
      out << Sanitize(part) << '\n';
      first = false;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
}

}  // namespace parley::ctl
