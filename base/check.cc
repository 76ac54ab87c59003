#include "base/check.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

namespace parley {

std::atomic<uint64_t>& BugCounter() {
  static std::atomic<uint64_t> counter{0};
  return counter;
}

void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "FATAL %s:%d: check failed: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

void ReportBug(const char* msg, const char* file, int line) {
  BugCounter().fetch_add(1, std::memory_order_relaxed);
  spdlog::error("internal bug at {}:{}: {}", file, line, msg);
}

}  // namespace parley
