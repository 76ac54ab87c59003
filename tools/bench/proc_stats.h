// CPU time and memory of another process (the broker under test), read from /proc. Linux only.
#pragma once

#include <optional>
#include <string>

namespace parley::bench {

struct ProcSample {
  double cpu_s = 0;     // user + system CPU seconds since the process started (/proc/PID/stat)
  double rss_mb = 0;    // VmRSS (/proc/PID/status), MiB
  double hwm_mb = 0;    // VmHWM: peak RSS, MiB
};

// Reads one sample; nullopt (and *error set) if the process does not exist or /proc is unreadable.
std::optional<ProcSample> ReadProc(int pid, std::string* error);

// This process's own user + system CPU seconds (getrusage).
double SelfCpuSeconds();

}  // namespace parley::bench
