#include "tools/bench/proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace parley::bench {

std::optional<ProcSample> ReadProc(int pid, std::string* error) {
  std::string base = "/proc/" + std::to_string(pid);
  std::ifstream stat(base + "/stat");
  std::string line;
  if (!stat || !std::getline(stat, line)) {
    *error = "cannot read " + base + "/stat (is process " + std::to_string(pid) + " running?)";
    return std::nullopt;
  }
  // "pid (comm) state ppid ..." — comm may hold spaces and parentheses, so count fields after the last ')'.
  size_t rp = line.rfind(')');
  if (rp == std::string::npos) {
    *error = base + "/stat: unexpected format";
    return std::nullopt;
  }
  std::istringstream fields(line.substr(rp + 1));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // Fields 3.. follow ')'; utime is field 14 and stime field 15 (proc(5)), i.e. the 12th and 13th here.
  for (int i = 3; i <= 15 && (fields >> f); ++i) {
    if (i == 14) utime = std::strtoull(f.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(f.c_str(), nullptr, 10);
  }
  ProcSample s;
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));

  std::ifstream status(base + "/status");
  while (std::getline(status, line)) {
    auto kb = [&](const char* key, double* out) {
      size_t n = std::char_traits<char>::length(key);
      if (line.compare(0, n, key) == 0) *out = std::strtod(line.c_str() + n, nullptr) / 1024.0;
    };
    kb("VmRSS:", &s.rss_mb);
    kb("VmHWM:", &s.hwm_mb);
  }
  return s;
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

}  // namespace parley::bench
