// Broker administration: what the admin API (docs/admin-api.md) reads and changes in the core — session and
// subscription listings, kicking and dropping sessions, retained messages, draining. Declared in broker.h,
// "Administration".
//
// Listings never sort the whole registry: SessionsAfter keeps a bounded heap of the `n` smallest client ids
// after the cursor while it walks the registry under its lock (O(sessions · log n), O(n) memory), then the
// sessions of the page are read one lock at a time with the registry lock released.
#include <algorithm>
#include <cstdint>
#include <condition_variable>
#include <unordered_map>

#include "broker/core/broker.h"

namespace parley::broker {

namespace {

bool IsSysTopic(std::string_view topic) { return topic.starts_with("$SYS/"); }

bool InState(const Session& s, SessionState state) {
  if (state == SessionState::kAll) return true;
  return s.online_.load(std::memory_order_relaxed) == (state == SessionState::kOnline);
}

SubscriptionInfo MakeSubscriptionInfo(const std::string& client_id, const std::string& full,
                                      const SubscriptionRecord& rec) {
  SubscriptionInfo info;
  info.client_id = client_id;
  SharedFilter shared;
  if (ParseSharedFilter(full, &shared) && shared.valid) {
    info.filter = std::string(shared.filter);
    info.share_group = std::string(shared.group);
  } else {
    info.filter = full;
  }
  info.opts = rec.opts;
  info.subscription_id = rec.sub_id;
  return info;
}

}  // namespace

std::vector<SessionPtr> Broker::SessionsAfter(std::string_view after, size_t n, SessionState state,
                                              bool* more) const {
  // A max-heap of the n + 1 smallest client ids seen: one more than asked tells whether more follow.
  auto less = [](const SessionPtr* a, const SessionPtr* b) { return (*a)->client_id() < (*b)->client_id(); };
  std::vector<const SessionPtr*> heap;
  const size_t keep = n == SIZE_MAX ? n : n + 1;  // "no limit" is SIZE_MAX
  heap.reserve(std::min<size_t>(keep, 4096));
  std::vector<SessionPtr> out;
  std::lock_guard reg(registry_mu_);
  for (const SessionPtr& s : sessions_) {
    if (!after.empty() && std::string_view(s->client_id()) <= after) continue;
    if (!InState(*s, state)) continue;
    if (heap.size() == keep) {
      if (!less(&s, heap.front())) continue;
      std::pop_heap(heap.begin(), heap.end(), less);
      heap.back() = &s;
    } else {
      heap.push_back(&s);
    }
    std::push_heap(heap.begin(), heap.end(), less);
  }
  std::sort_heap(heap.begin(), heap.end(), less);
  if (more) *more = heap.size() > n;
  if (heap.size() > n) heap.resize(n);
  out.reserve(heap.size());
  for (const SessionPtr* s : heap) out.push_back(*s);  // copied while the registry lock keeps them alive
  return out;
}

std::vector<SessionInfo> Broker::SessionsInfo(const std::vector<SessionPtr>& sessions) {
  std::vector<SessionInfo> out;
  out.reserve(sessions.size());
  // Offline sessions that expire: their expiry timer (the one pushed when their connection of `generation`
  // left) tells when. Looked up below in one pass over the timer heap.
  struct Want {
    size_t index;
    uint64_t generation;
  };
  std::unordered_map<uint64_t, Want> want;
  for (const SessionPtr& s : sessions) {
    SessionInfo info;
    info.client_id = s->client_id();
    uint64_t generation = 0;
    {
      std::lock_guard lock(s->mu_);
      if (s->ended_) continue;  // dropped or expired since it was listed
      info.username = s->username_;
      info.online = s->link_ != nullptr;
      info.expiry_interval = s->expiry_interval_;
      info.subscriptions = s->subscriptions_.size();
      info.queued = s->queue_.size();
      info.queued_bytes = s->queued_bytes_;
      info.inflight = s->inflight_.size();
      generation = s->link_generation_;
    }
    if (!info.online && info.expiry_interval != 0xFFFFFFFFu) want[s->id()] = Want{out.size(), generation};
    out.push_back(std::move(info));
  }
  if (want.empty()) return out;
  const SteadyTime now = clock_.Now();
  std::lock_guard lock(timers_mu_);
  for (const Timer& t : timers_) {
    if (t.will) continue;
    auto it = want.find(t.session_id);
    if (it == want.end() || it->second.generation != t.generation) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t.when - now).count();
    out[it->second.index].expires_in_seconds = std::max<int64_t>(0, (left + 999) / 1000);
  }
  return out;
}

