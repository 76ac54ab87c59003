// TokenBucket: a rate limiter of `rate` tokens per second with room for `burst` tokens.
//
// One-thread object (one per client, or per address under its owner's lock); 32 bytes, header only. Time is
// always passed in, so tests drive it by hand.
//
// Exactness. The level is kept as "level_ tokens at anchor_" and the refill since then is computed afresh
// from the integer nanoseconds elapsed (elapsed_ns * rate / 1e9) at every call, rather than added up call by
// call. So there is no drift: calling every microsecond refills exactly as much as calling once a minute (no
// fraction is truncated away, no rounding error accumulates), a long idle gap cannot overflow (the refill is
// clamped at `burst`), and a time earlier than the anchor (a caller holding a slightly stale `now`) refills
// nothing instead of draining the bucket. The anchor moves to `now` when the bucket is full (the time spent
// full must not be banked) and at least once a minute otherwise, which bounds the magnitude of the numbers
// involved and with it the rounding.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

#include "base/clock.h"

namespace parley {

class TokenBucket {
 public:
  // An unlimited bucket: every Take succeeds.
  TokenBucket() = default;

  // `rate_per_second` > 0 limits; 0 means unlimited. `burst` is the capacity, and the level a new bucket
  // starts with. Configuration is validated by the config layer; here a negative, NaN or infinite rate is
  // taken as unlimited and a negative or NaN burst as 0 (nothing passes), never as a crash.
  TokenBucket(double rate_per_second, double burst)
      : rate_(std::isfinite(rate_per_second) && rate_per_second > 0 ? rate_per_second : 0),
        burst_(burst > 0 ? burst : 0),
        level_(burst_) {}

  bool unlimited() const { return rate_ == 0; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

  // Tokens available at `now` (at most burst(); negative after Charge ran it into debt). +infinity when
  // unlimited.
  double Available(SteadyTime now) const {
    if (unlimited()) return std::numeric_limits<double>::infinity();
    return std::min(burst_, Unclamped(now));
  }

  // True when the bucket is at capacity at `now`: an owner may forget it without changing behaviour.
  bool Full(SteadyTime now) const { return unlimited() || Unclamped(now) >= burst_; }

  // Takes `n` tokens if that many are available at `now` and returns true; otherwise changes nothing and
  // returns false. n <= 0 always succeeds; n > burst() never does (see Charge for amounts that may exceed
  // it).
  bool Take(double n, SteadyTime now) {
    if (unlimited() || n <= 0) return !std::isnan(n);
    const double raw = Unclamped(now);
    if (!(std::min(raw, burst_) >= n)) return false;  // written so that NaN is refused too
    Debit(n, raw, now);
    return true;
  }

  // Takes `n` tokens unconditionally; the level may go negative (debt), and WhenAvailable then reports when
  // the debt is paid. For amounts known only after the fact (bytes already read), which may exceed burst().
  void Charge(double n, SteadyTime now) {
    if (unlimited() || !(n > 0)) return;
    Debit(n, Unclamped(now), now);
  }

  // The earliest time at or after `now` when Take(n) will succeed (with no other Take in between): `now` if
  // it would succeed already, SteadyTime::max() if never (n > burst(), or a wait beyond ~100 years).
  SteadyTime WhenAvailable(double n, SteadyTime now) const {
    if (unlimited() || n <= 0 || Available(now) >= n) return now;
    if (!(n <= burst_)) return SteadyTime::max();
    const SteadyTime from = std::max(now, anchor_);
    const double missing = n - Unclamped(from);
    const double wait_ns = std::ceil(missing * 1e9 / rate_);
    if (!(wait_ns < kNeverNs)) return SteadyTime::max();
    SteadyTime t = from + std::chrono::duration_cast<SteadyTime::duration>(
                              std::chrono::nanoseconds(static_cast<int64_t>(wait_ns)));
    // Rounding in the division above may leave the level a hair short of n at t; a step or two fixes it.
    for (int i = 0; i < 4 && Unclamped(t) < n; ++i) t += SteadyTime::duration(1);
    return t;
  }

 private:
  static constexpr int64_t kReanchorAfterNs = int64_t{60} * 1'000'000'000;
  static constexpr double kNeverNs = 100.0 * 365 * 24 * 3600 * 1e9;

  int64_t ElapsedNs(SteadyTime now) const {
    if (now <= anchor_) return 0;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(now - anchor_).count();
  }
  // The level at `now` before clamping to burst_.
  double Unclamped(SteadyTime now) const {
    return level_ + static_cast<double>(ElapsedNs(now)) * rate_ / 1e9;
  }

  // `raw` is Unclamped(now).
  void Debit(double n, double raw, SteadyTime now) {
    if (raw >= burst_ || ElapsedNs(now) >= kReanchorAfterNs) {
      level_ = std::min(raw, burst_) - n;
      if (now > anchor_) anchor_ = now;
    } else {
      level_ -= n;  // anchor unchanged: the refill since it is recomputed exactly next time
    }
  }

  double rate_ = 0;
  double burst_ = 0;
  double level_ = 0;     // tokens at anchor_
  SteadyTime anchor_{};  // the bucket starts full: any later `now` is clamped to burst_
};

}  // namespace parley
