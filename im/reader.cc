#include "im/reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_set>
#include <vector>

#include "im/files.h"
#include "im/ids.h"

namespace parley::im {

namespace {

constexpr uint32_t kDefaultPerConv = 20, kMaxPerConv = 200;
constexpr uint32_t kDefaultConvs = 50, kMaxConvs = 200;
constexpr uint32_t kDefaultPage = 50, kMaxPage = 200;
constexpr uint64_t kMaxRange = 200;
constexpr int kMaxPresenceUsers = 100;
// Answers stay well under the broker's default maximum packet size (1 MiB): a page or a sync stops growing
// past these many bytes and says has_more instead.
constexpr size_t kPageBudgetBytes = 256 * 1024;
constexpr size_t kSyncBudgetBytes = 512 * 1024;

uint32_t Clamp(uint32_t v, uint32_t def, uint32_t max) { return v == 0 ? def : std::min(v, max); }

}  // namespace

void Reader::AnswerStorageError(const Origin& from, const std::string& req_id, const storage::Status& s) {
  spdlog::error("im: read failed: {}", s.ToString());
  ctx_.RespondError(from, req_id, v1::ERR_INTERNAL, "storage error", 1000);
}

bool Reader::ReadConv(const storage::Snapshot* snap, const std::string& id, ConvRead* out, storage::Status* err) {
  auto v = ctx_.store->Get(ctx_.fam(Fam::kConvs), ConvKey(id), snap);
  if (!v.ok()) {
    *err = v.status();
    return false;
  }
  if (!v.value()) return false;
  if (!out->rec.ParseFromString(*v.value())) {
    *err = storage::Status::Corruption("im.convs: undecodable record of " + id);
    return false;
  }
  storage::IteratorOptions o;
  o.snapshot = snap;
  o.prefix = MessagesPrefix(id);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMessages), o);
  it->SeekToLast();
  if (it->Valid()) {
    st::StoredMessage last;
    if (!last.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      *err = storage::Status::Corruption("im.messages: undecodable newest entry of " + id);
      return false;
    }
    out->max_seq = last.msg().seq();
    out->count = last.count_at();
    out->last_stamp = last.stamp();
    out->last = std::move(last);
  } else if (!it->status().ok()) {
    *err = it->status();
    return false;
  }
  return true;
}

std::optional<st::MemberRecord> Reader::ReadMember(const storage::Snapshot* snap, const std::string& conv,
                                                   const std::string& user, storage::Status* err) {
  auto v = ctx_.store->Get(ctx_.fam(Fam::kMembers), MemberKey(conv, user), snap);
  if (!v.ok()) {
    *err = v.status();
    return std::nullopt;
  }
  if (!v.value()) return std::nullopt;
  st::MemberRecord m;
  if (!m.ParseFromString(*v.value())) {
    *err = storage::Status::Corruption("im.members: undecodable row " + conv);
    return std::nullopt;
  }
  return m;
}

std::set<uint64_t> Reader::Hidden(const storage::Snapshot* snap, const std::string& user, const std::string& conv,
                                  uint64_t lo, uint64_t hi, uint64_t since_stamp, storage::Status* err) {
  std::set<uint64_t> out;
  storage::IteratorOptions o;
  o.snapshot = snap;
  o.prefix = HiddenPrefix(user, conv);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kHidden), o);
  for (it->Seek(HiddenKey(user, conv, lo)); it->Valid(); it->Next()) {
    uint64_t seq;
    if (!DecodeHiddenSeq(it->key(), &seq) || seq > hi) break;
    std::string_view v = it->value();
    uint64_t stamp = 0;
    storage::GetU64(&v, &stamp);
    if (stamp > since_stamp) out.insert(seq);
  }
  if (!it->status().ok()) *err = it->status();
  return out;
}

void Reader::Entries(const storage::Snapshot* snap, const std::string& conv, uint64_t lo, uint64_t hi, size_t limit,
                     bool backward, const std::set<uint64_t>& skip, bool with_versions,
                     google::protobuf::RepeatedPtrField<v1::Message>* out, bool* more, storage::Status* err) {
  *more = false;
  if (lo > hi || limit == 0) return;
  storage::IteratorOptions o;
  o.snapshot = snap;
  o.lower_bound = MessageKey(conv, lo);
  o.upper_bound = MessageKey(conv, hi + 1);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMessages), o);
  std::vector<v1::Message> got;
  size_t bytes = 0;
  for (backward ? it->SeekToLast() : it->SeekToFirst(); it->Valid(); backward ? it->Prev() : it->Next()) {
    uint64_t seq;
    if (!DecodeMessageSeq(it->key(), &seq) || skip.count(seq)) continue;
    if (got.size() == limit || bytes >= kPageBudgetBytes) {
      *more = true;
      break;
    }
    st::StoredMessage m;
    if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      *err = storage::Status::Corruption("im.messages: undecodable entry " + conv + ":" + std::to_string(seq));
      return;
    }
    if (!with_versions) m.mutable_msg()->clear_versions();
    bytes += m.msg().ByteSizeLong();
    got.push_back(std::move(*m.mutable_msg()));
  }
  if (!it->status().ok()) *err = it->status();
  if (backward) std::reverse(got.begin(), got.end());
  for (v1::Message& m : got) *out->Add() = std::move(m);
}

