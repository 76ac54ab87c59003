// AddressLimiter: per-address admission on the accept path — at most N concurrent connections from one
// address, and at most `rate` new connections per second from it (a token bucket with room for `burst`).
//
// Shared by every worker thread: it is split into shards by address hash, each with its own mutex, so
// threads admitting different addresses rarely meet. An address's entry lives while it has connections or
// its bucket is not yet full again; idle entries are dropped by Sweep() (call it on a timer, every few
// seconds) and, when a shard fills up, on the spot (at most once a second per shard, so a flood of new
// addresses does not turn every Admit into a scan).
//
// Memory is bounded: at most `max_tracked` addresses are tracked (split evenly over the shards). When a shard
// is full of live entries, a new address is admitted *untracked* (no limits apply to it) and counted in
// stats().untracked — a flood of distinct addresses must not lock everybody out. Watch that counter: when
// it grows, raise max_tracked.
//
// IPv6 addresses are aggregated by /64 by default: a phone, a home or a VM usually receives a whole /64, and
// counting each of its 2^64 addresses separately would make the limits meaningless.
//
// Time is passed in (steady clock), so tests drive it by hand.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/token_bucket.h"
#include "broker/guard/ip_address.h"

namespace parley::broker::guard {

enum class Admission : uint8_t {
  kOk,                  // admitted and counted: call Release() when the connection closes
  kOkUntracked,         // admitted, not counted (limits off, exempt, no address, or table full): no Release()
  kTooManyConnections,  // the address already has max_connections open
  kRateExceeded,        // the address opened too many connections too quickly
};
inline bool Admitted(Admission a) {
  return a == Admission::kOk || a == Admission::kOkUntracked;
}
const char* AdmissionName(Admission a);

class AddressLimiter {
 public:
  struct Limits {
    uint32_t max_connections = 0;  // concurrent, per address (or /64); 0 = unlimited
    double connect_rate = 0;       // new connections per second per address; 0 = unlimited
    double connect_burst = 10;     // connections allowed at once before the rate applies
  };
  struct Options {
    Limits limits;
    bool ipv6_by_64 = true;        // count an IPv6 /64 as one address
    size_t max_tracked = 100'000;  // addresses tracked at most (~100 bytes each)
    size_t shards = 16;            // rounded up to a power of two, at least 1
    std::vector<IpPrefix> exempt;  // never limited or tracked (a load balancer, a monitoring host)
  };
  struct Stats {
    uint64_t admitted = 0;  // kOk + kOkUntracked
    uint64_t refused_connections = 0;
    uint64_t refused_rate = 0;
    uint64_t untracked = 0;  // admitted untracked because the table was full
    size_t tracked = 0;      // addresses tracked now
  };

  explicit AddressLimiter(Options options);
  AddressLimiter(const AddressLimiter&) = delete;
  AddressLimiter& operator=(const AddressLimiter&) = delete;

  // Decides on a connection just accepted from `address` at `now`. Concurrent connections are checked first
  // (a refused attempt costs no rate token), then the rate. Any thread.
  Admission Admit(const IpAddress& address, SteadyTime now);
  // The connection admitted with kOk from `address` has closed. Exactly once per kOk; never after
  // kOkUntracked or a refusal (a surplus Release is counted as a bug and ignored). Any thread.
  void Release(const IpAddress& address);

  // Drops entries with no connections and a full bucket at `now`; returns how many. Any thread; takes each
  // shard's lock in turn, for a scan of that shard.
  size_t Sweep(SteadyTime now);

  // Replaces the limits (a configuration reload). Counts of open connections are kept; every rate bucket
  // restarts full under the new rate, which is lenient for one burst. Any thread.
  void SetLimits(const Limits& limits);

  Stats stats() const;  // any thread; fields read one by one

  // The key an address is counted under: itself, or its /64 for IPv6 when ipv6_by_64. Pure.
  IpAddress KeyOf(const IpAddress& address) const;

 private:
  struct Entry {
    TokenBucket bucket;
    uint32_t connections = 0;
  };
  struct alignas(64) Shard {  // one cache line per shard's lock, so shards do not share one
    std::mutex mu;
    std::unordered_map<IpAddress, Entry, IpAddressHash> entries;  // guarded by mu
    SteadyTime last_full_sweep{};                                 // guarded by mu
    bool swept_once = false;                                      // guarded by mu
    Limits limits;                                                // guarded by mu
  };

  Shard& ShardOf(const IpAddress& key);
  bool Exempt(const IpAddress& address) const;
  static size_t SweepShard(Shard& shard, SteadyTime now);  // shard.mu held

  const bool ipv6_by_64_;
  const std::vector<IpPrefix> exempt_;
  const size_t per_shard_cap_;
  std::atomic<bool> limited_;  // false when both limits are off: Admit returns at once
  std::unique_ptr<Shard[]> shards_;
  const size_t shard_mask_;

  std::atomic<uint64_t> admitted_{0}, refused_connections_{0}, refused_rate_{0}, untracked_{0};
  std::atomic<size_t> tracked_{0};
};

}  // namespace parley::broker::guard
