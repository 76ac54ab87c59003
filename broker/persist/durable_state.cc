#include "broker/persist/durable_state.h"

#include "base/check.h"

#include <spdlog/spdlog.h>

#include <unordered_map>

#include "broker/persist/layout.h"
#include "broker/persist/records.h"

namespace parley::broker::persist {

using storage::WriteBatch;

namespace {

// The writes the calling thread made since its last Barrier share one failure flag.
struct Scope {
  uint64_t owner = 0;  // DurableState::instance_ (not its address, which a later instance may reuse)
  std::shared_ptr<std::atomic<bool>> failed;
};
thread_local Scope tl_scope;

// The calling thread's open atomic span (BeginAtomic), if any.
struct Atomic {
  uint64_t owner = 0;
  uint64_t txn = 0;
  int depth = 0;
};
thread_local Atomic tl_atomic;
std::string Hex(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < key.size() && i < 64; ++i) {
    out.push_back(kHex[static_cast<uint8_t>(key[i]) >> 4]);
    out.push_back(kHex[static_cast<uint8_t>(key[i]) & 15]);
  }
  if (key.size() > 64) out += "...";
  return out;
}

storage::Status Corrupt(Fam fam, std::string_view key, const char* what) {
  return storage::Status::Corruption(std::string("undecodable ") + what + " in family " +
                                     FamilyNames()[static_cast<size_t>(fam)] + " at key " + Hex(key) +
                                     " (restore the data dir from a backup)");
}

}  // namespace

namespace {
std::atomic<uint64_t> next_instance{1};
}  // namespace

DurableState::DurableState(storage::Store* store, storage::WriteExecutor* executor, const Clock& clock)
    : store_(store), executor_(executor), clock_(clock), instance_(next_instance.fetch_add(1)) {}

DurableState::~DurableState() = default;

TimeBase DurableState::Now() const { return TimeBase{clock_.Now(), clock_.UnixSeconds() * 1000}; }

size_t DurableState::BodyCount() const {
  std::lock_guard lock(mu_);
  return bodies_.size();
}

// ---- Writing ---------------------------------------------------------------------------------------------

void DurableState::Submit(WriteBatch batch) {
  std::lock_guard lock(mu_);
  SubmitLocked(std::move(batch));
}

void DurableState::SubmitLocked(WriteBatch batch) {
  Scope& scope = tl_scope;
  if (scope.owner != instance_ || !scope.failed) {
    scope.owner = instance_;
    scope.failed = std::make_shared<std::atomic<bool>>(false);
  }
  auto failed = scope.failed;
  const uint64_t txn = tl_atomic.owner == instance_ ? tl_atomic.txn : 0;
  const bool accepted = executor_->Submit(
      std::move(batch),
      [this, failed](const storage::Status& st) {
        if (st.ok()) return;
        failed->store(true, std::memory_order_release);
        OnWriteFailed(st);
      },
      txn);
  if (!accepted) {
    failed->store(true, std::memory_order_release);
    OnWriteFailed(storage::Status::Shutdown("storage queue refused the write (shutting down or over its limit)"));
  }
}

void DurableState::OnWriteFailed(const storage::Status& st) {
  failed_writes_.fetch_add(1, std::memory_order_relaxed);
  if (st.IsNoSpace() && writable_.exchange(false, std::memory_order_acq_rel))
    spdlog::error("storage: disk full; refusing new persistent messages and subscriptions (0x97) until space "
                  "returns: {}",
                  st.ToString());
  // At most one line a second: a full disk fails every write. (Real time: this runs on the storage thread.)
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = last_error_log_.load(std::memory_order_relaxed);
  if (now > last && last_error_log_.compare_exchange_strong(last, now))
    spdlog::error("storage: write failed: {}", st.ToString());
}

uint64_t DurableState::RefLocked(const MessagePtr& msg, WriteBatch* batch) {
  Body& b = bodies_[msg.get()];
  if (b.refs++ == 0) {
    b.keep = msg;
    b.id = next_message_id_++;
    std::string value;
    EncodeMessage(*msg, Now(), &value);
    batch->Put(Fam::kMessages, MessageKey(b.id), value);
  }
  return b.id;
}

void DurableState::UnrefLocked(const Message* msg, WriteBatch* batch) {
  auto it = bodies_.find(msg);
  if (it == bodies_.end()) return;  // never stored (cannot happen when the core reports every change)
  if (--it->second.refs > 0) return;
  batch->Delete(Fam::kMessages, MessageKey(it->second.id));
  bodies_.erase(it);
}

