// Broker counters. One Counters block per worker thread, written by that thread (relaxed atomics,
// one cache line each so workers never share one); readers sum the blocks.
#pragma once

#include <atomic>
#include <cstdint>

#include "broker/core/session.h"

namespace parley::broker {

struct alignas(64) Counters {
  std::atomic<uint64_t> messages_received{0};  // PUBLISH packets from clients
  std::atomic<uint64_t> messages_sent{0};      // PUBLISH packets to clients
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> dropped[static_cast<int>(DropCause::kCount)] = {};

  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

struct StatsSnapshot {
  uint64_t messages_received = 0, messages_sent = 0, bytes_received = 0, bytes_sent = 0;
  uint64_t connects = 0, disconnects = 0, protocol_errors = 0;
  uint64_t dropped[static_cast<int>(DropCause::kCount)] = {};
  uint64_t dropped_total = 0;
  uint64_t clients_connected = 0, sessions = 0, subscriptions = 0, retained = 0;
};

}  // namespace parley::broker