void Reader::Summary(const storage::Snapshot* snap, const std::string& user, const std::string& conv_id,
                     const ConvRead& c, const st::MemberRecord* me, v1::Conversation* out, storage::Status* err) {
  std::optional<st::MemberRecord> peer;
  if (c.rec.type() == v1::CONV_DIRECT)
    for (const std::string& p : c.rec.peers())
      if (p != user) peer = ReadMember(snap, conv_id, p, err);
  FillConversation(out, conv_id, c.rec, c.max_seq, c.count, me, user, peer ? &*peer : nullptr,
                   c.last ? &c.last->msg() : nullptr);
}

// Upload slots and download tokens: the file store does the work (it is thread-safe and writes its own
// records); the reader thread only keeps it off the broker's loops and the writer strand.
void Reader::Files(const Origin& from, const v1::Request& req) {
  if (!ctx_.files)
    return ctx_.RespondError(from, req.req_id(), v1::ERR_UNSUPPORTED, "file transfer is not enabled on this server");
  v1::Response resp;
  resp.set_req_id(req.req_id());
  if (req.has_create_upload()) {
    FileError e = ctx_.files->CreateSlot(from.user, req.create_upload(), resp.mutable_upload());
    if (!e.ok()) return ctx_.RespondError(from, req.req_id(), e.code, e.message, e.retry_after_ms);
  } else {
    *resp.mutable_file_access() = ctx_.files->Access(from.user);
  }
  ctx_.Respond(from, resp);
}

uint64_t Reader::TotalUnread(const std::string& user) {
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  storage::Status err;
  storage::IteratorOptions o;
  o.snapshot = snap.get();
  o.prefix = UserPrefix(user);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kUserConvs), o);
  uint64_t total = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string id;
    ConvRead c;
    if (!DecodeUserConv(it->key(), &id) || !ReadConv(snap.get(), id, &c, &err)) continue;
    std::optional<st::MemberRecord> me = ReadMember(snap.get(), id, user, &err);
    if (me) total += ComputeUnread(c.rec, c.count, *me).unread;
  }
  return total;
}

uint64_t Reader::Handle(const Origin& from, const v1::Request& req) {
  switch (req.op_case()) {
    case v1::Request::kSync: Sync(from, req.req_id(), req.sync()); return req.sync().cursor();
    case v1::Request::kHistory: History(from, req.req_id(), req.history()); break;
    case v1::Request::kRange: Range(from, req.req_id(), req.range()); break;
    case v1::Request::kGetConversation: GetConversation(from, req.req_id(), req.get_conversation()); break;
    case v1::Request::kListMembers: ListMembers(from, req.req_id(), req.list_members()); break;
    case v1::Request::kPresence: GetPresence(from, req.req_id(), req.presence()); break;
    case v1::Request::kCreateUpload:
    case v1::Request::kFileAccess: Files(from, req); break;
    default: ctx_.RespondError(from, req.req_id(), v1::ERR_BAD_REQUEST, "not a query");
  }
  return 0;
}

