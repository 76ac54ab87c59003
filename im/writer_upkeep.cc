// The writer's ephemeral and periodic work (writer.h): typing, devices and presence, sweeps.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "im/ids.h"
#include "im/writer.h"
#include "im/writer_internal.h"

namespace parley::im {

using storage::WriteBatch;
using namespace internal;

void Writer::Typing(const Origin& from, const v1::TypingReq& req) {
  if (from.done) from.done->Complete(0);  // never answered; QoS 1/2 typing is acknowledged at once
  storage::Status err;
  ConvState* c = req.conv_id().empty() ? nullptr : Conv(req.conv_id(), &err);
  if (!c || c->broken || c->rec.dissolved() || !c->members.count(from.user)) return;
  if (c->members.size() > ctx_.options.typing_max_members) return;
  const SteadyTime now = ctx_.clock.Now();
  auto [it, fresh] = typing_last_.try_emplace(from.user + '\0' + c->id, now);
  if (!fresh) {
    if (now - it->second < ctx_.options.typing_interval) return;  // throttled
    it->second = now;
  }
  v1::ServerFrame frame;
  frame.mutable_event()->mutable_typing()->set_conv_id(c->id);
  frame.mutable_event()->mutable_typing()->set_user(from.user);
  std::string cache[kFormatCount];
  for (const auto& [user, m] : c->members)
    if (user != from.user) ctx_.PushEvent(user, frame, "", cache, /*qos=*/0);
}

// ---- devices and presence -------------------------------------------------------------------------------

void Writer::DeviceConnected(const std::string& user, const std::string& client_id) {
  auto [it, fresh] = devices_.try_emplace(client_id);
  Device& d = it->second;
  if (!fresh && d.user != user) {
    // Another user takes the client id over (the broker kicks the old connection; its disconnect may be
    // reported after this): the old user's device is gone now, and nothing of theirs may reach the new one.
    if (d.connections > 0) DeviceGone(d.user, client_id);
    d = Device{};
  }
  if (d.user.empty()) {
    auto v = ctx_.store->Get(ctx_.fam(Fam::kDevices), client_id);
    st::DeviceRecord rec;
    if (v.ok() && v.value() && rec.ParseFromString(*v.value()) && rec.user() == user) d.formats = rec.formats();
    d.user = user;
  }
  if (d.connections++ > 0) return;
  ctx_.SetOnline(user, OnlineDevice{client_id, d.formats});
  ++online_count_[user];
  going_offline_.erase(user);
  if (announced_online_.insert(user).second) AnnouncePresence(user, true, ctx_.clock.UnixMillis());
}

void Writer::DeviceDisconnected(const std::string& user, const std::string& client_id) {
  auto it = devices_.find(client_id);
  // A different user: the connection of a user whose client id was taken over (already handled).
  if (it == devices_.end() || it->second.user != user || it->second.connections == 0 ||
      --it->second.connections > 0)
    return;
  DeviceGone(user, client_id);
}

void Writer::DeviceGone(const std::string& user, const std::string& client_id) {
  ctx_.SetOffline(user, client_id);
  if (--online_count_[user] <= 0) {
    online_count_.erase(user);
    going_offline_[user] = ctx_.clock.Now() + ctx_.options.presence_grace;
  }
}

void Writer::Subscription(const std::string& user, const std::string& client_id, Format f, bool added) {
  Device& d = devices_[client_id];
  if (d.user != user) {
    if (d.connections > 0) DeviceGone(d.user, client_id);
    d = Device{};
    d.user = user;
  }
  const uint32_t before = d.formats;
  if (added) {
    d.formats |= 1u << static_cast<int>(f);
  } else {
    d.formats &= ~(1u << static_cast<int>(f));
  }
  if (d.connections > 0) ctx_.SetOnline(user, OnlineDevice{client_id, d.formats});
  if (d.formats == before) return;
  st::DeviceRecord rec;
  rec.set_user(user);
  rec.set_formats(d.formats);
  WriteBatch b;
  b.Put(ctx_.fam(Fam::kDevices), client_id, rec.SerializeAsString());
  Commit(nullptr, std::move(b), {}, [](const storage::Status&) {});
}

void Writer::SetDeviceCursor(const std::string& client_id, uint64_t cursor) {
  auto it = devices_.find(client_id);
  if (it == devices_.end()) return;
  st::DeviceRecord rec;
  rec.set_user(it->second.user);
  rec.set_formats(it->second.formats);
  rec.set_cursor(cursor);
  rec.set_last_seen(ctx_.clock.UnixMillis());
  WriteBatch b;
  b.Put(ctx_.fam(Fam::kDevices), client_id, rec.SerializeAsString());
  Commit(nullptr, std::move(b), {}, [](const storage::Status&) {});
}

void Writer::AnnouncePresence(const std::string& user, bool online, int64_t last_seen) {
  // Presence goes to direct peers only: a 10,000-member group must not hear every member come and go (they
  // can ask with PresenceReq).
  storage::IteratorOptions o;
  o.prefix = UserPrefix(user);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kUserConvs), o);
  v1::ServerFrame frame;
  v1::Presence* p = frame.mutable_event()->mutable_presence();
  p->set_user(user);
  p->set_online(online);
  p->set_last_seen(last_seen);
  std::string cache[kFormatCount];
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string conv;
    if (!DecodeUserConv(it->key(), &conv) || !IsDirectConvId(conv)) continue;
    storage::Status err;
    ConvState* c = Conv(conv, &err);
    if (!c) continue;
    for (const std::string& peer : c->rec.peers())
      if (peer != user) ctx_.PushEvent(peer, frame, "", cache, /*qos=*/0);
  }
}

