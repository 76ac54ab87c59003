// Broker counters. One Counters block per worker thread, written by that thread (relaxed atomics; the block
// is cache-line aligned so workers never share a line); readers sum the blocks (Broker::Stats,
// Broker::CollectMetrics).
#pragma once

#include <atomic>
#include <cstdint>

#include "broker/core/reasons.h"
#include "broker/core/session.h"

namespace parley::broker {

// Listeners told apart by the per-listener counters; a listener at index >= kMaxListeners counts in the last
// slot (Transport::ListenerInfo::index).
inline constexpr int kMaxListeners = 16;
// MQTT versions told apart by the connection gauge: 3.1.1, 5.0 (3.1 is not spoken).
inline constexpr int kVersionSlots = 2;

struct alignas(64) Counters {
  std::atomic<uint64_t> messages_received[3] = {};  // PUBLISH packets from clients, by QoS
  std::atomic<uint64_t> messages_sent[3] = {};      // PUBLISH packets to clients, by QoS
  std::atomic<uint64_t> bytes_received{0};          // MQTT bytes (after TLS / WebSocket)
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> dropped[static_cast<int>(DropCause::kCount)] = {};
  std::atomic<uint64_t> disconnect_reasons[static_cast<int>(DisconnectCause::kCount)] = {};
  std::atomic<uint64_t> refusals[static_cast<int>(RefusalCause::kCount)] = {};
  std::atomic<uint64_t> listener_connects[kMaxListeners] = {};  // CONNACK successes by listener index
  // Connections between CONNACK and close, by listener index and version slot. Incremented and decremented
  // by the same worker (a connection lives on one); only the sum over workers is meaningful.
  std::atomic<int64_t> connections[kMaxListeners][kVersionSlots] = {};

  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  void Refused(RefusalCause r) { Add(refusals[static_cast<int>(r)]); }
};

struct StatsSnapshot {
  uint64_t messages_received = 0, messages_sent = 0, bytes_received = 0, bytes_sent = 0;
  uint64_t connects = 0, disconnects = 0, protocol_errors = 0;
  uint64_t dropped[static_cast<int>(DropCause::kCount)] = {};
  uint64_t dropped_total = 0;
  uint64_t clients_connected = 0, sessions = 0, subscriptions = 0, retained = 0;
};

}  // namespace parley::broker
