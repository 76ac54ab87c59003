#include "broker/core/session.h"

#include <algorithm>

namespace parley::broker {

EnqueueResult Session::EnqueueLocked(Delivery d, uint32_t max_messages, uint64_t max_bytes,
                                     bool queue_qos0_offline) {
  EnqueueResult r;
  if (ended_) return r;
  if (!link_ && d.qos == 0 && !queue_qos0_offline) {
    r.cause = DropCause::kQoS0Offline;
    return r;
  }
  const uint64_t bytes = d.msg->Footprint();
  auto over = [&] {
    return (max_messages && queue_.size() >= max_messages) || (max_bytes && queued_bytes_ + bytes > max_bytes);
  };
  if (over()) {
    // Policy (docs/architecture.md): QoS 0 goes first. A new QoS 0 message is dropped; a new QoS 1/2
    // message evicts the oldest queued QoS 0 messages, as many as it takes to make room (under the byte
    // limit one may not be enough), and is dropped otherwise. Nothing is evicted unless that makes room:
    // evicting without queueing would lose two messages instead of one.
    if (d.qos == 0) return r;
    size_t victims = 0;
    uint64_t freed = 0;
    auto fits = [&] {
      return !(max_messages && queue_.size() - victims >= max_messages) &&
             !(max_bytes && queued_bytes_ - freed + bytes > max_bytes);
    };
    for (size_t i = 0; i < queue_.size() && !fits(); ++i) {
      if (queue_[i].qos != 0) continue;
      ++victims;
      freed += queue_[i].msg->Footprint();
    }
    if (!fits()) return r;
    for (size_t i = 0, left = victims; left > 0;) {
      if (queue_[i].qos != 0) {
        ++i;
        continue;
      }
      queued_bytes_ -= queue_[i].msg->Footprint();
      queue_.erase_at(i);
      --left;
    }
    r.dropped_other = static_cast<uint32_t>(victims);
  }
  queued_bytes_ += bytes;
  d.seq = d.qos ? next_seq_++ : 0;
  queue_.push_back(std::move(d));
  r.queued = true;
  if (link_ && !wake_pending_) {
    wake_pending_ = true;
    r.wake = true;
  }
  return r;
}

Inflight* Session::FindInflightLocked(uint16_t packet_id) {
  for (auto& f : inflight_)
    if (f.packet_id == packet_id) return &f;
  return nullptr;
}

void Session::EraseInflightLocked(uint16_t packet_id) {
  auto it = std::find_if(inflight_.begin(), inflight_.end(),
                         [&](const Inflight& f) { return f.packet_id == packet_id; });
  if (it != inflight_.end()) inflight_.erase(it);
}

}  // namespace parley::broker
