#include "im/writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "im/files.h"
#include "im/ids.h"
#include "im/push.h"
#include "im/topics.h"
#include "im/writer_internal.h"

namespace parley::im {

using storage::WriteBatch;
using namespace internal;

Writer::Writer(Context& ctx, TaskQueue& strand) : ctx_(ctx), strand_(strand) {}

Status Writer::Start() {
  auto v = ctx_.store->Get(ctx_.fam(Fam::kMeta), kStampKey);
  if (!v.ok()) return v.status().ToBase();
  if (v.value()) {
    std::string_view in = *v.value();
    if (!storage::GetU64(&in, &last_stamp_)) return Status::Error("im.meta: undecodable stamp");
  }
  // Nothing is in flight yet: everything up to now is committed. (A cursor handed out before a restart
  // whose clock went backwards is then ahead of this; the reader answers such a cursor with a full sync.)
  last_stamp_ = std::max(last_stamp_, StampFromMillis(ctx_.clock.UnixMillis()));
  ctx_.committed_stamp.store(last_stamp_);
  return Status::Ok();
}

// ---- infrastructure -------------------------------------------------------------------------------------

uint64_t Writer::NextStamp() {
  last_stamp_ = std::max(StampFromMillis(ctx_.clock.UnixMillis()), last_stamp_ + 1);
  return last_stamp_;
}

Writer::ConvState* Writer::Conv(const std::string& id, storage::Status* err) {
  if (auto it = convs_.find(id); it != convs_.end()) return it->second.get();
  auto rec = ctx_.store->Get(ctx_.fam(Fam::kConvs), ConvKey(id));
  if (!rec.ok()) {
    *err = rec.status();
    return nullptr;
  }
  if (!rec.value()) return nullptr;
  auto c = std::make_unique<ConvState>();
  c->id = id;
  if (!c->rec.ParseFromString(*rec.value())) {
    *err = storage::Status::Corruption("im.convs: undecodable record of " + id);
    return nullptr;
  }
  {
    storage::IteratorOptions o;
    o.prefix = MembersPrefix(id);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMembers), o);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string user;
      st::MemberRecord m;
      if (!DecodeMemberUser(it->key(), &user) || !m.ParseFromArray(it->value().data(), it->value().size())) {
        *err = storage::Status::Corruption("im.members: undecodable row of " + id);
        return nullptr;
      }
      c->members.emplace(std::move(user), std::move(m));
    }
    if (!it->status().ok()) {
      *err = it->status();
      return nullptr;
    }
  }
  {
    storage::IteratorOptions o;
    o.prefix = MessagesPrefix(id);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMessages), o);
    it->SeekToLast();
    if (it->Valid()) {
      st::StoredMessage last;
      if (!last.ParseFromArray(it->value().data(), it->value().size())) {
        *err = storage::Status::Corruption("im.messages: undecodable newest entry of " + id);
        return nullptr;
      }
      c->max_seq = last.msg().seq();
      c->count = last.count_at();
    } else if (!it->status().ok()) {
      *err = it->status();
      return nullptr;
    }
  }
  ConvState* raw = c.get();
  convs_.emplace(id, std::move(c));
  stats_.cached_convs = convs_.size();
  return raw;
}

Writer::ConvState* Writer::WritableConv(const Reply& r, const std::string& conv_id, bool allow_dissolved,
                                        bool operator_may) {
  if (conv_id.empty()) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "conv_id is required");
    return nullptr;
  }
  storage::Status err;
  ConvState* c = Conv(conv_id, &err);
  if (!err.ok()) {
    AnswerStorageError(r, err);
    return nullptr;
  }
  if (!c) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_FOUND, "unknown conversation " + conv_id);
    return nullptr;
  }
  if (c->broken) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNAVAILABLE, "conversation recovering from a storage error", 1000);
    return nullptr;
  }
  if (creating_.count(conv_id)) {
    // Its creation is not stored yet (nobody has been told it exists, but a direct id can be computed): a
    // write now could outlive a creation that then fails, leaving entries of a conversation that is not there.
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNAVAILABLE, "conversation being created", 50);
    return nullptr;
  }
  if (!(operator_may && r.origin.operator_rights) && !c->members.count(r.origin.user)) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_MEMBER, "not a member of " + conv_id);
    return nullptr;
  }
  if (c->rec.dissolved() && !allow_dissolved) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_DISSOLVED, "the group was dissolved");
    return nullptr;
  }
  return c;
}

st::MemberRecord* Writer::MemberOf(ConvState& c, const std::string& user) {
  auto it = c.members.find(user);
  return it == c.members.end() ? nullptr : &it->second;
}

std::optional<st::StoredMessage> Writer::Entry(const ConvState& c, uint64_t seq, storage::Status* err) {
  if (auto it = pending_entries_.find({c.id, seq}); it != pending_entries_.end()) return it->second.first;
  auto v = ctx_.store->Get(ctx_.fam(Fam::kMessages), MessageKey(c.id, seq));
  if (!v.ok()) {
    *err = v.status();
    return std::nullopt;
  }
  if (!v.value()) return std::nullopt;
  st::StoredMessage m;
  if (!m.ParseFromString(*v.value())) {
    *err = storage::Status::Corruption("im.messages: undecodable entry " + c.id + ":" + std::to_string(seq));
    return std::nullopt;
  }
  return m;
}

