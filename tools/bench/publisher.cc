#include "tools/bench/publisher.h"

#include <algorithm>
#include <cmath>
#include <variant>

#include "tools/bench/control.h"
#include "tools/bench/payload.h"
#include "tools/bench/reasons.h"
#include "tools/bench/worker.h"

namespace parley::bench {

Publisher::Publisher(Worker* w, uint32_t id, std::string client_id, std::string topic, uint64_t quota,
                     double phase_offset)
    : Conn(w, std::move(client_id)),
      id_(id),
      topic_(std::move(topic)),
      quota_(quota),
      phase_offset_(phase_offset),
      qos_(w->config().qos),
      paced_(w->config().rate_per_publisher > 0),
      payload_(w->config().payload, 'x') {}

void Publisher::PrepareConnect(mqtt::Connect* c) { c->clean_start = true; }

void Publisher::OnConnack(const mqtt::Connack&) {
  if (qos_ > server_max_qos_) {
    Fail("the broker accepts QoS " + std::to_string(server_max_qos_) + " at most (CONNACK Maximum QoS)");
    return;
  }
  // A v5 broker's Receive Maximum caps how many QoS 1/2 messages we may have unacknowledged.
  window_ = std::max<uint32_t>(1, std::min<uint32_t>(config().window, server_receive_max_));
  inflight_.reserve(window_ * 2);
  HandshakeDone();
}

void Publisher::Begin() {
  if (!open()) return;
  sending_ = true;
  start_ns_ = worker_->control().start_ns();
  TrySend(uv_hrtime());
  Flush();
}

void Publisher::Stop() { sending_ = false; }

void Publisher::Pace(uint64_t now_ns) {
  TrySend(now_ns);
  Flush();
}

void Publisher::Pump() {
  if (!sending_ || write_pending() || buffered() > 0) return;
  TrySend(uv_hrtime());
  Flush();
}

void Publisher::TrySend(uint64_t now_ns) {
  if (!sending_ || !open()) return;
  uint64_t limit = UINT64_MAX;
  if (paced_) {
    // Message k is due at (k + phase_offset) / rate after the start.
    double due = static_cast<double>(now_ns - start_ns_) / 1e9 * config().rate_per_publisher - phase_offset_;
    limit = due < 0 ? 0 : static_cast<uint64_t>(std::floor(due)) + 1;
  } else if (qos_ == 0) {
    limit = sent_ + E2eCredit(now_ns);
  }
  if (quota_ > 0) limit = std::min(limit, quota_);
  while (sent_ < limit && (qos_ == 0 || inflight_.size() < window_) && open()) SendOne();
}

uint64_t Publisher::E2eCredit(uint64_t now_ns) {
  if (watched_.empty()) return window_;
  uint64_t min = UINT64_MAX;
  for (const auto& receiver : watched_) {
    uint64_t got = 0;  // a group's members each count what they received; one copy each, normally
    for (const auto* c : receiver) got += c->load(std::memory_order_relaxed);
    min = std::min(min, got);
  }
  if (min != last_min_ || last_progress_ns_ == 0) {
    last_min_ = min;
    last_progress_ns_ = now_ns;
  }
  uint64_t done = min + forgiven_;
  uint64_t outstanding = sent_ > done ? sent_ - done : 0;
  if (outstanding >= window_ && now_ns - last_progress_ns_ > kStallNs) {
    // Nothing arrived for a while: QoS 0 messages may be dropped, so write the window off (they show up
    // as lost) rather than stop publishing for the rest of the run.
    forgiven_ += outstanding;
    ++stalls_;
    last_progress_ns_ = now_ns;
    outstanding = 0;
  }
  return outstanding >= window_ ? 0 : window_ - outstanding;
}

uint16_t Publisher::NextPacketId() {
  do {
    next_id_ = next_id_ == 65535 ? 1 : static_cast<uint16_t>(next_id_ + 1);
  } while (inflight_.count(next_id_) != 0);
  return next_id_;
}

void Publisher::SendOne() {
  uint64_t seq = sent_++;
  uint64_t t = uv_hrtime();  // per message: the batch's own start time would inflate later messages' latency
  WritePayloadHeader(PayloadHeader{config().run_id, id_, seq, t}, payload_.data());
  mqtt::PublishOut out;
  out.topic = topic_;
  out.payload = payload_;
  out.qos = qos_;
  if (qos_ > 0) {
    out.packet_id = NextPacketId();
    inflight_.emplace(out.packet_id, Inflight{seq, t, false});
    outstanding_mon.store(inflight_.size(), std::memory_order_relaxed);
  }
  SendPublish(out);
  if (qos_ == 0) {
    // Nothing comes back for QoS 0: a message counts as "acknowledged" once handed to the socket.
    acked_set_.Insert(seq);
    ++acked_;
    last_ack_ns_ = t;
    acked_mon.store(acked_, std::memory_order_relaxed);
  }
  if (quota_ > 0 && sent_ == quota_) worker_->control().publishers_done.fetch_add(1);
}

void Publisher::Complete(const Inflight& m, uint64_t now_ns) {
  worker_->ack_latency_mut().Record(now_ns - m.sent_ns);
  acked_set_.Insert(m.seq);
  ++acked_;
  last_ack_ns_ = now_ns;
  acked_mon.store(acked_, std::memory_order_relaxed);
}

void Publisher::OnPacket(mqtt::Packet& p) {
  auto* ack = std::get_if<mqtt::Ack>(&p);
  if (!ack) return;  // nothing else is expected; a stray PUBLISH is impossible (we subscribe to nothing)
  uint64_t now = uv_hrtime();
  auto it = inflight_.find(ack->packet_id);
  if (it == inflight_.end()) {
    ++unknown_acks_;
    if (ack->type == mqtt::PacketType::kPubrec) {  // still complete the broker's flow
      Send(mqtt::Ack{mqtt::PacketType::kPubrel, ack->packet_id,
                     version_ == mqtt::Version::kV5 ? mqtt::rc::kPacketIdentifierNotFound : uint8_t{0}, {}});
    }
    return;
  }
  bool done = false;
  switch (ack->type) {
    case mqtt::PacketType::kPuback:
      if (ack->reason_code >= 0x80) {
        ++rejected_;
        last_reject_code_ = ack->reason_code;
      } else {
        Complete(it->second, now);
      }
      done = true;
      break;
    case mqtt::PacketType::kPubrec:
      if (ack->reason_code >= 0x80) {
        ++rejected_;
        last_reject_code_ = ack->reason_code;
        done = true;
      } else if (!it->second.released) {
        it->second.released = true;
        Send(mqtt::Ack{mqtt::PacketType::kPubrel, ack->packet_id, 0, {}});
      }
      break;
    case mqtt::PacketType::kPubcomp:
      Complete(it->second, now);
      done = true;
      break;
    default:
      break;
  }
  if (done) {
    inflight_.erase(it);
    outstanding_mon.store(inflight_.size(), std::memory_order_relaxed);
    TrySend(now);
  }
}

}  // namespace parley::bench
