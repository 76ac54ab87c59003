// One IM device for the IM scenarios: an MQTT connection whose user name is the IM user and whose client id
// is the device. It subscribes (QoS 1) to its device topic $im/v1/d/{client_id}/pb, sends protobuf Requests
// (im/proto/im.proto, the public wire schema) to $im/v1/req as QoS 1 PUBLISHes, and reads the ServerFrames
// that come back: a Response to each request (matched by req_id) and Events.
//
// What a device does is its plan's business:
// - setup: open a direct conversation or create a group, once subscribed; it is ready when that is answered;
// - send (kPublish): text messages with unique client_msg_ids into its conversation, with at most `window`
//   sends unanswered (and, with an end-to-end window, at most `window` not yet received by every device
//   watching it); records ack latency and the acknowledged seqs;
// - receive: counts this run's text messages by sender, as a set of conversation seqs (duplicates,
//   reordering), and their latency from the sender's write;
// - a refused send (an Error response) is counted, not retried; the sender waits out its retry_after_ms;
// - sync (im-sync's reader): once subscribed, sync from cursor 0 while has_more, then page the conversation
//   with history requests until it holds the whole backlog.
// Loop thread only, except the *_mon monitors and after the worker has been joined.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tools/bench/conn.h"
#include "tools/bench/histogram.h"
#include "tools/bench/seq_set.h"

namespace parley::im::v1 {
class Message;
class Request;
class Response;
class ServerFrame;
}  // namespace parley::im::v1

namespace parley::bench {

// What the devices of one run share, written during setup. Any thread.
struct ImShared {
  std::string prefix;  // of every user name and client_msg_id of this run ("b" + run id in hex)
  std::mutex mu;
  std::string group_conv;  // im-group: set by the owner once the group exists
};

struct ImDevicePlan {
  std::string user;
  std::string client_id;
  enum class Setup { kNone, kOpenDirect, kCreateGroup } setup = Setup::kNone;
  std::string peer;                  // kOpenDirect: the other user
  std::vector<std::string> members;  // kCreateGroup: everyone else
  int32_t sender = -1;               // sender index (>= 0: this device sends during kPublish)
  uint64_t quota = 0;                // messages to send in all; 0 = until the phase ends
  std::vector<uint32_t> sources;     // senders whose messages this device must receive
  bool sync = false;                 // im-sync reader
  std::string sync_peer;             // ... the user whose conversation it syncs
  uint64_t sync_expect = 0;          // ... messages it must end up holding
  uint32_t page = 200;               // ... messages per sync conversation / history page
};

class ImDevice final : public Conn {
 public:
  ImDevice(Worker* w, ImShared* shared, ImDevicePlan plan);
  ~ImDevice() override;

  const ImDevicePlan& plan() const { return plan_; }
  // Coordinator thread, before the worker starts: a receiving device's live count of messages from this
  // sender; the sender then keeps at most `window` messages sent but not received by every watched device.
  void Watch(const std::atomic<uint64_t>* received) { watched_.push_back(received); }
  // Coordinator thread, before the worker starts: the live count of messages received from `sender`; null
  // if it is not a source. Stable for the device's lifetime.
  const std::atomic<uint64_t>* received_count(uint32_t sender) const;

  void OnPhase(Phase p) override;
  void OnTick(uint64_t now_ns) override;

  // Monitors (any thread, relaxed).
  std::atomic<uint64_t> acked_mon{0};
  std::atomic<uint64_t> pending_mon{0};    // sends written, not answered
  std::atomic<uint64_t> answered_mon{0};   // sends answered (acked or refused)
  std::atomic<uint64_t> unique_mon{0};     // distinct messages received
  std::atomic<bool> synced_mon{false};     // im-sync reader: holds everything
  std::atomic<bool> sync_over_mon{false};  // im-sync reader: finished, complete or not

  // Results, after the worker thread ended.
  uint64_t sent() const { return sent_; }
  uint64_t acked() const { return acked_; }
  uint64_t refused() const { return refused_; }
  uint64_t pending() const { return pending_sends_; }
  uint64_t duplicate_acks() const { return duplicate_acks_; }
  uint64_t last_ack_ns() const { return last_ack_ns_; }
  uint64_t first_send_ns() const { return first_send_ns_; }
  uint32_t window() const { return window_; }
  uint64_t stalls() const { return stalls_; }
  const SeqSet& acked_set() const { return acked_set_; }
  const std::string& conv_id() const { return conv_id_; }
  const std::map<std::string, uint64_t>& refusals() const { return refusals_; }
  const std::string& last_refusal() const { return last_refusal_; }

