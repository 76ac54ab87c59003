// Client: PUBLISH in both directions, the QoS 1 / 2 acks, the outbound window and topic aliases.
#include <spdlog/spdlog.h>

#include "broker/core/client.h"
#include "broker/core/topic_levels.h"

namespace parley::broker {

using mqtt::PacketType;
using mqtt::Version;
namespace rc = mqtt::rc;

namespace {

// Keeps delivering while less than this is waiting for the kernel; resumes when the buffer drains.
constexpr size_t kOutHighWater = 256 * 1024;

}  // namespace

// A plugin's answer to a PUBLISH it took over: completes the reply's ticket and wakes the connection.
class Client::HookCompletion final : public PublishCompletion {
 public:
  HookCompletion(std::shared_ptr<Ticket> ticket, std::shared_ptr<Waker> waker)
      : ticket_(std::move(ticket)), waker_(std::move(waker)) {}
  void Complete(uint8_t reason) override {
    if (called_.exchange(true, std::memory_order_acq_rel)) return;
    ticket_->reason.store(reason, std::memory_order_relaxed);
    ticket_->state.store(1, std::memory_order_release);
    if (!waker_->pending.exchange(true, std::memory_order_acq_rel)) waker_->link->Wake();
  }

 private:
  std::shared_ptr<Ticket> ticket_;
  std::shared_ptr<Waker> waker_;
  std::atomic<bool> called_{false};
};

void Client::HandlePublish(mqtt::Publish& p) {
  const BrokerOptions& o = broker_.options();
  Counters& counters = broker_.counters(worker_);
  Counters::Add(counters.messages_received[p.qos < 3 ? p.qos : 0]);
  const bool v5 = version_ == Version::kV5;

  if (p.qos > o.max_qos) return Fail(rc::kQoSNotSupported, "QoS not supported");
  if (p.retain && !o.retain_available) return Fail(rc::kRetainNotSupported, "retain not supported");
  if (!p.props.subscription_identifiers.empty())
    return Fail(rc::kProtocolError, "subscription identifier in PUBLISH from client");

  // Topic aliases, client -> broker (MQTT 5 3.3.2.3.4).
  if (p.props.topic_alias) {
    const uint16_t alias = *p.props.topic_alias;
    if (alias == 0 || alias > o.topic_alias_maximum) return Fail(rc::kTopicAliasInvalid, "topic alias out of range");
    std::vector<std::string>& in = aliases().in;
    if (in.size() <= alias) in.resize(alias + 1);
    if (p.topic.empty()) {
      if (in[alias].empty()) return Fail(rc::kProtocolError, "unknown topic alias");
      p.topic = in[alias];
    } else {
      in[alias] = p.topic;
    }
    p.props.topic_alias.reset();
  }
  if (p.topic.empty()) return Fail(rc::kProtocolError, "empty topic");
  if (p.topic.size() > o.max_topic_length || CountLevels(p.topic) > o.max_topic_levels)
    return Fail(rc::kTopicNameInvalid, "topic too long or too deep");

  // Flow control (MQTT 5 4.9): QoS 2 messages awaiting PUBREL count against our Receive Maximum.
  if (p.qos == 2) {
    std::lock_guard lock(session_->mu_);
    if (session_->HasIncomingQos2Locked(p.packet_id)) {
      // A duplicate of a message we already have (MQTT-4.3.3-10): acknowledge again, do not route.
      ReplyAck(PacketType::kPubrec, p.packet_id, rc::kSuccess);
      return;
    }
    if (v5 && session_->incoming_qos2_.size() >= o.receive_maximum)
      return Fail(rc::kReceiveMaximumExceeded, "receive maximum exceeded");
  }

  if (p.qos == 0 && broker_.overloaded()) {
    // Shed first what nobody acknowledges: QoS 0 needs no reply, and dropping it here saves its routing.
    Counters::Add(broker_.counters(worker_).dropped[static_cast<int>(DropCause::kOverload)]);
    return;
  }
  const ClientIdentity who = Identity();
  uint8_t reason = rc::kSuccess;
  if (!broker_.Allowed(who, p.topic, Access::kWrite)) {
    reason = rc::kNotAuthorized;
  } else if (p.props.payload_format_indicator.value_or(0) == 1 && !mqtt::IsValidMqttUtf8(p.payload)) {
    reason = rc::kPayloadFormatInvalid;
  } else if (p.qos == 2) {
    // A persisted publisher's QoS 2 id must be recorded; with the disk full it cannot be.
    std::lock_guard lock(session_->mu_);
    if (!broker_.StoreWritableLocked(*session_)) reason = rc::kQuotaExceeded;
  }

  std::shared_ptr<Ticket> hook_ticket;  // set when a plugin took the message: the ack waits for it
  // A QoS 2 message's deliveries and its packet id go to disk together (Persistence::BeginAtomic).
  Persistence* const store = p.qos == 2 && reason == rc::kSuccess ? broker_.persistence() : nullptr;
  if (store) store->BeginAtomic();
  if (reason == rc::kSuccess) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(p.topic);
    m->payload = std::move(p.payload);
    m->qos = p.qos;
    m->retain = p.retain;
    m->origin_client_id = client_id();
    if (p.props.message_expiry_interval)
      m->expires_at = broker_.clock().Now() + std::chrono::seconds(*p.props.message_expiry_interval);
    if (v5 && HasPassThroughProperties(p.props)) {
      auto props = std::make_unique<mqtt::Properties>();
      props->payload_format_indicator = p.props.payload_format_indicator;
      props->content_type = std::move(p.props.content_type);
      props->response_topic = std::move(p.props.response_topic);
      props->correlation_data = std::move(p.props.correlation_data);
      props->user_properties = std::move(p.props.user_properties);
      m->props = std::move(props);
    }
    // Plugins first (the IM layer takes its own topics); whoever handles it also acknowledges it.
    bool handled = false;
    if (!broker_.hooks().empty()) {
      PublishCompletionPtr done;
      if (p.qos > 0) {
        hook_ticket = std::make_shared<Ticket>();
        done = std::make_shared<HookCompletion>(hook_ticket, waker());
      }
      const MessagePtr msg = m;
      for (Hooks* h : broker_.hooks()) {
        if (h->OnPublish(who, msg, done) == HookResult::kHandled) {
          handled = true;
          break;
        }
      }
      if (!handled) hook_ticket.reset();
    }
    if (!handled) {
      const RouteResult routed = broker_.Publish(std::move(m), worker_);
      if (routed.refused) {
        // Persistent receivers could not take it: the disk is full (the others have it).
        reason = rc::kQuotaExceeded;
      } else if (routed.receivers == 0 && p.qos > 0) {
        reason = rc::kNoMatchingSubscribers;
      }
    }
  } else {
    spdlog::debug("publish from {} refused: 0x{:02x}", client_id(), reason);
  }

