#include "broker/core/broker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "broker/core/retained.h"
#include "broker/core/version.h"

namespace parley::broker {

Broker::Broker(BrokerOptions options, const Clock& clock, int workers)
    : options_(std::move(options)),
      clock_(clock),
      started_(clock.Now()),
      counters_(new Counters[std::max(workers, 1)]),
      workers_(std::max(workers, 1)),
      retained_(std::make_unique<MemoryRetainedStore>(options_.max_retained_messages)) {}

Broker::~Broker() = default;

AuthDecision Broker::Authenticate(const ConnectInfo& info) const {
  for (const Authenticator* a : authenticators_) {
    AuthDecision d = a->Authenticate(info);
    if (d != AuthDecision::kNoOpinion) return d;
  }
  if (!info.username) return options_.allow_anonymous ? AuthDecision::kAllow : AuthDecision::kNotAuthorized;
  // A user name nobody vouches for: accepted only in an open broker with no credential store.
  if (authenticators_.empty() && options_.allow_anonymous) return AuthDecision::kAllow;
  return AuthDecision::kDeny;
}

AttachResult Broker::AttachSession(const std::string& client_id, bool clean_start,
                                   std::shared_ptr<SessionLink> link,
                                   const std::optional<std::string>& username) {
  AttachResult r;
  SessionPtr ended;
  std::shared_ptr<SessionLink> kicked;
  {
    std::lock_guard reg(registry_mu_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) {
      SessionPtr s = it->second;
      std::lock_guard lock(s->mu_);
      kicked = std::move(s->link_);
      // A session with expiry 0 lives only as long as its connection (MQTT 5 3.1.2.11.2; 3.1.1 clean
      // session): taking the connection over ends it, so it is never resumed, whatever the new CONNECT says.
      if (clean_start || s->expiry_interval_ == 0) {
        s->ended_ = true;
        s->online_.store(false, std::memory_order_relaxed);
        ended = s;
        sessions_.erase(it);
      } else {
        s->link_ = link;
        r.generation = ++s->link_generation_;
        s->online_.store(true, std::memory_order_relaxed);
        s->offline_since_.reset();
        s->username_ = username;
        s->wake_pending_ = false;
        r.session = s;
        r.session_present = true;
      }
    }
    if (!r.session) {
      auto s = std::make_shared<Session>(client_id, next_session_id_++);
      s->link_ = link;
      r.generation = ++s->link_generation_;
      s->online_.store(true, std::memory_order_relaxed);
      s->username_ = username;
      sessions_.emplace(client_id, s);
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

void Broker::DetachSession(const SessionPtr& s, uint64_t generation) {
  uint32_t expiry = 0;
  {
    std::lock_guard lock(s->mu_);
    if (s->ended_ || s->link_generation_ != generation || !s->link_) return;
    s->link_.reset();
    s->online_.store(false, std::memory_order_relaxed);
    s->offline_since_ = clock_.Now();
    s->wake_pending_ = false;
    expiry = s->expiry_interval_;
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
      for (auto& [f, rec] : s->subscriptions_) filters.push_back(f);
      s->subscriptions_.clear();
    }
    auto it = sessions_.find(s->client_id());
    if (it != sessions_.end() && it->second.get() == s.get()) sessions_.erase(it);
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

size_t Broker::Publish(const MessagePtr& msg, int worker) {
  if (msg->retain && options_.retain_available) retained_->Set(msg);
  return Route(msg, worker);
}

size_t Broker::Route(const MessagePtr& msg, int worker) {
  thread_local std::vector<Match> matches;
  matches.clear();
  tree_.Collect(msg->topic, msg->origin_client_id, &matches);
  size_t receivers = 0;
  for (Match& m : matches) {
    if (authorizer_) {
      // username_ is guarded by the session lock: a reconnect (AttachSession) rewrites it on another
      // thread. Copy it out rather than call the authorizer with the lock held.
      std::optional<std::string> user;
      {
        std::lock_guard lock(m.session->mu_);
        user = m.session->username_;
      }
      ClientIdentity who{m.session->client_id(), user ? std::optional<std::string_view>(*user) : std::nullopt};
      if (!authorizer_->Allowed(who, msg->topic, Access::kRead)) continue;
    }
    Delivery d;
    d.msg = msg;
    d.qos = std::min(msg->qos, m.qos);
    d.retain = m.retain_as_published && msg->retain;
    d.sub_ids = std::move(m.sub_ids);
    d.shared_group = std::move(m.shared_group);
    Deliver(m.session, std::move(d), worker);
    ++receivers;
  }
  matches.clear();
  return receivers;
}

void Broker::Deliver(const SessionPtr& s, Delivery d, int worker) {
  EnqueueResult r;
  std::shared_ptr<SessionLink> link;
  {
    std::lock_guard lock(s->mu_);
    r = s->EnqueueLocked(std::move(d), options_.max_queued_messages, options_.max_queued_bytes,
                         options_.queue_qos0_offline);
    if (r.wake) link = s->link_;
  }
  Counters& c = counters_[worker];
  if (!r.queued) Counters::Add(c.dropped[static_cast<int>(r.cause)]);
  if (r.dropped_other) Counters::Add(c.dropped[static_cast<int>(DropCause::kQueueFull)], r.dropped_other);
  if (link) link->Wake();
}

void Broker::RerouteShared(const SessionPtr& s, const std::string* only_group, int worker) {
  std::vector<Delivery> moved;
  {
    std::lock_guard lock(s->mu_);
    auto takes = [&](const Delivery& d) { return d.shared_group && (!only_group || *d.shared_group == *only_group); };
    for (size_t i = 0; i < s->queue_.size();) {
      if (takes(s->queue_[i])) {
        s->queued_bytes_ -= s->queue_[i].msg->Footprint();
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
      continue;
    }
    if (SessionPtr s = t.session.lock()) EndSession(s, t.generation);  // no-op if resumed meanwhile
  }
  if (options_.sys_enabled && now >= next_sys_) {
    next_sys_ = now + options_.sys_interval;
    PublishSys(worker);
  }
}

StatsSnapshot Broker::Stats() const {
  StatsSnapshot s;
  for (int i = 0; i < workers_; ++i) {
    const Counters& c = counters_[i];
    s.messages_received += c.messages_received.load(std::memory_order_relaxed);
    s.messages_sent += c.messages_sent.load(std::memory_order_relaxed);
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
}

}  // namespace parley::broker
