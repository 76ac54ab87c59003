// The writer's part of files and push notifications: file reference rows, push jobs for offline members, and
// the per-user push registrations and settings (docs/protocol.md, "Files" and "Push notifications").
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <set>

#include "im/files.h"
#include "im/push.h"
#include "im/writer.h"
#include "im/writer_internal.h"

namespace parley::im {

using storage::WriteBatch;
using namespace internal;

namespace {

constexpr size_t kMaxPushTokens = 20;  // per user; registering one more drops the oldest
constexpr size_t kMaxPushTokenBytes = 4096;

bool IsPlatform(std::string_view p) { return p == "ios" || p == "android" || p == "huawei" || p == "web"; }

// What a push may show of `m` when the user allows previews: its text, or a file's caption or name.
std::string PreviewOf(const v1::Message& m) {
  if (!m.text().empty()) return m.text();
  if (m.type() == v1::MSG_FILE && m.attachments_size() > 0) return "[file] " + m.attachments(0).name();
  return {};
}

}  // namespace

// Only while file transfer is on, and only for this server's file ids (PinAttachments checked them): a
// reference row grants download access, so none is written for an id the server did not verify.
void Writer::PutFileRefs(const v1::Message& m, WriteBatch& b) {
  if (!ctx_.files) return;
  for (const v1::Attachment& a : m.attachments())
    if (FileStore::ValidFileId(a.file_id()))
      b.Put(ctx_.fam(Fam::kFileRefs), FileRefKey(a.file_id(), m.conv_id(), m.seq()), "");
}

// Always, even with file transfer off now: rows written while it was on must not keep files (and quota) forever.
void Writer::DropFileRefs(const st::StoredMessage& stored, WriteBatch& b) {
  const v1::Message& m = stored.msg();
  for (const v1::Attachment& a : m.attachments()) {
    if (!FileStore::ValidFileId(a.file_id())) continue;
    b.Delete(ctx_.fam(Fam::kFileRefs), FileRefKey(a.file_id(), m.conv_id(), m.seq()));
    if (ctx_.files) ctx_.files->ScheduleCheck(a.file_id(), b);
  }
}

void Writer::QueuePushes(const ConvState& c, const v1::Message& entry) {
  if (!ctx_.push || !IsCountable(entry.type()) || entry.recalled()) return;
  const int64_t now = ctx_.clock.UnixMillis();
  const std::set<std::string_view> mentioned(entry.mentions().begin(), entry.mentions().end());
  std::string preview;  // built once, for the first job that needs it
  for (const auto& [user, rec] : c.members) {
    if (user == entry.sender() || online_count_.count(user)) continue;  // a device online got it live
    const bool mention = mentioned.count(user) > 0;
    const bool muted = rec.muted_until() > now;
    if (muted && !mention) continue;  // a muted conversation pushes nothing but (by setting) mentions
    if (preview.empty()) preview = PreviewOf(entry);
    PushJob job;
    job.user = user;
    job.conv_id = c.id;
    job.conv_name = c.rec.type() == v1::CONV_GROUP ? c.rec.name() : std::string();
    job.sender = entry.sender();
    job.preview = preview;
    job.seq = entry.seq();
    job.server_ts = entry.server_ts();
    job.mention = mention;
    job.muted = muted;
    ctx_.push->Enqueue(std::move(job));
  }
}

void Writer::RegisterPush(const Reply& r, const v1::RegisterPushReq& req) {
  if (!ctx_.push || !ctx_.push->HasProvider(req.provider()))
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNSUPPORTED,
                             ctx_.push ? "push provider \"" + req.provider() + "\" is not configured on this server"
                                       : std::string("push notifications are not configured on this server"));
  if (req.token().empty() || req.token().size() > kMaxPushTokenBytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "token must be 1..4096 bytes");
  if (!IsPlatform(req.platform()))
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST,
                             "platform must be \"ios\", \"android\", \"huawei\" or \"web\"");
  if (RateLimited(r) || Overloaded(r)) return;
  const std::string& user = r.origin.user;
  // The user's registrations (committed ones: a registration in flight may let the cap be passed by one).
  std::vector<std::pair<int64_t, std::string>> existing;  // (registered_ts, token)
  {
    storage::IteratorOptions io;
    io.prefix = UserPrefix(user);
    auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kPushTokens), io);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string u, token;
      st::PushTokenRecord rec;
      if (!DecodePushToken(it->key(), &u, &token) ||
          !rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
        continue;
      if (token != req.token()) existing.emplace_back(rec.registered_ts(), std::move(token));
    }
    if (!it->status().ok()) return AnswerStorageError(r, it->status());
  }
  WriteBatch b;
  std::sort(existing.begin(), existing.end());
  for (size_t i = 0; i + kMaxPushTokens <= existing.size(); ++i) {
    b.Delete(ctx_.fam(Fam::kPushTokens), PushTokenKey(user, existing[i].second));
    b.Delete(ctx_.fam(Fam::kPushOwners), PushOwnerKey(existing[i].second));
  }
  // A token belongs to one user: the phone now runs this user's app, so whoever registered it before (another
  // account logged out without unregistering) gets no more pushes on it — nor their previews.
  auto owner = ctx_.store->Get(ctx_.fam(Fam::kPushOwners), PushOwnerKey(req.token()));
  if (!owner.ok()) return AnswerStorageError(r, owner.status());
  if (owner.value() && *owner.value() != user)
    b.Delete(ctx_.fam(Fam::kPushTokens), PushTokenKey(*owner.value(), req.token()));
  b.Put(ctx_.fam(Fam::kPushOwners), PushOwnerKey(req.token()), user);
  st::PushTokenRecord rec;
  rec.set_provider(req.provider());
  rec.set_platform(req.platform());
  rec.set_device(r.origin.device);
  rec.set_registered_ts(ctx_.clock.UnixMillis());
  b.Put(ctx_.fam(Fam::kPushTokens), PushTokenKey(user, req.token()), rec.SerializeAsString());
  NextStamp();
  Commit(nullptr, std::move(b), {}, [this, r](const storage::Status& s) {
    if (!s.ok()) return AnswerStorageError(r, s);
    v1::Response resp;
    resp.set_req_id(r.req_id);
    ctx_.Respond(r.origin, resp);
  });
}