void Writer::Commit(ConvState* c, WriteBatch b, std::vector<std::pair<uint64_t, st::StoredMessage>> entries,
                    Then then) {
  const uint64_t stamp = last_stamp_;
  b.Put(ctx_.fam(Fam::kMeta), kStampKey, U64Value(stamp));
  std::string conv_id = c ? c->id : std::string();
  std::vector<uint64_t> seqs;
  for (auto& [seq, msg] : entries) {
    auto& slot = pending_entries_[{conv_id, seq}];
    slot.first = std::move(msg);
    ++slot.second;
    seqs.push_back(seq);
  }
  if (c) ++c->inflight;
  ++inflight_;
  auto on_strand = [this, conv_id, seqs, then = std::move(then)](const storage::Status& s) {
    --inflight_;
    for (uint64_t seq : seqs) {
      auto it = pending_entries_.find({conv_id, seq});
      if (it != pending_entries_.end() && --it->second.second == 0) pending_entries_.erase(it);
    }
    if (!s.ok()) ++stats_.failed_writes;
    if (!conv_id.empty()) {
      auto it = convs_.find(conv_id);
      if (it != convs_.end()) {
        ConvState& cs = *it->second;
        --cs.inflight;
        if (!s.ok()) cs.broken = true;
        // The cache may hold seqs and counters the disk refused: forget it once nothing is in flight.
        if (cs.broken && cs.inflight == 0) {
          convs_.erase(it);
          spdlog::warn("im: conversation {} reloads from disk after a failed write", conv_id);
        }
      }
    }
    then(s);
  };
  auto done = [this, stamp, on_strand](const storage::Status& s) {
    if (s.ok()) {
      uint64_t prev = ctx_.committed_stamp.load();
      while (prev < stamp && !ctx_.committed_stamp.compare_exchange_weak(prev, stamp)) {
      }
    }
    strand_.Post([on_strand, s] { on_strand(s); });
  };
  if (!ctx_.executor->Submit(std::move(b), done)) done(storage::Status::Shutdown("storage is shutting down"));
}

bool Writer::RateLimited(const Reply& r) {
  const Options& o = ctx_.options;
  if (o.send_rate <= 0) return false;
  const SteadyTime now = ctx_.clock.Now();
  auto [it, fresh] = buckets_.try_emplace(r.origin.user);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = o.send_burst;
  } else {
    const double secs = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min<double>(o.send_burst, b.tokens + secs * o.send_rate);
  }
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return false;
  }
  const auto wait_ms = static_cast<uint32_t>((1 - b.tokens) / o.send_rate * 1000) + 1;
  ctx_.RespondError(r.origin, r.req_id, v1::ERR_RATE_LIMITED, "too many sends", wait_ms);
  return true;
}

bool Writer::Overloaded(const Reply& r) {
  if (ctx_.executor->queued_bytes() < kOverloadBytes) return false;
  ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNAVAILABLE, "storage is saturated", 200);
  return true;
}

void Writer::AnswerStorageError(const Reply& r, const storage::Status& s) {
  if (s.IsNoSpace() || s.code() == storage::Code::kShutdown) {
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNAVAILABLE, "cannot store now: " + s.ToString(), 5000);
  } else {
    spdlog::error("im: storage error: {}", s.ToString());
    ctx_.RespondError(r.origin, r.req_id, v1::ERR_INTERNAL, "storage error", 1000);
  }
}

st::StoredMessage Writer::AppendEntry(ConvState& c, v1::Message entry, uint64_t stamp, WriteBatch& b,
                                      const std::vector<std::string>& extra_inbox) {
  const uint64_t seq = ++c.max_seq;
  if (IsCountable(entry.type())) ++c.count;
  entry.set_conv_id(c.id);
  entry.set_seq(seq);
  entry.set_msg_id(MsgId(c.id, seq));
  entry.set_server_ts(ctx_.clock.UnixMillis());
  st::StoredMessage s;
  *s.mutable_msg() = std::move(entry);
  s.set_stamp(stamp);
  s.set_count_at(c.count);
  b.Put(ctx_.fam(Fam::kMessages), MessageKey(c.id, seq), s.SerializeAsString());
  if (!c.large(ctx_.options))
    for (const auto& [user, m] : c.members) PutInbox(user, c.id, stamp, b);
  for (const std::string& u : extra_inbox) PutInbox(u, c.id, stamp, b);
  ++stats_.events;
  return s;
}

void Writer::PutMember(ConvState& c, const std::string& user, WriteBatch& b) {
  auto it = c.members.find(user);
  if (it == c.members.end()) {
    b.Delete(ctx_.fam(Fam::kMembers), MemberKey(c.id, user));
  } else {
    b.Put(ctx_.fam(Fam::kMembers), MemberKey(c.id, user), it->second.SerializeAsString());
  }
}

