// Bounded sharded tables (AddressLimiter, FlapDetector): what to do when a new key finds its shard full.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>

#include "base/clock.h"

namespace parley::broker::guard {

// The shard count for a requested one: a power of two (hash & mask picks the shard), 1..1024.
inline size_t ShardCount(size_t requested) { return std::bit_ceil(std::clamp<size_t>(requested, 1, 1024)); }
// Entries one shard may hold so that `shards` of them hold about `max_tracked` (at least 1 each).
inline size_t PerShardCap(size_t max_tracked, size_t shards) {
  return std::max<size_t>(1, (max_tracked + shards - 1) / shards);
}

// A full shard is swept on the spot — at most once a second, so a flood of new keys does not turn every
// lookup into a scan — with `sweep(shard, now)` returning how many idle entries it dropped (subtracted from
// `tracked`). True when the shard has room for one more entry afterwards; false: the caller leaves the new
// key untracked (admitted, never refused). The shard's mutex must be held; it needs `entries`, `swept_once`
// and `last_full_sweep`.
template <typename Shard, typename Sweep>
bool MakeRoom(Shard& shard, size_t cap, SteadyTime now, std::atomic<size_t>& tracked, Sweep&& sweep) {
  constexpr auto kFullSweepInterval = std::chrono::seconds(1);
  if (shard.entries.size() >= cap && (!shard.swept_once || now - shard.last_full_sweep >= kFullSweepInterval)) {
    shard.swept_once = true;
    shard.last_full_sweep = now;
    tracked.fetch_sub(sweep(shard, now), std::memory_order_relaxed);
  }
  return shard.entries.size() < cap;
}

}  // namespace parley::broker::guard