  if (p.qos == 2 && reason < 0x80) {
    std::lock_guard lock(session_->mu_);
    session_->AddIncomingQos2Locked(p.packet_id);
    broker_.StoreIncomingQos2Locked(*session_, p.packet_id, true);
  }
  if (store) store->EndAtomic();

  if (p.qos > 0 && reason == rc::kQuotaExceeded && !v5) {
    // 3.1.1 has no way to say "not stored": no ack; the client sends it again after reconnecting.
    return Fail(rc::kQuotaExceeded, "storage refused the write (disk full)");
  }
  // The ack waits until the message is durable for every persisted receiver (Reply).
  if (p.qos == 1) {
    ReplyAck(PacketType::kPuback, p.packet_id, reason, std::move(hook_ticket));
  } else if (p.qos == 2) {
    ReplyAck(PacketType::kPubrec, p.packet_id, reason, std::move(hook_ticket));
  }
}

void Client::HandleAck(const mqtt::Ack& a) {
  switch (a.type) {
    case PacketType::kPubrel: {
      bool known;
      {
        std::lock_guard lock(session_->mu_);
        known = session_->EraseIncomingQos2Locked(a.packet_id);
        if (known) broker_.StoreIncomingQos2Locked(*session_, a.packet_id, false);
      }
      // After the id is gone from disk too: a restart must not take the next message with it for a duplicate.
      ReplyAck(PacketType::kPubcomp, a.packet_id, known ? rc::kSuccess : rc::kPacketIdentifierNotFound);
      return;
    }
    case PacketType::kPuback:
    case PacketType::kPubcomp: {
      const auto want = a.type == PacketType::kPuback ? Inflight::State::kAwaitPuback : Inflight::State::kAwaitPubcomp;
      {
        std::lock_guard lock(session_->mu_);
        if (session_->link_generation_ != generation_) return;
        Inflight* f = session_->FindInflightLocked(a.packet_id);
        if (!f || f->state != want) return;  // unknown or stale id: nothing to complete
        if (f->resend) --session_->inflight_resend_;  // acked from before the resume: fine, done
        broker_.StoreRemoveLocked(*session_, f->delivery);
        session_->EraseInflightLocked(a.packet_id);
      }
      Pump();  // the window has room again
      return;
    }
    case PacketType::kPubrec: {
      bool release = false;
      bool known = false;
      {
        std::lock_guard lock(session_->mu_);
        if (session_->link_generation_ != generation_) return;
        Inflight* f = session_->FindInflightLocked(a.packet_id);
        if (f && f->state == Inflight::State::kAwaitPubrec) {
          known = true;
          if (f->resend) {  // received before the resume: no need to send it again
            f->resend = false;
            --session_->inflight_resend_;
          }
          if (a.reason_code >= 0x80) {
            broker_.StoreRemoveLocked(*session_, f->delivery);
            session_->EraseInflightLocked(a.packet_id);  // the receiver refused it: done
          } else {
            f->state = Inflight::State::kAwaitPubcomp;
            broker_.StoreReleaseLocked(*session_, f->delivery);
            f->delivery.msg.reset();  // only the packet id is needed from here on
            release = true;
          }
        } else if (f && f->state == Inflight::State::kAwaitPubcomp) {
          known = true;
          release = true;  // PUBREL was lost; send it again
        }
      }
      // PUBREL only once "released" is on disk: were it lost in a crash, the message would go out again
      // under the id the receiver has already forgotten, and be delivered twice.
      if (release) {
        ReplyAck(PacketType::kPubrel, a.packet_id, rc::kSuccess);
      } else if (!known) {
        ReplyAck(PacketType::kPubrel, a.packet_id, rc::kPacketIdentifierNotFound);
      } else {
        Pump();
      }
      return;
    }
    default:
      return;
  }
}

