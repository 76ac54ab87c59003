#include "base/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace parley::metrics {

uint64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

namespace {

uint64_t OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 0;
  uint64_t n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n > 0 ? n - 1 : 0;  // less the descriptor opendir itself holds
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  s.resident_bytes = ResidentBytes();
  s.open_fds = OpenFds();
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) s.max_fds = rl.rlim_cur;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  return s;
}

void CollectProcess(std::vector<Family>& out) {
  const ProcessStats s = ReadProcessStats();
  auto gauge = [&](const char* name, const char* help, double v) {
    out.push_back(Family{name, help, Type::kGauge, {Sample{{}, v}}, {}});
  };
  gauge("parley_process_resident_memory_bytes", "Resident memory of the broker process in bytes.",
        static_cast<double>(s.resident_bytes));
  gauge("parley_process_open_fds", "Open file descriptors of the broker process.", static_cast<double>(s.open_fds));
  gauge("parley_process_max_fds", "The process's open-file limit (RLIMIT_NOFILE soft limit; 0 = none).",
        static_cast<double>(s.max_fds));
  out.push_back(Family{"parley_process_cpu_seconds_total", "User and system CPU time of the broker process in seconds.",
                       Type::kCounter, {Sample{{}, s.cpu_seconds}}, {}});
}

}  // namespace parley::metrics
