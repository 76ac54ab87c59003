#include "base/backoff.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace parley {
namespace {

BackoffPolicy Sanitize(BackoffPolicy p) {
  if (!(p.multiplier >= 1)) p.multiplier = 1;
  p.initial = std::max(p.initial, Millis(0));
  p.max_delay = std::max(p.max_delay, Millis(0));
  p.deadline = std::max(p.deadline, Millis(0));
  p.max_retry_after = std::max(p.max_retry_after, Millis(0));
  return p;
}

}  // namespace

uint64_t Backoff::RandomSeed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(seed))) {
    // Jitter only needs clients not to move in step, not secrecy: time and address are enough here.
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           reinterpret_cast<uintptr_t>(&seed);
  }
  return seed;
}

Backoff::Backoff(const BackoffPolicy& policy, const Clock& clock, uint64_t seed)
    : policy_(Sanitize(policy)), clock_(clock), start_(clock.Now()), rng_(seed) {}

void Backoff::Reset() {
  start_ = clock_.Now();
  retries_ = 0;
  gave_up_ = false;
}

int64_t Backoff::BaseMs() const {
  const double max = static_cast<double>(policy_.max_delay.count());
  const double d = static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, retries_);
  return static_cast<int64_t>(std::isfinite(d) ? std::min(d, max) : max);  // pow overflows to inf: capped
}

int64_t Backoff::UniformMs(int64_t max_ms) {
  if (max_ms <= 0) return 0;
  // splitmix64 (Steele et al.): 8 bytes of state, statistically fine for jitter.
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  // Lemire's multiply-shift maps 64 random bits onto [0, max_ms] without a modulo's bias worth speaking of.
  const auto range = static_cast<unsigned __int128>(max_ms) + 1;
  return static_cast<int64_t>((static_cast<unsigned __int128>(z) * range) >> 64);
}

std::optional<Millis> Backoff::Next(std::optional<Millis> retry_after) {
  if (gave_up_) return std::nullopt;
  if (policy_.max_attempts != 0 && attempts() >= policy_.max_attempts) {
    gave_up_ = true;
    return std::nullopt;
  }
  const int64_t base = BaseMs();
  int64_t delay = base;
  switch (policy_.jitter) {
    case Jitter::kNone:
      break;
    case Jitter::kFull:
      delay = UniformMs(base);
      break;
    case Jitter::kEqual:
      delay = base / 2 + UniformMs(base - base / 2);
      break;
  }
  if (retry_after) {
    delay = std::max(delay, std::clamp(retry_after->count(), int64_t{0}, policy_.max_retry_after.count()));
  }
  if (policy_.deadline.count() > 0) {
    const auto elapsed = std::chrono::duration_cast<Millis>(clock_.Now() - start_).count();
    if (elapsed + delay > policy_.deadline.count()) {
      gave_up_ = true;
      return std::nullopt;
    }
  }
  ++retries_;
  return Millis(delay);
}

}  // namespace parley
