#include "base/circuit_breaker.h"

#include <algorithm>
#include <utility>

namespace parley {
namespace {

CircuitBreaker::Options Sanitize(CircuitBreaker::Options o) {
  o.half_open_probes = std::max<uint32_t>(o.half_open_probes, 1);
  o.window = std::max(o.window, Millis(CircuitBreaker::kWindowBuckets));
  o.open_duration = std::max(o.open_duration, Millis(0));
  o.max_open_duration = std::max(o.max_open_duration, o.open_duration);
  if (!(o.failure_ratio > 0)) o.failure_ratio = 0;  // also NaN: the rule is off
  return o;
}

int64_t Nanos(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

CircuitBreaker::Permit& CircuitBreaker::Permit::operator=(Permit&& o) noexcept {
  if (this != &o) {
    Complete(Outcome::kCancelled);
    breaker_ = std::exchange(o.breaker_, nullptr);
    generation_ = o.generation_;
    probe_ = o.probe_;
  }
  return *this;
}

void CircuitBreaker::Permit::Complete(Outcome outcome) {
  if (breaker_ == nullptr) return;
  std::exchange(breaker_, nullptr)->OnOutcome(generation_, probe_, outcome);
}

CircuitBreaker::CircuitBreaker(const Options& options, const Clock& clock, StateCallback on_state_change)
    : options_(Sanitize(options)),
      clock_(clock),
      on_state_change_(std::move(on_state_change)),
      slice_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(options_.window).count() /
                kWindowBuckets),
      open_duration_(options_.open_duration) {}

const char* CircuitBreaker::StateName(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half-open";
  }
  return "?";
}

CircuitBreaker::Permit CircuitBreaker::Acquire() {
  const SteadyTime now = clock_.Now();
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen && now >= open_until_) TransitionLocked(State::kHalfOpen, now);
  switch (state_) {
    case State::kClosed:
      calls_.fetch_add(1, std::memory_order_relaxed);
      return Permit(this, generation_, /*probe=*/false);
    case State::kHalfOpen:
      // A round lets exactly half_open_probes calls through: those in flight plus those that succeeded.
      if (probes_in_flight_ + probe_successes_ < options_.half_open_probes) {
        ++probes_in_flight_;
        calls_.fetch_add(1, std::memory_order_relaxed);
        return Permit(this, generation_, /*probe=*/true);
      }
      break;
    case State::kOpen:
      break;
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  return Permit();
}

void CircuitBreaker::OnOutcome(uint64_t generation, bool probe, Permit::Outcome outcome) {
  switch (outcome) {
    case Permit::Outcome::kSuccess:
      successes_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Permit::Outcome::kFailure:
      failures_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Permit::Outcome::kCancelled:
      cancelled_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  const SteadyTime now = clock_.Now();
  std::lock_guard lock(mu_);
  if (generation != generation_) return;  // granted in an earlier state: counted above, no effect on state

  if (state_ == State::kClosed) {
    if (outcome == Permit::Outcome::kCancelled) return;
    const bool failure = outcome == Permit::Outcome::kFailure;
    Record(now, failure);
    if (!failure) {
      consecutive_failures_ = 0;
      return;
    }
    ++consecutive_failures_;
    const bool consecutive =
        options_.consecutive_failures > 0 && consecutive_failures_ >= options_.consecutive_failures;
    if (consecutive || RatioTripped(now)) TransitionLocked(State::kOpen, now);
    return;
  }

  if (state_ == State::kHalfOpen && probe) {
    --probes_in_flight_;
    if (outcome == Permit::Outcome::kSuccess) {
      if (++probe_successes_ >= options_.half_open_probes) TransitionLocked(State::kClosed, now);
    } else if (outcome == Permit::Outcome::kFailure) {
      // The dependency is still down: wait longer before the next round.
      open_duration_ = std::min(open_duration_ * 2, options_.max_open_duration);
      TransitionLocked(State::kOpen, now);
    }
  }
}

void CircuitBreaker::Record(SteadyTime now, bool failure) {
  const int64_t index = Nanos(now) / slice_ns_;
  Slice& s = slices_[static_cast<size_t>(index % kWindowBuckets)];
  if (s.index != index) s = Slice{index, 0, 0};
  if (failure) {
    ++s.failures;
  } else {
    ++s.successes;
  }
}

bool CircuitBreaker::RatioTripped(SteadyTime now) const {
  if (options_.failure_ratio == 0) return false;
  const int64_t index = Nanos(now) / slice_ns_;
  uint64_t calls = 0, failures = 0;
  for (const Slice& s : slices_) {
    if (s.index < 0 || s.index > index || index - s.index >= kWindowBuckets) continue;
    calls += s.successes + s.failures;
    failures += s.failures;
  }
  if (calls == 0 || calls < options_.min_calls) return false;
  return static_cast<double>(failures) >= options_.failure_ratio * static_cast<double>(calls);
}

void CircuitBreaker::TransitionLocked(State to, SteadyTime now) {
  const State from = state_;
  state_ = to;
  ++generation_;
  consecutive_failures_ = 0;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  switch (to) {
    case State::kOpen:
      open_until_ = now + open_duration_;
      opens_.fetch_add(1, std::memory_order_relaxed);
      break;
    case State::kClosed:
      open_duration_ = options_.open_duration;
      slices_.fill(Slice{});  // judge the recovered dependency on fresh outcomes only
      break;
    case State::kHalfOpen:
      break;
  }
  state_mirror_.store(to, std::memory_order_relaxed);
  if (on_state_change_) on_state_change_(from, to);
}

CircuitBreaker::Counters CircuitBreaker::counters() const {
  Counters c;
  c.calls = calls_.load(std::memory_order_relaxed);
  c.rejected = rejected_.load(std::memory_order_relaxed);
  c.successes = successes_.load(std::memory_order_relaxed);
  c.failures = failures_.load(std::memory_order_relaxed);
  c.cancelled = cancelled_.load(std::memory_order_relaxed);
  c.opens = opens_.load(std::memory_order_relaxed);
  return c;
}

Millis CircuitBreaker::current_open_duration() const {
  std::lock_guard lock(mu_);
  return open_duration_;
}

}  // namespace parley