  uint64_t unique() const { return unique_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reordered() const { return reordered_; }
  uint64_t stale() const { return stale_; }
  uint64_t unexpected() const { return unexpected_; }
  uint64_t other_events() const { return other_events_; }
  uint64_t last_delivery_ns() const { return last_delivery_ns_; }
  const SeqSet* received(uint32_t sender) const;
  // The conversation the messages of `sender` arrived in ("" if none arrived); "*" if they came in several.
  std::string received_conv(uint32_t sender) const;

  // im-sync reader.
  struct SyncStats {
    uint64_t connect_ns = 0;  // CONNECT written -> SUBACK
    uint64_t sync_ns = 0;     // first SyncReq written -> done
    uint64_t sync_requests = 0, history_requests = 0;
    uint64_t bytes = 0, payload_bytes = 0, entries = 0;
    bool complete = false;
    std::string problem;  // why it stopped short, if it did
  };
  const SyncStats& sync_stats() const { return sync_; }
  const SeqSet& held() const { return held_; }  // seqs of this run's text messages the reader holds
  const Histogram& request_latency() const { return request_latency_; }

 private:
  enum class Kind : uint8_t { kSend, kOpenDirect, kCreateGroup, kSync, kHistory };
  struct Pending {
    Kind kind;
    uint64_t seq;  // kSend: the message number k
    uint64_t sent_ns;
  };
  struct Track {
    SeqSet got;
    uint64_t next = 0;               // highest seq received + 1
    std::atomic<uint64_t> count{0};  // distinct messages received
    std::string conv;
  };

  void PrepareConnect(mqtt::Connect* c) override;
  void OnConnack(const mqtt::Connack& ack) override;
  void OnPacket(mqtt::Packet& p) override;

  // Writes a Request as a QoS 1 PUBLISH; its answer comes back to OnResponse.
  void Request(im::v1::Request& req, Kind kind, uint64_t k);
  void OnFrame(const std::string& payload);
  void OnResponse(im::v1::Response& r);
  void OnMessage(const im::v1::Message& m, uint64_t now_ns);
  void SetupDone();
  void TrySend(uint64_t now_ns);
  void SendOne(uint64_t now_ns);
  uint64_t E2eCredit(uint64_t now_ns);
  uint16_t NextPacketId();
  // im-sync reader.
  void SyncStep(uint64_t cursor);
  void HistoryStep();
  void Hold(const im::v1::Message& m);
  void SyncFinish(bool complete, std::string problem);

  ImShared* shared_;
  ImDevicePlan plan_;
  std::string topic_;        // own device topic
  std::string cmid_prefix_;  // "<prefix>-<sender>-"
  std::string filler_;
  std::string conv_id_;
  std::unique_ptr<im::v1::ServerFrame> frame_;  // reused: parsing into it keeps its strings' buffers
  uint32_t window_ = 1;
  bool subscribed_ = false;
  bool setup_done_ = false;
  bool sending_ = false;
  uint64_t next_req_ = 1;
  std::unordered_map<uint64_t, Pending> pending_;  // by req_id
  std::unordered_set<uint16_t> mqtt_inflight_;     // packet ids of unacknowledged request PUBLISHes
  uint16_t next_id_ = 1;
  uint64_t connect_write_ns_ = 0;

  // Sending.
  uint64_t sent_ = 0, acked_ = 0, refused_ = 0, pending_sends_ = 0, duplicate_acks_ = 0;
  uint64_t first_send_ns_ = 0, last_ack_ns_ = 0;
  SeqSet acked_set_;
  std::map<std::string, uint64_t> refusals_;
  std::string last_refusal_;
  std::vector<const std::atomic<uint64_t>*> watched_;
  uint64_t forgiven_ = 0, last_min_ = UINT64_MAX, last_progress_ns_ = 0, stalls_ = 0;
  uint64_t paused_until_ns_ = 0;  // a refusal's retry_after_ms

  // Receiving.
  std::unordered_map<uint32_t, Track> tracks_;
  uint64_t unique_ = 0, duplicates_ = 0, reordered_ = 0, stale_ = 0, unexpected_ = 0, other_events_ = 0;
  uint64_t last_delivery_ns_ = 0;

  // Syncing.
  SyncStats sync_;
  bool syncing_ = false;
  uint64_t sync_start_ns_ = 0, sync_bytes0_ = 0, lowest_seen_ = UINT64_MAX;
  bool conv_has_more_ = false;
  SeqSet held_;
  uint64_t held_count_ = 0;
  Histogram request_latency_;
};

}  // namespace parley::bench
