#include "tools/ctl/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "tools/ctl/json_util.h"
#include "tools/ctl/render.h"
#include "tools/ctl/table.h"

namespace parley::ctl {
namespace {

std::string Amount(uint64_t n, std::string_view unit) {
  if (unit == "bytes") return HumanBytes(n);
  return std::to_string(n);
}

int64_t SteadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string ProgressText(uint64_t done, uint64_t total, std::string_view unit) {
  const bool bytes = unit == "bytes";
  const std::string suffix = bytes || unit.empty() ? "" : " " + std::string(unit);
  if (total == 0) return Amount(done, unit) + suffix;
  const uint64_t shown = done > total ? total : done;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(shown * 100 / total));
  return std::string(pct) + "  " + Amount(done, unit) + " / " + Amount(total, unit) + suffix;
}

std::string JobProgressText(const Json& job) {
  std::string s = Text(job, {"kind"}, "job");
  if (const std::string phase = Text(job, {"phase"}); !phase.empty()) s += "  " + phase;
  const auto done = Int(job, {"done"});
  const auto total = Int(job, {"total"});
  if (done) {
    s += "  " + ProgressText(static_cast<uint64_t>(*done),
                             total && *total > 0 ? static_cast<uint64_t>(*total) : 0, Text(job, {"unit"}));
  }
  return Sanitize(s);
}

std::string JobErrorText(const Json& job) {
  const Json* e = Field(job, {"error"});
  if (!e) return "";
  if (e->is_object()) return Text(*e, {"message", "code"}, Text(*e));
  return Text(*e);
}

std::string JobSummaryText(const Json& job) {
  const std::string kind = Text(job, {"kind"}, "job");
  const std::string state = Text(job, {"state"}, "?");
  std::string s = kind + " " + state;
  const auto start = Int(job, {"started_at_ms"});
  const auto end = Int(job, {"finished_at_ms"});
  if (start && end && *end >= *start) {
    const int64_t ms = *end - *start;
    char buf[32];
    if (ms < 60'000) {
      std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000);
      s += (state == "failed" ? " after " : " in ") + std::string(buf);
    } else {
      s += (state == "failed" ? " after " : " in ") + HumanDuration(ms / 1000);
    }
  }
  if (state == "failed") {
    const std::string err = JobErrorText(job);
    return Sanitize(s + (err.empty() ? "" : ": " + err));
  }
  // The result's fields: dir, files and bytes first (backup), then any others in the server's order.
  const Json& result = Object(job, "result");
  std::string details;
  auto add = [&](const std::string& k, const Json& v) {
    const bool is_bytes = k == "bytes" || k.ends_with("_bytes");
    const auto n = Int(result, {k});
    if (!details.empty()) details += ", ";
    details += k + " " + (is_bytes && n && *n >= 0 ? HumanBytes(static_cast<uint64_t>(*n)) : Text(v));
  };
  static constexpr std::string_view kFirst[] = {"dir", "files", "bytes"};
  for (std::string_view k : kFirst) {
    if (const Json* v = Field(result, {k})) add(std::string(k), *v);
  }
  for (auto it = result.begin(); it != result.end(); ++it) {
    if (std::find(std::begin(kFirst), std::end(kFirst), it.key()) == std::end(kFirst))
      add(it.key(), it.value());
  }
  if (!details.empty()) s += ": " + details;
  return Sanitize(s);
}

bool ProgressLine::ForStderr(bool quiet, bool json) {
  return !quiet && !json && ::isatty(STDERR_FILENO) == 1;
}

void ProgressLine::Update(const std::string& text, bool force) {
  if (!enabled_) return;
  const int64_t now = SteadyMs();
  if (!force && drawn_ && now - last_ms_ < 100) return;
  last_ms_ = now;
  std::cerr << "\r\x1b[K" << text << std::flush;
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (!enabled_ || !drawn_) return;
  std::cerr << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

}  // namespace parley::ctl