void DurableState::PutSession(const std::string& client_id, uint32_t expiry_interval,
                              const std::optional<std::string>& username, std::optional<int64_t> disconnected_at_ms) {
  std::string value;
  EncodeSession(SessionRecord{expiry_interval, username, disconnected_at_ms}, &value);
  WriteBatch b;
  b.Put(Fam::kSessions, client_id, value);
  Submit(std::move(b));
}

void DurableState::DeleteSession(const std::string& client_id, const std::vector<MessagePtr>& held) {
  const std::string begin = ClientPrefix(client_id);
  const std::string end = storage::PrefixSuccessor(begin);
  WriteBatch b;
  b.Delete(Fam::kSessions, client_id);
  b.Delete(Fam::kWills, client_id);
  for (Fam f : {Fam::kSubscriptions, Fam::kDeliveries, Fam::kIncomingQos2}) b.DeleteRange(f, begin, end);
  std::lock_guard lock(mu_);
  for (const MessagePtr& m : held) UnrefLocked(m.get(), &b);
  SubmitLocked(std::move(b));
}

void DurableState::PutSubscription(const std::string& client_id, const StoredSubscription& sub) {
  std::string value;
  EncodeSubscription(sub.opts, sub.sub_id, &value);
  WriteBatch b;
  b.Put(Fam::kSubscriptions, SubscriptionKey(client_id, sub.filter), value);
  Submit(std::move(b));
}

void DurableState::DeleteSubscription(const std::string& client_id, std::string_view filter) {
  WriteBatch b;
  b.Delete(Fam::kSubscriptions, SubscriptionKey(client_id, filter));
  Submit(std::move(b));
}

void DurableState::AddDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg, uint8_t qos,
                               bool retain, const std::vector<uint32_t>& sub_ids, std::string_view shared_group) {
  const std::string key = DeliveryKey(client_id, seq);
  WriteBatch b;
  std::lock_guard lock(mu_);
  const uint64_t id = RefLocked(msg, &b);  // the body first, in the same batch
  std::string value;
  EncodeDelivery(id, qos, retain, sub_ids, shared_group, &value);
  b.Put(Fam::kDeliveries, key, value);
  SubmitLocked(std::move(b));
}

void DurableState::ReleaseDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) {
  std::string value;
  EncodeDelivery(0, 2, false, {}, {}, &value);
  WriteBatch b;
  b.Put(Fam::kDeliveries, DeliveryKey(client_id, seq), value);
  std::lock_guard lock(mu_);
  if (msg) UnrefLocked(msg.get(), &b);
  SubmitLocked(std::move(b));
}

void DurableState::RemoveDelivery(const std::string& client_id, uint64_t seq, const MessagePtr& msg) {
  WriteBatch b;
  b.Delete(Fam::kDeliveries, DeliveryKey(client_id, seq));
  std::lock_guard lock(mu_);
  if (msg) UnrefLocked(msg.get(), &b);
  SubmitLocked(std::move(b));
}

void DurableState::AddIncomingQos2(const std::string& client_id, uint16_t packet_id) {
  WriteBatch b;
  b.Put(Fam::kIncomingQos2, IncomingQos2Key(client_id, packet_id), {});
  Submit(std::move(b));
}

void DurableState::RemoveIncomingQos2(const std::string& client_id, uint16_t packet_id) {
  WriteBatch b;
  b.Delete(Fam::kIncomingQos2, IncomingQos2Key(client_id, packet_id));
  Submit(std::move(b));
}

void DurableState::PutWill(const std::string& client_id, const mqtt::Will& will) {
  std::string value;
  EncodeWill(will, &value);
  WriteBatch b;
  b.Put(Fam::kWills, client_id, value);
  Submit(std::move(b));
}

void DurableState::DeleteWill(const std::string& client_id) {
  WriteBatch b;
  b.Delete(Fam::kWills, client_id);
  Submit(std::move(b));
}

void DurableState::PutRetained(const MessagePtr& msg) {
  WriteBatch b;
  if (msg->payload.empty()) {
    b.Delete(Fam::kRetained, msg->topic);
  } else {
    std::string value;
    EncodeMessage(*msg, Now(), &value);
    b.Put(Fam::kRetained, msg->topic, value);
  }
  Submit(std::move(b));
}

