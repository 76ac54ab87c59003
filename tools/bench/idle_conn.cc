#include "tools/bench/idle_conn.h"

#include <variant>

#include "tools/bench/control.h"
#include "tools/bench/reasons.h"
#include "tools/bench/worker.h"

namespace parley::bench {

IdleConn::IdleConn(Worker* w, std::string client_id, std::string topic)
    : Conn(w, std::move(client_id)), topic_(std::move(topic)) {}

void IdleConn::PrepareConnect(mqtt::Connect* c) {
  c->clean_start = true;
}

void IdleConn::OnConnack(const mqtt::Connack&) {
  uint64_t now = uv_hrtime();
  worker_->connect_latency_mut().Record(now - connect_start_ns());
  if (topic_.empty()) {
    Ready(now);
    return;
  }
  SubscribeOne(topic_, 1);
  subscribe_ns_ = now;
}

void IdleConn::OnPacket(mqtt::Packet& p) {
  if (auto* suback = std::get_if<mqtt::Suback>(&p)) {
    if (outcome_ != Outcome::kPending || subscribe_ns_ == 0) return;
    if (suback->packet_id != 1 || suback->reason_codes.size() != 1) {
      Lose("unexpected SUBACK", "unexpected SUBACK");
      return;
    }
    uint8_t code = suback->reason_codes[0];
    if (code >= 0x80) {
      std::string key = "SUBACK " + ReasonText(code);
      Lose(key, "the broker refused the subscription to " + topic_ + ": " + key);
      return;
    }
    uint64_t now = uv_hrtime();
    worker_->subscribe_latency_mut().Record(now - subscribe_ns_);
    Ready(now);
    return;
  }
  if (auto* pub = std::get_if<mqtt::Publish>(&p)) {
    ++unexpected_;  // someone else published to our topic; complete the flow and otherwise ignore it
    if (pub->qos == 1) Send(mqtt::Ack{mqtt::PacketType::kPuback, pub->packet_id, 0, {}});
    if (pub->qos == 2) Send(mqtt::Ack{mqtt::PacketType::kPubrec, pub->packet_id, 0, {}});
    return;
  }
  if (auto* ack = std::get_if<mqtt::Ack>(&p)) {
    if (ack->type == mqtt::PacketType::kPubrel)
      Send(mqtt::Ack{mqtt::PacketType::kPubcomp, ack->packet_id, 0, {}});
  }
}

void IdleConn::Ready(uint64_t now_ns) {
  outcome_ = Outcome::kReady;
  ready_ns_ = now_ns;
  HandshakeDone();
}

bool IdleConn::Tolerate(const std::string& key) {
  if (outcome_ == Outcome::kRefused || dropped_) return true;  // counted already
  Control& ctl = worker_->control();
  reason_ = key;
  if (outcome_ == Outcome::kReady) {
    dropped_ = true;
    drop_ns_ = uv_hrtime();
    ctl.dropped.fetch_add(1, std::memory_order_relaxed);
  } else {
    outcome_ = Outcome::kRefused;
    ctl.refused.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

}  // namespace parley::bench