void Writer::PutInbox(const std::string& user, const std::string& conv_id, uint64_t stamp, WriteBatch& b) {
  b.Put(ctx_.fam(Fam::kInbox), InboxKey(user, stamp), conv_id);
}

void Writer::Deliver(const ConvState& c, const v1::Message& entry, std::string_view except_device,
                     const std::vector<std::string>& extra) {
  v1::ServerFrame frame;
  *frame.mutable_event()->mutable_message() = entry;
  std::string cache[kFormatCount];
  // Only online members have devices to reach. The strand's own count of online users says who they are
  // without the online map's lock; walk whichever of the two sets is smaller (a 1,000-member group with 100
  // online, or a server with 100 users online and a large group).
  if (online_count_.size() < c.members.size()) {
    for (const auto& [user, n] : online_count_)
      if (c.members.count(user)) ctx_.PushEvent(user, frame, except_device, cache);
  } else {
    for (const auto& [user, m] : c.members)
      if (online_count_.count(user)) ctx_.PushEvent(user, frame, except_device, cache);
  }
  for (const std::string& u : extra)
    if (!c.members.count(u)) ctx_.PushEvent(u, frame, except_device, cache);
}

void Writer::FillSummary(ConvState& c, const std::string& user, v1::Conversation* out) {
  const st::MemberRecord* me = MemberOf(c, user);
  const st::MemberRecord* peer = nullptr;
  if (c.rec.type() == v1::CONV_DIRECT)
    for (const std::string& p : c.rec.peers())
      if (p != user) peer = MemberOf(c, p);
  storage::Status err;
  std::optional<st::StoredMessage> last = c.max_seq ? Entry(c, c.max_seq, &err) : std::nullopt;
  FillConversation(out, c.id, c.rec, c.max_seq, c.count, me, user, peer, last ? &last->msg() : nullptr);
}

void Writer::PushSummary(ConvState& c, const std::string& user, std::string_view except_device) {
  v1::ServerFrame frame;
  FillSummary(c, user, frame.mutable_event()->mutable_conversation());
  std::string cache[kFormatCount];
  ctx_.PushEvent(user, frame, except_device, cache);
}

v1::Ack Writer::AckFor(const st::StoredMessage& stored) {
  v1::Ack ack;
  ack.set_conv_id(stored.msg().conv_id());
  ack.set_seq(stored.msg().seq());
  ack.set_server_ts(stored.msg().server_ts());
  ack.set_msg_id(stored.msg().msg_id());
  return ack;
}

Writer::Then Writer::AckThenDeliver(const Reply& r, const v1::Ack& ack, const std::string& dedup_key,
                                    v1::Message entry) {
  return [this, r, ack, dedup_key, entry = std::move(entry)](const storage::Status& s) {
    if (!s.ok()) {
      AnswerStorageError(r, s);
      if (!dedup_key.empty()) FinishDedup(dedup_key, nullptr, &s);
      return;
    }
    v1::Response resp;
    resp.set_req_id(r.req_id);
    *resp.mutable_ack() = ack;
    ctx_.Respond(r.origin, resp);
    if (!dedup_key.empty()) FinishDedup(dedup_key, &ack, nullptr);
    storage::Status err;
    if (ConvState* c = Conv(ack.conv_id(), &err)) {
      Deliver(*c, entry, r.origin.device);
      QueuePushes(*c, entry);
    }
  };
}

// ---- dedup ----------------------------------------------------------------------------------------------

bool Writer::Deduplicated(const Reply& r, const std::string& user, const std::string& cmid) {
  const std::string key = user + '\0' + cmid;
  if (auto it = pending_dedup_.find(key); it != pending_dedup_.end()) {
    it->second.push_back(r);  // the same send is in flight: answer both when it lands
    ++stats_.duplicates;
    return true;
  }
  auto v = ctx_.store->Get(ctx_.fam(Fam::kDedup), DedupKey(user, cmid));
  if (!v.ok()) {
    AnswerStorageError(r, v.status());
    return true;
  }
  if (!v.value()) return false;
  st::DedupRecord d;
  if (!d.ParseFromString(*v.value())) return false;  // unreadable: treat as unseen (a new message)
  const int64_t age_ms = ctx_.clock.UnixMillis() - d.server_ts();
  if (age_ms > std::chrono::duration_cast<std::chrono::milliseconds>(ctx_.options.dedup_window).count())
    return false;
  v1::Response resp;
  resp.set_req_id(r.req_id);
  v1::Ack* ack = resp.mutable_ack();
  ack->set_conv_id(d.conv_id());
  ack->set_seq(d.seq());
  ack->set_server_ts(d.server_ts());
  ack->set_msg_id(d.msg_id());
  ack->set_duplicate(true);
  ++stats_.duplicates;
  ctx_.Respond(r.origin, resp);
  return true;
}

void Writer::PutDedup(const std::string& user, const std::string& cmid, const v1::Ack& ack, WriteBatch& b) {
  st::DedupRecord d;
  d.set_conv_id(ack.conv_id());
  d.set_seq(ack.seq());
  d.set_server_ts(ack.server_ts());
  d.set_msg_id(ack.msg_id());
  b.Put(ctx_.fam(Fam::kDedup), DedupKey(user, cmid), d.SerializeAsString());
  b.Put(ctx_.fam(Fam::kDedupTtl), DedupTtlKey(ack.server_ts(), user, cmid), "");
  pending_dedup_.try_emplace(user + '\0' + cmid);
}