void Reader::Sync(const Origin& from, const std::string& req_id, const v1::SyncReq& req) {
  const uint32_t per_conv = Clamp(req.messages_per_conv(), kDefaultPerConv, kMaxPerConv);
  const uint32_t max_convs = Clamp(req.max_convs(), kDefaultConvs, kMaxConvs);
  // The watermark first, then the snapshot: the snapshot holds everything up to the watermark (and maybe
  // more, which the next sync returns again: clients deduplicate by (conv_id, seq)).
  const uint64_t committed = ctx_.committed_stamp.load();
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  const int64_t now_ms = ctx_.clock.UnixMillis();
  const uint64_t floor = StampFromMillis(
      now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(ctx_.options.inbox_retention).count());
  const uint64_t cursor = req.cursor();
  const bool full = cursor == 0 || cursor < floor || cursor > std::max(committed, ctx_.committed_stamp.load());
  storage::Status err;

  // Every conversation of the user, with what the totals and the large-conversation check need.
  struct Mine {
    ConvRead conv;
    std::optional<st::MemberRecord> me;
  };
  std::map<std::string, Mine> mine;
  {
    storage::IteratorOptions o;
    o.snapshot = snap.get();
    o.prefix = UserPrefix(from.user);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kUserConvs), o);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string id;
      if (!DecodeUserConv(it->key(), &id)) continue;
      Mine m;
      if (!ReadConv(snap.get(), id, &m.conv, &err)) {
        if (!err.ok()) return AnswerStorageError(from, req_id, err);
        continue;
      }
      m.me = ReadMember(snap.get(), id, from.user, &err);
      if (!err.ok()) return AnswerStorageError(from, req_id, err);
      mine.emplace(std::move(id), std::move(m));
    }
    if (!it->status().ok()) return AnswerStorageError(from, req_id, it->status());
  }

  // What changed: conv -> the newest stamp of a change the user must learn about.
  std::map<std::string, uint64_t> changed;
  if (full) {
    for (const auto& [id, m] : mine) changed[id] = m.conv.last_stamp;
  } else {
    storage::IteratorOptions o;
    o.snapshot = snap.get();
    o.prefix = UserPrefix(from.user);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kInbox), o);
    for (it->Seek(InboxKey(from.user, cursor + 1)); it->Valid(); it->Next()) {
      uint64_t stamp;
      if (!DecodeInboxStamp(it->key(), &stamp)) continue;
      uint64_t& s = changed[std::string(it->value())];
      s = std::max(s, stamp);
    }
    if (!it->status().ok()) return AnswerStorageError(from, req_id, it->status());
    // Large conversations write no inbox pointers: one that is large now, or was after the cursor, changed
    // if its newest entry is newer than the cursor.
    for (const auto& [id, m] : mine) {
      const bool unpointed = m.conv.rec.large_since() != 0 || m.conv.rec.small_since() > cursor;
      if (unpointed && m.conv.last_stamp > cursor) {
        uint64_t& s = changed[id];
        s = std::max(s, m.conv.last_stamp);
      }
    }
  }

  v1::Response resp;
  resp.set_req_id(req_id);
  v1::SyncResp* out = resp.mutable_sync();
  out->set_full(full);
  std::vector<std::pair<uint64_t, std::string>> order;
  order.reserve(changed.size());
  for (auto& [id, stamp] : changed) order.emplace_back(stamp, id);
  std::sort(order.begin(), order.end());
  uint64_t next_cursor = std::max(committed, full ? 0 : cursor);
  // Full sync: every summary, messages for the most recently active max_convs. Incremental: at most
  // max_convs conversations, oldest change first; the cursor stops at the last one returned.
  size_t with_messages_from = 0;
  if (full) {
    with_messages_from = order.size() > max_convs ? order.size() - max_convs : 0;
  } else if (order.size() > max_convs) {
    order.resize(max_convs);
    out->set_has_more(true);
    next_cursor = order.back().first;
  }
  size_t bytes = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (bytes > kSyncBudgetBytes) {
      if (!full) {  // the rest in the next sync, from the last conversation returned
        out->set_has_more(true);
        next_cursor = order[i - 1].first;
        break;
      }
      with_messages_from = order.size();  // full: every summary still, but no more messages
    }
    const std::string& id = order[i].second;
    v1::ConvSync* cs = out->add_convs();
    auto it = mine.find(id);
    if (it == mine.end()) {
      // Not one of the user's conversations any more (removed, left): tell them so, once.
      ConvRead c;
      if (!ReadConv(snap.get(), id, &c, &err)) {
        if (!err.ok()) return AnswerStorageError(from, req_id, err);
        out->mutable_convs()->RemoveLast();
        continue;
      }
      FillConversation(cs->mutable_conversation(), id, c.rec, c.max_seq, c.count, nullptr, from.user, nullptr,
                       nullptr);
      continue;
    }
    const Mine& m = it->second;
    if (!m.me) {
      FillConversation(cs->mutable_conversation(), id, m.conv.rec, m.conv.max_seq, m.conv.count, nullptr, from.user,
                       nullptr, nullptr);
      continue;
    }
    Summary(snap.get(), from.user, id, m.conv, &*m.me, cs->mutable_conversation(), &err);
    const uint64_t lo = VisibleFrom(m.conv.rec, *m.me);
    const std::set<uint64_t> hidden = Hidden(snap.get(), from.user, id, lo, m.conv.max_seq, 0, &err);
    if (!err.ok()) return AnswerStorageError(from, req_id, err);
    if (!full)
      for (uint64_t s : Hidden(snap.get(), from.user, id, lo, m.conv.max_seq, cursor, &err)) cs->add_hidden_seqs(s);
    bool more = false;
    if (i >= with_messages_from) {
      Entries(snap.get(), id, lo, m.conv.max_seq, per_conv, /*backward=*/true, hidden, false, cs->mutable_messages(),
              &more, &err);
    } else {
      more = m.conv.max_seq >= lo;
    }
    if (!err.ok()) return AnswerStorageError(from, req_id, err);
    cs->set_has_more(more);
    bytes += cs->ByteSizeLong();
  }
  uint64_t total_unread = 0, total_mentions = 0;
  for (const auto& [id, m] : mine) {
    if (!m.me) continue;
    const UnreadCounts u = ComputeUnread(m.conv.rec, m.conv.count, *m.me);
    total_unread += u.unread;
    total_mentions += u.mentions;
  }
  out->set_total_unread(total_unread);
  out->set_total_mentions(total_mentions);
  out->set_cursor(next_cursor);
  ctx_.Respond(from, resp);
}

