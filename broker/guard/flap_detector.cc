#include "broker/guard/flap_detector.h"

#include <algorithm>
#include <bit>

#include "broker/guard/shard_room.h"

namespace parley::broker::guard {

FlapDetector::FlapDetector(Options options)
    : max_connects_(std::min(options.max_connects, kMaxConnectsLimit)),
      window_(std::max(options.window, Millis(0))),
      ban_duration_(std::max(options.ban_duration, Millis(0))),
      shard_mask_(ShardCount(options.shards) - 1),
      per_shard_cap_(PerShardCap(options.max_tracked, shard_mask_ + 1)),
      shards_(new Shard[shard_mask_ + 1]) {}

FlapDetector::~FlapDetector() = default;

FlapDetector::Shard& FlapDetector::ShardOf(std::string_view client_id) const {
  // Mixed before use: the table inside the shard takes the low bits of the same hash.
  const uint64_t h = std::hash<std::string_view>{}(client_id)*0x9e3779b97f4a7c15ULL;
  return shards_[(h >> 40) & shard_mask_];
}

bool FlapDetector::Quiet(const Entry& e, SteadyTime now) const {
  if (e.banned && now < e.banned_until) return false;
  if (e.count == 0 || e.banned) return true;  // nothing recent, or a ban that has ended
  const SteadyTime newest = e.times[(e.head + e.count - 1) % max_connects_];
  return now - newest >= window_;
}

size_t FlapDetector::SweepShard(Shard& shard, SteadyTime now) const {
  return std::erase_if(shard.entries, [&](const auto& kv) { return Quiet(kv.second, now); });
}

std::optional<SteadyTime> FlapDetector::OnConnect(std::string_view client_id, SteadyTime now) {
  if (max_connects_ == 0 || client_id.empty()) return std::nullopt;
  connects_.fetch_add(1, std::memory_order_relaxed);
  Shard& shard = ShardOf(client_id);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(client_id);
  if (it == shard.entries.end()) {
    if (!MakeRoom(shard, per_shard_cap_, now, tracked_,
                  [this](Shard& s, SteadyTime t) { return SweepShard(s, t); })) {
      untracked_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    it = shard.entries.emplace(std::string(client_id), Entry{}).first;
    it->second.times = std::make_unique<SteadyTime[]>(max_connects_);
    tracked_.fetch_add(1, std::memory_order_relaxed);
  }
  Entry& e = it->second;
  if (e.banned) {
    if (now < e.banned_until) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return e.banned_until;
    }
    e.banned = false;  // served its time: count afresh
    e.count = 0;
    e.head = 0;
  }
  if (e.count == max_connects_) {
    // The ring holds the last N connects; this one is the (N+1)th. Within W of the oldest: flapping.
    if (now - e.times[e.head] < window_) {
      e.banned = true;
      e.banned_until = now + ban_duration_;
      e.count = 0;
      e.head = 0;
      bans_.fetch_add(1, std::memory_order_relaxed);
      refused_.fetch_add(1, std::memory_order_relaxed);
      return e.banned_until;
    }
    e.times[e.head] = now;  // replaces the oldest, which becomes the newest
    e.head = (e.head + 1) % max_connects_;
  } else {
    e.times[(e.head + e.count) % max_connects_] = now;
    ++e.count;
  }
  return std::nullopt;
}

std::optional<SteadyTime> FlapDetector::BannedUntil(std::string_view client_id, SteadyTime now) const {
  if (max_connects_ == 0 || client_id.empty()) return std::nullopt;
  const Shard& shard = ShardOf(client_id);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(client_id);
  if (it == shard.entries.end() || !it->second.banned || now >= it->second.banned_until) return std::nullopt;
  return it->second.banned_until;
}

bool FlapDetector::Forgive(std::string_view client_id) {
  if (max_connects_ == 0 || client_id.empty()) return false;
  Shard& shard = ShardOf(client_id);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(client_id);
  if (it == shard.entries.end()) return false;
  shard.entries.erase(it);
  tracked_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

size_t FlapDetector::Sweep(SteadyTime now) {
  size_t dropped = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    dropped += SweepShard(shards_[i], now);
  }
  tracked_.fetch_sub(dropped, std::memory_order_relaxed);
  return dropped;
}

FlapDetector::Stats FlapDetector::stats() const {
  Stats s;
  s.connects = connects_.load(std::memory_order_relaxed);
  s.bans = bans_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  s.untracked = untracked_.load(std::memory_order_relaxed);
  s.tracked = tracked_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace parley::broker::guard