bool Client::WritePublish(const Delivery& d, uint16_t packet_id, bool dup) {
  const Message& m = *d.msg;
  mqtt::PublishOut out;
  out.topic = m.topic;
  out.payload = m.payload;
  out.qos = d.qos;
  out.retain = d.retain;
  out.dup = dup;
  out.packet_id = packet_id;
  if (version_ == Version::kV5) {
    out.props = m.props.get();
    if (m.expires_at) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*m.expires_at - broker_.clock().Now());
      out.message_expiry_interval = static_cast<uint32_t>(std::max<int64_t>(1, (left.count() + 999) / 1000));
    }
    out.subscription_ids = d.sub_ids;
    if (client_alias_max_) {
      auto& out_aliases = aliases().out;
      auto it = out_aliases.find(m.topic);
      if (it != out_aliases.end()) {
        out.topic = {};
        out.topic_alias = it->second;
      } else if (out_aliases.size() < client_alias_max_) {
        const auto alias = static_cast<uint16_t>(out_aliases.size() + 1);
        out_aliases.emplace(m.topic, alias);
        out.topic_alias = alias;  // first use: topic and alias together set the mapping
      }
    }
  }
  if (client_max_packet_ && mqtt::PublishSize(out, version_) > client_max_packet_) {
    // MQTT-3.1.2-25: never send a packet larger than the client accepts; the message is discarded.
    if (out.topic_alias && !out.topic.empty()) aliases().out.erase(m.topic);  // never sent: free the alias
    Counters::Add(broker_.counters(worker_).dropped[static_cast<int>(DropCause::kTooLarge)]);
    return false;
  }
  const size_t n = mqtt::EncodePublish(out, version_, &transport_.OutBuffer());
  Counters& c = broker_.counters(worker_);
  Counters::Add(c.messages_sent[d.qos < 3 ? d.qos : 0]);
  Counters::Add(c.bytes_sent, n);
  return true;
}