void Writer::UnregisterPush(const Reply& r, const v1::UnregisterPushReq& req) {
  if (req.token().empty() || req.token().size() > kMaxPushTokenBytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "token must be 1..4096 bytes");
  WriteBatch b;
  b.Delete(ctx_.fam(Fam::kPushTokens), PushTokenKey(r.origin.user, req.token()));
  auto owner = ctx_.store->Get(ctx_.fam(Fam::kPushOwners), PushOwnerKey(req.token()));
  if (!owner.ok()) return AnswerStorageError(r, owner.status());
  if (owner.value() && *owner.value() == r.origin.user) b.Delete(ctx_.fam(Fam::kPushOwners), PushOwnerKey(req.token()));
  NextStamp();
  Commit(nullptr, std::move(b), {}, [this, r](const storage::Status& s) {
    if (!s.ok()) return AnswerStorageError(r, s);
    v1::Response resp;
    resp.set_req_id(r.req_id);
    ctx_.Respond(r.origin, resp);
  });
}

void Writer::PushSettings(const Reply& r, const v1::PushSettingsReq& req) {
  const std::string& user = r.origin.user;
  st::UserSettings settings;
  if (auto it = pending_settings_.find(user); it != pending_settings_.end()) {
    settings = it->second.first;
  } else {
    auto v = ctx_.store->Get(ctx_.fam(Fam::kSettings), SettingsKey(user));
    if (!v.ok()) return AnswerStorageError(r, v.status());
    if (v.value() && !settings.ParseFromString(*v.value()))
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_INTERNAL, "stored settings are unreadable");
  }
  auto answer = [this](const Reply& r, const st::UserSettings& s) {
    v1::Response resp;
    resp.set_req_id(r.req_id);
    resp.mutable_push_settings()->set_preview(s.push_preview());
    resp.mutable_push_settings()->set_mentions_when_muted(s.push_mentions_when_muted());
    ctx_.Respond(r.origin, resp);
  };
  const st::UserSettings before = settings;
  if (req.has_preview()) settings.set_push_preview(req.preview());
  if (req.has_mentions_when_muted()) settings.set_push_mentions_when_muted(req.mentions_when_muted());
  if (settings.SerializeAsString() == before.SerializeAsString()) return answer(r, settings);
  if (RateLimited(r) || Overloaded(r)) return;
  auto& pending = pending_settings_[user];
  pending.first = settings;
  ++pending.second;
  WriteBatch b;
  b.Put(ctx_.fam(Fam::kSettings), SettingsKey(user), settings.SerializeAsString());
  NextStamp();
  Commit(nullptr, std::move(b), {}, [this, r, settings, answer](const storage::Status& s) {
    auto it = pending_settings_.find(r.origin.user);
    if (it != pending_settings_.end() && --it->second.second == 0) pending_settings_.erase(it);
    if (!s.ok()) return AnswerStorageError(r, s);
    answer(r, settings);
  });
}

void Writer::Mute(const Reply& r, const v1::MuteReq& req) {
  if (req.until() < -1)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST,
                             "until must be a time in ms since the Unix epoch, -1 (until unmuted) or 0 (unmute)");
  if (RateLimited(r) || Overloaded(r)) return;
  ConvState* c = WritableConv(r, req.conv_id(), /*allow_dissolved=*/true);
  if (!c) return;
  const std::string& user = r.origin.user;
  st::MemberRecord& me = c->members.at(user);
  const int64_t until = req.until() == -1 ? std::numeric_limits<int64_t>::max() : req.until();
  auto answer = [this](const Reply& r, ConvState& c) {
    v1::Response resp;
    resp.set_req_id(r.req_id);
    FillSummary(c, r.origin.user, resp.mutable_conversation());
    ctx_.Respond(r.origin, resp);
  };
  if (me.muted_until() == until) return answer(r, *c);
  me.set_muted_until(until);
  const uint64_t stamp = NextStamp();
  WriteBatch b;
  PutMember(*c, user, b);
  PutInbox(user, c->id, stamp, b);  // the user's other devices learn it at their next sync
  Commit(c, std::move(b), {}, [this, r, answer, conv_id = c->id](const storage::Status& s) {
    if (!s.ok()) return AnswerStorageError(r, s);
    storage::Status err;
    ConvState* cs = Conv(conv_id, &err);
    if (!cs)
      return err.ok() ? ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_FOUND, "no such conversation")
                      : AnswerStorageError(r, err);
    answer(r, *cs);
    PushSummary(*cs, r.origin.user, r.origin.device);
  });
}

}  // namespace parley::im
