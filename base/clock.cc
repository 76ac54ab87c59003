#include "base/clock.h"

#include <ctime>

namespace parley {

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

int64_t SystemClock::UnixSeconds() const { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace parley