void Client::Pump() {
  if (state_ != State::kConnected || !session_) return;
  // Re-arm the reply waker on every pump, not only when replies wait: a wake that found nothing to send must
  // not leave the flag set, or the next completed reply would never wake us.
  if (waiting_ && waiting_->waker) waiting_->waker->pending.store(false, std::memory_order_release);
  if (replies_pending()) FlushReplies();
  if (state_ != State::kConnected) return;
  const BrokerOptions& o = broker_.options();
  const size_t window = std::min<size_t>(client_receive_max_, o.max_inflight ? o.max_inflight : 65535);
  const SteadyTime now = broker_.clock().Now();
  Counters& c = broker_.counters(worker_);
  std::lock_guard lock(session_->mu_);
  Session& s = *session_;
  if (s.link_generation_ != generation_ || s.ended_) return;
  s.wake_pending_ = false;
  output_blocked_ = false;
  // Messages held back on resume go first, in order, with DUP and their packet ids (MQTT 5 4.9).
  size_t active = s.inflight_.size() - s.inflight_resend_;
  for (size_t i = 0; s.inflight_resend_ && active < window && i < s.inflight_.size();) {
    Inflight& f = s.inflight_[i];
    if (!f.resend) {
      ++i;
      continue;
    }
    f.resend = false;
    --s.inflight_resend_;
    if (!WritePublish(f.delivery, f.packet_id, true)) {
      broker_.StoreRemoveLocked(s, f.delivery);
      s.inflight_.erase(s.inflight_.begin() + i);
      continue;
    }
    ++active;
    ++i;
  }
  while (!s.queue_.empty()) {
    if (transport_.PendingOutBytes() > kOutHighWater) {
      output_blocked_ = true;  // the transport pumps again when the buffer drains
      return;
    }
    Delivery& d = s.queue_.front();
    const bool expired = d.msg->ExpiredAt(now);
    uint16_t pid = 0;
    if (d.qos > 0 && !expired) {
      if (active >= window) return;
      pid = PacketIdFor(d.seq);
      // The id is still taken by a message 65535 deliveries older that the client has not acknowledged:
      // this one waits for that ack.
      if (s.FindInflightLocked(pid)) return;
    }
    Delivery next = std::move(d);
    s.queue_.pop_front();
    s.queued_bytes_ -= next.msg->Footprint();
    if (expired) {
      broker_.StoreRemoveLocked(s, next);
      Counters::Add(c.dropped[static_cast<int>(DropCause::kExpired)]);
      continue;
    }
    if (!WritePublish(next, pid, next.qos > 0 && next.maybe_sent)) {
      broker_.StoreRemoveLocked(s, next);
      continue;
    }
    if (next.qos) {
      Inflight f;
      f.packet_id = pid;
      f.state = next.qos == 1 ? Inflight::State::kAwaitPuback : Inflight::State::kAwaitPubrec;
      f.delivery = std::move(next);
      s.inflight_.push_back(std::move(f));
      ++active;
    }
  }
}

void Client::ResendInflight() {
  // MQTT-4.4.0-1: on session resume, resend unacknowledged PUBLISH (DUP set) and PUBREL, in order.
  // PUBLISH only up to the new connection's window (MQTT 5 4.9); Pump() sends the rest as acks arrive.
  const BrokerOptions& o = broker_.options();
  const size_t window = std::min<size_t>(client_receive_max_, o.max_inflight ? o.max_inflight : 65535);
  std::lock_guard lock(session_->mu_);
  Session& s = *session_;
  s.inflight_resend_ = 0;
  size_t active = 0;
  for (size_t i = 0; i < s.inflight_.size();) {
    Inflight& f = s.inflight_[i];
    f.resend = false;
    if (f.state == Inflight::State::kAwaitPubcomp) {
      SendAck(PacketType::kPubrel, f.packet_id, rc::kSuccess);
    } else if (active >= window) {
      f.resend = true;
      ++s.inflight_resend_;
    } else if (!WritePublish(f.delivery, f.packet_id, true)) {
      broker_.StoreRemoveLocked(s, f.delivery);
      s.inflight_.erase(s.inflight_.begin() + i);
      continue;
    }
    if (!f.resend) ++active;
    ++i;
  }
}

}  // namespace parley::broker