std::vector<SessionInfo> Broker::ListSessions(std::string_view after, size_t limit, SessionState state, bool* more) {
  return SessionsInfo(SessionsAfter(after, limit, state, more));
}

std::optional<SessionInfo> Broker::GetSession(std::string_view client_id, std::vector<SubscriptionInfo>* subs) {
  SessionPtr s;
  {
    std::lock_guard reg(registry_mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return std::nullopt;
    s = *it;
  }
  std::vector<SessionInfo> info = SessionsInfo({s});
  if (info.empty()) return std::nullopt;
  if (subs) {
    subs->clear();
    std::lock_guard lock(s->mu_);
    for (const auto& [filter, rec] : s->subscriptions_)
      subs->push_back(MakeSubscriptionInfo(s->client_id(), filter, rec));
  }
  return std::move(info[0]);
}

std::vector<SubscriptionInfo> Broker::ListSubscriptions(std::string_view client_id, std::string_view after,
                                                        size_t limit, bool* more) const {
  std::vector<SubscriptionInfo> out;
  if (more) *more = false;
  auto append = [&](const SessionPtr& s) {
    std::lock_guard lock(s->mu_);
    if (s->ended_) return;
    for (const auto& [filter, rec] : s->subscriptions_)
      out.push_back(MakeSubscriptionInfo(s->client_id(), filter, rec));
  };
  if (!client_id.empty()) {
    if (!after.empty() && client_id <= after) return out;
    SessionPtr s;
    {
      std::lock_guard reg(registry_mu_);
      auto it = sessions_.find(client_id);
      if (it == sessions_.end()) return out;
      s = *it;
    }
    append(s);
    return out;
  }
  // Sessions in client id order, in batches that double in size: most sessions have subscriptions (one batch
  // of `limit` fills the page), and a registry of sessions without any still costs O(log) walks, not O(n).
  std::string cursor(after);
  size_t batch = std::max<size_t>(limit, 64);
  for (;;) {
    bool further = false;
    const std::vector<SessionPtr> sessions = SessionsAfter(cursor, batch, SessionState::kAll, &further);
    for (size_t i = 0; i < sessions.size(); ++i) {
      if (out.size() >= limit) {
        // Full: more follows if any later session of this batch has a subscription, or the registry has more.
        bool later = further;
        for (size_t j = i; j < sessions.size() && !later; ++j) {
          std::lock_guard lock(sessions[j]->mu_);
          later = !sessions[j]->ended_ && !sessions[j]->subscriptions_.empty();
        }
        if (more) *more = later;
        return out;
      }
      append(sessions[i]);
    }
    if (!further || sessions.empty()) return out;
    if (out.size() >= limit) {
      if (more) *more = true;  // the registry has sessions after this batch (they may have no subscriptions)
      return out;
    }
    cursor = sessions.back()->client_id();
    batch = std::min<size_t>(batch * 2, size_t{1} << 20);
  }
}

bool Broker::KickClient(std::string_view client_id, uint8_t reason) {
  std::shared_ptr<SessionLink> link;
  {
    std::lock_guard reg(registry_mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return false;
    std::lock_guard lock((*it)->mu_);
    link = (*it)->link_;
  }
  if (!link) return false;
  link->Kick(reason);  // any thread: posts to the connection's loop
  return true;
}

DropResult Broker::DropSession(std::string_view client_id) {
  DropResult r;
  SessionPtr s;
  std::shared_ptr<SessionLink> link;
  std::vector<std::string> filters;
  {
    // As a takeover with clean start ends the old session (AttachSession): decided under both locks, and its
    // rows deleted under the registry lock, before a new session of this client id can write its own.
    std::lock_guard reg(registry_mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return r;
    s = *it;
    {
      std::lock_guard lock(s->mu_);
      link = std::move(s->link_);
      s->ended_ = true;
      s->online_.store(false, std::memory_order_relaxed);
      UnpersistLocked(*s);
      for (auto& [f, rec] : s->subscriptions_) filters.push_back(f);
      s->subscriptions_.clear();
    }
    sessions_.erase(it);
  }
  r.found = true;
  r.kicked = link != nullptr;
  // The connection finds its session ended when it closes and leaves it alone (Client::OnClosed).
  if (link) link->Kick(mqtt::rc::kAdministrativeAction);
  TearDown(s, filters);
  return r;
}

std::vector<MessagePtr> Broker::ListRetained(std::string_view filter, std::string_view after, size_t limit,
                                             bool* more) const {
  auto less = [](const MessagePtr& a, const MessagePtr& b) { return a->topic < b->topic; };
  std::vector<MessagePtr> heap;  // max-heap of the limit + 1 smallest topics after `after`
  const size_t keep = limit == SIZE_MAX ? limit : limit + 1;
  retained_->Match(filter, [&](const MessagePtr& m) {
    if (!after.empty() && std::string_view(m->topic) <= after) return;
    if (heap.size() == keep) {
      if (!less(m, heap.front())) return;
      std::pop_heap(heap.begin(), heap.end(), less);
      heap.back() = m;
    } else {
      heap.push_back(m);
    }
    std::push_heap(heap.begin(), heap.end(), less);
  });
  std::sort_heap(heap.begin(), heap.end(), less);
  if (more) *more = heap.size() > limit;
  if (heap.size() > limit) heap.resize(limit);
  return heap;
}

MessagePtr Broker::GetRetained(std::string_view topic) const {
  MessagePtr found;
  // A topic name has no wildcards, so matching it as a filter finds at most its own message.
  retained_->Match(topic, [&](const MessagePtr& m) {
    if (m->topic == topic) found = m;
  });
  return found;
}

bool Broker::DeleteRetained(std::string_view topic) {
  auto clear = std::make_shared<Message>();
  clear->topic = std::string(topic);
  clear->retain = true;  // an empty payload: RetainedStore::Set and Persistence::PutRetained delete the topic
  if (persistence_ && !IsSysTopic(topic)) {
    // Under retained_mu_, as Publish: memory and disk see this topic's updates in the same order.
    std::lock_guard lock(retained_mu_);
    if (!GetRetained(topic)) return false;
    retained_->Set(clear);
    persistence_->PutRetained(clear);
    return true;
  }
  if (!GetRetained(topic)) return false;
  retained_->Set(std::move(clear));
  return true;
}

bool Broker::WaitDurable(std::chrono::milliseconds timeout) {
  if (!persistence_) return true;
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;  // guarded by mu
    bool ok = false;    // guarded by mu
  };
  // Shared: the storage thread may complete the barrier after this thread gave up waiting.
  auto w = std::make_shared<Wait>();
  const bool pending = persistence_->Barrier([w](bool ok) {
    {
      std::lock_guard lock(w->mu);
      w->done = true;
      w->ok = ok;
    }
    w->cv.notify_all();
  });
  if (!pending) return true;
  std::unique_lock lock(w->mu);
  if (!w->cv.wait_for(lock, timeout, [&] { return w->done; })) return false;
  return w->ok;
}

void Broker::SetDraining(bool on, std::string server_reference) {
  {
    std::lock_guard lock(drain_mu_);
    server_reference_ = on ? std::move(server_reference) : std::string();
  }
  draining_.store(on, std::memory_order_relaxed);
}

std::string Broker::server_reference() const {
  std::lock_guard lock(drain_mu_);
  return server_reference_;
}

}  // namespace parley::broker