void Writer::FinishDedup(const std::string& key, const v1::Ack* ack, const storage::Status* err) {
  auto it = pending_dedup_.find(key);
  if (it == pending_dedup_.end()) return;
  std::vector<Reply> waiters = std::move(it->second);
  pending_dedup_.erase(it);
  for (const Reply& w : waiters) {
    if (ack) {
      v1::Response resp;
      resp.set_req_id(w.req_id);
      *resp.mutable_ack() = *ack;
      resp.mutable_ack()->set_duplicate(true);
      ctx_.Respond(w.origin, resp);
    } else {
      AnswerStorageError(w, *err);
    }
  }
}

// ---- requests -------------------------------------------------------------------------------------------

namespace {

v1::MemberChange Change(v1::MemberChange::Kind kind,
                        const google::protobuf::RepeatedPtrField<std::string>& users = {}) {
  v1::MemberChange ch;
  ch.set_kind(kind);
  *ch.mutable_users() = users;
  return ch;
}

}  // namespace

void Writer::Handle(const Origin& from, v1::Request& req) {
  const Reply r{from, req.req_id()};
  switch (req.op_case()) {
    case v1::Request::kSend: return Send(r, *req.mutable_send());
    case v1::Request::kEdit: return Edit(r, *req.mutable_edit());
    case v1::Request::kRecall: return Recall(r, *req.mutable_recall());
    case v1::Request::kDeleteForMe: return DeleteForMe(r, req.delete_for_me());
    case v1::Request::kMarkRead: return MarkRead(r, req.mark_read());
    case v1::Request::kMarkDelivered: return MarkDelivered(r, req.mark_delivered());
    case v1::Request::kOpenDirect: return OpenDirect(r, req.open_direct());
    case v1::Request::kCreateGroup: return CreateGroup(r, *req.mutable_create_group());
    case v1::Request::kRenameGroup: {
      v1::MemberChange ch = Change(v1::MemberChange::RENAMED);
      ch.set_name(req.rename_group().name());
      return ChangeGroup(r, req.rename_group().conv_id(), std::move(ch));
    }
    case v1::Request::kAddMembers:
      return ChangeGroup(r, req.add_members().conv_id(), Change(v1::MemberChange::ADDED, req.add_members().users()));
    case v1::Request::kRemoveMembers:
      return ChangeGroup(r, req.remove_members().conv_id(),
                         Change(v1::MemberChange::REMOVED, req.remove_members().users()));
    case v1::Request::kLeave: return ChangeGroup(r, req.leave().conv_id(), Change(v1::MemberChange::LEFT));
    case v1::Request::kDissolve: return ChangeGroup(r, req.dissolve().conv_id(), Change(v1::MemberChange::DISSOLVED));
    case v1::Request::kSetRole: {
      v1::MemberChange ch = Change(v1::MemberChange::ROLE, req.set_role().users());
      ch.set_role(req.set_role().role());
      return ChangeGroup(r, req.set_role().conv_id(), std::move(ch));
    }
    case v1::Request::kTyping: return Typing(from, req.typing());
    case v1::Request::kRegisterPush: return RegisterPush(r, req.register_push());
    case v1::Request::kUnregisterPush: return UnregisterPush(r, req.unregister_push());
    case v1::Request::kPushSettings: return PushSettings(r, req.push_settings());
    case v1::Request::kMute: return Mute(r, req.mute());
    default:
      ctx_.RespondError(from, req.req_id(), v1::ERR_BAD_REQUEST, "not a write operation");
  }
}

