#include "broker/core/broker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "broker/core/retained.h"
#include "broker/core/version.h"

namespace parley::broker {

namespace {

// $SYS topics are regenerated every interval: never worth a disk write.
bool IsSysTopic(std::string_view topic) { return topic.starts_with("$SYS/"); }

}  // namespace

Broker::Broker(BrokerOptions options, const Clock& clock, int workers)
    : options_(std::move(options)),
      clock_(clock),
      started_(clock.Now()),
      counters_(new Counters[std::max(workers, 1)]),
      workers_(std::max(workers, 1)),
      retained_(std::make_unique<MemoryRetainedStore>(options_.max_retained_messages)) {}

Broker::~Broker() = default;

AuthDecision Broker::Authenticate(const ConnectInfo& info, Grant& grant) const {
  for (const Authenticator* a : authenticators_) {
    AuthDecision d = a->Authenticate(info, grant);
    if (d != AuthDecision::kNoOpinion) return d;
  }
  if (!info.username) return options_.allow_anonymous ? AuthDecision::kAllow : AuthDecision::kNotAuthorized;
  // A user name nobody vouches for: accepted only in an open broker with no credential store.
  if (authenticators_.empty() && enhanced_authenticators_.empty() && !certificate_usernames_ &&
      options_.allow_anonymous)
    return AuthDecision::kAllow;
  return AuthDecision::kDeny;
}

AttachResult Broker::AttachSession(const std::string& client_id, bool clean_start, uint32_t expiry_interval,
                                   std::shared_ptr<SessionLink> link, const std::optional<std::string>& username,
                                   const mqtt::Will* will, std::shared_ptr<const Authorizer> credential_acl) {
  AttachResult r;
  if (credential_acl) credential_acls_.store(true, std::memory_order_relaxed);
  SessionPtr ended;
  std::shared_ptr<SessionLink> kicked;
  {
    std::lock_guard reg(registry_mu_);
    auto it = sessions_.find(std::string_view(client_id));
    if (it != sessions_.end()) {
      SessionPtr s = *it;
      std::lock_guard lock(s->mu_);
      kicked = std::move(s->link_);
      // A session with expiry 0 lives only as long as its connection (MQTT 5 3.1.2.11.2; 3.1.1 clean
      // session): taking the connection over ends it, so it is never resumed, whatever the new CONNECT says.
      if (clean_start || s->expiry_interval_ == 0) {
        s->ended_ = true;
        s->online_.store(false, std::memory_order_relaxed);
        // Its rows go now, under the registry lock: the new session of this client id writes the same keys.
        UnpersistLocked(*s);
        ended = s;
        sessions_.erase(it);
      } else {
        s->link_ = link;
        r.generation = ++s->link_generation_;
        s->online_.store(true, std::memory_order_relaxed);
        s->username_ = username;
        s->credential_acl_ = credential_acl;
        s->wake_pending_ = false;
        s->expiry_interval_ = expiry_interval;
        if (s->persisted_ && expiry_interval == 0) {
          UnpersistLocked(*s);  // resumed as a non-persistent session: nothing of it survives a restart now
        } else if (s->persisted_) {
          persistence_->PutSession(client_id, expiry_interval, username, std::nullopt);
          StoreWillLocked(*s, will);  // replaces (or clears) the previous connection's will
        }
        r.session = s;
        r.session_present = true;
      }
    }
    if (!r.session) {
      auto s = std::make_shared<Session>(client_id, next_session_id_++);
      std::lock_guard lock(s->mu_);
      s->link_ = link;
      r.generation = ++s->link_generation_;
      s->online_.store(true, std::memory_order_relaxed);
      s->username_ = username;
      s->credential_acl_ = std::move(credential_acl);
      s->expiry_interval_ = expiry_interval;
      s->persisted_ = persistence_ && expiry_interval > 0;
      if (s->persisted_) {
        persistence_->PutSession(client_id, expiry_interval, username, std::nullopt);
        if (will) persistence_->PutWill(client_id, *will);
      }
      sessions_.insert(s);
      r.session = s;
    }
  }
  if (r.session_present) {
    std::lock_guard lock(timers_mu_);
    pending_wills_.erase(r.session->id());  // resumed before the will delay passed: no will
  }
  if (kicked) kicked->Kick(mqtt::rc::kSessionTakenOver);
  if (ended) {
    // The old session's state goes with it; cleaned up outside the registry lock.
    std::vector<std::string> filters;
    {
      std::lock_guard lock(ended->mu_);
      for (auto& [f, rec] : ended->subscriptions_) filters.push_back(f);
      ended->subscriptions_.clear();
    }
    TearDown(ended, filters);
  }
  return r;
}

void Broker::UnpersistLocked(Session& s) {
  if (!persistence_ || !s.persisted_) return;
  std::vector<MessagePtr> held;
  for (size_t i = 0; i < s.queue_.size(); ++i)
    if (StoredLocked(s, s.queue_[i])) held.push_back(s.queue_[i].msg);
  for (const Inflight& f : s.inflight_)
    if (f.delivery.msg && StoredLocked(s, f.delivery)) held.push_back(f.delivery.msg);
  persistence_->DeleteSession(s.client_id(), held);
  s.persisted_ = false;
}

void Broker::DetachSession(const SessionPtr& s, uint64_t generation) {
  uint32_t expiry = 0;
  {
    std::lock_guard lock(s->mu_);
    if (s->ended_ || s->link_generation_ != generation || !s->link_) return;
    s->link_.reset();
    s->online_.store(false, std::memory_order_relaxed);
    s->wake_pending_ = false;
    expiry = s->expiry_interval_;
    if (s->persisted_ && expiry != 0) persistence_->PutSession(s->client_id(), expiry, s->username_, UnixMillis());
  }
  if (expiry == 0) {
    EndSession(s, generation);
    return;
  }
  if (expiry == 0xFFFFFFFFu) return;  // never expires
  PushTimer(Timer{clock_.Now() + std::chrono::seconds(expiry), s->id(), s, generation, nullptr});
}

void Broker::EndSession(const SessionPtr& s, std::optional<uint64_t> offline_generation) {
  std::vector<std::string> filters;
  {
    // Decided under both locks (registry first), so a connection resuming the session at this very
    // moment either finds it ended and starts afresh, or wins and keeps it.
    std::lock_guard reg(registry_mu_);
    {
      std::lock_guard lock(s->mu_);
      if (s->ended_) return;
      if (offline_generation && (s->link_ || s->link_generation_ != *offline_generation)) return;  // resumed
      s->ended_ = true;
      s->online_.store(false, std::memory_order_relaxed);
      UnpersistLocked(*s);
      for (auto& [f, rec] : s->subscriptions_) filters.push_back(f);
      s->subscriptions_.clear();
    }
    auto it = sessions_.find(std::string_view(s->client_id()));
    if (it != sessions_.end() && it->get() == s.get()) sessions_.erase(it);
  }
  TearDown(s, filters);
}

void Broker::TearDown(const SessionPtr& s, const std::vector<std::string>& filters) {
  for (auto& f : filters) tree_.Unsubscribe(s.get(), f);
  RerouteShared(s, nullptr, 0);
  MessagePtr will;
  {
    std::lock_guard lock(timers_mu_);
    auto w = pending_wills_.find(s->id());
    if (w != pending_wills_.end()) {
      will = std::move(w->second);
      pending_wills_.erase(w);
    }
  }
  if (will) Publish(will, 0);  // MQTT 5 3.1.3.2.2: the will goes out when the session ends, at the latest
  // Free what it held.
  std::lock_guard lock(s->mu_);
  s->queue_.clear();
  s->queued_bytes_ = 0;
  s->inflight_.clear();
  s->incoming_qos2_.clear();
}

void Broker::ScheduleWill(const SessionPtr& session, MessagePtr will, uint32_t delay_seconds) {
  if (delay_seconds == 0) {
    Publish(will, 0);
    std::lock_guard lock(session->mu_);
    StoreWillLocked(*session, nullptr);  // out: a restart must not publish it again
    return;
  }
  {
    std::lock_guard lock(timers_mu_);
    pending_wills_[session->id()] = will;
  }
  PushTimer(Timer{clock_.Now() + std::chrono::seconds(delay_seconds), session->id(), session, 0, will});
}

void Broker::PushTimer(Timer t) {
  std::lock_guard lock(timers_mu_);
  timers_.push_back(std::move(t));
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
}

RouteResult Broker::Publish(const MessagePtr& msg, int worker) {
  size_t not_retained = 0;
  if (msg->retain && options_.retain_available) {
    if (persistence_ && !IsSysTopic(msg->topic)) {
      if (!persistence_->Writable()) {
        // The retained message cannot be stored: it is not retained (not in memory either, which would
        // vanish at a restart), the publisher hears 0x97, and the message is still routed.
        not_retained = 1;
      } else {
        std::lock_guard lock(retained_mu_);
        if (retained_->Set(msg)) persistence_->PutRetained(msg);
      }
    } else {
      retained_->Set(msg);
    }
  }
  RouteResult r = Route(msg, worker);
  r.refused += not_retained;
  return r;
}

RouteResult Broker::Route(const MessagePtr& msg, int worker) {
  thread_local std::vector<Match> matches;
  matches.clear();
  tree_.Collect(msg->topic, msg->origin_client_id, &matches);
  RouteResult result;
  for (Match& m : matches) {
    if (authorizer_ || credential_acls_.load(std::memory_order_relaxed)) {
      // username_ and credential_acl_ are guarded by the session lock: a reconnect (AttachSession) rewrites
      // them on another thread. Copy them out rather than call the authorizer with the lock held.
      std::optional<std::string> user;
      std::shared_ptr<const Authorizer> acl;
      {
        std::lock_guard lock(m.session->mu_);
        user = m.session->username_;
        acl = m.session->credential_acl_;
      }
      ClientIdentity who{m.session->client_id(), user ? std::optional<std::string_view>(*user) : std::nullopt,
                         acl.get()};
      if (!Allowed(who, msg->topic, Access::kRead)) continue;  // plugins first: they own their topics
    }
    Delivery d;
    d.msg = msg;
    d.qos = std::min(msg->qos, m.qos);
    d.retain = m.retain_as_published && msg->retain;
    d.sub_ids = std::move(m.sub_ids);
    d.shared_group = std::move(m.shared_group);
    if (Deliver(m.session, std::move(d), worker) == DeliverOutcome::kRefused) {
      ++result.refused;
    } else {
      ++result.receivers;
    }
  }
  matches.clear();
  return result;
}

DeliverOutcome Broker::Deliver(const SessionPtr& s, Delivery d, int worker) {
  EnqueueResult r;
  std::shared_ptr<SessionLink> link;
  Counters& c = counters_[worker];
  {
    std::lock_guard lock(s->mu_);
    const bool store = StoredLocked(*s, d) && !s->ended_;
    if (store && !persistence_->Writable()) {
      Counters::Add(c.dropped[static_cast<int>(DropCause::kStorage)]);
      return DeliverOutcome::kRefused;
    }
    r = s->EnqueueLocked(std::move(d), options_.max_queued_messages, options_.max_queued_bytes,
                         options_.queue_qos0_offline);
    if (r.queued && store) {
      const Delivery& q = s->queue_.back();
      persistence_->AddDelivery(s->client_id(), q.seq, q.msg, q.qos, q.retain, q.sub_ids,
                                q.shared_group ? std::string_view(*q.shared_group) : std::string_view());
    }
    if (r.wake) link = s->link_;
  }
  if (!r.queued) Counters::Add(c.dropped[static_cast<int>(r.cause)]);
  if (r.dropped_other) Counters::Add(c.dropped[static_cast<int>(DropCause::kQueueFull)], r.dropped_other);
  if (link) link->Wake();
  return r.queued ? DeliverOutcome::kQueued : DeliverOutcome::kDropped;
}

void Broker::RerouteShared(const SessionPtr& s, const std::string* only_group, int worker) {
  std::vector<Delivery> moved;
  {
    std::lock_guard lock(s->mu_);
    auto takes = [&](const Delivery& d) { return d.shared_group && (!only_group || *d.shared_group == *only_group); };
    for (size_t i = 0; i < s->queue_.size();) {
      if (takes(s->queue_[i])) {
        s->queued_bytes_ -= s->queue_[i].msg->Footprint();
        StoreRemoveLocked(*s, s->queue_[i]);
        moved.push_back(std::move(s->queue_[i]));
        s->queue_.erase_at(i);
      } else {
        ++i;
      }
    }
    // Unacknowledged QoS 1 / unreceived QoS 2 (PUBREC not yet seen) in-flight messages of an ended
    // session would never complete: hand them on too. After PUBREC the receiver owns the message.
    if (s->ended_) {
      for (size_t i = 0; i < s->inflight_.size();) {
        auto& f = s->inflight_[i];
        if (f.state != Inflight::State::kAwaitPubcomp && takes(f.delivery)) {
          StoreRemoveLocked(*s, f.delivery);
          moved.push_back(std::move(f.delivery));
          s->inflight_.erase(s->inflight_.begin() + i);
        } else {
          ++i;
        }
      }
    }
  }
  for (Delivery& d : moved) {
    SessionPtr next = tree_.PickSharedMember(*d.shared_group, s.get());
    if (!next) {
      Counters::Add(counters_[worker].dropped[static_cast<int>(DropCause::kQueueFull)]);
      continue;
    }
    d.retain = false;
    d.maybe_sent = false;  // new to the member that takes it
    Deliver(next, std::move(d), worker);
  }
}

void Broker::Tick(int worker) {
  const SteadyTime now = clock_.Now();
  for (;;) {
    Timer t;
    {
      std::lock_guard lock(timers_mu_);
      if (timers_.empty() || timers_.front().when > now) break;
      std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
      t = std::move(timers_.back());
      timers_.pop_back();
      if (t.will) {
        auto w = pending_wills_.find(t.session_id);
        if (w == pending_wills_.end() || w->second != t.will) continue;  // cancelled or replaced
        pending_wills_.erase(w);
      }
    }
    if (t.will) {
      Publish(t.will, worker);
      if (SessionPtr s = t.session.lock()) {
        std::lock_guard lock(s->mu_);
        // Out: a restart must not publish it again. (A client that resumed meanwhile owns the row now.)
        if (!s->link_) StoreWillLocked(*s, nullptr);
      }
      continue;
    }
    if (SessionPtr s = t.session.lock()) EndSession(s, t.generation);  // no-op if resumed meanwhile
  }
  if (persistence_) persistence_->Maintain();
  for (Hooks* h : hooks_) h->OnTick();
  if (options_.sys_enabled && now >= next_sys_) {
    next_sys_ = now + options_.sys_interval;
    PublishSys(worker);
  }
}

StatsSnapshot Broker::Stats() const {
  StatsSnapshot s;
  for (int i = 0; i < workers_; ++i) {
    const Counters& c = counters_[i];
    for (int q = 0; q < 3; ++q) {
      s.messages_received += c.messages_received[q].load(std::memory_order_relaxed);
      s.messages_sent += c.messages_sent[q].load(std::memory_order_relaxed);
    }
    s.bytes_received += c.bytes_received.load(std::memory_order_relaxed);
    s.bytes_sent += c.bytes_sent.load(std::memory_order_relaxed);
    s.connects += c.connects.load(std::memory_order_relaxed);
    s.disconnects += c.disconnects.load(std::memory_order_relaxed);
    s.protocol_errors += c.protocol_errors.load(std::memory_order_relaxed);
    for (int k = 0; k < static_cast<int>(DropCause::kCount); ++k) {
      uint64_t v = c.dropped[k].load(std::memory_order_relaxed);
      s.dropped[k] += v;
      s.dropped_total += v;
    }
  }
  s.clients_connected = static_cast<uint64_t>(std::max<int64_t>(0, clients_connected.load()));
  s.sessions = SessionCount();
  s.subscriptions = tree_.SubscriptionCount();
  s.retained = retained_->Count();
  return s;
}

size_t Broker::SessionCount() const {
  std::lock_guard reg(registry_mu_);
  return sessions_.size();
}

void Broker::PublishSys(int worker) {
  const StatsSnapshot s = Stats();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(clock_.Now() - started_).count();
  auto publish = [&](const char* topic, const std::string& value) {
    auto m = std::make_shared<Message>();
    m->topic = topic;
    m->payload = value;
    m->retain = true;
    Publish(std::move(m), worker);
  };
  // Names follow Mosquitto's $SYS tree where one exists.
  publish("$SYS/broker/version", std::string("parley ") + kParleyVersion);
  publish("$SYS/broker/uptime", std::to_string(uptime) + " seconds");
  publish("$SYS/broker/clients/connected", std::to_string(s.clients_connected));
  publish("$SYS/broker/clients/total", std::to_string(s.sessions));
  publish("$SYS/broker/subscriptions/count", std::to_string(s.subscriptions));
  publish("$SYS/broker/retained messages/count", std::to_string(s.retained));
  publish("$SYS/broker/messages/received", std::to_string(s.messages_received));
  publish("$SYS/broker/messages/sent", std::to_string(s.messages_sent));
  publish("$SYS/broker/messages/dropped", std::to_string(s.dropped_total));
  publish("$SYS/broker/bytes/received", std::to_string(s.bytes_received));
  publish("$SYS/broker/bytes/sent", std::to_string(s.bytes_sent));
  sys_load_.max_connected = std::max(sys_load_.max_connected, s.clients_connected);
  publish("$SYS/broker/clients/disconnected", std::to_string(s.sessions > s.clients_connected ? s.sessions - s.clients_connected : 0));
  publish("$SYS/broker/clients/maximum", std::to_string(sys_load_.max_connected));
  publish("$SYS/broker/publish/messages/received", std::to_string(s.messages_received));
  publish("$SYS/broker/publish/messages/sent", std::to_string(s.messages_sent));
  publish("$SYS/broker/publish/messages/dropped", std::to_string(s.dropped_total));

  // Load averages, as Mosquitto computes them: per-minute rates over the last interval, smoothed
  // exponentially over 1, 5 and 15 minutes (the first interval only sets the baseline).
  const SteadyTime now = clock_.Now();
  const uint64_t totals[SysLoad::kSeries] = {s.messages_received, s.messages_sent, s.bytes_received, s.bytes_sent,
                                             s.connects, s.dropped_total};
  static constexpr const char* kNames[SysLoad::kSeries] = {"messages/received", "messages/sent", "bytes/received",
                                                           "bytes/sent", "connections", "publish/dropped"};
  if (sys_load_.at != SteadyTime{}) {
    const double dt = std::chrono::duration<double>(now - sys_load_.at).count();
    static constexpr double kWindows[3] = {60, 300, 900};
    static constexpr const char* kWindowNames[3] = {"1min", "5min", "15min"};
    for (int i = 0; i < SysLoad::kSeries; ++i) {
      const uint64_t delta = totals[i] >= sys_load_.last[i] ? totals[i] - sys_load_.last[i] : 0;
      const double per_minute = dt > 0 ? static_cast<double>(delta) * 60.0 / dt : 0;
      for (int w = 0; w < 3; ++w) {
        double& avg = sys_load_.average[i][w];
        const double keep = std::exp(-dt / kWindows[w]);
        avg = sys_load_.started ? avg * keep + per_minute * (1 - keep) : per_minute;
        char value[32];
        std::snprintf(value, sizeof value, "%.2f", avg);
        publish((std::string("$SYS/broker/load/") + kNames[i] + "/" + kWindowNames[w]).c_str(), value);
      }
    }
    sys_load_.started = true;
  }
  sys_load_.at = now;
  std::copy(std::begin(totals), std::end(totals), std::begin(sys_load_.last));
}

MessagePtr Broker::MakeWill(const mqtt::Will& will, const std::string& client_id, uint32_t delay_seconds) const {
  auto m = std::make_shared<Message>();
  m->topic = will.topic;
  m->payload = will.payload;
  m->qos = will.qos;
  m->retain = will.retain;
  m->origin_client_id = client_id;
  const mqtt::Properties& wp = will.props;
  if (wp.message_expiry_interval)
    m->expires_at = clock_.Now() + std::chrono::seconds(delay_seconds) + std::chrono::seconds(*wp.message_expiry_interval);
  if (HasPassThroughProperties(wp)) {
    auto props = std::make_unique<mqtt::Properties>();
    props->payload_format_indicator = wp.payload_format_indicator;
    props->content_type = wp.content_type;
    props->response_topic = wp.response_topic;
    props->correlation_data = wp.correlation_data;
    props->user_properties = wp.user_properties;
    m->props = std::move(props);
  }
  return m;
}

void Broker::Restore(std::vector<StoredSession> sessions, std::vector<MessagePtr> retained) {
  for (MessagePtr& m : retained) retained_->Set(std::move(m));
  const SteadyTime now = clock_.Now();
  const int64_t now_ms = UnixMillis();
  std::vector<SessionPtr> expired;
  for (StoredSession& st : sessions) {
    SessionPtr s;
    {
      std::lock_guard reg(registry_mu_);
      if (sessions_.count(std::string_view(st.client_id))) continue;  // cannot happen with one row per client id
      s = std::make_shared<Session>(st.client_id, next_session_id_++);
      sessions_.insert(s);
    }
    // Offline since its connection ended; a session that was connected when the broker stopped counts as
    // disconnected now.
    const int64_t offline_ms = st.disconnected_at_ms ? std::max<int64_t>(0, now_ms - *st.disconnected_at_ms) : 0;
    {
      std::lock_guard lock(s->mu_);
      s->expiry_interval_ = st.expiry_interval;
      s->persisted_ = persistence_ != nullptr;
      s->username_ = std::move(st.username);
      for (const StoredSubscription& sub : st.subscriptions)
        s->subscriptions_[sub.filter] = SubscriptionRecord{sub.opts, sub.sub_id};
      for (StoredDelivery& sd : st.deliveries) {
        s->next_seq_ = std::max(s->next_seq_, sd.seq + 1);
        Delivery d;
        d.qos = sd.qos;
        d.retain = sd.retain;
        d.sub_ids = std::move(sd.sub_ids);
        if (!sd.shared_group.empty()) d.shared_group = std::make_shared<const std::string>(std::move(sd.shared_group));
        d.seq = sd.seq;
        if (!sd.msg) {
          // Released before the stop: only PUBREL / PUBCOMP remain, resent when the client returns.
          Inflight f;
          f.packet_id = PacketIdFor(sd.seq);
          f.state = Inflight::State::kAwaitPubcomp;
          f.delivery = std::move(d);
          s->inflight_.push_back(std::move(f));
          continue;
        }
        // Everything else goes out again from the queue, with the packet id it had (PacketIdFor).
        d.msg = std::move(sd.msg);
        d.maybe_sent = true;
        s->queued_bytes_ += d.msg->Footprint();
        s->queue_.push_back(std::move(d));
      }
      s->incoming_qos2_ = std::move(st.incoming_qos2);
    }
    for (const StoredSubscription& sub : st.subscriptions) tree_.Subscribe(s, sub.filter, sub.opts, sub.sub_id);

    const bool never = st.expiry_interval == 0xFFFFFFFFu;
    const int64_t expiry_left_ms = static_cast<int64_t>(st.expiry_interval) * 1000 - offline_ms;
    if (st.will) {
      // MQTT 5 3.1.3.2.2: after the will delay, or when the session ends if that is sooner.
      const uint32_t delay = std::min(st.will->props.will_delay_interval.value_or(0), st.expiry_interval);
      const int64_t delay_left_ms = std::max<int64_t>(0, static_cast<int64_t>(delay) * 1000 - offline_ms);
      MessagePtr will = MakeWill(*st.will, st.client_id, static_cast<uint32_t>(delay_left_ms / 1000));
      {
        std::lock_guard lock(timers_mu_);
        pending_wills_[s->id()] = will;
      }
      PushTimer(Timer{now + std::chrono::milliseconds(delay_left_ms), s->id(), s, 0, will});
    }
    if (!never && expiry_left_ms <= 0) {
      expired.push_back(s);  // expired while the broker was down
    } else if (!never) {
      PushTimer(Timer{now + std::chrono::milliseconds(expiry_left_ms), s->id(), s, 0, nullptr});
    }
  }
  // Ended after every session is back, so their wills reach restored subscribers too.
  for (const SessionPtr& s : expired) EndSession(s, 0);
  spdlog::info("restored {} sessions ({} expired while stopped), {} retained messages", sessions.size(),
               expired.size(), retained_->Count());
}

}  // namespace parley::broker
