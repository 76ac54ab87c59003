#include "broker/guard/address_limiter.h"

#include <algorithm>
#include <bit>

#include "base/check.h"
#include "broker/guard/shard_room.h"

namespace parley::broker::guard {
namespace {

bool LimitsOn(const AddressLimiter::Limits& l) {
  return l.max_connections != 0 || !TokenBucket(l.connect_rate, l.connect_burst).unlimited();
}

}  // namespace

const char* AdmissionName(Admission a) {
  switch (a) {
    case Admission::kOk:
      return "ok";
    case Admission::kOkUntracked:
      return "ok-untracked";
    case Admission::kTooManyConnections:
      return "too many connections from this address";
    case Admission::kRateExceeded:
      return "connection rate exceeded for this address";
  }
  return "?";
}

AddressLimiter::AddressLimiter(Options options)
    : ipv6_by_64_(options.ipv6_by_64),
      exempt_(std::move(options.exempt)),
      per_shard_cap_(PerShardCap(options.max_tracked, ShardCount(options.shards))),
      limited_(LimitsOn(options.limits)),
      shards_(new Shard[ShardCount(options.shards)]),
      shard_mask_(ShardCount(options.shards) - 1) {
  for (size_t i = 0; i <= shard_mask_; ++i) shards_[i].limits = options.limits;
}

IpAddress AddressLimiter::KeyOf(const IpAddress& address) const {
  return ipv6_by_64_ && address.is_v6() ? address.Masked(64) : address;
}

AddressLimiter::Shard& AddressLimiter::ShardOf(const IpAddress& key) {
  // The top bits pick the shard; the table inside uses the hash modulo its bucket count (the low bits).
  return shards_[(key.Hash() >> 32) & shard_mask_];
}

bool AddressLimiter::Exempt(const IpAddress& address) const {
  return std::any_of(exempt_.begin(), exempt_.end(), [&](const IpPrefix& p) { return p.Contains(address); });
}

Admission AddressLimiter::Admit(const IpAddress& address, SteadyTime now) {
  if (!limited_.load(std::memory_order_relaxed) || !address.valid() || Exempt(address)) {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    return Admission::kOkUntracked;
  }
  const IpAddress key = KeyOf(address);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    if (!MakeRoom(shard, per_shard_cap_, now, tracked_, &AddressLimiter::SweepShard)) {
      untracked_.fetch_add(1, std::memory_order_relaxed);
      admitted_.fetch_add(1, std::memory_order_relaxed);
      return Admission::kOkUntracked;
    }
    const Limits& l = shard.limits;
    it = shard.entries.emplace(key, Entry{TokenBucket(l.connect_rate, l.connect_burst), 0}).first;
    tracked_.fetch_add(1, std::memory_order_relaxed);
  }
  Entry& e = it->second;
  if (shard.limits.max_connections != 0 && e.connections >= shard.limits.max_connections) {
    refused_connections_.fetch_add(1, std::memory_order_relaxed);
    return Admission::kTooManyConnections;
  }
  if (!e.bucket.Take(1, now)) {
    // A refused entry with no connections is dropped by the next Sweep once its bucket has refilled.
    refused_rate_.fetch_add(1, std::memory_order_relaxed);
    return Admission::kRateExceeded;
  }
  ++e.connections;
  admitted_.fetch_add(1, std::memory_order_relaxed);
  return Admission::kOk;
}

void AddressLimiter::Release(const IpAddress& address) {
  const IpAddress key = KeyOf(address);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end() || it->second.connections == 0) {
    PARLEY_BUG("AddressLimiter::Release without a matching kOk admission");
    return;
  }
  --it->second.connections;
  // The entry stays until its bucket is full again (Sweep): dropping it now would hand a fresh, full bucket
  // to an address that reconnects at once, defeating the rate limit.
}

size_t AddressLimiter::SweepShard(Shard& shard, SteadyTime now) {
  return std::erase_if(shard.entries, [&](const auto& kv) {
    return kv.second.connections == 0 && kv.second.bucket.Full(now);
  });
}

size_t AddressLimiter::Sweep(SteadyTime now) {
  size_t dropped = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    dropped += SweepShard(shards_[i], now);
  }
  tracked_.fetch_sub(dropped, std::memory_order_relaxed);
  return dropped;
}

void AddressLimiter::SetLimits(const Limits& limits) {
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    shard.limits = limits;
    for (auto& [key, e] : shard.entries) e.bucket = TokenBucket(limits.connect_rate, limits.connect_burst);
  }
  // Entries of connections admitted under the old limits stay, so their Release still finds them; when the
  // new limits are off, Admit stops tracking and those entries go once their connections close and a Sweep
  // passes.
  limited_.store(LimitsOn(limits), std::memory_order_relaxed);
}

AddressLimiter::Stats AddressLimiter::stats() const {
  Stats s;
  s.admitted = admitted_.load(std::memory_order_relaxed);
  s.refused_connections = refused_connections_.load(std::memory_order_relaxed);
  s.refused_rate = refused_rate_.load(std::memory_order_relaxed);
  s.untracked = untracked_.load(std::memory_order_relaxed);
  s.tracked = tracked_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace parley::broker::guard