bool Reader::MemberView(const Origin& from, const std::string& req_id, const storage::Snapshot* snap,
                        const std::string& conv_id, ConvRead* c, std::optional<st::MemberRecord>* me) {
  if (conv_id.empty()) {
    ctx_.RespondError(from, req_id, v1::ERR_BAD_REQUEST, "conv_id is required");
    return false;
  }
  storage::Status err;
  const bool exists = ReadConv(snap, conv_id, c, &err);
  if (!err.ok()) {
    AnswerStorageError(from, req_id, err);
    return false;
  }
  if (!exists) {
    ctx_.RespondError(from, req_id, v1::ERR_NOT_FOUND, "unknown conversation " + conv_id);
    return false;
  }
  std::optional<st::MemberRecord> m = ReadMember(snap, conv_id, from.user, &err);
  if (!err.ok()) {
    AnswerStorageError(from, req_id, err);
    return false;
  }
  if (!m && !from.operator_rights) {
    ctx_.RespondError(from, req_id, v1::ERR_NOT_MEMBER, "not a member of " + conv_id);
    return false;
  }
  *me = std::move(m);
  return true;
}

namespace {
// Where `me`'s view of the stream starts; a non-member operator's at the first entry retention kept.
uint64_t ViewFrom(const st::ConvRecord& rec, const std::optional<st::MemberRecord>& me) {
  return VisibleFrom(rec, me ? *me : st::MemberRecord());
}
}  // namespace

void Reader::History(const Origin& from, const std::string& req_id, const v1::HistoryReq& req) {
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  ConvRead c;
  std::optional<st::MemberRecord> me;
  if (!MemberView(from, req_id, snap.get(), req.conv_id(), &c, &me)) return;
  const uint64_t lo = ViewFrom(c.rec, me);
  const uint64_t hi = req.before_seq() == 0 ? c.max_seq : std::min(req.before_seq() - 1, c.max_seq);
  storage::Status err;
  const std::set<uint64_t> hidden = Hidden(snap.get(), from.user, req.conv_id(), lo, hi, 0, &err);
  v1::Response resp;
  resp.set_req_id(req_id);
  v1::Messages* out = resp.mutable_messages();
  out->set_conv_id(req.conv_id());
  out->set_min_seq(lo);
  out->set_max_seq(c.max_seq);
  bool more = false;
  if (err.ok())
    Entries(snap.get(), req.conv_id(), lo, hi, Clamp(req.limit(), kDefaultPage, kMaxPage), true, hidden,
            req.with_versions(), out->mutable_messages(), &more, &err);
  if (!err.ok()) return AnswerStorageError(from, req_id, err);
  out->set_has_more(more);
  ctx_.Respond(from, resp);
}