void DurableState::BeginAtomic() {
  Atomic& a = tl_atomic;
  if (a.depth > 0) {
    PARLEY_CHECK(a.owner == instance_);
    ++a.depth;
    return;
  }
  a.owner = instance_;
  a.txn = executor_->BeginTxn();
  a.depth = 1;
}

void DurableState::EndAtomic() {
  Atomic& a = tl_atomic;
  PARLEY_CHECK(a.depth > 0 && a.owner == instance_);
  if (--a.depth > 0) return;
  executor_->EndTxn(a.txn);
  a = Atomic{};
}

bool DurableState::PendingWrites() const {
  const Scope& scope = tl_scope;
  return scope.owner == instance_ && scope.failed;
}

bool DurableState::Barrier(std::function<void(bool ok)> done) {
  Scope& scope = tl_scope;
  if (scope.owner != instance_ || !scope.failed) return false;  // nothing written since the last barrier
  std::shared_ptr<std::atomic<bool>> failed = std::move(scope.failed);
  scope.failed.reset();
  // Post runs after every batch submitted before it has been written with the configured durability.
  auto task = [failed, done = std::move(done)] { done(!failed->load(std::memory_order_acquire)); };
  if (!executor_->Post(task)) task();  // shutting down: report what we know now
  return true;
}

void DurableState::Maintain() {
  if (writable_.load(std::memory_order_acquire) || probing_.exchange(true)) return;
  WriteBatch b;
  b.Put(Fam::kMeta, kProbeKey, "probe");
  const bool accepted = executor_->Submit(std::move(b), [this](const storage::Status& st) {
    if (st.ok() && !writable_.exchange(true, std::memory_order_acq_rel))
      spdlog::info("storage: writes succeed again; accepting persistent messages");
    probing_.store(false, std::memory_order_release);
  });
  if (!accepted) probing_.store(false);
}

// ---- Loading ---------------------------------------------------------------------------------------------