void Writer::Tick() {
  const SteadyTime now = ctx_.clock.Now();
  // With nothing in flight every stamp allocated so far is committed, and every later one will be larger:
  // move the watermark up to now, so a sync on a quiet server hands out a current cursor (an old one would
  // fall behind inbox_retention and force full syncs).
  if (inflight_ == 0) {
    const uint64_t stamp = NextStamp();
    uint64_t prev = ctx_.committed_stamp.load();
    while (prev < stamp && !ctx_.committed_stamp.compare_exchange_weak(prev, stamp)) {
    }
  }
  for (auto it = going_offline_.begin(); it != going_offline_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const std::string user = it->first;
    it = going_offline_.erase(it);
    announced_online_.erase(user);
    const int64_t ts = ctx_.clock.UnixMillis();
    st::UserRecord rec;
    rec.set_last_seen(ts);
    WriteBatch b;
    b.Put(ctx_.fam(Fam::kUsers), user, rec.SerializeAsString());
    // Announced once stored, so a presence query right after the event sees the same last_seen.
    Commit(nullptr, std::move(b), {}, [this, user, ts](const storage::Status&) {
      if (!announced_online_.count(user)) AnnouncePresence(user, false, ts);
    });
  }
  // Typing throttle entries older than the interval carry no information.
  if (typing_last_.size() > 10'000) {
    for (auto it = typing_last_.begin(); it != typing_last_.end();)
      it = now - it->second >= ctx_.options.typing_interval ? typing_last_.erase(it) : std::next(it);
  }
  if (now >= next_sweep_) {
    next_sweep_ = now + ctx_.options.sweep_interval;
    Sweep();
  }
}

void Writer::Sweep() {
  const Options& o = ctx_.options;
  const int64_t now_ms = ctx_.clock.UnixMillis();
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  WriteBatch b;
  // Dedup rows past the window, oldest first, through their expiry index (always from its start: what is
  // there is what has not expired yet, or the next batch of what has).
  {
    const int64_t cutoff = now_ms - duration_cast<milliseconds>(o.dedup_window).count();
    storage::IteratorOptions io;
    io.upper_bound = DedupTtlKey(cutoff, "", "");
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kDedupTtl), io);
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid() && n < kSweepBatch; it->Next(), ++n) {
      int64_t ts;
      std::string user, cmid;
      b.Delete(ctx_.fam(Fam::kDedupTtl), it->key());
      if (!DecodeDedupTtl(it->key(), &ts, &user, &cmid)) continue;
      auto v = ctx_.store->Get(ctx_.fam(Fam::kDedup), DedupKey(user, cmid));
      st::DedupRecord d;
      if (v.ok() && v.value() && d.ParseFromString(*v.value()) && d.server_ts() == ts)
        b.Delete(ctx_.fam(Fam::kDedup), DedupKey(user, cmid));
    }
  }
  // Inbox pointers older than inbox_retention (a device that old gets a full sync instead). Keyed by user, so
  // each sweep goes on from where the last one stopped and wraps around.
  {
    const uint64_t cutoff = StampFromMillis(now_ms - duration_cast<milliseconds>(o.inbox_retention).count());
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kInbox));
    size_t n = 0;
    for (it->Seek(inbox_sweep_from_); it->Valid() && n < kSweepBatch; it->Next(), ++n) {
      uint64_t stamp;
      if (DecodeInboxStamp(it->key(), &stamp) && stamp < cutoff) b.Delete(ctx_.fam(Fam::kInbox), it->key());
    }
    inbox_sweep_from_ = it->Valid() ? std::string(it->key()) : std::string();
  }
  if (b.Count() > 0) {
    Commit(nullptr, std::move(b), {}, [](const storage::Status& s) {
      if (!s.ok()) spdlog::warn("im: sweep not written: {}", s.ToString());
    });
  }
  if (o.retention_max_count || o.retention_max_age.count()) SweepRetention(now_ms);
}

