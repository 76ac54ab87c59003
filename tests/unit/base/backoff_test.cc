#include "base/backoff.h"

#include <doctest/doctest.h>

#include <vector>

namespace parley {
namespace {

using std::chrono::milliseconds;

BackoffPolicy NoJitter() {
  BackoffPolicy p;
  p.initial = milliseconds(100);
  p.multiplier = 2;
  p.max_delay = milliseconds(1000);
  p.jitter = Jitter::kNone;
  return p;
}

std::vector<int64_t> Delays(Backoff& b, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    auto d = b.NextDelay();
    out.push_back(d ? d->count() : -1);
  }
  return out;
}

TEST_CASE("delays grow by the multiplier up to the cap") {
  ManualClock clock;
  Backoff b(NoJitter(), clock, 1);
  CHECK(Delays(b, 7) == std::vector<int64_t>{100, 200, 400, 800, 1000, 1000, 1000});
  CHECK(b.attempts() == 8);

  BackoffPolicy p = NoJitter();
  p.multiplier = 1.5;
  Backoff c(p, clock, 1);
  CHECK(Delays(c, 4) == std::vector<int64_t>{100, 150, 225, 337});

  p.multiplier = 1e300;  // overflows to infinity at once: capped, not garbage
  Backoff d(p, clock, 1);
  CHECK(Delays(d, 4) == std::vector<int64_t>{100, 1000, 1000, 1000});
  p.multiplier = 0.5;  // below 1 counts as 1
  Backoff e(p, clock, 1);
  CHECK(Delays(e, 3) == std::vector<int64_t>{100, 100, 100});
}

TEST_CASE("max_attempts counts the first attempt; giving up sticks until Reset") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.max_attempts = 3;
  Backoff b(p, clock, 1);
  CHECK(Delays(b, 4) == std::vector<int64_t>{100, 200, -1, -1});
  CHECK(b.gave_up());
  b.Reset();
  CHECK_FALSE(b.gave_up());
  CHECK(Delays(b, 3) == std::vector<int64_t>{100, 200, -1});

  p.max_attempts = 1;
  Backoff once(p, clock, 1);
  CHECK_FALSE(once.NextDelay());
}

TEST_CASE("no retry is scheduled to start past the deadline") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.initial = milliseconds(300);
  p.max_delay = milliseconds(10'000);
  p.deadline = milliseconds(1000);
  Backoff b(p, clock, 1);
  clock.Advance(milliseconds(50));            // the first attempt took 50 ms
  CHECK(b.NextDelay() == milliseconds(300));  // retry at 350
  clock.Advance(milliseconds(350));           // ... which failed at 400
  CHECK(b.NextDelay() == milliseconds(600));  // retry at exactly 1000: allowed
  clock.Advance(milliseconds(600));
  CHECK_FALSE(b.NextDelay());  // 1000 + 1200 > 1000
  CHECK_FALSE(b.NextDelay());

  b.Reset();  // the deadline counts from the reset
  CHECK(b.NextDelay() == milliseconds(300));
}

TEST_CASE("full jitter stays in [0, base] and spreads") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = Jitter::kFull;
  p.initial = milliseconds(1000);
  p.max_delay = milliseconds(1000);
  int64_t lo = 1'000'000, hi = -1;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    Backoff b(p, clock, seed);
    const int64_t d = b.NextDelay()->count();
    CHECK(d >= 0);
    CHECK(d <= 1000);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo < 50);
  CHECK(hi > 950);
}

TEST_CASE("equal jitter stays in [base/2, base]") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = Jitter::kEqual;
  p.max_delay = milliseconds(100'000);
  Backoff b(p, clock, 42);
  int64_t base = 100;
  for (int i = 0; i < 10; ++i) {
    const int64_t d = b.NextDelay()->count();
    CHECK(d >= base / 2);
    CHECK(d <= base);
    base *= 2;
  }
}

TEST_CASE("a seed fixes the sequence") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.jitter = Jitter::kFull;
  p.max_delay = milliseconds(1'000'000);
  Backoff a(p, clock, 7), b(p, clock, 7), c(p, clock, 8);
  const auto da = Delays(a, 12);
  CHECK(da == Delays(b, 12));
  CHECK(da != Delays(c, 12));
  CHECK(Backoff::RandomSeed() != Backoff::RandomSeed());  // 2^-64 chance of a false failure
}

TEST_CASE("Retry-After is a floor, clamped, and still an attempt") {
  ManualClock clock;
  BackoffPolicy p = NoJitter();
  p.max_attempts = 4;
  p.max_retry_after = milliseconds(60'000);
  Backoff b(p, clock, 1);
  CHECK(b.NextDelay(milliseconds(5000)) == milliseconds(5000));         // longer than the backoff: honoured
  CHECK(b.NextDelay(milliseconds(10)) == milliseconds(200));            // shorter: the backoff wins
  CHECK(b.NextDelay(milliseconds(3'600'000)) == milliseconds(60'000));  // clamped
  CHECK_FALSE(b.NextDelay(milliseconds(1)));                            // attempts used up
  Backoff c(p, clock, 1);
  CHECK(c.NextDelay(milliseconds(-5)) == milliseconds(100));

  BackoffPolicy d = NoJitter();
  d.deadline = milliseconds(10'000);
  Backoff e(d, clock, 1);
  CHECK_FALSE(e.NextDelay(milliseconds(20'000)));  // the server asks for more time than is left
}

}  // namespace
}  // namespace parley