void Writer::Send(const Reply& r, v1::SendReq& req) {
  const Options& o = ctx_.options;
  if (req.client_msg_id().empty() || req.client_msg_id().size() > kMaxClientMsgId)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "client_msg_id must be 1..64 bytes");
  if (req.type() == v1::MSG_TYPE_UNSPECIFIED) req.set_type(v1::MSG_TEXT);
  // A system message (docs/protocol.md): an operator's only; text only, sender "", into any conversation,
  // never unread, idempotent per conversation.
  const bool system = req.type() == v1::MSG_SYSTEM && r.origin.operator_rights;
  if (!IsCountable(req.type()) && !system)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "type must be MSG_TEXT, MSG_FILE or MSG_CUSTOM");
  if (system && (!req.body().empty() || !req.content_type().empty() || req.attachments_size() > 0 ||
                 req.mentions_size() > 0))
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "a system message carries text only");
  size_t bytes = req.text().size() + req.body().size() + req.content_type().size();
  for (const v1::Attachment& a : req.attachments()) bytes += a.ByteSizeLong();
  if (bytes > o.max_message_bytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE,
                             "message is " + std::to_string(bytes) + " bytes; the limit is " +
                                 std::to_string(o.max_message_bytes));
  if (static_cast<uint32_t>(req.mentions_size()) > o.max_mentions)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE, "too many mentions");
  if (static_cast<size_t>(req.attachments_size()) > kMaxAttachments)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE,
                             "at most " + std::to_string(kMaxAttachments) + " attachments per message");
  if ((req.type() == v1::MSG_TEXT || system) && req.text().empty())
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "a text message needs text");
  const std::string dedup_user = system ? std::string() : r.origin.user;
  const std::string dedup_id = system ? SystemDedupId(req.conv_id(), req.client_msg_id()) : req.client_msg_id();
  // A resend gets its first ack even if the sender was removed in between: dedup comes first.
  if (Deduplicated(r, dedup_user, dedup_id)) return;
  if (RateLimited(r) || Overloaded(r)) return;
  ConvState* c = WritableConv(r, req.conv_id(), /*allow_dissolved=*/false, /*operator_may=*/system);
  if (!c) return;
  if (req.reply_to() > c->max_seq)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "reply_to is past the newest seq");
  // Attachments naming an uploaded file: it must be complete and the sender's to share; its details come from
  // the file's record, and it stays pinned (safe from garbage collection) until the reference is durable.
  std::vector<std::string> pinned;
  if (ctx_.files && req.attachments_size() > 0) {
    FileError fe = ctx_.files->PinAttachments(r.origin.user, req.mutable_attachments(), &pinned);
    if (!fe.ok()) return ctx_.RespondError(r.origin, r.req_id, fe.code, fe.message);
    // The record's details (URL, sha256, type) made the attachments larger: the limit holds for what is stored.
    size_t filled = req.text().size() + req.body().size() + req.content_type().size();
    for (const v1::Attachment& a : req.attachments()) filled += a.ByteSizeLong();
    if (filled > o.max_message_bytes) {
      ctx_.files->Unpin(pinned);
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE,
                               "message is " + std::to_string(filled) + " bytes with its attachments' details; the "
                               "limit is " + std::to_string(o.max_message_bytes));
    }
  }

  const uint64_t stamp = NextStamp();
  v1::Message m;
  m.set_sender(system ? std::string() : r.origin.user);
  m.set_sender_device(system ? std::string() : r.origin.device);
  m.set_client_msg_id(req.client_msg_id());
  m.set_type(req.type());
  m.set_text(std::move(*req.mutable_text()));
  m.set_body(std::move(*req.mutable_body()));
  m.set_content_type(std::move(*req.mutable_content_type()));
  std::set<std::string> mentioned(req.mentions().begin(), req.mentions().end());
  for (const std::string& u : mentioned) m.add_mentions(u);
  m.set_reply_to(req.reply_to());
  *m.mutable_attachments() = std::move(*req.mutable_attachments());

  WriteBatch b;
  st::StoredMessage stored = AppendEntry(*c, std::move(m), stamp, b);
  const uint64_t seq = stored.msg().seq();
  PutFileRefs(stored.msg(), b);
  // Sending reads the conversation up to the new message: your own messages are never unread. (A system
  // message has no sender among the members.)
  if (!system) {
    st::MemberRecord& me = c->members.at(r.origin.user);
    me.set_read_seq(seq);
    me.set_read_count(c->count);
    me.clear_mentions();
    me.clear_hidden_unread();
    PutMember(*c, r.origin.user, b);
  }
  for (const std::string& u : mentioned) {
    st::MemberRecord* mm = u == r.origin.user ? nullptr : MemberOf(*c, u);
    if (!mm) continue;
    mm->add_mentions(seq);
    PutMember(*c, u, b);
  }
  const v1::Ack ack = AckFor(stored);
  PutDedup(dedup_user, dedup_id, ack, b);
  ++stats_.sends;

  const std::string key = dedup_user + '\0' + dedup_id;
  v1::Message entry = stored.msg();
  Then then = AckThenDeliver(r, ack, key, std::move(entry));
  if (!pinned.empty())
    then = [this, pinned = std::move(pinned), then = std::move(then)](const storage::Status& s) {
      then(s);
      ctx_.files->Unpin(pinned);
    };
  Commit(c, std::move(b), {{seq, std::move(stored)}}, std::move(then));
}

