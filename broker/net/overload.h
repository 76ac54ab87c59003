// Overload protection's watchdog: every worker reports its event-loop lag once a second; one of them then
// compares the worst lag and the process's resident memory with the configured watermarks and switches the
// broker's overloaded state (Broker::SetOverloaded: new CONNECTs refused with 0x89, inbound QoS 0 shed).
// Hysteresis keeps it from flapping: it turns off only once memory is below 90 % of its watermark and the lag
// below half of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "broker/core/broker.h"

namespace parley::net {

struct OverloadOptions {
  uint64_t memory_high = 0;               // resident bytes; 0 = not watched
  std::chrono::milliseconds lag_high{0};  // worst worker's event-loop lag; 0 = not watched
};

class OverloadWatch {
 public:
  OverloadWatch(broker::Broker& broker, OverloadOptions options, int workers);
  // Any worker thread: the lag its loop showed on its last tick (how late the timer fired).
  void ReportLag(int worker, std::chrono::milliseconds lag);
  // One thread (worker 0's tick): reads memory, decides, logs a change of state.
  void Evaluate();
  // For metrics and tests.
  uint64_t last_rss() const { return last_rss_.load(std::memory_order_relaxed); }
  std::chrono::milliseconds max_lag() const;

  // The process's resident set size in bytes (/proc/self/statm), 0 if unknown.
  static uint64_t ResidentBytes();

 private:
  broker::Broker& broker_;
  const OverloadOptions options_;
  const int workers_;
  std::unique_ptr<std::atomic<int64_t>[]> lag_ms_;
  std::atomic<uint64_t> last_rss_{0};
  bool on_ = false;  // Evaluate's thread only
};

}  // namespace parley::net
