// The broker core: session registry, subscription tree, retained store, routing, wills, session expiry
// and $SYS. No I/O and no event loop: broker/net drives it (Client per connection, Tick per interval).
// Thread-safety: every public method may be called from any thread unless it says otherwise.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "broker/api/auth.h"
#include "broker/guard/address_limiter.h"
#include "broker/guard/ban_list.h"
#include "broker/guard/flap_detector.h"
#include "broker/api/hooks.h"
#include "broker/api/message.h"
#include "broker/api/persistence.h"
#include "broker/api/retained_store.h"
#include "broker/core/admin_info.h"
#include "broker/core/options.h"
#include "broker/core/session.h"
#include "broker/core/stats.h"
#include "broker/core/topic_tree.h"

namespace parley::broker {

// What routing one message did. `refused`: persistent receivers that could not take it because storage
// refuses writes (disk full); the publisher is told 0x97 Quota exceeded.
struct RouteResult {
  size_t receivers = 0;
  size_t refused = 0;
};

enum class DeliverOutcome : uint8_t { kQueued, kDropped, kRefused };

struct AttachResult {
  SessionPtr session;
  uint64_t generation = 0;
  bool session_present = false;
};

class Broker final : public BrokerServices {
 public:
  // `workers`: number of Counters blocks (one per worker thread).
  Broker(BrokerOptions options, const Clock& clock, int workers);
  ~Broker() override;
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  const BrokerOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }
  // When the broker was created (uptime).
  SteadyTime started() const { return started_; }
  TopicTree& tree() { return tree_; }
  RetainedStore& retained() { return *retained_; }
  Counters& counters(int worker) { return counters_[worker]; }

  // Overload protection (set by the network layer's watchdog from memory and event-loop lag): while true,
  // CONNECTs are refused with 0x89 Server busy (3.1.1: 0x03 Server unavailable) and inbound QoS 0 PUBLISHes
  // are dropped (counted as DropCause::kOverload) before anything else. Any thread.
  void SetOverloaded(bool on) { overloaded_.store(on, std::memory_order_relaxed); }
  bool overloaded() const { return overloaded_.load(std::memory_order_relaxed); }

  // Admission control (broker/guard), each optional: bans (checked at accept by address, at CONNECT by
  // client id and user name), per-address connection limits (at accept), flapping detection (at CONNECT,
  // after authentication). Set before serving; not owned; must outlive the broker.
  struct Guards {
    const guard::BanList* bans = nullptr;
    guard::AddressLimiter* addresses = nullptr;
    guard::FlapDetector* flaps = nullptr;
  };
  void SetGuards(Guards g) { guards_ = g; }
  const Guards& guards() const { return guards_; }

  // Ports. Set before serving; the pointers are owned by the caller and must outlive the broker.
  void AddAuthenticator(const Authenticator* a) { authenticators_.push_back(a); }
  // MQTT 5 enhanced authentication methods (AUTH packets), one per method name.
  void AddEnhancedAuthenticator(const EnhancedAuthenticator* a) { enhanced_authenticators_.push_back(a); }
  // Some listener takes user names from client certificates (listener.tls.username_from_cert): user names
  // are then vouched for, and a bare one in CONNECT is no longer taken on trust (see Authenticate).
  void SetCertificateUsernames(bool on) { certificate_usernames_ = on; }
  const EnhancedAuthenticator* FindEnhancedAuthenticator(std::string_view method) const {
    for (const EnhancedAuthenticator* a : enhanced_authenticators_)
      if (a->method() == method) return a;
    return nullptr;
  }
  void SetAuthorizer(const Authorizer* a) { authorizer_ = a; }
  void SetRetainedStore(std::unique_ptr<RetainedStore> store) { retained_ = std::move(store); }
  // Plugins (the IM layer), called in the order added. Before serving; not owned.
  void AddHooks(Hooks* h) {
    hooks_.push_back(h);
    h->OnStart(*this);
  }
  // BrokerServices
  size_t PublishFromPlugin(const MessagePtr& msg) override { return Publish(msg, 0).receivers; }
  const std::vector<Hooks*>& hooks() const { return hooks_; }
  // Durable state (broker/persist). Without one everything lives in memory only.
  void SetPersistence(Persistence* p) { persistence_ = p; }
  Persistence* persistence() const { return persistence_; }

  // Loads durable state at start, before serving: sessions come back offline (their expiry counting from
  // their disconnect, or from now if they were connected when the broker stopped), with subscriptions,
  // deliveries, QoS 2 ids and pending wills; retained messages go to the retained store. Not thread-safe
  // against anything else: call it before the first connection.
  void Restore(std::vector<StoredSession> sessions, std::vector<MessagePtr> retained);

