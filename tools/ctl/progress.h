// Progress of long operations (backup and compaction jobs, restore): one line on stderr redrawn in place
// when stderr is a terminal, nothing otherwise (the caller prints one summary line at the end).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tools/ctl/api.h"

namespace parley::ctl {

// "45%  1.9 MiB / 4.0 MiB" for unit "bytes", "3 / 7 families" style for other units ("45%  3 / 7 families"),
// just the done count when total is 0 or unknown.
std::string ProgressText(uint64_t done, uint64_t total, std::string_view unit);

// A Job object (docs/admin-api.md, Jobs) as one progress line: "backup  checksums  45%  1.9 MiB / 4.0 MiB".
std::string JobProgressText(const Json& job);

// A finished Job as one summary line: "backup done in 1.2s: dir /x, files 12, bytes 4.0 MiB" or
// "compact failed after 3s: <error>".
std::string JobSummaryText(const Json& job);

// The error of a failed job as text (a string, or an {"code", "message"} object), "" if none.
std::string JobErrorText(const Json& job);

class ProgressLine {
 public:
  // enabled = false makes every call a no-op. Use ProgressLine::ForStderr to decide.
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Enabled when stderr is a terminal and the output is not --quiet or --json.
  static bool ForStderr(bool quiet, bool json);

  // Redraws the line (at most every 100 ms unless `force`, so a fast loop does not flood the terminal).
  void Update(const std::string& text, bool force = false);
  // Clears the line; idempotent.
  void Finish();

 private:
  bool enabled_;
  bool drawn_ = false;
  int64_t last_ms_ = 0;
};

}  // namespace parley::ctl
