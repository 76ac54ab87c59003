#include "broker/net/overload.h"

#include <spdlog/spdlog.h>

#include "base/process_metrics.h"

namespace parley::net {

OverloadWatch::OverloadWatch(broker::Broker& broker, OverloadOptions options, int workers)
    : broker_(broker), options_(options), workers_(workers), lag_ms_(new std::atomic<int64_t>[workers]) {
  for (int i = 0; i < workers; ++i) lag_ms_[i].store(0, std::memory_order_relaxed);
}

void OverloadWatch::ReportLag(int worker, std::chrono::milliseconds lag) {
  if (worker >= 0 && worker < workers_) lag_ms_[worker].store(lag.count(), std::memory_order_relaxed);
}

std::chrono::milliseconds OverloadWatch::max_lag() const {
  int64_t worst = 0;
  for (int i = 0; i < workers_; ++i) worst = std::max(worst, lag_ms_[i].load(std::memory_order_relaxed));
  return std::chrono::milliseconds(worst);
}

uint64_t OverloadWatch::ResidentBytes() { return metrics::ResidentBytes(); }

void OverloadWatch::Evaluate() {
  const bool watch_memory = options_.memory_high > 0;
  const bool watch_lag = options_.lag_high.count() > 0;
  if (!watch_memory && !watch_lag) return;
  const uint64_t rss = watch_memory ? ResidentBytes() : 0;
  last_rss_.store(rss, std::memory_order_relaxed);
  const auto lag = max_lag();
  const bool memory_high = watch_memory && rss > options_.memory_high;
  const bool lag_high = watch_lag && lag > options_.lag_high;
  bool on = on_;
  if (!on_ && (memory_high || lag_high)) {
    on = true;
  } else if (on_) {
    const bool memory_ok = !watch_memory || rss < options_.memory_high / 10 * 9;
    const bool lag_ok = !watch_lag || lag < options_.lag_high / 2;
    if (memory_ok && lag_ok) on = false;
  }
  if (on == on_) return;
  on_ = on;
  broker_.SetOverloaded(on);
  if (on) {
    spdlog::warn("overloaded (resident memory {} MiB, watermark {} MiB; event-loop lag {} ms, watermark {} ms): "
                 "refusing new connections (0x89 Server busy) and dropping inbound QoS 0 messages",
                 rss >> 20, options_.memory_high >> 20, lag.count(), options_.lag_high.count());
  } else {
    spdlog::warn("no longer overloaded (resident memory {} MiB, event-loop lag {} ms): accepting connections again",
                 rss >> 20, lag.count());
  }
}

}  // namespace parley::net