void Writer::Edit(const Reply& r, v1::EditReq& req) {
  const Options& o = ctx_.options;
  if (req.seq() == 0) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "seq is required");
  if (req.client_msg_id().size() > kMaxClientMsgId)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "client_msg_id must be at most 64 bytes");
  if (req.text().size() + req.body().size() + req.content_type().size() > o.max_message_bytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE, "edit over max_message_bytes");
  if (!req.client_msg_id().empty() && Deduplicated(r, r.origin.user, req.client_msg_id())) return;
  if (RateLimited(r) || Overloaded(r)) return;
  ConvState* c = WritableConv(r, req.conv_id());
  if (!c) return;
  const st::MemberRecord& me = c->members.at(r.origin.user);
  storage::Status err;
  std::optional<st::StoredMessage> target =
      req.seq() >= VisibleFrom(c->rec, me) ? Entry(*c, req.seq(), &err) : std::nullopt;
  if (!err.ok()) return AnswerStorageError(r, err);
  if (!target) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_FOUND, "no such message");
  v1::Message& t = *target->mutable_msg();
  if (t.sender() != r.origin.user)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_FORBIDDEN, "only the sender may edit a message");
  if (!IsCountable(t.type()) || t.recalled())
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_CONFLICT, "this entry cannot be edited");
  const int64_t now = ctx_.clock.UnixMillis();
  if (now - t.server_ts() > std::chrono::duration_cast<std::chrono::milliseconds>(o.edit_window).count())
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_WINDOW_EXPIRED, "the edit window has passed");
  if (t.type() == v1::MSG_TEXT && req.text().empty())
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "a text message needs text");

  const uint64_t stamp = NextStamp();
  v1::Version* v = t.add_versions();
  v->set_version(t.version());
  v->set_ts(now);
  v->set_text(t.text());
  v->set_body(t.body());
  v->set_content_type(t.content_type());
  if (static_cast<uint32_t>(t.versions_size()) > o.max_versions)
    t.mutable_versions()->DeleteSubrange(0, t.versions_size() - static_cast<int>(o.max_versions));
  t.set_text(req.text());
  t.set_body(req.body());
  t.set_content_type(req.content_type());
  t.set_edited(true);
  t.set_version(t.version() + 1);
  t.set_edited_ts(now);
  target->set_stamp(stamp);
  target->add_edit_seqs(c->max_seq + 1);  // the MSG_EDIT entry appended below

  WriteBatch b;
  b.Put(ctx_.fam(Fam::kMessages), MessageKey(c->id, t.seq()), target->SerializeAsString());
  v1::Message ev;
  ev.set_type(v1::MSG_EDIT);
  ev.set_sender(r.origin.user);
  ev.set_sender_device(r.origin.device);
  ev.set_client_msg_id(req.client_msg_id());
  ev.set_target_seq(t.seq());
  ev.set_text(std::move(*req.mutable_text()));
  ev.set_body(std::move(*req.mutable_body()));
  ev.set_content_type(std::move(*req.mutable_content_type()));
  ev.set_version(t.version());
  ev.set_edited_ts(now);
  st::StoredMessage stored = AppendEntry(*c, std::move(ev), stamp, b);
  const v1::Ack ack = AckFor(stored);
  std::string key;
  if (!req.client_msg_id().empty()) {
    PutDedup(r.origin.user, req.client_msg_id(), ack, b);
    key = r.origin.user + '\0' + req.client_msg_id();
  }
  v1::Message entry = stored.msg();
  const uint64_t tseq = t.seq();
  Commit(c, std::move(b), {{tseq, std::move(*target)}, {ack.seq(), std::move(stored)}},
         AckThenDeliver(r, ack, key, std::move(entry)));
}

void Writer::Recall(const Reply& r, v1::RecallReq& req) {
  const Options& o = ctx_.options;
  if (req.seq() == 0) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "seq is required");
  if (req.client_msg_id().size() > kMaxClientMsgId)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "client_msg_id must be at most 64 bytes");
  if (!req.client_msg_id().empty() && Deduplicated(r, r.origin.user, req.client_msg_id())) return;
  if (RateLimited(r) || Overloaded(r)) return;
  ConvState* c = WritableConv(r, req.conv_id());
  if (!c) return;
  const st::MemberRecord& me = c->members.at(r.origin.user);
  storage::Status err;
  std::optional<st::StoredMessage> target =
      req.seq() >= VisibleFrom(c->rec, me) ? Entry(*c, req.seq(), &err) : std::nullopt;
  if (!err.ok()) return AnswerStorageError(r, err);
  if (!target) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_FOUND, "no such message");
  v1::Message& t = *target->mutable_msg();
  if (!IsCountable(t.type()) || t.recalled())
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_CONFLICT, "this entry cannot be recalled");
  const int64_t now = ctx_.clock.UnixMillis();
  const bool group_admin = c->rec.type() == v1::CONV_GROUP && IsAdmin(me);
  if (!group_admin) {
    if (t.sender() != r.origin.user)
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_FORBIDDEN, "only the sender or a group admin may recall");
    if (now - t.server_ts() > std::chrono::duration_cast<std::chrono::milliseconds>(o.recall_window).count())
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_WINDOW_EXPIRED, "the recall window has passed");
  }

  const uint64_t stamp = NextStamp();
  // Recalled for everyone: the content goes, from history and from the kept versions alike, and so do the
  // marks of its edits (a recalled message shows only that it was recalled).
  t.set_recalled(true);
  t.set_recalled_by(r.origin.user);
  t.clear_edited();
  t.clear_version();
  t.clear_edited_ts();
  t.clear_text();
  t.clear_body();
  t.clear_content_type();
  t.clear_mentions();
  t.clear_versions();
  target->set_stamp(stamp);
  WriteBatch b;
  DropFileRefs(*target, b);  // before its attachments are cleared below
  t.clear_attachments();
  b.Put(ctx_.fam(Fam::kMessages), MessageKey(c->id, t.seq()), target->SerializeAsString());
  // ...and from the MSG_EDIT entries that carried its later contents.
  std::vector<std::pair<uint64_t, st::StoredMessage>> scrubbed;
  for (uint64_t es : target->edit_seqs()) {
    std::optional<st::StoredMessage> e = Entry(*c, es, &err);
    if (!err.ok()) return AnswerStorageError(r, err);
    if (!e || e->msg().target_seq() != t.seq()) continue;  // retention took it, or not ours
    v1::Message& em = *e->mutable_msg();
    em.clear_text();
    em.clear_body();
    em.clear_content_type();
    em.clear_version();
    em.clear_edited_ts();
    em.set_recalled(true);
    em.set_recalled_by(r.origin.user);
    e->set_stamp(stamp);
    b.Put(ctx_.fam(Fam::kMessages), MessageKey(c->id, es), e->SerializeAsString());
    scrubbed.emplace_back(es, std::move(*e));
  }
  auto* rec = c->rec.mutable_recalled();
  rec->Add(t.seq());
  std::sort(rec->begin(), rec->end());
  b.Put(ctx_.fam(Fam::kConvs), ConvKey(c->id), c->rec.SerializeAsString());

  v1::Message ev;
  ev.set_type(v1::MSG_RECALL);
  ev.set_sender(r.origin.user);
  ev.set_sender_device(r.origin.device);
  ev.set_client_msg_id(req.client_msg_id());
  ev.set_target_seq(t.seq());
  st::StoredMessage stored = AppendEntry(*c, std::move(ev), stamp, b);
  const v1::Ack ack = AckFor(stored);
  std::string key;
  if (!req.client_msg_id().empty()) {
    PutDedup(r.origin.user, req.client_msg_id(), ack, b);
    key = r.origin.user + '\0' + req.client_msg_id();
  }
  v1::Message entry = stored.msg();
  const uint64_t tseq = t.seq();
  scrubbed.emplace_back(tseq, std::move(*target));
  scrubbed.emplace_back(ack.seq(), std::move(stored));
  Commit(c, std::move(b), std::move(scrubbed),
         AckThenDeliver(r, ack, key, std::move(entry)));
}

