// A subscribing client: one subscription, every delivery acknowledged (PUBACK, or PUBREC then PUBCOMP),
// and per publisher a bitmap of the sequence numbers received, to count duplicates, reordering and
// (after the run) loss. Records end-to-end latency (payload send time to receipt) into its worker's
// histogram. A persistent subscriber first clears any old session (connect clean, DISCONNECT), then
// connects with Clean Session 0 / Clean Start 0 and Session Expiry 3600. Loop thread only, except
// unique_mon.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/bench/conn.h"
#include "tools/bench/seq_set.h"

namespace parley::bench {

class Subscriber final : public Conn {
 public:
  // `sources`: ids of the publishers whose messages this subscription matches.
  Subscriber(Worker* w, std::string client_id, std::string filter, bool persistent, std::vector<uint32_t> sources);

  const std::vector<uint32_t>& sources() const { return sources_; }

  // Monitor for the coordinator thread (any thread, relaxed): distinct messages received.
  std::atomic<uint64_t> unique_mon{0};

  // Results: read after the worker thread ended.
  uint64_t unique() const { return unique_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }
  uint64_t stale() const { return stale_; }
  uint64_t unexpected() const { return unexpected_; }
  uint64_t last_delivery_ns() const { return last_delivery_ns_; }
  int granted_qos() const { return granted_qos_; }
  bool session_present() const { return session_present_; }
  // Sequence numbers received from publisher `id`; null if it is not a source.
  const SeqSet* received(uint32_t id) const;
  // Distinct messages received from publisher `id` so far, updated live (any thread may read it); null if
  // it is not a source. Stable for the subscriber's lifetime.
  const std::atomic<uint64_t>* received_count(uint32_t id) const;

 private:
  struct Track {
    SeqSet got;
    uint64_t next = 0;               // highest sequence number received + 1
    std::atomic<uint64_t> count{0};  // distinct messages received
  };

  void PrepareConnect(mqtt::Connect* c) override;
  void OnConnack(const mqtt::Connack& ack) override;
  void OnPacket(mqtt::Packet& p) override;
  void PrepareDisconnect(mqtt::Disconnect* d) override;
  void Deliver(const mqtt::Publish& p);

  std::string filter_;
  bool persistent_;
  bool cleaning_;  // persistent: the first connection only clears an old session
  std::vector<uint32_t> sources_;
  std::unordered_map<uint32_t, Track> tracks_;
  uint64_t unique_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t reordered_ = 0;
  uint64_t stale_ = 0;
  uint64_t unexpected_ = 0;
  uint64_t last_delivery_ns_ = 0;
  int granted_qos_ = -1;
  bool session_present_ = false;
};

}  // namespace parley::bench
