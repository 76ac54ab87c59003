#include "base/token_bucket.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <limits>

namespace parley {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

const SteadyTime kT0 = SteadyTime{} + seconds(1000);

TEST_CASE("a new bucket holds its burst, and no more") {
  TokenBucket b(1, 5);
  for (int i = 0; i < 5; ++i) CHECK(b.Take(1, kT0));
  CHECK_FALSE(b.Take(1, kT0));
  CHECK(b.Available(kT0) == doctest::Approx(0));

  TokenBucket c(1, 5);
  CHECK(c.Take(5, kT0));
  CHECK_FALSE(c.Take(0.5, kT0));
  TokenBucket d(1, 5);
  CHECK_FALSE(d.Take(6, kT0));   // more than the burst never passes
  CHECK(d.Available(kT0) == 5);  // and a refused Take takes nothing
  CHECK(sizeof(TokenBucket) <= 32);
}

TEST_CASE("refill is exact at the boundary") {
  TokenBucket b(10, 1);
  REQUIRE(b.Take(1, kT0));
  CHECK_FALSE(b.Take(1, kT0 + milliseconds(99)));
  CHECK_FALSE(b.Take(1, kT0 + milliseconds(100) - nanoseconds(1)));
  CHECK(b.Take(1, kT0 + milliseconds(100)));

  // A rate that does not divide a second: 3 per second. After exactly one second, exactly three tokens.
  TokenBucket c(3, 3);
  REQUIRE(c.Take(3, kT0));
  CHECK(c.Available(kT0 + seconds(1)) == 3);
  CHECK(c.Take(3, kT0 + seconds(1)));
}

TEST_CASE("the refill never exceeds the burst, however long the gap") {
  TokenBucket b(1000, 20);
  REQUIRE(b.Take(20, kT0));
  CHECK(b.Available(kT0 + seconds(3600)) == 20);
  CHECK(b.Available(kT0 + std::chrono::hours(24 * 365 * 100)) == 20);  // a century: no overflow
  CHECK(b.Full(kT0 + seconds(1)));
  CHECK(b.Take(20, kT0 + std::chrono::hours(24 * 365 * 100)));
  CHECK_FALSE(b.Take(1, kT0 + std::chrono::hours(24 * 365 * 100)));
}

TEST_CASE("time spent full is not banked") {
  TokenBucket b(1, 2);
  // Full at kT0, idle for an hour, then a burst: only 2 pass, and the next comes one second later.
  CHECK(b.Take(2, kT0 + seconds(3600)));
  CHECK_FALSE(b.Take(1, kT0 + seconds(3600) + milliseconds(999)));
  CHECK(b.Take(1, kT0 + seconds(3601)));
}

TEST_CASE("fine-grained polling refills exactly as much as coarse polling (no drift, no truncation)") {
  // 7 tokens per second, polled every millisecond for 1000 s, each poll taking a token when one is there.
  // (Burst 2, so the bucket is never full while it refills: a full bucket rightly discards refill.)
  TokenBucket fine(7, 2);
  int64_t taken = 0;
  for (int64_t ms = 0; ms <= 1'000'000; ++ms) taken += fine.Take(1, kT0 + milliseconds(ms)) ? 1 : 0;
  CHECK(taken == 2 + 7 * 1000);  // the initial burst, then exactly the rate

  // Polled every microsecond for a tenth of a second at 100/s: every 10 ms, exactly.
  TokenBucket micro(100, 1);
  REQUIRE(micro.Take(1, kT0));
  taken = 0;
  for (int64_t us = 1; us <= 100'000; ++us)
    taken += micro.Take(1, kT0 + std::chrono::microseconds(us)) ? 1 : 0;
  CHECK(taken == 10);
}

TEST_CASE("fractional takes and rates") {
  TokenBucket b(0.5, 1);  // one token every two seconds
  REQUIRE(b.Take(1, kT0));
  CHECK_FALSE(b.Take(1, kT0 + milliseconds(1999)));
  CHECK(b.Take(0.5, kT0 + seconds(1)));
  CHECK(b.Take(0.5, kT0 + seconds(2)));
  CHECK_FALSE(b.Take(0.25, kT0 + seconds(2)));
}

TEST_CASE("WhenAvailable names the first instant a Take succeeds") {
  TokenBucket b(3, 3);
  REQUIRE(b.Take(3, kT0));
  const SteadyTime t = b.WhenAvailable(1, kT0);
  CHECK(t == kT0 + nanoseconds(333'333'334));  // 1/3 s, rounded up to the next nanosecond
  {
    TokenBucket copy = b;
    CHECK_FALSE(copy.Take(1, t - nanoseconds(1)));
  }
  {
    TokenBucket copy = b;
    CHECK(copy.Take(1, t));
  }
  CHECK(b.WhenAvailable(3, kT0) == kT0 + seconds(1));
  CHECK(b.WhenAvailable(0, kT0) == kT0);
  CHECK(b.WhenAvailable(4, kT0) == SteadyTime::max());              // more than the burst: never
  CHECK(b.WhenAvailable(1, kT0 + seconds(5)) == kT0 + seconds(5));  // already there

  TokenBucket slow(1e-12, 1);
  REQUIRE(slow.Take(1, kT0));
  CHECK(slow.WhenAvailable(1, kT0) == SteadyTime::max());  // beyond a century
}

TEST_CASE("Charge may run into debt, which WhenAvailable and Take respect") {
  TokenBucket b(10, 10);
  b.Charge(25, kT0);
  CHECK(b.Available(kT0) == doctest::Approx(-15));
  CHECK_FALSE(b.Take(1, kT0 + seconds(1)));  // -5 after a second
  CHECK(b.WhenAvailable(1, kT0) == kT0 + milliseconds(1600));
  CHECK(b.Take(1, kT0 + milliseconds(1600)));
  b.Charge(0, kT0 + milliseconds(1600));
  b.Charge(-3, kT0 + milliseconds(1600));
  CHECK(b.Available(kT0 + milliseconds(1600)) == doctest::Approx(0));
}

TEST_CASE("a stale `now` refills nothing and drains nothing") {
  TokenBucket b(1, 2);
  REQUIRE(b.Take(2, kT0 + seconds(10)));
  CHECK(b.Available(kT0) == 0);  // earlier than the last take
  CHECK_FALSE(b.Take(1, kT0));
  CHECK(b.Take(1, kT0 + seconds(11)));
}

TEST_CASE("rate 0 is unlimited; bad parameters are safe") {
  TokenBucket unlimited(0, 0);
  CHECK(unlimited.unlimited());
  CHECK(unlimited.Take(1e12, kT0));
  CHECK(unlimited.WhenAvailable(1e12, kT0) == kT0);
  CHECK(std::isinf(unlimited.Available(kT0)));
  CHECK(TokenBucket().Take(1, kT0));

  CHECK(TokenBucket(-1, 5).unlimited());
  CHECK(TokenBucket(std::numeric_limits<double>::quiet_NaN(), 5).unlimited());
  CHECK(TokenBucket(std::numeric_limits<double>::infinity(), 5).unlimited());
  TokenBucket no_room(1, std::numeric_limits<double>::quiet_NaN());
  CHECK(no_room.burst() == 0);
  CHECK_FALSE(no_room.Take(1, kT0 + seconds(100)));
  TokenBucket b(1, 5);
  CHECK_FALSE(b.Take(std::numeric_limits<double>::quiet_NaN(), kT0));
  CHECK(b.Take(-1, kT0));
  CHECK(b.Available(kT0) == 5);
}

}  // namespace
}  // namespace parley
