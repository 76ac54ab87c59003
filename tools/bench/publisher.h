// A publishing client: sends numbered messages to one topic, keeping at most `window` QoS 1/2 messages
// unacknowledged, either as fast as acknowledgements return or paced (--rate). QoS 0 has no acks, so
// unpaced QoS 0 keeps at most `window` messages sent but not yet received by every subscriber of the
// topic — for a shared subscription, by some member of the group — (an end-to-end window; without one the
// broker's queues, not its throughput, would be measured). Records ack latency (from
// writing PUBLISH to reading PUBACK / PUBCOMP) into its worker's histogram and which sequence numbers
// were acknowledged. Loop thread only, except the *_mon monitors.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/bench/conn.h"
#include "tools/bench/seq_set.h"

namespace parley::bench {

class Publisher final : public Conn {
 public:
  // `quota`: messages to send in all (0 = until the run stops). `phase_offset` in [0, 1): where in each
  // pacing interval this publisher sends, so paced publishers do not all fire in the same millisecond.
  Publisher(Worker* w, uint32_t id, std::string client_id, std::string topic, uint64_t quota, double phase_offset);

  void Begin();                  // kPublish: start sending
  void Stop();                   // kDrain: no new messages; outstanding ones are still acknowledged
  void Pace(uint64_t now_ns);    // paced mode, every millisecond: send what is due
  void Pump();                   // QoS 0 unpaced: the next batch, once the socket took the last one

  uint32_t id() const { return id_; }
  // Coordinator thread, before the worker starts: the live counts of messages received from this publisher
  // by one receiver — a subscriber, or the members of a shared subscription group, whose counts add up —
  // for the QoS 0 end-to-end window (a message has arrived once every receiver has it). The counters
  // outlive this publisher's use of them.
  void Watch(std::vector<const std::atomic<uint64_t>*> receiver) { watched_.push_back(std::move(receiver)); }

  // Monitors for the coordinator thread (any thread, relaxed).
  std::atomic<uint64_t> acked_mon{0};
  std::atomic<uint64_t> outstanding_mon{0};

  // Results: read after the worker thread ended.
  uint64_t sent() const { return sent_; }
  uint64_t acked() const { return acked_; }
  uint64_t rejected() const { return rejected_; }
  uint64_t unknown_acks() const { return unknown_acks_; }
  uint64_t outstanding() const { return inflight_.size(); }
  uint64_t last_ack_ns() const { return last_ack_ns_; }
  uint8_t last_reject_code() const { return last_reject_code_; }
  uint64_t stalls() const { return stalls_; }
  uint32_t window() const { return window_; }
  const SeqSet& acked_set() const { return acked_set_; }

 private:
  struct Inflight {
    uint64_t seq;
    uint64_t sent_ns;
    bool released;  // QoS 2: PUBREC seen, PUBREL sent
  };

  void PrepareConnect(mqtt::Connect* c) override;
  void OnConnack(const mqtt::Connack& ack) override;
  void OnPacket(mqtt::Packet& p) override;

  static constexpr uint64_t kStallNs = 1'000'000'000;
  void TrySend(uint64_t now_ns);
  // QoS 0 unpaced: how many more messages the end-to-end window allows now.
  uint64_t E2eCredit(uint64_t now_ns);
  void SendOne();
  void Complete(const Inflight& m, uint64_t now_ns);
  uint16_t NextPacketId();

  uint32_t id_;
  std::string topic_;
  uint64_t quota_;
  double phase_offset_;
  uint8_t qos_;
  uint32_t window_ = 1;
  bool paced_ = false;
  bool sending_ = false;
  uint64_t start_ns_ = 0;
  std::string payload_;
  uint16_t next_id_ = 0;
  std::unordered_map<uint16_t, Inflight> inflight_;
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  uint64_t rejected_ = 0;
  uint64_t unknown_acks_ = 0;
  uint64_t last_ack_ns_ = 0;
  uint8_t last_reject_code_ = 0;
  SeqSet acked_set_;
  // QoS 0 end-to-end window.
  std::vector<std::vector<const std::atomic<uint64_t>*>> watched_;
  uint64_t forgiven_ = 0;        // messages written off after a stall (QoS 0 may be dropped)
  uint64_t last_progress_ns_ = 0;
  uint64_t last_min_ = 0;
  uint64_t stalls_ = 0;
};

}  // namespace parley::bench
