#include "base/circuit_breaker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace parley {
namespace {

using State = CircuitBreaker::State;
using std::chrono::milliseconds;

CircuitBreaker::Options ConsecutiveOnly(uint32_t n) {
  CircuitBreaker::Options o;
  o.consecutive_failures = n;
  o.failure_ratio = 0;
  o.open_duration = milliseconds(1000);
  o.max_open_duration = milliseconds(5000);
  return o;
}

void Fail(CircuitBreaker& b, int n = 1) {
  for (int i = 0; i < n; ++i) {
    auto p = b.Acquire();
    REQUIRE(p);
    p.Failure();
  }
}
void Succeed(CircuitBreaker& b, int n = 1) {
  for (int i = 0; i < n; ++i) {
    auto p = b.Acquire();
    REQUIRE(p);
    p.Success();
  }
}

TEST_CASE("opens after N consecutive failures; a success resets the run") {
  ManualClock clock;
  std::vector<std::pair<State, State>> changes;
  CircuitBreaker b(ConsecutiveOnly(3), clock, [&](State from, State to) { changes.emplace_back(from, to); });
  CHECK(b.state() == State::kClosed);
  Fail(b, 2);
  Succeed(b);
  Fail(b, 2);
  CHECK(b.state() == State::kClosed);
  Fail(b);
  CHECK(b.state() == State::kOpen);
  CHECK_FALSE(b.Acquire());
  CHECK_FALSE(b.Acquire());
  const auto c = b.counters();
  CHECK(c.calls == 6);
  CHECK(c.rejected == 2);
  CHECK(c.failures == 5);
  CHECK(c.successes == 1);
  CHECK(c.opens == 1);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0] == std::make_pair(State::kClosed, State::kOpen));
}