storage::Result<LoadedState> DurableState::Load() {
  LoadedState out;
  const TimeBase tb = Now();
  WriteBatch cleanup;  // orphans and expired rows, written at the end
  auto snapshot = store_->GetSnapshot();
  storage::IteratorOptions iopts;
  iopts.snapshot = snapshot.get();

  // Bodies first: deliveries refer to them.
  struct LoadedBody {
    std::shared_ptr<Message> msg;
    uint32_t refs = 0;
  };
  std::unordered_map<uint64_t, LoadedBody> bodies;
  {
    auto it = store_->NewIterator(Fam::kMessages, iopts);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k = it->key();
      uint64_t id = 0;
      auto m = std::make_shared<Message>();
      if (!storage::GetU64(&k, &id) || !k.empty()) return Corrupt(Fam::kMessages, it->key(), "message key");
      if (!DecodeMessage(it->value(), tb, m.get())) return Corrupt(Fam::kMessages, it->key(), "message");
      bodies[id].msg = std::move(m);
      next_message_id_ = std::max(next_message_id_, id + 1);
    }
    if (!it->status().ok()) return it->status();
  }

  // Sessions, by client id; the other families are keyed Str(client id) + ..., in the same order.
  std::unordered_map<std::string, size_t> index;
  {
    auto it = store_->NewIterator(Fam::kSessions, iopts);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      SessionRecord r;
      if (!DecodeSession(it->value(), &r)) return Corrupt(Fam::kSessions, it->key(), "session");
      StoredSession s;
      s.client_id = std::string(it->key());
      s.expiry_interval = r.expiry_interval;
      s.username = std::move(r.username);
      s.disconnected_at_ms = r.disconnected_at_ms;
      index.emplace(s.client_id, out.sessions.size());
      out.sessions.push_back(std::move(s));
    }
    if (!it->status().ok()) return it->status();
  }
  // Walks a family keyed by Str(client id) + rest, calling fn(session, rest, value) for the rows of known
  // sessions; rows of unknown sessions, and rows fn calls orphans, are deleted.
  enum class Row { kKeep, kOrphan, kCorrupt };
  auto per_client = [&](Fam fam, auto&& fn) -> storage::Status {
    auto it = store_->NewIterator(fam, iopts);
    std::string cid;
    StoredSession* current = nullptr;
    std::string current_id;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      storage::KeyReader kr(it->key());
      if (!kr.Str(&cid)) return Corrupt(fam, it->key(), "key");
      if (!current || cid != current_id) {
        auto found = index.find(cid);
        current = found == index.end() ? nullptr : &out.sessions[found->second];
        current_id = cid;
      }
      const Row row = current ? fn(*current, kr.rest(), it->value()) : Row::kOrphan;
      if (row == Row::kCorrupt) return Corrupt(fam, it->key(), "row");
      if (row == Row::kOrphan) {
        cleanup.Delete(fam, it->key());
        ++out.orphans_removed;
      }
    }
    return it->status();
  };

  storage::Status st = per_client(Fam::kSubscriptions, [&](StoredSession& s, std::string_view filter, std::string_view v) {
    StoredSubscription sub;
    sub.filter = std::string(filter);
    if (filter.empty() || !DecodeSubscription(v, &sub.opts, &sub.sub_id)) return Row::kCorrupt;
    s.subscriptions.push_back(std::move(sub));
    return Row::kKeep;
  });
  if (!st.ok()) return st;

  // Deliveries refer to bodies by id; a missing body makes the row an orphan.
  st = per_client(Fam::kDeliveries, [&](StoredSession& s, std::string_view rest, std::string_view v) {
    uint64_t seq = 0;
    DeliveryRecord r;
    if (!storage::GetU64(&rest, &seq) || !rest.empty() || seq == 0 || !DecodeDelivery(v, &r)) return Row::kCorrupt;
    LoadedBody* body = nullptr;
    if (r.message_id) {
      auto b = bodies.find(r.message_id);
      if (b == bodies.end()) return Row::kOrphan;
      body = &b->second;
    }
    StoredDelivery d;
    d.seq = seq;
    d.qos = r.qos;
    d.retain = r.retain;
    d.sub_ids = std::move(r.sub_ids);
    d.shared_group = std::move(r.shared_group);
    if (body) {
      d.msg = body->msg;
      ++body->refs;
    }
    s.deliveries.push_back(std::move(d));
    ++out.deliveries;
    return Row::kKeep;
  });
  if (!st.ok()) return st;

  st = per_client(Fam::kIncomingQos2, [&](StoredSession& s, std::string_view rest, std::string_view) {
    uint16_t id = 0;
    if (!storage::GetU16(&rest, &id) || !rest.empty() || id == 0) return Row::kCorrupt;
    s.incoming_qos2.push_back(id);
    return Row::kKeep;
  });
  if (!st.ok()) return st;

  {
    auto it = store_->NewIterator(Fam::kWills, iopts);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto found = index.find(std::string(it->key()));
      if (found == index.end()) {
        cleanup.Delete(Fam::kWills, it->key());
        ++out.orphans_removed;
        continue;
      }
      mqtt::Will w;
      if (!DecodeWill(it->value(), &w)) return Corrupt(Fam::kWills, it->key(), "will");
      out.sessions[found->second].will = std::move(w);
    }
    if (!it->status().ok()) return it->status();
  }

  {
    auto it = store_->NewIterator(Fam::kRetained, iopts);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto m = std::make_shared<Message>();
      if (!DecodeMessage(it->value(), tb, m.get()) || m->topic != it->key())
        return Corrupt(Fam::kRetained, it->key(), "retained message");
      if (m->ExpiredAt(tb.steady_now)) {
        cleanup.Delete(Fam::kRetained, it->key());
        ++out.expired_removed;
        continue;
      }
      out.retained.push_back(std::move(m));
    }
    if (!it->status().ok()) return it->status();
  }

  // Reference counts as the rows say; bodies nobody references are garbage.
  for (auto& [id, b] : bodies) {
    if (b.refs == 0) {
      cleanup.Delete(Fam::kMessages, MessageKey(id));
      ++out.orphans_removed;
      continue;
    }
    Body& body = bodies_[b.msg.get()];
    body.keep = b.msg;
    body.id = id;
    body.refs = b.refs;
  }
  out.bodies = bodies_.size();
  snapshot.reset();

  if (!cleanup.empty()) {
    spdlog::warn("storage: removing {} orphaned rows and {} expired retained messages", out.orphans_removed,
                 out.expired_removed);
    if (auto ws = store_->Write(cleanup, storage::Sync::kSync); !ws.ok()) return ws;
  }
  return out;
}

}  // namespace parley::broker::persist
