#include "broker/guard/address_limiter.h"

#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "base/check.h"

namespace parley::broker::guard {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const SteadyTime kT0 = SteadyTime{} + seconds(100);

IpAddress Ip(std::string_view text) {
  auto a = IpAddress::Parse(text);
  REQUIRE(a.has_value());
  return *a;
}

AddressLimiter::Options WithLimits(uint32_t max_connections, double rate, double burst) {
  AddressLimiter::Options o;
  o.limits = {max_connections, rate, burst};
  return o;
}

TEST_CASE("concurrent connections per address; Release frees a slot") {
  AddressLimiter lim(WithLimits(2, 0, 0));
  const IpAddress a = Ip("192.0.2.1");
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  CHECK(lim.Admit(a, kT0) == Admission::kTooManyConnections);
  CHECK(lim.Admit(Ip("192.0.2.2"), kT0) == Admission::kOk);  // another address is not affected
  CHECK(lim.Admit(Ip("::ffff:192.0.2.1"), kT0) == Admission::kTooManyConnections);  // mapped = same address
  lim.Release(a);
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  const auto s = lim.stats();
  CHECK(s.admitted == 4);
  CHECK(s.refused_connections == 2);
  CHECK(s.refused_rate == 0);
  CHECK(s.tracked == 2);
}

TEST_CASE("connection rate per address: burst, then the rate") {
  AddressLimiter lim(WithLimits(0, 2, 3));  // 2 per second, 3 at once
  const IpAddress a = Ip("2001:db8::1");
  for (int i = 0; i < 3; ++i) CHECK(lim.Admit(a, kT0) == Admission::kOk);
  CHECK(lim.Admit(a, kT0) == Admission::kRateExceeded);
  CHECK(lim.Admit(a, kT0 + milliseconds(499)) == Admission::kRateExceeded);
  CHECK(lim.Admit(a, kT0 + milliseconds(500)) == Admission::kOk);
  CHECK(lim.Admit(a, kT0 + milliseconds(500)) == Admission::kRateExceeded);
  CHECK(lim.Admit(Ip("2001:db8:0:1::1"), kT0) == Admission::kOk);  // another /64
  CHECK(lim.stats().refused_rate == 3);
}

TEST_CASE("a connection refused for concurrency costs no rate token") {
  AddressLimiter lim(WithLimits(1, 1, 2));
  const IpAddress a = Ip("192.0.2.1");
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  for (int i = 0; i < 5; ++i) CHECK(lim.Admit(a, kT0) == Admission::kTooManyConnections);
  lim.Release(a);
  CHECK(lim.Admit(a, kT0) == Admission::kOk);  // the second token of the burst is still there
}

TEST_CASE("IPv6 is counted by /64 unless told otherwise") {
  const IpAddress a = Ip("2001:db8:1:2::1");
  const IpAddress b = Ip("2001:db8:1:2:ffff:ffff:ffff:ffff");
  const IpAddress c = Ip("2001:db8:1:3::1");
  {
    AddressLimiter lim(WithLimits(1, 0, 0));
    CHECK(lim.KeyOf(b) == Ip("2001:db8:1:2::"));
    CHECK(lim.Admit(a, kT0) == Admission::kOk);
    CHECK(lim.Admit(b, kT0) == Admission::kTooManyConnections);
    CHECK(lim.Admit(c, kT0) == Admission::kOk);
    lim.Release(b);  // any address of the /64 releases its count
    CHECK(lim.Admit(b, kT0) == Admission::kOk);
    CHECK(lim.KeyOf(Ip("10.1.2.3")) == Ip("10.1.2.3"));  // IPv4 is never aggregated
  }
  {
    auto o = WithLimits(1, 0, 0);
    o.ipv6_by_64 = false;
    AddressLimiter lim(o);
    CHECK(lim.Admit(a, kT0) == Admission::kOk);
    CHECK(lim.Admit(b, kT0) == Admission::kOk);
    CHECK(lim.Admit(a, kT0) == Admission::kTooManyConnections);
  }
}

TEST_CASE("limits off, exempt addresses and unknown peers are admitted untracked") {
  AddressLimiter off(WithLimits(0, 0, 0));
  CHECK(off.Admit(Ip("192.0.2.1"), kT0) == Admission::kOkUntracked);
  CHECK(off.stats().tracked == 0);

  auto o = WithLimits(1, 0, 0);
  o.exempt = {IpPrefix::Parse("10.0.0.0/8").value(), IpPrefix::Parse("::1").value()};
  AddressLimiter lim(o);
  for (int i = 0; i < 3; ++i) {
    CHECK(lim.Admit(Ip("10.1.1.1"), kT0) == Admission::kOkUntracked);
    CHECK(lim.Admit(Ip("::1"), kT0) == Admission::kOkUntracked);
  }
  CHECK(lim.Admit(IpAddress(), kT0) == Admission::kOkUntracked);
  CHECK(lim.stats().tracked == 0);
  CHECK(Admitted(Admission::kOkUntracked));
  CHECK_FALSE(Admitted(Admission::kRateExceeded));
}

TEST_CASE("Sweep drops idle entries only once their bucket is full again") {
  AddressLimiter lim(WithLimits(5, 1, 2));
  const IpAddress a = Ip("192.0.2.1");
  const IpAddress b = Ip("192.0.2.2");
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  CHECK(lim.Admit(b, kT0) == Admission::kOk);
  lim.Release(a);
  CHECK(lim.Sweep(kT0 + milliseconds(999)) == 0);  // a's bucket is still refilling
  CHECK(lim.Sweep(kT0 + seconds(1)) == 1);         // a is idle and full: dropped; b has a connection
  CHECK(lim.stats().tracked == 1);
  lim.Release(b);
  CHECK(lim.Sweep(kT0 + seconds(1)) == 1);
  CHECK(lim.stats().tracked == 0);
  CHECK(lim.Sweep(kT0 + seconds(10)) == 0);

  // Dropping an entry must not reset a rate: it is only dropped when its bucket is full anyway.
  CHECK(lim.Admit(a, kT0 + seconds(20)) == Admission::kOk);
  CHECK(lim.Admit(a, kT0 + seconds(20)) == Admission::kOk);
  lim.Release(a);
  lim.Release(a);
  CHECK(lim.Sweep(kT0 + seconds(20)) == 0);
  CHECK(lim.Admit(a, kT0 + seconds(20)) == Admission::kRateExceeded);
}

TEST_CASE("the tracking cap: new addresses are admitted untracked, never refused; idle ones make room") {
  auto o = WithLimits(1, 1, 1);
  o.max_tracked = 4;
  o.shards = 1;
  AddressLimiter lim(o);
  for (uint32_t i = 1; i <= 4; ++i) CHECK(lim.Admit(IpAddress::V4(0x0a000000 + i), kT0) == Admission::kOk);
  CHECK(lim.Admit(IpAddress::V4(0x0a000005), kT0) == Admission::kOkUntracked);
  CHECK(lim.Admit(IpAddress::V4(0x0a000005), kT0) == Admission::kOkUntracked);  // untracked: unlimited
  CHECK(lim.stats().untracked == 2);
  CHECK(lim.stats().tracked == 4);
  // Known addresses are still limited.
  CHECK(lim.Admit(IpAddress::V4(0x0a000001), kT0) == Admission::kTooManyConnections);

  lim.Release(IpAddress::V4(0x0a000001));
  lim.Release(IpAddress::V4(0x0a000002));
  // Their buckets are full again after a second: the next new address triggers an on-the-spot sweep.
  CHECK(lim.Admit(IpAddress::V4(0x0a000006), kT0 + seconds(2)) == Admission::kOk);
  CHECK(lim.stats().tracked == 3);
  CHECK(lim.Admit(IpAddress::V4(0x0a000007), kT0 + seconds(2)) == Admission::kOk);
  CHECK(lim.Admit(IpAddress::V4(0x0a000008), kT0 + seconds(2)) == Admission::kOkUntracked);
}

TEST_CASE("SetLimits applies new limits and keeps connection counts") {
  AddressLimiter lim(WithLimits(1, 0, 0));
  const IpAddress a = Ip("192.0.2.1");
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  lim.SetLimits({2, 0, 0});
  CHECK(lim.Admit(a, kT0) == Admission::kOk);
  CHECK(lim.Admit(a, kT0) == Admission::kTooManyConnections);
  lim.SetLimits({0, 0, 0});
  CHECK(lim.Admit(a, kT0) == Admission::kOkUntracked);
  lim.Release(a);  // the two counted connections still release cleanly
  lim.Release(a);
  CHECK(lim.Sweep(kT0) == 1);
}

TEST_CASE("a surplus Release is reported as a bug and ignored") {
  AddressLimiter lim(WithLimits(1, 0, 0));
  const uint64_t bugs = BugCounter().load();
  lim.Release(Ip("192.0.2.1"));
  CHECK(BugCounter().load() == bugs + 1);
  CHECK(lim.Admit(Ip("192.0.2.1"), kT0) == Admission::kOk);
  CHECK(lim.Admit(Ip("192.0.2.1"), kT0) == Admission::kTooManyConnections);
}

TEST_CASE("many threads admit and release") {
  auto o = WithLimits(3, 1e9, 1e9);
  o.max_tracked = 64;  // smaller than the address space used, so the cap is exercised too
  AddressLimiter lim(o);
  std::atomic<uint64_t> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::minstd_rand rng(static_cast<unsigned>(t + 1));
      std::vector<IpAddress> held;
      for (int i = 0; i < 20'000; ++i) {
        const IpAddress a = IpAddress::V4(0x0a000000 + rng() % 100);
        const SteadyTime now = kT0 + milliseconds(i);
        const Admission r = lim.Admit(a, now);
        if (r == Admission::kOk) {
          ok.fetch_add(1);
          held.push_back(a);
        }
        if (held.size() > 4 || (rng() % 3 == 0 && !held.empty())) {
          lim.Release(held.back());
          held.pop_back();
        }
        if (i % 1000 == 0) lim.Sweep(now);
      }
      for (const IpAddress& a : held) lim.Release(a);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok.load() > 0);
  lim.Sweep(kT0 + seconds(1000));
  CHECK(lim.stats().tracked == 0);
}

}  // namespace
}  // namespace parley::broker::guard
