// FlapDetector: notices a client id that connects over and over (a crash loop, two devices fighting over one
// client id, a script reconnecting without a pause) and bans that client id for a while.
//
// Rule: the (N+1)th connect within any window of length W — i.e. more than N connects in W — bans the client
// id for B from that moment. The connect that trips the rule is refused; so is every connect during the ban
// (and those are not counted, so retrying does not lengthen the ban). When the ban ends the count starts
// from zero. Exact: the times of the last N connects are kept per client id (8 bytes each).
//
// Call OnConnect after authentication has succeeded and before the session is taken over: counting
// unauthenticated attempts would let anyone get a known client id banned. Empty (server-assigned) client
// ids are not tracked.
//
// Thread-safe and sharded by client id hash, a mutex per shard. Memory is bounded: at most max_tracked
// client ids (split over the shards); quiet entries (no ban, no connect within W) are dropped by Sweep(now)
// and, when a shard is full, on the spot (at most once a second per shard). When a shard is full of live
// entries a new client id is not tracked (never refused) and stats().untracked counts it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/clock.h"

namespace parley::broker::guard {

class FlapDetector {
 public:
  static constexpr uint32_t kMaxConnectsLimit = 1'000;  // memory per entry is 8 bytes x max_connects

  struct Options {
    uint32_t max_connects = 10;    // N (clamped to kMaxConnectsLimit); 0 disables detection
    Millis window{60'000};         // W
    Millis ban_duration{300'000};  // B
    size_t max_tracked = 100'000;
    size_t shards = 16;  // rounded up to a power of two, at least 1
  };
  struct Stats {
    uint64_t connects = 0;   // OnConnect calls counted
    uint64_t bans = 0;       // bans started
    uint64_t refused = 0;    // connects refused: the ones that started a ban and those during a ban
    uint64_t untracked = 0;  // connects not tracked because the table was full
    size_t tracked = 0;      // client ids tracked now
  };

  explicit FlapDetector(Options options);
  ~FlapDetector();
  FlapDetector(const FlapDetector&) = delete;
  FlapDetector& operator=(const FlapDetector&) = delete;

  // Records a connect by `client_id` at `now`. Returns nullopt to let it proceed, or the time the client
  // id's ban ends (steady clock) to refuse it — for MQTT 5 with reason code 0x9F (connection rate exceeded),
  // and for the log line. Any thread.
  std::optional<SteadyTime> OnConnect(std::string_view client_id, SteadyTime now);
  // The end of the client id's ban if it is banned at `now`; records nothing. Any thread.
  std::optional<SteadyTime> BannedUntil(std::string_view client_id, SteadyTime now) const;
  // Forgets the client id: lifts its ban and clears its count (an operator's "unban"). True if it was
  // tracked. Any thread.
  bool Forgive(std::string_view client_id);

  // Drops quiet entries; returns how many. Call on a timer (every few seconds). Any thread.
  size_t Sweep(SteadyTime now);

  Stats stats() const;  // any thread; fields read one by one

 private:
  struct Entry {
    std::unique_ptr<SteadyTime[]> times;  // ring of the last `count` connect times, oldest at `head`
    uint32_t head = 0;
    uint32_t count = 0;
    SteadyTime banned_until{};  // banned while now < banned_until
    bool banned = false;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> entries;  // guarded by mu
    SteadyTime last_full_sweep{};                                                 // guarded by mu
    bool swept_once = false;                                                      // guarded by mu
  };

  Shard& ShardOf(std::string_view client_id) const;
  bool Quiet(const Entry& e, SteadyTime now) const;
  size_t SweepShard(Shard& shard, SteadyTime now) const;  // shard.mu held

  const uint32_t max_connects_;
  const SteadyTime::duration window_;
  const SteadyTime::duration ban_duration_;
  const size_t shard_mask_;
  const size_t per_shard_cap_;
  std::unique_ptr<Shard[]> shards_;

  std::atomic<uint64_t> connects_{0}, bans_{0}, refused_{0}, untracked_{0};
  std::atomic<size_t> tracked_{0};
};

}  // namespace parley::broker::guard
