// Text output for parleyctl: aligned tables, key/value blocks, and the human forms of sizes, durations and
// times. Pure functions and values (no I/O except Render into a stream), so they are unit-tested
// (tools/ctl/ctl_tests.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::ctl {

// `s` with control characters and invalid UTF-8 escaped (\n, \t, \xNN), so a client id or topic cannot break
// a table line or move the cursor of the terminal.
std::string Sanitize(std::string_view s);

// The width of UTF-8 text in columns: one per code point (East Asian wide characters count as one: close
// enough for ids and topics, and no locale tables needed).
size_t DisplayWidth(std::string_view utf8);

// `s` cut to at most `max_width` columns, ending in "…" when cut; never splits a UTF-8 sequence.
// max_width 0 = no limit.
std::string Truncate(std::string_view s, size_t max_width);

// 0 B, 840 B, 1.5 KiB, 4.0 MiB, 2.3 GiB (binary units, one decimal from KiB up).
std::string HumanBytes(uint64_t bytes);

// A duration in seconds, at most two units: 45s, 5m, 5m30s, 1h, 1h30m, 2d3h. Negative values get a "-".
std::string HumanDuration(int64_t seconds);

// `at_ms` relative to `now_ms`: "just now" (under a second), "5m ago", "1h30m ago", "in 2h".
std::string RelativeTime(int64_t at_ms, int64_t now_ms);

// Unix milliseconds as local ISO 8601 time to the second: "2026-11-28T10:00:00+01:00".
std::string LocalIso(int64_t at_ms);

// LocalIso plus the relative form: "2026-11-28T10:00:00+01:00 (5m ago)".
std::string TimeWithRelative(int64_t at_ms, int64_t now_ms);

// The wall clock in Unix milliseconds.
int64_t NowMs();

// Parses a duration for --duration: a sequence of <number><unit> with units s, m, h, d, w ("1h30m", "90s",
// "2d"), or a bare number of seconds ("45"). Whitespace is not allowed. nullopt for anything else, for 0,
// and for more than 100 years.
std::optional<int64_t> ParseDuration(std::string_view text);

// An aligned table: a header row in capitals, columns separated by two spaces, numbers right-aligned.
// Cells are sanitized and truncated to their column's max width.
class Table {
 public:
  enum class Align { kLeft, kRight };
  // Adds a column; max_width 0 = no limit. Columns are added before rows.
  Table& Column(std::string title, Align align = Align::kLeft, size_t max_width = 0);
  // Adds a row; missing cells are empty, extra cells are ignored.
  void Row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  size_t size() const { return rows_.size(); }
  // Writes the header and the rows; the last column has no trailing padding.
  void Render(std::ostream& out) const;

 private:
  struct Col {
    std::string title;
    Align align;
    size_t max_width;
  };
  std::vector<Col> cols_;
  std::vector<std::vector<std::string>> rows_;
};

// A key/value block for one object: keys padded to the longest, one line per pair:
//   client_id    phone-1
//   username     alice
class KeyValues {
 public:
  void Add(std::string key, std::string value) { pairs_.emplace_back(std::move(key), std::move(value)); }
  // Writes the block; values are sanitized (a multi-line value keeps its line breaks, indented).
  void Render(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

}  // namespace parley::ctl
