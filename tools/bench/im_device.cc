#include "tools/bench/im_device.h"

#include <algorithm>
#include <charconv>
#include <variant>

#include "im.pb.h"
#include "tools/bench/control.h"
#include "tools/bench/reasons.h"
#include "tools/bench/worker.h"

namespace parley::bench {

namespace v1 = parley::im::v1;

namespace {

constexpr std::string_view kRequestTopic = "$im/v1/req";
constexpr uint64_t kStallNs = 1'000'000'000;
constexpr uint64_t kMaxSyncRequests = 100'000;  // a reader that needs more has found a server bug

// "123" -> 123; false unless the whole string is a decimal number.
bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::string ErrorText(const v1::Error& e) {
  return v1::ErrorCode_Name(e.code()) + (e.message().empty() ? "" : ": " + e.message());
}

}  // namespace

ImDevice::ImDevice(Worker* w, ImShared* shared, ImDevicePlan plan)
    : Conn(w, plan.client_id),
      shared_(shared),
      plan_(std::move(plan)),
      frame_(std::make_unique<v1::ServerFrame>()) {
  topic_ = "$im/v1/d/" + plan_.client_id + "/pb";
  if (plan_.sender >= 0) cmid_prefix_ = shared_->prefix + "-" + std::to_string(plan_.sender) + "-";
  for (uint32_t s : plan_.sources) tracks_.try_emplace(s);
  // The text of a message: "t<send ns>;" then filler up to --payload bytes.
  filler_.assign(config().payload, 'x');
}

ImDevice::~ImDevice() = default;

const std::atomic<uint64_t>* ImDevice::received_count(uint32_t sender) const {
  auto it = tracks_.find(sender);
  return it == tracks_.end() ? nullptr : &it->second.count;
}

const SeqSet* ImDevice::received(uint32_t sender) const {
  auto it = tracks_.find(sender);
  return it == tracks_.end() ? nullptr : &it->second.got;
}

std::string ImDevice::received_conv(uint32_t sender) const {
  auto it = tracks_.find(sender);
  return it == tracks_.end() ? std::string() : it->second.conv;
}

void ImDevice::PrepareConnect(mqtt::Connect* c) {
  c->clean_start = true;  // v5 without Session Expiry, 3.1.1 Clean Session: nothing is left behind
  c->username = plan_.user;
  connect_write_ns_ = uv_hrtime();
}

void ImDevice::OnConnack(const mqtt::Connack&) {
  window_ = std::max<uint32_t>(1, std::min<uint32_t>(config().window, server_receive_max_));
  SubscribeOne(topic_, 1);
}

void ImDevice::OnPacket(mqtt::Packet& p) {
  if (auto* pub = std::get_if<mqtt::Publish>(&p)) {
    if (pub->qos == 1) Send(mqtt::Ack{mqtt::PacketType::kPuback, pub->packet_id, 0, {}});
    if (pub->qos == 2) Send(mqtt::Ack{mqtt::PacketType::kPubrec, pub->packet_id, 0, {}});
    if (syncing_) sync_.payload_bytes += pub->payload.size();
    if (pub->topic == topic_) {
      OnFrame(pub->payload);
    } else {
      ++unexpected_;
    }
    return;
  }
  if (auto* ack = std::get_if<mqtt::Ack>(&p)) {
    if (ack->type == mqtt::PacketType::kPubrel) {
      Send(mqtt::Ack{mqtt::PacketType::kPubcomp, ack->packet_id, 0, {}});
      return;
    }
    if (ack->type != mqtt::PacketType::kPuback) return;
    if (mqtt_inflight_.erase(ack->packet_id) == 0) return;
    if (ack->reason_code >= 0x80) {
      Fail("the broker refused an IM request: PUBACK " + ReasonText(ack->reason_code) +
           (ack->props.reason_string ? " (" + *ack->props.reason_string + ")" : "") +
           " (is the IM layer enabled: [im] enabled = true?)");
      return;
    }
    TrySend(uv_hrtime());
    return;
  }
  if (auto* suback = std::get_if<mqtt::Suback>(&p)) {
    if (subscribed_) return;
    if (suback->packet_id != 1 || suback->reason_codes.size() != 1) {
      Fail("unexpected SUBACK");
      return;
    }
    if (suback->reason_codes[0] >= 0x80) {
      Fail("the broker refused the subscription to " + topic_ + ": SUBACK " +
           ReasonText(suback->reason_codes[0]) + " (is the IM layer enabled: [im] enabled = true?)");
      return;
    }
    subscribed_ = true;
    if (plan_.sync) {
      sync_.connect_ns = uv_hrtime() - connect_write_ns_;
      SetupDone();
      // An app syncs as soon as it is subscribed: the clock starts now.
      syncing_ = true;
      sync_start_ns_ = uv_hrtime();
      sync_bytes0_ = bytes_read();
      SyncStep(0);
      return;
    }
    switch (plan_.setup) {
      case ImDevicePlan::Setup::kOpenDirect: {
        v1::Request req;
        req.mutable_open_direct()->set_peer(plan_.peer);
        Request(req, Kind::kOpenDirect, 0);
        return;
      }
      case ImDevicePlan::Setup::kCreateGroup: {
        v1::Request req;
        v1::CreateGroupReq* g = req.mutable_create_group();
        g->set_name("bench group " + shared_->prefix);
        for (const std::string& m : plan_.members) g->add_members(m);
        g->set_client_msg_id(shared_->prefix + "-group");
        Request(req, Kind::kCreateGroup, 0);
        return;
      }
      case ImDevicePlan::Setup::kNone:
        SetupDone();
        return;
    }
  }
}

void ImDevice::SetupDone() {
  if (setup_done_) return;
  setup_done_ = true;
  HandshakeDone();
}

uint16_t ImDevice::NextPacketId() {
  do {
    next_id_ = next_id_ == 65535 ? 1 : static_cast<uint16_t>(next_id_ + 1);
  } while (mqtt_inflight_.count(next_id_) != 0);
  return next_id_;
}

void ImDevice::Request(v1::Request& req, Kind kind, uint64_t k) {
  const uint64_t id = next_req_++;
  req.set_req_id(std::to_string(id));
  const std::string payload = req.SerializeAsString();
  mqtt::PublishOut out;
  out.topic = kRequestTopic;
  out.payload = payload;
  out.qos = 1;
  out.packet_id = NextPacketId();
  mqtt_inflight_.insert(out.packet_id);
  // Per request: a batch's own start time would inflate the later requests' latency.
  pending_.emplace(id, Pending{kind, k, uv_hrtime()});
  SendPublish(out);
}

void ImDevice::OnFrame(const std::string& payload) {
  v1::ServerFrame& frame = *frame_;
  if (!frame.ParseFromString(payload)) {
    ++unexpected_;
    return;
  }
  if (frame.has_response()) {
    OnResponse(*frame.mutable_response());
  } else if (frame.has_event() && frame.event().has_message() && !plan_.sync) {
    OnMessage(frame.event().message(), uv_hrtime());
  } else {
    ++other_events_;
  }
}

void ImDevice::OnResponse(v1::Response& r) {
  uint64_t id = 0;
  auto it = ParseU64(r.req_id(), &id) ? pending_.find(id) : pending_.end();
  if (it == pending_.end()) {
    ++unexpected_;
    return;
  }
  const Pending p = it->second;
  pending_.erase(it);
  const uint64_t now = uv_hrtime();
  const bool error = r.has_error() && r.error().code() != v1::OK;
  switch (p.kind) {
    case Kind::kOpenDirect:
    case Kind::kCreateGroup: {
      const char* what = p.kind == Kind::kOpenDirect ? "open_direct" : "create_group";
      if (error) return Fail(std::string(what) + " refused: " + ErrorText(r.error()));
      if (!r.has_conversation() || r.conversation().conv_id().empty())
        return Fail(std::string(what) + " answered without a conversation");
      conv_id_ = r.conversation().conv_id();
      if (p.kind == Kind::kCreateGroup) {
        std::lock_guard<std::mutex> lock(shared_->mu);
        shared_->group_conv = conv_id_;
      }
      SetupDone();
      return;
    }
    case Kind::kSend: {
      --pending_sends_;
      pending_mon.store(pending_sends_, std::memory_order_relaxed);
      if (error || !r.has_ack()) {
        ++refused_;
        const std::string code = error ? v1::ErrorCode_Name(r.error().code()) : "NO_ACK";
        ++refusals_[code];
        last_refusal_ = error ? ErrorText(r.error()) : "a send was answered without an Ack";
        // As an app would: nothing more until the server's retry_after_ms has passed (rate limit, overload).
        if (error && r.error().retry_after_ms() > 0) {
          paused_until_ns_ =
              std::max(paused_until_ns_, now + uint64_t{r.error().retry_after_ms()} * 1'000'000);
        }
      } else {
        const v1::Ack& ack = r.ack();
        worker_->ack_latency_mut().Record(now - p.sent_ns);
        if (ack.duplicate()) ++duplicate_acks_;
        acked_set_.Insert(ack.seq());
        ++acked_;
        last_ack_ns_ = now;
        acked_mon.store(acked_, std::memory_order_relaxed);
      }
      answered_mon.store(acked_ + refused_, std::memory_order_relaxed);
      TrySend(now);
      return;
    }
    case Kind::kSync:
    case Kind::kHistory: {
      request_latency_.Record(now - p.sent_ns);
      if (!syncing_) return;
      const char* what = p.kind == Kind::kSync ? "sync" : "history";
      if (error) return SyncFinish(false, std::string(what) + " refused: " + ErrorText(r.error()));
      if (p.kind == Kind::kSync) {
        if (!r.has_sync()) return SyncFinish(false, "a sync answered without a SyncResp");
        const v1::SyncResp& s = r.sync();
        for (const v1::ConvSync& cs : s.convs()) {
          const v1::Conversation& c = cs.conversation();
          bool mine = conv_id_.empty()
                          ? c.type() == v1::CONV_DIRECT && std::find(c.peers().begin(), c.peers().end(),
                                                                     plan_.sync_peer) != c.peers().end()
                          : c.conv_id() == conv_id_;
          if (!mine) continue;
          conv_id_ = c.conv_id();
          for (const v1::Message& m : cs.messages()) Hold(m);
          conv_has_more_ = cs.has_more();
        }
        if (held_count_ >= plan_.sync_expect) return SyncFinish(true, "");
        if (s.has_more()) return SyncStep(s.cursor());
        if (conv_id_.empty())
          return SyncFinish(false, "the sync listed no direct conversation with " + plan_.sync_peer);
        if (!conv_has_more_) {
          return SyncFinish(false, "the sync says nothing older exists, holding " +
                                       std::to_string(held_count_) + " of " +
                                       std::to_string(plan_.sync_expect) + " messages");
        }
        return HistoryStep();
      }
      if (!r.has_messages()) return SyncFinish(false, "a history request answered without Messages");
      const v1::Messages& ms = r.messages();
      for (const v1::Message& m : ms.messages()) Hold(m);
      if (held_count_ >= plan_.sync_expect) return SyncFinish(true, "");
      if (!ms.has_more() || ms.messages_size() == 0) {
        return SyncFinish(false, "history ended holding " + std::to_string(held_count_) + " of " +
                                     std::to_string(plan_.sync_expect) + " messages");
      }
      return HistoryStep();
    }
  }
}

void ImDevice::OnMessage(const v1::Message& m, uint64_t now) {
  if (m.type() != v1::MSG_TEXT) {
    ++other_events_;  // the conversation's creation, membership changes
    return;
  }
  // client_msg_id: "<prefix>-<sender>-<k>"
  std::string_view cmid = m.client_msg_id();
  const std::string& prefix = shared_->prefix;
  if (cmid.size() <= prefix.size() + 1 || cmid.compare(0, prefix.size(), prefix) != 0 ||
      cmid[prefix.size()] != '-') {
    ++stale_;
    return;
  }
  cmid.remove_prefix(prefix.size() + 1);
  uint64_t sender = 0;
  size_t dash = cmid.find('-');
  if (dash == std::string_view::npos || !ParseU64(cmid.substr(0, dash), &sender)) {
    ++stale_;
    return;
  }
  auto it = tracks_.find(static_cast<uint32_t>(sender));
  if (it == tracks_.end()) {
    ++unexpected_;  // this run, but not a sender this device should hear from
    return;
  }
  Track& t = it->second;
  if (t.conv.empty()) {
    t.conv = m.conv_id();
  } else if (t.conv != m.conv_id()) {
    t.conv = "*";
  }
  if (!t.got.Insert(m.seq())) {
    ++duplicates_;
    return;
  }
  if (m.seq() + 1 < t.next) {
    ++reordered_;
  } else {
    t.next = m.seq() + 1;
  }
  t.count.store(t.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  ++unique_;
  unique_mon.store(unique_, std::memory_order_relaxed);
  last_delivery_ns_ = now;
  // text: "t<send ns>;..."
  std::string_view text = m.text();
  size_t semi = text.find(';');
  uint64_t sent_ns = 0;
  if (text.size() > 1 && text[0] == 't' && semi != std::string_view::npos &&
      ParseU64(text.substr(1, semi - 1), &sent_ns) && now >= sent_ns) {
    worker_->e2e_latency_mut().Record(now - sent_ns);
  }
}

void ImDevice::OnPhase(Phase p) {
  if (plan_.sender < 0) return;
  if (p == Phase::kPublish) {
    if (conv_id_.empty()) {
      std::lock_guard<std::mutex> lock(shared_->mu);
      conv_id_ = shared_->group_conv;
    }
    if (conv_id_.empty()) {
      Fail("no conversation to send to");
      return;
    }
    sending_ = true;
    TrySend(uv_hrtime());
    Flush();
  } else if (p == Phase::kDrain) {
    sending_ = false;
  }
}

void ImDevice::OnTick(uint64_t now_ns) {
  if (!sending_) return;
  TrySend(now_ns);
  Flush();
}

uint64_t ImDevice::E2eCredit(uint64_t now_ns) {
  if (watched_.empty()) return UINT64_MAX;
  uint64_t min = UINT64_MAX;
  for (const auto* c : watched_) min = std::min(min, c->load(std::memory_order_relaxed));
  if (min != last_min_ || last_progress_ns_ == 0) {
    last_min_ = min;
    last_progress_ns_ = now_ns;
  }
  uint64_t done = min + forgiven_;
  uint64_t outstanding = sent_ > done ? sent_ - done : 0;
  if (outstanding >= window_ && now_ns - last_progress_ns_ > kStallNs) {
    // Nothing arrived anywhere for a second: write the window off (the missing messages show as lost)
    // rather than stop sending for the rest of the run.
    forgiven_ += outstanding;
    ++stalls_;
    last_progress_ns_ = now_ns;
    outstanding = 0;
  }
  return outstanding >= window_ ? 0 : window_ - outstanding;
}

void ImDevice::TrySend(uint64_t now_ns) {
  if (!sending_ || !open() || now_ns < paused_until_ns_) return;
  uint64_t credit = E2eCredit(now_ns);
  while (credit > 0 && (plan_.quota == 0 || sent_ < plan_.quota) && pending_sends_ < window_ &&
         mqtt_inflight_.size() < server_receive_max_ && open()) {
    SendOne(now_ns);
    --credit;
  }
}

void ImDevice::SendOne(uint64_t) {
  const uint64_t k = sent_++;
  const uint64_t t = uv_hrtime();
  if (first_send_ns_ == 0) first_send_ns_ = t;
  v1::Request req;
  v1::SendReq* s = req.mutable_send();
  s->set_conv_id(conv_id_);
  s->set_client_msg_id(cmid_prefix_ + std::to_string(k));
  s->set_type(v1::MSG_TEXT);
  std::string text = "t" + std::to_string(t) + ";";
  if (text.size() < filler_.size()) text.append(filler_, 0, filler_.size() - text.size());
  s->set_text(std::move(text));
  Request(req, Kind::kSend, k);
  ++pending_sends_;
  pending_mon.store(pending_sends_, std::memory_order_relaxed);
  if (plan_.quota > 0 && sent_ == plan_.quota) worker_->control().publishers_done.fetch_add(1);
}

void ImDevice::SyncStep(uint64_t cursor) {
  if (sync_.sync_requests + sync_.history_requests >= kMaxSyncRequests)
    return SyncFinish(false, "gave up after " + std::to_string(kMaxSyncRequests) + " requests");
  v1::Request req;
  v1::SyncReq* s = req.mutable_sync();
  s->set_cursor(cursor);
  s->set_messages_per_conv(plan_.page);
  s->set_max_convs(200);
  ++sync_.sync_requests;
  Request(req, Kind::kSync, 0);
}

void ImDevice::HistoryStep() {
  if (sync_.sync_requests + sync_.history_requests >= kMaxSyncRequests)
    return SyncFinish(false, "gave up after " + std::to_string(kMaxSyncRequests) + " requests");
  v1::Request req;
  v1::HistoryReq* h = req.mutable_history();
  h->set_conv_id(conv_id_);
  h->set_before_seq(lowest_seen_ == UINT64_MAX ? 0 : lowest_seen_);
  h->set_limit(plan_.page);
  ++sync_.history_requests;
  Request(req, Kind::kHistory, 0);
}

void ImDevice::Hold(const v1::Message& m) {
  ++sync_.entries;
  if (m.conv_id() != conv_id_) return;
  lowest_seen_ = std::min<uint64_t>(lowest_seen_, m.seq());
  if (m.type() != v1::MSG_TEXT) return;
  std::string_view cmid = m.client_msg_id();
  const std::string& prefix = shared_->prefix;
  if (cmid.size() <= prefix.size() || cmid.compare(0, prefix.size(), prefix) != 0) {
    ++stale_;
    return;
  }
  if (!held_.Insert(m.seq())) {
    ++duplicates_;
    return;
  }
  ++held_count_;
  ++unique_;
  unique_mon.store(unique_, std::memory_order_relaxed);
  last_delivery_ns_ = uv_hrtime();
}

void ImDevice::SyncFinish(bool complete, std::string problem) {
  if (!syncing_) return;
  syncing_ = false;
  sync_.sync_ns = uv_hrtime() - sync_start_ns_;
  sync_.bytes = bytes_read() - sync_bytes0_;
  sync_.complete = complete;
  sync_.problem = std::move(problem);
  synced_mon.store(complete, std::memory_order_relaxed);
  sync_over_mon.store(true, std::memory_order_release);
}

}  // namespace parley::bench