// Retention: per conversation, drop the oldest entries past max_count or older than max_age, always keeping
// the newest entry (it carries the stream's max seq and count). kSweepBatch conversations per sweep, going on
// from where the last one stopped; each conversation is its own batch, committed like any other write to it
// (a failure marks it broken and it reloads).
void Writer::SweepRetention(int64_t now_ms) {
  const Options& o = ctx_.options;
  const int64_t cutoff =
      now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(o.retention_max_age).count();
  std::vector<std::string> ids;
  {
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kConvs));
    for (it->Seek(ConvKey(retention_sweep_from_)); it->Valid() && ids.size() < kSweepBatch; it->Next()) {
      std::string_view k = it->key();
      std::string id;
      if (storage::GetOrderedString(&k, &id)) ids.push_back(std::move(id));
    }
    retention_sweep_from_ = it->Valid() && !ids.empty() ? ids.back() + '\0' : std::string();
  }
  for (const std::string& id : ids) {
    storage::Status err;
    ConvState* c = Conv(id, &err);
    if (!c || c->broken || c->max_seq == 0) continue;
    const uint64_t from = std::max<uint64_t>(c->rec.min_seq(), 1);
    uint64_t floor = from;
    if (o.retention_max_count && c->max_seq > o.retention_max_count)
      floor = std::max(floor, c->max_seq - o.retention_max_count + 1);
    if (o.retention_max_age.count()) {
      storage::IteratorOptions io;
      io.prefix = MessagesPrefix(id);
      auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMessages), io);
      size_t n = 0;
      for (it->Seek(MessageKey(id, floor)); it->Valid() && n < kSweepBatch; it->Next(), ++n) {
        st::StoredMessage m;
        if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
            m.msg().server_ts() >= cutoff)
          break;
        floor = m.msg().seq() + 1;
      }
    }
    floor = std::min(floor, c->max_seq);
    // The removed entries are read for their file references: at most kSweepBatch per conversation and sweep
    // (the rest at the next sweep).
    floor = std::min(floor, from + kSweepBatch);
    if (floor <= from) continue;
    std::optional<st::StoredMessage> below = Entry(*c, floor - 1, &err);
    if (!err.ok()) continue;
    c->rec.set_min_seq(floor);
    c->rec.set_min_count(below ? below->count_at() : c->rec.min_count());
    auto* rec = c->rec.mutable_recalled();
    rec->erase(std::remove_if(rec->begin(), rec->end(), [&](uint64_t s) { return s < floor; }), rec->end());
    WriteBatch b;
    {  // the removed messages' file references go with them (DropFileRefs)
      storage::IteratorOptions io;
      io.prefix = MessagesPrefix(id);
      auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMessages), io);
      for (it->Seek(MessageKey(id, from)); it->Valid(); it->Next()) {
        st::StoredMessage m;
        if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
        if (m.msg().seq() >= floor) break;
        DropFileRefs(m, b);
      }
    }
    b.DeleteRange(ctx_.fam(Fam::kMessages), MessageKey(id, from), MessageKey(id, floor));
    b.Put(ctx_.fam(Fam::kConvs), ConvKey(id), c->rec.SerializeAsString());
    Commit(c, std::move(b), {}, [id](const storage::Status& s) {
      if (!s.ok()) spdlog::warn("im: retention of {} not written: {}", id, s.ToString());
    });
  }
}

}  // namespace parley::im
