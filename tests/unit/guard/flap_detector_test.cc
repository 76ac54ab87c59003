#include "broker/guard/flap_detector.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

namespace parley::broker::guard {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const SteadyTime kT0 = SteadyTime{} + seconds(100);

FlapDetector::Options Opts(uint32_t n, int window_s, int ban_s) {
  FlapDetector::Options o;
  o.max_connects = n;
  o.window = seconds(window_s);
  o.ban_duration = seconds(ban_s);
  return o;
}

TEST_CASE("more than N connects within W bans for B; the ban ends and counting restarts") {
  FlapDetector f(Opts(3, 10, 60));
  CHECK_FALSE(f.OnConnect("c", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(1)));
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(2)));
  const auto until = f.OnConnect("c", kT0 + seconds(3));  // the 4th within 10 s
  REQUIRE(until);
  CHECK(*until == kT0 + seconds(63));
  CHECK(f.OnConnect("c", kT0 + seconds(30)) == until);  // refused, not extended
  CHECK(f.BannedUntil("c", kT0 + seconds(62)) == until);
  CHECK_FALSE(f.BannedUntil("c", kT0 + seconds(63)));
  CHECK_FALSE(f.OnConnect("other", kT0 + seconds(30)));  // other client ids are unaffected
  // After the ban: a fresh count.
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(63)));
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(63)));
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(63)));
  CHECK(f.OnConnect("c", kT0 + seconds(63)));
  const auto s = f.stats();
  CHECK(s.bans == 2);
  CHECK(s.refused == 3);
  CHECK(s.connects == 10);
}

TEST_CASE("the window slides: N connects per W forever is fine, the boundary is exclusive") {
  FlapDetector f(Opts(3, 10, 60));
  for (int i = 0; i < 100; ++i) {
    INFO(i);
    CHECK_FALSE(f.OnConnect("steady", kT0 + seconds(4 * i)));  // every 4 s: never 4 within 10 s
  }
  FlapDetector g(Opts(3, 10, 60));
  CHECK_FALSE(g.OnConnect("c", kT0));
  CHECK_FALSE(g.OnConnect("c", kT0 + seconds(5)));
  CHECK_FALSE(g.OnConnect("c", kT0 + seconds(6)));
  CHECK_FALSE(g.OnConnect("c", kT0 + seconds(10)));                // exactly W after the first: not within W
  CHECK(g.OnConnect("c", kT0 + seconds(10) + milliseconds(999)));  // 5, 6, 10, 10.999 - and 5 is < 10 s ago
}

TEST_CASE("N = 1: a second connect within W is flapping") {
  FlapDetector f(Opts(1, 10, 5));
  CHECK_FALSE(f.OnConnect("c", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(10)));
  CHECK(f.OnConnect("c", kT0 + seconds(11)) == kT0 + seconds(16));
}

TEST_CASE("disabled, empty client ids, Forgive") {
  FlapDetector off(Opts(0, 10, 60));
  for (int i = 0; i < 100; ++i) CHECK_FALSE(off.OnConnect("c", kT0));
  CHECK(off.stats().tracked == 0);

  FlapDetector f(Opts(1, 10, 60));
  for (int i = 0; i < 10; ++i) CHECK_FALSE(f.OnConnect("", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0));
  CHECK(f.OnConnect("c", kT0));
  CHECK(f.Forgive("c"));
  CHECK_FALSE(f.Forgive("c"));
  CHECK_FALSE(f.BannedUntil("c", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0));
}

TEST_CASE("Sweep drops quiet entries and keeps banned and recent ones") {
  FlapDetector f(Opts(2, 10, 60));
  CHECK_FALSE(f.OnConnect("quiet", kT0));
  CHECK_FALSE(f.OnConnect("recent", kT0 + seconds(5)));
  CHECK_FALSE(f.OnConnect("banned", kT0));
  CHECK_FALSE(f.OnConnect("banned", kT0));
  CHECK(f.OnConnect("banned", kT0));
  CHECK(f.stats().tracked == 3);
  CHECK(f.Sweep(kT0 + seconds(10)) == 1);  // "quiet": its last connect is W old
  CHECK(f.stats().tracked == 2);
  CHECK(f.Sweep(kT0 + seconds(15)) == 1);  // "recent"
  CHECK(f.BannedUntil("banned", kT0 + seconds(15)));
  CHECK(f.Sweep(kT0 + seconds(60)) == 1);  // the ban is over
  CHECK(f.stats().tracked == 0);
}

TEST_CASE("the tracking cap: new client ids go untracked, never refused") {
  FlapDetector::Options o = Opts(1, 10, 60);
  o.max_tracked = 2;
  o.shards = 1;
  FlapDetector f(o);
  CHECK_FALSE(f.OnConnect("a", kT0));
  CHECK_FALSE(f.OnConnect("b", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0));
  CHECK_FALSE(f.OnConnect("c", kT0));  // untracked: never banned
  CHECK(f.stats().untracked == 2);
  CHECK(f.OnConnect("a", kT0));  // tracked ones still are
  // Once "b" is quiet, an on-the-spot sweep makes room.
  CHECK_FALSE(f.OnConnect("c", kT0 + seconds(11)));
  CHECK(f.OnConnect("c", kT0 + seconds(12)));
}

TEST_CASE("many threads") {
  FlapDetector::Options o = Opts(5, 1, 1);
  o.max_tracked = 50;
  FlapDetector f(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::minstd_rand rng(static_cast<unsigned>(t + 1));
      for (int i = 0; i < 20'000; ++i) {
        const std::string id = "c" + std::to_string(rng() % 200);
        const SteadyTime now = kT0 + milliseconds(i);
        (void)f.OnConnect(id, now);
        (void)f.BannedUntil(id, now);
        if (i % 500 == 0) f.Sweep(now);
        if (i % 777 == 0) f.Forgive(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  f.Sweep(kT0 + seconds(1000));
  CHECK(f.stats().tracked == 0);
  CHECK(f.stats().bans > 0);
}

}  // namespace
}  // namespace parley::broker::guard