  // Decides a CONNECT's credentials: the first provider with an opinion wins; with none,
  // allow_anonymous decides for clients without a user name, and clients with one are accepted only
  // when nothing vouches for user names at all (no password provider, no enhanced authentication method,
  // no listener taking names from certificates) and anonymous access is on: otherwise anyone could claim
  // the name of a user whose permissions the ACL grants.
  AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const;
  // Plugins first (Hooks::OnAuthorize: they own their topics), then the permissions that came with the
  // client's credentials (a token's ACL) and the ACL file, which must both allow; with none, all is allowed.
  bool Allowed(const ClientIdentity& who, std::string_view topic, Access access) const {
    for (Hooks* h : hooks_) {
      const HookAccess a = h->OnAuthorize(who, topic, access);
      if (a != HookAccess::kNoOpinion) return a == HookAccess::kAllow;
    }
    if (who.credential_acl && !who.credential_acl->Allowed(who, topic, access)) return false;
    return !authorizer_ || authorizer_->Allowed(who, topic, access);
  }

  // Binds `link` to the session of `client_id`, creating it or resuming it (clean_start false), and sets
  // its expiry interval (which decides whether it is persisted). A connection already bound to it is
  // kicked with 0x8E (session taken over). A pending delayed will of a resumed session is cancelled.
  // `will`: the new connection's will, recorded with a persisted session (published after a crash).
  // `credential_acl`: permissions that came with the connection's credentials (Grant::acl), or null;
  // deliveries to the session check them while this connection holds it.
  AttachResult AttachSession(const std::string& client_id, bool clean_start, uint32_t expiry_interval,
                             std::shared_ptr<SessionLink> link, const std::optional<std::string>& username,
                             const mqtt::Will* will, std::shared_ptr<const Authorizer> credential_acl = nullptr);
  // The connection of `generation` closed. If it was still bound: unbinds it, then ends the session
  // (expiry 0) or schedules its expiry.
  void DetachSession(const SessionPtr& session, uint64_t generation);
  // Removes the session: registry, subscriptions; re-routes messages it held for share groups;
  // publishes its pending delayed will. With `offline_generation`, only if the session is still
  // offline since that connection left (expiry must not end a session that was just resumed).
  void EndSession(const SessionPtr& session, std::optional<uint64_t> offline_generation = std::nullopt);

  // Publishes `will` now (delay 0) or after `delay_seconds`, unless the session resumes first.
  void ScheduleWill(const SessionPtr& session, MessagePtr will, uint32_t delay_seconds);

  // Publishes a message: updates the retained store when it carries RETAIN, then routes it.
  RouteResult Publish(const MessagePtr& msg, int worker);
  // Routes a message to every matching subscription. `worker` selects the Counters block of the calling
  // thread.
  RouteResult Route(const MessagePtr& msg, int worker);
  // Queues one delivery for one session (recording it if the session is persisted) and wakes its
  // connection.
  DeliverOutcome Deliver(const SessionPtr& session, Delivery d, int worker);
  // Sends every delivery that `session` holds for share groups to other members of those groups
  // (used when a member unsubscribes or its session ends, so nothing queued for it is lost).
  void RerouteShared(const SessionPtr& session, const std::string* only_group, int worker);

  // Timers: delayed wills, session expiry, $SYS, storage upkeep. Call periodically from one thread
  // (net: worker 0).
  void Tick(int worker);

  // The will of `client_id` as a routable message, its expiry counted from `delay_seconds` from now.
  MessagePtr MakeWill(const mqtt::Will& will, const std::string& client_id, uint32_t delay_seconds) const;