void Reader::Range(const Origin& from, const std::string& req_id, const v1::RangeReq& req) {
  if (req.from_seq() == 0 || req.to_seq() < req.from_seq() || req.to_seq() - req.from_seq() >= kMaxRange)
    return ctx_.RespondError(from, req_id, v1::ERR_BAD_REQUEST, "need 1 <= from_seq <= to_seq, at most 200 seqs");
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  ConvRead c;
  std::optional<st::MemberRecord> me;
  if (!MemberView(from, req_id, snap.get(), req.conv_id(), &c, &me)) return;
  const uint64_t lo = std::max(req.from_seq(), ViewFrom(c.rec, me));
  const uint64_t hi = std::min(req.to_seq(), c.max_seq);
  storage::Status err;
  const std::set<uint64_t> hidden = Hidden(snap.get(), from.user, req.conv_id(), lo, hi, 0, &err);
  v1::Response resp;
  resp.set_req_id(req_id);
  v1::Messages* out = resp.mutable_messages();
  out->set_conv_id(req.conv_id());
  out->set_min_seq(ViewFrom(c.rec, me));
  out->set_max_seq(c.max_seq);
  bool more = false;
  if (err.ok())
    Entries(snap.get(), req.conv_id(), lo, hi, kMaxRange, false, hidden, req.with_versions(), out->mutable_messages(),
            &more, &err);
  if (!err.ok()) return AnswerStorageError(from, req_id, err);
  out->set_has_more(more);  // cut by the size budget: ask again from the seq after the last one returned
  ctx_.Respond(from, resp);
}

void Reader::GetConversation(const Origin& from, const std::string& req_id, const v1::GetConversationReq& req) {
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  ConvRead c;
  std::optional<st::MemberRecord> me;
  if (!MemberView(from, req_id, snap.get(), req.conv_id(), &c, &me)) return;
  v1::Response resp;
  resp.set_req_id(req_id);
  storage::Status err;
  // A non-member operator gets the summary a non-member gets (member false, no per-user fields).
  Summary(snap.get(), from.user, req.conv_id(), c, me ? &*me : nullptr, resp.mutable_conversation(), &err);
  if (!err.ok()) return AnswerStorageError(from, req_id, err);
  ctx_.Respond(from, resp);
}

void Reader::ListMembers(const Origin& from, const std::string& req_id, const v1::ListMembersReq& req) {
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  ConvRead c;
  std::optional<st::MemberRecord> me;
  if (!MemberView(from, req_id, snap.get(), req.conv_id(), &c, &me)) return;
  const bool receipts =
      c.rec.type() == v1::CONV_DIRECT || c.rec.member_count() <= ctx_.options.receipts_max_members;
  v1::Response resp;
  resp.set_req_id(req_id);
  v1::Members* out = resp.mutable_members();
  out->set_conv_id(req.conv_id());
  storage::IteratorOptions o;
  o.snapshot = snap.get();
  o.prefix = MembersPrefix(req.conv_id());
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kMembers), o);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string user;
    st::MemberRecord m;
    if (!DecodeMemberUser(it->key(), &user) ||
        !m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      continue;
    v1::Member* mm = out->add_members();
    mm->set_user(user);
    mm->set_role(m.role());
    mm->set_join_seq(m.join_seq());
    if (receipts) mm->set_read_seq(m.read_seq());
    mm->set_online(ctx_.IsOnline(user));
  }
  if (!it->status().ok()) return AnswerStorageError(from, req_id, it->status());
  ctx_.Respond(from, resp);
}

void Reader::GetPresence(const Origin& from, const std::string& req_id, const v1::PresenceReq& req) {
  if (req.users_size() > kMaxPresenceUsers)
    return ctx_.RespondError(from, req_id, v1::ERR_TOO_LARGE, "at most 100 users per presence request");
  std::unique_ptr<storage::Snapshot> snap = ctx_.store->GetSnapshot();
  auto convs_of = [&](const std::string& user) {
    std::unordered_set<std::string> out;
    storage::IteratorOptions o;
    o.snapshot = snap.get();
    o.prefix = UserPrefix(user);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kUserConvs), o);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string id;
      if (DecodeUserConv(it->key(), &id)) out.insert(std::move(id));
    }
    return out;
  };
  const std::unordered_set<std::string> mine = convs_of(from.user);
  v1::Response resp;
  resp.set_req_id(req_id);
  v1::PresenceList* out = resp.mutable_presence();
  for (const std::string& user : req.users()) {
    bool shared = user == from.user;
    if (!shared) {
      for (const std::string& id : convs_of(user)) {
        if (mine.count(id)) {
          shared = true;
          break;
        }
      }
    }
    if (!shared) continue;  // presence is visible only to those who share a conversation
    v1::Presence* p = out->add_users();
    p->set_user(user);
    p->set_online(ctx_.IsOnline(user));
    if (p->online()) {
      p->set_last_seen(ctx_.clock.UnixMillis());
    } else {
      auto v = ctx_.store->Get(ctx_.fam(Fam::kUsers), user, snap.get());
      st::UserRecord rec;
      if (v.ok() && v.value() && rec.ParseFromString(*v.value())) p->set_last_seen(rec.last_seen());
    }
  }
  ctx_.Respond(from, resp);
}

}  // namespace parley::im
