#include "base/clock.h"

#include <chrono>
#include <ctime>

namespace parley {

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

int64_t SystemClock::UnixSeconds() const { return static_cast<int64_t>(std::time(nullptr)); }

int64_t SystemClock::UnixMillis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace parley
