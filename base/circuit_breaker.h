// CircuitBreaker: stops calling a dependency that keeps failing, and probes it now and then to see whether it
// has recovered. One per outbound destination (a webhook URL, a push provider, an alert endpoint).
//
//   closed ──(N consecutive failures, or failure ratio >= R over >= M calls within the window W)──► open
//   open ──(open duration elapsed; the next Acquire)──► half-open
//   half-open ──(K probe successes)──► closed          (open duration back to its initial value)
//   half-open ──(any probe failure)──► open            (open duration doubled, up to a cap)
//
// Use: `auto permit = breaker.Acquire(); if (!permit) { fail fast }; ... permit.Success() or
// permit.Failure()`. The caller decides what a failure is: a timeout, a refused connection, a 5xx are
// failures; a 4xx caused by the request itself usually is not. A permit dropped without an outcome is
// "cancelled": it frees its half-open probe slot and counts for nothing, so a forgotten permit cannot wedge
// the breaker half-open.
//
// Outcomes are tied to the state they were granted in: a call let through while closed that completes after
// the breaker has opened (or a probe of an earlier half-open round) is counted in counters() but does not
// move the state machine, so slow stragglers cannot close a breaker that just opened nor reopen one that just
// closed.
//
// Thread-safe: every method, and completing a Permit, may be called from any thread. One mutex guards the
// state; outbound calls are rare next to its cost. state() and counters() read atomics and never block.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "base/clock.h"

namespace parley {

class CircuitBreaker {
 public:
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  struct Options {
    // Opens after this many failures in a row; 0 disables the rule.
    uint32_t consecutive_failures = 5;
    // Opens when failures / calls >= failure_ratio over at least min_calls outcomes within `window`;
    // failure_ratio 0 disables the rule. The window is kept as kWindowBuckets slices, so it is W rounded to
    // a slice: outcomes older than W are forgotten in slices of W / kWindowBuckets.
    double failure_ratio = 0.5;
    uint32_t min_calls = 20;
    Millis window{60'000};
    // How long the breaker stays open the first time; doubled after each failed half-open round, up to
    // max_open_duration; back to open_duration once closed.
    Millis open_duration{5'000};
    Millis max_open_duration{300'000};
    // Probe calls let through in half-open (at most this many at once), and successes needed to close.
    uint32_t half_open_probes = 1;
  };

  // Monotonic since construction; for metrics.
  struct Counters {
    uint64_t calls = 0;     // permits granted
    uint64_t rejected = 0;  // Acquire refused (open, or half-open with every probe slot taken)
    uint64_t successes = 0;
    uint64_t failures = 0;
    uint64_t cancelled = 0;  // permits dropped without an outcome
    uint64_t opens = 0;      // transitions to open
  };

  // Called on each transition, on the thread that caused it, with the breaker's lock held so that calls
  // arrive in order. It must be quick (a log line) and may call state() and counters() but nothing else on
  // this breaker.
  using StateCallback = std::function<void(State from, State to)>;

  static constexpr int kWindowBuckets = 10;

  // The right to make one call. Move-only; complete it at most once from any thread. The breaker must
  // outlive its permits. To carry a permit in a copyable callback (std::function), hold it by shared_ptr.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& o) noexcept { *this = std::move(o); }
    Permit& operator=(Permit&& o) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Complete(Outcome::kCancelled); }

    // True when the call may go ahead. A refused permit's Success()/Failure() do nothing.
    explicit operator bool() const { return breaker_ != nullptr; }
    void Success() { Complete(Outcome::kSuccess); }
    void Failure() { Complete(Outcome::kFailure); }

   private:
    friend class CircuitBreaker;
    enum class Outcome : uint8_t { kSuccess, kFailure, kCancelled };
    Permit(CircuitBreaker* breaker, uint64_t generation, bool probe)
        : breaker_(breaker), generation_(generation), probe_(probe) {}
    void Complete(Outcome outcome);

    CircuitBreaker* breaker_ = nullptr;  // not owned; null once completed or when refused
    uint64_t generation_ = 0;
    bool probe_ = false;
  };

  // `clock` must outlive the breaker. Options are used as given except that half_open_probes 0 counts as 1,
  // a window under kWindowBuckets ms as kWindowBuckets ms, and max_open_duration below open_duration as
  // open_duration.
  CircuitBreaker(const Options& options, const Clock& clock, StateCallback on_state_change = {});
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to make a call now. Moves open to half-open once the open duration has passed. Any thread.
  Permit Acquire();

  // The state as of the last transition: a breaker whose open duration has passed reads kOpen until the next
  // Acquire makes it half-open. Any thread; never blocks.
  State state() const { return state_mirror_.load(std::memory_order_relaxed); }
  // Any thread; never blocks. Fields are read one by one, so a snapshot taken during calls may be off by one.
  Counters counters() const;
  // The open duration the next opening will use. Any thread.
  Millis current_open_duration() const;

  static const char* StateName(State s);

 private:
  struct Slice {
    int64_t index = -1;  // which window slice (time / slice width) these counts belong to
    uint32_t successes = 0;
    uint32_t failures = 0;
  };

  void OnOutcome(uint64_t generation, bool probe, Permit::Outcome outcome);
  void Record(SteadyTime now, bool failure);  // closed state only; mu_ held
  bool RatioTripped(SteadyTime now) const;    // mu_ held
  void TransitionLocked(State to, SteadyTime now);

  const Options options_;
  const Clock& clock_;
  const StateCallback on_state_change_;
  const int64_t slice_ns_;

  mutable std::mutex mu_;
  // Guarded by mu_:
  State state_ = State::kClosed;
  uint64_t generation_ = 0;  // bumped on every transition; permits carry the one they were granted in
  uint32_t consecutive_failures_ = 0;
  std::array<Slice, kWindowBuckets> slices_{};
  SteadyTime open_until_{};
  Millis open_duration_;  // the duration the next opening uses
  uint32_t probes_in_flight_ = 0;
  uint32_t probe_successes_ = 0;

  std::atomic<State> state_mirror_{State::kClosed};
  std::atomic<uint64_t> calls_{0}, rejected_{0}, successes_{0}, failures_{0}, cancelled_{0}, opens_{0};
};

}  // namespace parley
