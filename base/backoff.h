// Backoff: when to retry a failed operation — exponential delays with jitter, a cap on attempts and an
// overall deadline, and respect for a server's Retry-After.
//
// Nothing here sleeps: NextDelay() says how long to wait, and the caller schedules the retry on its event
// loop (a timer), or gives up when it returns nullopt.
//
//   Backoff retry(policy, clock);           // when the operation starts (its deadline counts from here)
//   ... attempt fails ...
//   if (auto d = retry.NextDelay()) ScheduleIn(*d, attempt_again); else GiveUp();
//
// Delay before retry number k (1-based): base_k = min(max_delay, initial * multiplier^(k-1)), then
//   Jitter::kNone  -> base_k
//   Jitter::kFull  -> uniform in [0, base_k]                 (spreads a herd of clients the most)
//   Jitter::kEqual -> base_k/2 + uniform in [0, base_k/2]    (never retries too soon)
// With a Retry-After the delay is max(that, min(retry_after, max_retry_after)).
#pragma once

#include <cstdint>
#include <optional>

#include "base/clock.h"

namespace parley {

enum class Jitter : uint8_t { kNone, kFull, kEqual };

struct BackoffPolicy {
  Millis initial{100};
  double multiplier = 2.0;  // values below 1 (or NaN) count as 1: delays never shrink
  Millis max_delay{30'000};
  // Attempts in all, the first one included; 0 = no limit. 3 means: try, retry, retry, give up.
  uint32_t max_attempts = 0;
  // Give up rather than schedule a retry that would start later than this after the Backoff was created (or
  // Reset); 0 = no deadline.
  Millis deadline{0};
  Jitter jitter = Jitter::kFull;
  // A server's Retry-After beyond this is clamped to it, so a broken or hostile server cannot park the retry
  // for days (the deadline, when set, still applies).
  Millis max_retry_after{3'600'000};
};

// Per-operation retry state. One-thread object (the thread that runs the operation).
class Backoff {
 public:
  // `clock` must outlive this object; the deadline counts from clock.Now() here. `seed` fixes the jitter
  // sequence for tests; the default draws one from the OS.
  Backoff(const BackoffPolicy& policy, const Clock& clock, uint64_t seed = RandomSeed());

  // After a failed attempt: how long to wait before the next one, or nullopt to give up (attempts used up,
  // or the retry would start past the deadline). Once it has said nullopt it keeps saying so until Reset().
  std::optional<Millis> NextDelay() { return Next(std::nullopt); }
  // As NextDelay(), when the server said when to come back (HTTP Retry-After, an MQTT server's hint): the
  // delay is at least `retry_after` (clamped to policy.max_retry_after; negative counts as 0). It still
  // counts as an attempt and moves the exponential sequence on.
  std::optional<Millis> NextDelay(Millis retry_after) { return Next(retry_after); }

  // Starts over, as if newly created now (after a success, when the object is reused).
  void Reset();

  // Attempts made so far as far as this object knows: 1 + the retries it has scheduled.
  uint32_t attempts() const { return retries_ + 1; }
  bool gave_up() const { return gave_up_; }

  // 64 bits from the OS random source. Any thread.
  static uint64_t RandomSeed();

 private:
  std::optional<Millis> Next(std::optional<Millis> retry_after);
  int64_t BaseMs() const;             // base_k for the next retry, before jitter
  int64_t UniformMs(int64_t max_ms);  // uniform in [0, max_ms]

  BackoffPolicy policy_;
  const Clock& clock_;
  SteadyTime start_;
  uint64_t rng_;  // splitmix64 state
  uint32_t retries_ = 0;
  bool gave_up_ = false;
};

}  // namespace parley
