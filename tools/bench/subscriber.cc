#include "tools/bench/subscriber.h"

#include <variant>

#include "tools/bench/control.h"
#include "tools/bench/payload.h"
#include "tools/bench/reasons.h"
#include "tools/bench/worker.h"

namespace parley::bench {

Subscriber::Subscriber(Worker* w, std::string client_id, std::string filter, bool persistent,
                       std::vector<uint32_t> sources)
    : Conn(w, std::move(client_id)),
      filter_(std::move(filter)),
      persistent_(persistent),
      cleaning_(persistent),
      sources_(std::move(sources)) {
  for (uint32_t id : sources_) tracks_.try_emplace(id);
}

const SeqSet* Subscriber::received(uint32_t id) const {
  auto it = tracks_.find(id);
  return it == tracks_.end() ? nullptr : &it->second.got;
}

const std::atomic<uint64_t>* Subscriber::received_count(uint32_t id) const {
  auto it = tracks_.find(id);
  return it == tracks_.end() ? nullptr : &it->second.count;
}

void Subscriber::PrepareConnect(mqtt::Connect* c) {
  if (!persistent_ || cleaning_) {
    c->clean_start = true;  // v5 without Session Expiry: the session ends with the connection
    return;
  }
  c->clean_start = false;
  if (version_ == mqtt::Version::kV5) c->props.session_expiry_interval = 3600;
}

void Subscriber::OnConnack(const mqtt::Connack& ack) {
  if (cleaning_) {
    cleaning_ = false;
    Reconnect();
    return;
  }
  session_present_ = ack.session_present;
  SubscribeOne(filter_, static_cast<uint8_t>(config().qos));
}

void Subscriber::PrepareDisconnect(mqtt::Disconnect* d) {
  // Leave nothing behind on the broker: a v5 session may be ended by the DISCONNECT itself.
  if (persistent_ && version_ == mqtt::Version::kV5) d->props.session_expiry_interval = 0;
}

void Subscriber::OnPacket(mqtt::Packet& p) {
  if (auto* pub = std::get_if<mqtt::Publish>(&p)) {
    Deliver(*pub);
    if (pub->qos == 1) Send(mqtt::Ack{mqtt::PacketType::kPuback, pub->packet_id, 0, {}});
    if (pub->qos == 2) Send(mqtt::Ack{mqtt::PacketType::kPubrec, pub->packet_id, 0, {}});
    return;
  }
  if (auto* ack = std::get_if<mqtt::Ack>(&p)) {
    if (ack->type == mqtt::PacketType::kPubrel) Send(mqtt::Ack{mqtt::PacketType::kPubcomp, ack->packet_id, 0, {}});
    return;
  }
  if (auto* suback = std::get_if<mqtt::Suback>(&p)) {
    if (granted_qos_ >= 0) return;  // we subscribe once
    if (suback->packet_id != 1 || suback->reason_codes.size() != 1) {
      Fail("unexpected SUBACK");
      return;
    }
    uint8_t code = suback->reason_codes[0];
    if (code >= 0x80) {
      Fail("the broker refused the subscription to " + filter_ + ": SUBACK " + ReasonText(code));
      return;
    }
    granted_qos_ = code;
    HandshakeDone();
  }
}

void Subscriber::Deliver(const mqtt::Publish& p) {
  PayloadHeader h;
  if (!ReadPayloadHeader(p.payload, &h) || h.run_id != config().run_id) {
    ++stale_;  // another run's message (e.g. queued in an old session) or someone else's
    return;
  }
  auto it = tracks_.find(h.publisher);
  if (it == tracks_.end()) {
    ++unexpected_;  // this run, but a publisher our subscription should not match
    return;
  }
  uint64_t now = uv_hrtime();
  Track& t = it->second;
  if (!t.got.Insert(h.seq)) {
    ++duplicates_;
    return;
  }
  if (h.seq + 1 < t.next) {
    ++reordered_;
  } else {
    t.next = h.seq + 1;
  }
  t.count.store(t.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  ++unique_;
  unique_mon.store(unique_, std::memory_order_relaxed);
  last_delivery_ns_ = now;
  if (now >= h.sent_ns) worker_->e2e_latency_mut().Record(now - h.sent_ns);
}

}  // namespace parley::bench