void Writer::DeleteForMe(const Reply& r, const v1::DeleteForMeReq& req) {
  if (req.seqs_size() == 0 || static_cast<size_t>(req.seqs_size()) > kMaxSeqsPerRequest)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "seqs must hold 1..100 entries");
  if (RateLimited(r) || Overloaded(r)) return;
  ConvState* c = WritableConv(r, req.conv_id(), /*allow_dissolved=*/true);
  if (!c) return;
  st::MemberRecord& me = c->members.at(r.origin.user);
  const uint64_t stamp = NextStamp();
  WriteBatch b;
  std::set<uint64_t> seqs(req.seqs().begin(), req.seqs().end());
  v1::ServerFrame frame;
  v1::Hidden* hidden = frame.mutable_event()->mutable_hidden();
  hidden->set_conv_id(c->id);
  for (uint64_t seq : seqs) {
    if (seq < VisibleFrom(c->rec, me) || seq > c->max_seq) continue;
    storage::Status err;
    std::optional<st::StoredMessage> e = Entry(*c, seq, &err);
    if (!err.ok()) return AnswerStorageError(r, err);
    // Only messages: edit, recall and membership entries carry changes that every device of the user must
    // see (a device that missed the live event learns of a recall only through its entry).
    if (!e || !(IsCountable(e->msg().type()) || e->msg().type() == v1::MSG_SYSTEM)) continue;
    b.Put(ctx_.fam(Fam::kHidden), HiddenKey(r.origin.user, c->id, seq), U64Value(stamp));
    hidden->add_seqs(seq);
    const bool counted = IsCountable(e->msg().type()) && e->msg().sender() != r.origin.user && seq > me.read_seq();
    if (counted && std::find(me.hidden_unread().begin(), me.hidden_unread().end(), seq) == me.hidden_unread().end())
      me.add_hidden_unread(seq);
  }
  PutMember(*c, r.origin.user, b);
  PutInbox(r.origin.user, c->id, stamp, b);
  const std::string user = r.origin.user;
  if (hidden->seqs_size() == 0) {  // nothing of it is (visibly) there: nothing to write or announce
    v1::Response resp;
    resp.set_req_id(r.req_id);
    return ctx_.Respond(r.origin, resp);
  }
  Commit(c, std::move(b), {}, [this, r, frame, user](const storage::Status& s) {
    if (!s.ok()) return AnswerStorageError(r, s);
    v1::Response resp;
    resp.set_req_id(r.req_id);
    ctx_.Respond(r.origin, resp);
    std::string cache[kFormatCount];
    ctx_.PushEvent(user, frame, r.origin.device, cache);
  });
}

