#include "broker/config/units.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <utility>
#include <vector>

namespace parley::config {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

enum class Split { kOk, kNoDigits, kOverflow };

// Splits "123abc" into 123 and "abc". A leading sign, space or dot counts as "no digits".
Split SplitNumber(std::string_view text, uint64_t* number, std::string_view* unit) {
  size_t i = 0;
  uint64_t n = 0;
  bool overflow = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (kMax - digit) / 10) overflow = true;
    n = n * 10 + digit;
    ++i;
  }
  if (i == 0) return Split::kNoDigits;
  if (overflow) return Split::kOverflow;
  *number = n;
  *unit = text.substr(i);
  return Split::kOk;
}

}  // namespace

std::string QuoteForMessage(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

std::string Quoted(std::string_view s) {
  return QuoteForMessage(s);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

constexpr std::array<std::pair<std::string_view, uint64_t>, 5> kDurationUnits = {{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

constexpr std::array<std::pair<std::string_view, uint64_t>, 9> kSizeUnits = {{
    {"B", 1},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
    {"KiB", 1ull << 10},
    {"MiB", 1ull << 20},
    {"GiB", 1ull << 30},
    {"TiB", 1ull << 40},
}};

}  // namespace

Result<uint64_t> ParseDurationMs(std::string_view text) {
  static constexpr std::string_view kForm =
      "a duration is a whole number followed by a unit: ms, s, m, h or d (e.g. \"10s\", \"500ms\")";
  uint64_t n = 0;
  std::string_view unit;
  switch (SplitNumber(text, &n, &unit)) {
    case Split::kOk:
      break;
    case Split::kNoDigits:
      return Status::Error(Quoted(text) + " is not a duration; " + std::string(kForm));
    case Split::kOverflow:
      return Status::Error(Quoted(text) + " is too large");
  }
  if (unit.empty()) {
    return Status::Error(Quoted(text) + " has no unit; " + std::string(kForm));
  }
  for (const auto& [name, ms] : kDurationUnits) {
    if (unit == name) {
      if (n > kMax / ms) return Status::Error(Quoted(text) + " is too large");
      return n * ms;
    }
  }
  return Status::Error(Quoted(text) + " has an unknown unit " + Quoted(unit) + "; " + std::string(kForm));
}

Result<uint64_t> ParseSizeBytes(std::string_view text) {
  static constexpr std::string_view kForm =
      "a size is a whole number of bytes, or a number followed by B, KB, MB, GB, TB (powers of 1000) "
      "or KiB, MiB, GiB, TiB (powers of 1024), e.g. \"64KiB\"";
  uint64_t n = 0;
  std::string_view unit;
  switch (SplitNumber(text, &n, &unit)) {
    case Split::kOk:
      break;
    case Split::kNoDigits:
      return Status::Error(Quoted(text) + " is not a size; " + std::string(kForm));
    case Split::kOverflow:
      return Status::Error(Quoted(text) + " is too large");
  }
  if (unit.empty()) {
    return Status::Error(Quoted(text) + " has no unit; write a plain integer for bytes, or " +
                         std::string(kForm));
  }
  for (const auto& [name, bytes] : kSizeUnits) {
    if (EqualsIgnoreCase(unit, name)) {
      if (n > kMax / bytes) return Status::Error(Quoted(text) + " is too large");
      return n * bytes;
    }
  }
  return Status::Error(Quoted(text) + " has an unknown unit " + Quoted(unit) + "; " + std::string(kForm));
}

std::string FormatDurationMs(uint64_t ms) {
  if (ms == 0) return "0s";
  for (const auto& [name, unit_ms] : kDurationUnits) {
    if (ms % unit_ms == 0) return std::to_string(ms / unit_ms) + std::string(name);
  }
  return std::to_string(ms) + "ms";  // unreachable: the ms unit divides everything
}

std::string Printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace parley::config
