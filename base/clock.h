// Time sources. Core logic takes a Clock so tests can inject time (STYLE.md rule 19).
#pragma once

#include <chrono>
#include <cstdint>

namespace parley {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time for timeouts and expiry. Any thread.
  virtual SteadyTime Now() const = 0;
  // Wall-clock seconds since the Unix epoch, for uptime and logs. Any thread.
  virtual int64_t UnixSeconds() const = 0;
  // Wall-clock milliseconds since the Unix epoch, for timestamps clients see. Any thread.
  virtual int64_t UnixMillis() const { return UnixSeconds() * 1000; }
};

// The real clocks. A process-wide singleton; any thread.
class SystemClock final : public Clock {
 public:
  static const SystemClock& Instance();
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  int64_t UnixSeconds() const override;
  int64_t UnixMillis() const override;
};

// A clock tests move by hand. Not thread-safe: tests drive it from one thread.
class ManualClock final : public Clock {
 public:
  SteadyTime Now() const override { return now_; }
  int64_t UnixSeconds() const override { return unix_ms_ / 1000; }
  int64_t UnixMillis() const override { return unix_ms_; }
  void Advance(Millis d) {
    now_ += d;
    unix_ms_ += d.count();
  }

 private:
  SteadyTime now_{};
  int64_t unix_ms_ = int64_t{1'700'000'000} * 1000;
};

}  // namespace parley