void Writer::MarkRead(const Reply& r, const v1::MarkReadReq& req) {
  ConvState* c = WritableConv(r, req.conv_id(), /*allow_dissolved=*/true);
  if (!c) return;
  st::MemberRecord& me = c->members.at(r.origin.user);
  const uint64_t seq = std::min(req.seq(), c->max_seq);
  auto answer = [this](const Reply& r, ConvState& c, const std::string& user) {
    const st::MemberRecord& m = c.members.at(user);
    v1::Response resp;
    resp.set_req_id(r.req_id);
    v1::ReadState* rs = resp.mutable_read();
    rs->set_conv_id(c.id);
    rs->set_read_seq(m.read_seq());
    rs->set_recv_seq(m.recv_seq());
    const UnreadCounts u = ComputeUnread(c.rec, c.count, m);
    rs->set_unread(u.unread);
    rs->set_mentions(u.mentions);
    return resp;
  };
  if (seq <= me.read_seq()) {
    v1::Response resp = answer(r, *c, r.origin.user);
    return ctx_.Respond(r.origin, resp);
  }
  uint64_t count_at;
  if (seq < c->rec.min_seq()) {
    count_at = c->rec.min_count();
  } else {
    storage::Status err;
    std::optional<st::StoredMessage> e = Entry(*c, seq, &err);
    if (!err.ok()) return AnswerStorageError(r, err);
    if (!e) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_INTERNAL, "entry missing from the stream");
    count_at = e->count_at();
  }
  const uint64_t stamp = NextStamp();
  me.set_read_seq(seq);
  me.set_read_count(count_at);
  if (me.recv_seq() < seq) me.set_recv_seq(seq);
  TrimUpTo(me.mutable_mentions(), seq);
  TrimUpTo(me.mutable_hidden_unread(), seq);
  WriteBatch b;
  PutMember(*c, r.origin.user, b);
  PutInbox(r.origin.user, c->id, stamp, b);
  const bool direct = c->rec.type() == v1::CONV_DIRECT;
  const bool receipts = direct || c->members.size() <= ctx_.options.receipts_max_members;
  if (direct)
    for (const std::string& p : c->rec.peers())
      if (p != r.origin.user) PutInbox(p, c->id, stamp, b);  // their summary shows peer_read_seq
  const std::string conv_id = c->id;
  Commit(c, std::move(b), {}, [this, r, conv_id, seq, receipts, answer](const storage::Status& s) {
    if (!s.ok()) return AnswerStorageError(r, s);
    storage::Status err;
    ConvState* c = Conv(conv_id, &err);
    if (!c || !c->members.count(r.origin.user)) {
      v1::Response resp;
      resp.set_req_id(r.req_id);
      return ctx_.Respond(r.origin, resp);
    }
    v1::Response resp = answer(r, *c, r.origin.user);
    v1::ServerFrame own;
    *own.mutable_event()->mutable_read() = resp.read();
    ctx_.Respond(r.origin, resp);
    std::string cache[kFormatCount];
    ctx_.PushEvent(r.origin.user, own, r.origin.device, cache);
    if (!receipts) return;
    v1::ServerFrame frame;
    v1::Receipt* rc = frame.mutable_event()->mutable_receipt();
    rc->set_conv_id(conv_id);
    rc->set_user(r.origin.user);
    rc->set_read_seq(seq);
    std::string cache2[kFormatCount];
    for (const auto& [user, m] : c->members)
      if (user != r.origin.user) ctx_.PushEvent(user, frame, "", cache2);
  });
}

void Writer::MarkDelivered(const Reply& r, const v1::MarkDeliveredReq& req) {
  ConvState* c = WritableConv(r, req.conv_id(), /*allow_dissolved=*/true);
  if (!c) return;
  st::MemberRecord& me = c->members.at(r.origin.user);
  const uint64_t seq = std::min(req.seq(), c->max_seq);
  auto answer = [this, &r](ConvState& c, const st::MemberRecord& m) {
    v1::Response resp;
    resp.set_req_id(r.req_id);
    v1::ReadState* rs = resp.mutable_read();
    rs->set_conv_id(c.id);
    rs->set_read_seq(m.read_seq());
    rs->set_recv_seq(m.recv_seq());
    const UnreadCounts u = ComputeUnread(c.rec, c.count, m);
    rs->set_unread(u.unread);
    rs->set_mentions(u.mentions);
    return resp;
  };
  if (seq <= me.recv_seq()) {
    v1::Response resp = answer(*c, me);
    return ctx_.Respond(r.origin, resp);
  }
  const uint64_t stamp = NextStamp();
  me.set_recv_seq(seq);
  WriteBatch b;
  PutMember(*c, r.origin.user, b);
  std::string peer;
  if (c->rec.type() == v1::CONV_DIRECT)
    for (const std::string& p : c->rec.peers())
      if (p != r.origin.user) peer = p;
  if (!peer.empty()) PutInbox(peer, c->id, stamp, b);
  v1::Response resp = answer(*c, me);
  const std::string conv_id = c->id;
  Commit(c, std::move(b), {}, [this, r, resp, peer, conv_id, seq](const storage::Status& s) mutable {
    if (!s.ok()) return AnswerStorageError(r, s);
    ctx_.Respond(r.origin, resp);
    if (peer.empty()) return;
    v1::ServerFrame frame;
    v1::Receipt* rc = frame.mutable_event()->mutable_receipt();
    rc->set_conv_id(conv_id);
    rc->set_user(r.origin.user);
    rc->set_recv_seq(seq);
    std::string cache[kFormatCount];
    ctx_.PushEvent(peer, frame, "", cache);
  });
}

}  // namespace parley::im
