// A client of the conns scenario: connects with a clean start, optionally subscribes at QoS 1 to its own
// topic (so the broker holds a session and a subscription, like an idle device), then stays idle — keep
// alive only — until the run closes it with DISCONNECT. Failures do not end the run: a handshake that fails
// (connect error, CONNACK or SUBACK refusal, the broker closing, no answer within --connect-timeout) counts
// as refused, a ready connection lost afterwards as dropped, each under a short reason. Records connect
// latency (TCP connect start -> CONNACK) and subscribe latency (SUBSCRIBE -> SUBACK) into its worker's
// histograms. Loop thread only; the results are read after the worker thread ended.
#pragma once

#include <cstdint>
#include <string>

#include "tools/bench/conn.h"

namespace parley::bench {

class IdleConn final : public Conn {
 public:
  // `topic`: subscribed at QoS 1 once connected; empty = no subscription.
  IdleConn(Worker* w, std::string client_id, std::string topic);

  enum class Outcome : uint8_t { kPending, kReady, kRefused };
  Outcome outcome() const { return outcome_; }
  bool dropped() const { return dropped_; }
  // Why it was refused or dropped.
  const std::string& reason() const { return reason_; }
  uint64_t ready_ns() const { return ready_ns_; }  // CONNACK, or SUBACK with a topic
  uint64_t drop_ns() const { return drop_ns_; }
  uint64_t unexpected() const { return unexpected_; }  // PUBLISHes received (nobody should publish here)

 private:
  void PrepareConnect(mqtt::Connect* c) override;
  void OnConnack(const mqtt::Connack& ack) override;
  void OnPacket(mqtt::Packet& p) override;
  bool Tolerate(const std::string& key) override;
  void Ready(uint64_t now_ns);

  std::string topic_;
  Outcome outcome_ = Outcome::kPending;
  bool dropped_ = false;
  std::string reason_;
  uint64_t subscribe_ns_ = 0;
  uint64_t ready_ns_ = 0;
  uint64_t drop_ns_ = 0;
  uint64_t unexpected_ = 0;
};

}  // namespace parley::bench
