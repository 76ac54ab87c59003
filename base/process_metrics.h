// The process's own figures for /metrics: resident memory, open and maximum file descriptors, CPU time.
// Read from /proc and getrlimit / getrusage at collection time (Linux); nothing is kept between calls.
#pragma once

#include <cstdint>
#include <vector>

#include "base/metrics.h"

namespace parley::metrics {

struct ProcessStats {
  uint64_t resident_bytes = 0;  // /proc/self/statm; 0 if unknown
  uint64_t open_fds = 0;        // entries of /proc/self/fd
  uint64_t max_fds = 0;         // RLIMIT_NOFILE soft limit; 0 = unlimited or unknown
  double cpu_seconds = 0;       // user + system (getrusage)
};

// Any thread.
ProcessStats ReadProcessStats();
// The process's resident set size in bytes (/proc/self/statm), 0 if unknown. Any thread.
uint64_t ResidentBytes();

// parley_process_resident_memory_bytes, parley_process_open_fds, parley_process_max_fds (gauges) and
// parley_process_cpu_seconds_total (counter). Any thread.
void CollectProcess(std::vector<Family>& out);

}  // namespace parley::metrics
