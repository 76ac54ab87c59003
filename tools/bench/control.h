// What the coordinating thread and the worker loops of one run share: the settings every client uses and
// the control block through which the coordinator moves the run through its phases.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "broker/codec/constants.h"

namespace parley::bench {

// Read-only once the workers start.
struct RunConfig {
  sockaddr_storage addr{};   // the broker, resolved once by the coordinator
  std::string target;        // "host:port", for messages
  mqtt::Version version = mqtt::Version::kV5;
  uint8_t qos = 1;           // publish QoS, and the QoS subscribers ask for
  uint32_t payload = 64;     // bytes per message, >= kPayloadHeader
  uint32_t window = 16;      // per-publisher outstanding QoS 1/2 messages (QoS 0: messages per write batch)
  double rate_per_publisher = 0;  // messages/s; 0 = as fast as the window allows
  uint16_t keep_alive = 60;  // seconds
  uint32_t run_id = 0;       // stamped in every payload so messages of other runs are told apart
  // --source: local addresses to bind before connecting, used round-robin (empty: the kernel picks).
  std::vector<sockaddr_storage> sources;
  std::vector<std::string> source_names;  // the same, as text, for messages
  // Connecting, per worker loop: handshakes in flight at most, and (if > 0) connections started per second.
  uint32_t max_connecting = 128;
  double connect_rate = 0;
  // > 0: a client that tolerates failures (the conns scenario) gives up a handshake (TCP connect to ready)
  // after this long and counts it as refused ("timeout"); other clients are bounded by the coordinator.
  uint64_t handshake_timeout_ns = 0;
};

// The phases of a run, in order. The coordinator only moves forward; kClose may follow any phase.
enum class Phase : int {
  kSetup = 0,    // connect, clean old sessions, subscribe
  kPublish = 1,  // publishers send
  kDrain = 2,    // publishers stop sending; acks and deliveries still counted
  kClose = 3,    // DISCONNECT and close everything; the worker loops then end
};

// Any thread unless noted.
class Control {
 public:
  Phase phase() const { return static_cast<Phase>(phase_.load(std::memory_order_acquire)); }
  // Coordinator only. Set start_ns before moving to kPublish; workers read it after seeing kPublish.
  void SetPhase(Phase p) { phase_.store(static_cast<int>(p), std::memory_order_release); }
  uint64_t start_ns() const { return start_ns_.load(std::memory_order_acquire); }
  void SetStart(uint64_t ns) { start_ns_.store(ns, std::memory_order_release); }

  // Records a fatal error; the first one wins. Ignored once the run is closing (EOFs are then expected).
  void Fail(const std::string& msg) {
    if (phase() == Phase::kClose) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.load(std::memory_order_relaxed)) error_ = msg;
    failed_.store(true, std::memory_order_release);
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  std::atomic<uint32_t> ready{0};            // clients connected (and subscribed) and waiting for kPublish
  std::atomic<uint32_t> publishers_done{0};  // publishers that sent their whole --count share
  // Clients that tolerate failures (conns): handshakes that failed, and ready clients lost afterwards.
  std::atomic<uint32_t> refused{0};
  std::atomic<uint32_t> dropped{0};
  // Round-robin over RunConfig::sources: each client takes the next index when it first connects.
  std::atomic<uint32_t> next_source{0};

 private:
  std::atomic<int> phase_{0};
  std::atomic<uint64_t> start_ns_{0};
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

}  // namespace parley::bench