TEST_CASE("opens on a failure ratio over enough calls within the window") {
  ManualClock clock;
  CircuitBreaker::Options o;
  o.consecutive_failures = 0;
  o.failure_ratio = 0.5;
  o.min_calls = 10;
  o.window = milliseconds(10'000);
  CircuitBreaker b(o, clock);

  SUBCASE("the ratio trips only once min_calls outcomes are in") {
    for (int i = 0; i < 4; ++i) {
      Fail(b);
      Succeed(b);
    }
    Succeed(b);  // 9 calls, 4 failures
    CHECK(b.state() == State::kClosed);
    Fail(b);  // 10 calls, 5 failures: 50%
    CHECK(b.state() == State::kOpen);
  }
  SUBCASE("below the ratio it stays closed") {
    for (int i = 0; i < 30; ++i) {
      Fail(b);
      Succeed(b, 2);
    }
    CHECK(b.state() == State::kClosed);
  }
  SUBCASE("outcomes older than the window are forgotten") {
    Fail(b, 9);  // 9 failures: not yet min_calls
    clock.Advance(milliseconds(11'000));
    Fail(b);  // alone in the window now
    CHECK(b.state() == State::kClosed);
    Succeed(b, 9);
    CHECK(b.state() == State::kClosed);  // 1 failure in 10
  }
}

TEST_CASE("half-open after the open duration; K probe successes close it") {
  ManualClock clock;
  auto o = ConsecutiveOnly(1);
  o.half_open_probes = 2;
  std::vector<std::pair<State, State>> changes;
  CircuitBreaker b(o, clock, [&](State from, State to) { changes.emplace_back(from, to); });
  Fail(b);
  REQUIRE(b.state() == State::kOpen);
  clock.Advance(milliseconds(999));
  CHECK_FALSE(b.Acquire());
  clock.Advance(milliseconds(1));
  auto p1 = b.Acquire();
  CHECK(p1);
  CHECK(b.state() == State::kHalfOpen);
  auto p2 = b.Acquire();
  CHECK(p2);
  CHECK_FALSE(b.Acquire());  // both probe slots taken
  p1.Success();
  CHECK(b.state() == State::kHalfOpen);
  CHECK_FALSE(b.Acquire());  // one success + one in flight = the round's two probes
  p2.Success();
  CHECK(b.state() == State::kClosed);
  CHECK(b.Acquire());
  REQUIRE(changes.size() == 3);
  CHECK(changes[1] == std::make_pair(State::kOpen, State::kHalfOpen));
  CHECK(changes[2] == std::make_pair(State::kHalfOpen, State::kClosed));
}

TEST_CASE("a failed probe reopens for twice as long, up to the cap; closing resets the duration") {
  ManualClock clock;
  CircuitBreaker b(ConsecutiveOnly(1), clock);
  Fail(b);
  CHECK(b.current_open_duration() == milliseconds(1000));
  const int64_t expected[] = {2000, 4000, 5000, 5000};
  int64_t wait = 1000;
  for (int64_t next : expected) {
    clock.Advance(milliseconds(wait - 1));
    CHECK_FALSE(b.Acquire());
    clock.Advance(milliseconds(1));
    auto probe = b.Acquire();
    REQUIRE(probe);
    probe.Failure();
    CHECK(b.state() == State::kOpen);
    CHECK(b.current_open_duration() == milliseconds(next));
    wait = next;
  }
  clock.Advance(milliseconds(wait));
  Succeed(b);
  CHECK(b.state() == State::kClosed);
  CHECK(b.current_open_duration() == milliseconds(1000));
  Fail(b);
  clock.Advance(milliseconds(1000));
  CHECK(b.Acquire());  // back to the initial open duration
  CHECK(b.counters().opens == 6);
}

TEST_CASE("a dropped or moved permit is cancelled once and frees its probe slot") {
  ManualClock clock;
  CircuitBreaker b(ConsecutiveOnly(1), clock);
  Fail(b);
  clock.Advance(milliseconds(1000));
  {
    auto probe = b.Acquire();
    REQUIRE(probe);
    CHECK_FALSE(b.Acquire());
  }  // dropped without an outcome
  CHECK(b.counters().cancelled == 1);
  CHECK(b.state() == State::kHalfOpen);
  auto probe = b.Acquire();
  REQUIRE(probe);
  CircuitBreaker::Permit moved = std::move(probe);
  CHECK_FALSE(probe);  // NOLINT(bugprone-use-after-move): moved-from permits are empty by contract
  probe.Failure();     // does nothing
  moved.Success();
  moved.Success();  // a second outcome is ignored
  CHECK(b.state() == State::kClosed);
  const auto c = b.counters();
  CHECK(c.successes == 1);
  CHECK(c.failures == 1);
}

TEST_CASE("outcomes from an earlier state do not move the state machine") {
  ManualClock clock;
  CircuitBreaker b(ConsecutiveOnly(2), clock);
  auto slow1 = b.Acquire();
  auto slow2 = b.Acquire();
  Fail(b, 2);
  REQUIRE(b.state() == State::kOpen);
  slow1.Success();  // granted while closed: must not close the open breaker
  CHECK(b.state() == State::kOpen);
  clock.Advance(milliseconds(1000));
  auto probe = b.Acquire();
  REQUIRE(probe);
  slow2.Failure();  // a straggler from the closed state: must not fail the probe round
  CHECK(b.state() == State::kHalfOpen);
  probe.Success();
  CHECK(b.state() == State::kClosed);
  CHECK(b.counters().failures == 3);  // still counted for metrics
}

TEST_CASE("concurrent callers keep the counters consistent") {
  CircuitBreaker::Options o;
  o.consecutive_failures = 20;
  // About 3 calls in 8 fail below (cases 0 and 3): above this ratio whatever the interleaving, so the
  // breaker opens (the clock never moves, so the window never rolls) and every path is exercised.
  o.failure_ratio = 0.3;
  o.min_calls = 50;
  o.open_duration = milliseconds(0);  // half-open again at once
  o.half_open_probes = 3;
  ManualClock clock;  // only read by the threads
  std::atomic<int> transitions{0};
  CircuitBreaker b(o, clock, [&](State, State) { transitions.fetch_add(1); });
  constexpr int kThreads = 4;
  constexpr int kCalls = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&b, t] {
      std::minstd_rand rng(static_cast<unsigned>(t + 1));
      std::vector<CircuitBreaker::Permit> held;
      for (int i = 0; i < kCalls; ++i) {
        auto p = b.Acquire();
        (void)b.state();
        if (!p) continue;
        switch (rng() % 4) {
          case 0:
            p.Failure();
            break;
          case 1:
            p.Success();
            break;
          case 2:
            held.push_back(std::move(p));  // completed later, or dropped
            break;
          default:
            if (rng() % 2) p.Failure();
        }
        if (held.size() > 8) {
          held.front().Success();
          held.erase(held.begin());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto c = b.counters();
  CHECK(c.calls + c.rejected == uint64_t{kThreads} * kCalls);
  CHECK(c.successes + c.failures + c.cancelled == c.calls);
  CHECK(c.opens > 0);
  CHECK(transitions.load() > 0);
}

}  // namespace
}  // namespace parley