  // ---- Persistence of session changes made by Client. Caller holds s.mu_; no-ops unless s is persisted.
  bool StoreWritableLocked(const Session& s) const {
    return !persistence_ || !s.persisted_ || persistence_->Writable();
  }
  // Whether `d` of `s` is (or would be) on disk: QoS 1/2 to a persisted session, unless transient.
  bool StoredLocked(const Session& s, const Delivery& d) const {
    return persistence_ && s.persisted_ && d.qos && !(d.msg && d.msg->transient);
  }
  void StoreRemoveLocked(const Session& s, const Delivery& d) {
    if (StoredLocked(s, d)) persistence_->RemoveDelivery(s.client_id(), d.seq, d.msg);
  }
  void StoreReleaseLocked(const Session& s, const Delivery& d) {
    if (StoredLocked(s, d)) persistence_->ReleaseDelivery(s.client_id(), d.seq, d.msg);
  }
  void StoreIncomingQos2Locked(const Session& s, uint16_t packet_id, bool add) {
    if (!persistence_ || !s.persisted_) return;
    if (add) {
      persistence_->AddIncomingQos2(s.client_id(), packet_id);
    } else {
      persistence_->RemoveIncomingQos2(s.client_id(), packet_id);
    }
  }
  void StoreSubscriptionLocked(const Session& s, const std::string& filter, const SubscriptionRecord* rec) {
    if (!persistence_ || !s.persisted_) return;
    if (rec) {
      persistence_->PutSubscription(s.client_id(), StoredSubscription{filter, rec->opts, rec->sub_id});
    } else {
      persistence_->DeleteSubscription(s.client_id(), filter);
    }
  }
  void StoreWillLocked(const Session& s, const mqtt::Will* will) {
    if (!persistence_ || !s.persisted_) return;
    if (will) {
      persistence_->PutWill(s.client_id(), *will);
    } else {
      persistence_->DeleteWill(s.client_id());
    }
  }

  // Counters summed over workers plus gauges.
  StatsSnapshot Stats() const;
  size_t SessionCount() const;

  // ---- Metrics (broker_metrics.cc; docs/metrics.md).
  // The listeners, in the order of Transport::ListenerInfo::index: the labels of the per-listener metrics.
  // Set before serving (net::Server::Listen does).
  struct ListenerLabel {
    std::string name;
    std::string protocol;  // mqtt | mqtts | ws | wss
  };
  void SetListeners(std::vector<ListenerLabel> listeners) { listeners_ = std::move(listeners); }
  // Appends the broker's families: build info, uptime, workers, connections, connects, refusals, disconnects,
  // messages and bytes, drops, queues, sessions, subscriptions, retained, overloaded. Walks the session
  // registry (each session's lock briefly, one at a time). Any thread; meant for every few seconds, not per
  // message.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

  // ---- Administration (broker_admin.cc; docs/admin-api.md). Any thread (the admin thread in parleyd). Each
  // takes the registry lock and then one session lock at a time (the documented order), copies values out and
  // calls nothing outside the broker while holding either. Keys are compared as bytes.
  // Sessions with a client id after `after` ("" = from the start), in client id order, at most `limit`;
  // *more: further sessions match.
  std::vector<SessionInfo> ListSessions(std::string_view after, size_t limit, SessionState state, bool* more);
  // One session; with `subs`, also its subscriptions in filter order. nullopt: no such session.
  std::optional<SessionInfo> GetSession(std::string_view client_id, std::vector<SubscriptionInfo>* subs = nullptr);
  // Subscriptions in (client id, filter) order of the sessions after `after` (or only of `client_id` when not
  // empty). A page holds whole sessions: it ends after the session that reaches `limit` subscriptions, so it
  // may hold more than `limit`. *more: sessions with subscriptions follow.
  std::vector<SubscriptionInfo> ListSubscriptions(std::string_view client_id, std::string_view after, size_t limit,
                                                  bool* more) const;
  // Tells the connection bound to `client_id`'s session to close with DISCONNECT `reason` (v5; 3.1.1 clients
  // are closed). The session stays, as after any disconnect. False when no connection is bound.
  bool KickClient(std::string_view client_id, uint8_t reason);
  // Ends the session of `client_id` now: kicks its connection (0x98), removes it from the registry and the
  // subscription tree, deletes its durable state, hands its share-group messages on (EndSession).
  DropResult DropSession(std::string_view client_id);
  // Retained messages whose topic matches `filter` and sorts after `after`, in topic order, at most `limit`.
  std::vector<MessagePtr> ListRetained(std::string_view filter, std::string_view after, size_t limit,
                                       bool* more) const;
  // The retained message of `topic` (a topic name, no wildcards), or null.
  MessagePtr GetRetained(std::string_view topic) const;
  // Clears the retained message of `topic`, in memory and on disk (not routed to anyone). False: there was none.
  bool DeleteRetained(std::string_view topic);
  // Waits up to `timeout` until every durable write the calling thread made (and all before them) is on disk.
  // True when they are (or there were none, or no persistence); false on a write failure or the timeout.
  bool WaitDurable(std::chrono::milliseconds timeout);
  // Draining (POST /api/v1/drain): while on, CONNECTs are refused with 0x9C Use another server carrying
  // `server_reference` when set (3.1.1: 0x03 Server unavailable), and kicks with 0x9C / 0x9D carry the
  // reference too (Client::OnKick). The network layer disconnects the clients already connected.
  void SetDraining(bool on, std::string server_reference);
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  // "" when none is set.
  std::string server_reference() const;

  // Connected-client gauge, maintained by Client.
  std::atomic<int64_t> clients_connected{0};

 private:
  struct Timer {
    SteadyTime when;
    uint64_t session_id;
    std::weak_ptr<Session> session;
    uint64_t generation;  // expiry: the generation that went offline
    MessagePtr will;      // set for a delayed will; null for a session expiry
    bool operator>(const Timer& o) const { return when > o.when; }
  };
  void PublishSys(int worker);
  // After a session was marked ended and left the registry: removes its `filters` from the tree, hands
  // its share-group messages on, publishes its pending will, and frees what it held.
  void TearDown(const SessionPtr& s, const std::vector<std::string>& filters);
  void PushTimer(Timer t);
  // Forgets a persisted session's durable state (DeleteSession) and stops persisting it. Caller holds s.mu_.
  void UnpersistLocked(Session& s);
  // Administration (broker_admin.cc): up to `n` sessions with a client id after `after` in client id order,
  // that are in `state`; *more: others follow. SessionsInfo: their snapshots (expiry from the timer heap).
  std::vector<SessionPtr> SessionsAfter(std::string_view after, size_t n, SessionState state, bool* more) const;
  std::vector<SessionInfo> SessionsInfo(const std::vector<SessionPtr>& sessions);
  int64_t UnixMillis() const { return clock_.UnixSeconds() * 1000; }

  const BrokerOptions options_;
  const Clock& clock_;
  const SteadyTime started_;
  std::unique_ptr<Counters[]> counters_;
  const int workers_;
  TopicTree tree_;
  std::unique_ptr<RetainedStore> retained_;
  std::vector<const Authenticator*> authenticators_;
  std::vector<const EnhancedAuthenticator*> enhanced_authenticators_;
  std::atomic<bool> overloaded_{false};
  std::atomic<bool> draining_{false};
  mutable std::mutex drain_mu_;
  std::string server_reference_;  // guarded by drain_mu_
  bool certificate_usernames_ = false;
  Guards guards_;
  // Set once any session carried permissions from its credentials: deliveries then check them.
  std::atomic<bool> credential_acls_{false};
  const Authorizer* authorizer_ = nullptr;
  Persistence* persistence_ = nullptr;
  std::vector<Hooks*> hooks_;
  std::mutex retained_mu_;  // with persistence: memory and disk take a topic's retained updates in one order

  mutable std::mutex registry_mu_;
  // The session registry: a set of sessions found by client id. Each id is stored once, in its Session, and
  // a node is one pointer plus the SessionPtr (the hash is recomputed rather than cached: registry changes
  // happen at connect and disconnect, and an idle process holds one node per client).
  struct SessionById {
    using is_transparent = void;
    size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
    size_t operator()(const SessionPtr& s) const noexcept { return (*this)(std::string_view(s->client_id())); }
    bool operator()(const SessionPtr& a, const SessionPtr& b) const noexcept { return a->client_id() == b->client_id(); }
    bool operator()(std::string_view a, const SessionPtr& b) const noexcept { return a == b->client_id(); }
    bool operator()(const SessionPtr& a, std::string_view b) const noexcept { return a->client_id() == b; }
  };
  std::unordered_set<SessionPtr, SessionById, SessionById> sessions_;  // guarded by registry_mu_
  uint64_t next_session_id_ = 1;                          // guarded by registry_mu_

  std::mutex timers_mu_;
  std::vector<Timer> timers_;  // min-heap on `when`; guarded by timers_mu_
  // Delayed wills by session id, so resume can cancel them. Guarded by timers_mu_.
  std::unordered_map<uint64_t, MessagePtr> pending_wills_;
  SteadyTime next_sys_{};
  // $SYS load averages (PublishSys, on the tick thread only): the totals at the last publication and the
  // smoothed per-minute rates over 1, 5 and 15 minutes of each series.
  struct SysLoad {
    static constexpr int kSeries = 6;
    SteadyTime at{};
    bool started = false;
    uint64_t last[kSeries] = {};
    double average[kSeries][3] = {};
    uint64_t max_connected = 0;
  };
  SysLoad sys_load_;
  std::vector<ListenerLabel> listeners_;  // set before serving (SetListeners)
};

}  // namespace parley::broker
