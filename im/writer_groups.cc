// Group and direct-conversation operations of the writer (writer.h): create, open, change membership.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "im/ids.h"
#include "im/writer.h"
#include "im/writer_internal.h"

namespace parley::im {

using storage::WriteBatch;
using namespace internal;

// Commits the creation of `c` (its first entry `created`). The creator's answer, and those of repeated
// creations that arrive meanwhile (creating_), wait until it is stored; then every other online device of
// the members hears of the conversation and gets the entry.
void Writer::CommitCreation(ConvState* c, WriteBatch b, st::StoredMessage created, const Reply& r) {
  const std::string id = c->id;
  v1::Message entry = created.msg();
  creating_.try_emplace(id);
  Commit(c, std::move(b), {{created.msg().seq(), std::move(created)}}, [this, r, id, entry](const storage::Status& s) {
    std::vector<Reply> waiting = std::move(creating_[id]);
    creating_.erase(id);
    waiting.insert(waiting.begin(), r);
    storage::Status err = s;
    ConvState* c = s.ok() ? Conv(id, &err) : nullptr;
    for (const Reply& w : waiting) {
      if (!c) {
        AnswerStorageError(w, err.ok() ? storage::Status::Io("conversation vanished") : err);
        continue;
      }
      v1::Response resp;
      resp.set_req_id(w.req_id);
      FillSummary(*c, w.origin.user, resp.mutable_conversation());
      ctx_.Respond(w.origin, resp);
    }
    if (!c) return;
    for (const auto& [user, m] : c->members)
      if (ctx_.IsOnline(user)) PushSummary(*c, user, r.origin.device);
    Deliver(*c, entry, r.origin.device);
  });
}

void Writer::OpenDirect(const Reply& r, const v1::OpenDirectReq& req) {
  if (req.peer().empty() || req.peer() == r.origin.user || req.peer().size() > kMaxNameBytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "peer must be another user");
  const std::string id = DirectConvId(r.origin.user, req.peer());
  storage::Status err;
  ConvState* existing = Conv(id, &err);
  if (!err.ok()) return AnswerStorageError(r, err);
  if (existing) {
    if (auto w = creating_.find(id); w != creating_.end()) {  // created by a batch still in flight
      w->second.push_back(r);
      return;
    }
    if (existing->broken)
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_UNAVAILABLE, "conversation recovering", 1000);
    v1::Response resp;
    resp.set_req_id(r.req_id);
    FillSummary(*existing, r.origin.user, resp.mutable_conversation());
    return ctx_.Respond(r.origin, resp);
  }
  if (RateLimited(r) || Overloaded(r)) return;
  auto owned = std::make_unique<ConvState>();
  ConvState* c = owned.get();
  c->id = id;
  c->rec.set_type(v1::CONV_DIRECT);
  std::vector<std::string> peers{r.origin.user, req.peer()};
  std::sort(peers.begin(), peers.end());
  for (const std::string& p : peers) c->rec.add_peers(p);
  c->rec.set_created_ts(ctx_.clock.UnixMillis());
  c->rec.set_member_count(2);
  convs_.emplace(id, std::move(owned));

  const uint64_t stamp = NextStamp();
  for (const std::string& p : peers) {
    st::MemberRecord m;
    m.set_role(v1::ROLE_MEMBER);
    m.set_join_seq(1);
    m.set_joined_ts(c->rec.created_ts());
    c->members.emplace(p, std::move(m));
  }
  WriteBatch b;
  v1::Message ev;
  ev.set_type(v1::MSG_MEMBERS);
  ev.set_sender(r.origin.user);
  ev.set_sender_device(r.origin.device);
  ev.mutable_change()->set_kind(v1::MemberChange::CREATED);
  ev.mutable_change()->set_actor(r.origin.user);
  for (const std::string& p : peers) ev.mutable_change()->add_users(p);
  st::StoredMessage stored = AppendEntry(*c, std::move(ev), stamp, b);
  b.Put(ctx_.fam(Fam::kConvs), ConvKey(id), c->rec.SerializeAsString());
  st::UserConvRecord uc;
  for (const std::string& p : peers) {
    PutMember(*c, p, b);
    b.Put(ctx_.fam(Fam::kUserConvs), UserConvKey(p, id), uc.SerializeAsString());
  }
  CommitCreation(c, std::move(b), std::move(stored), r);
}

void Writer::CreateGroup(const Reply& r, v1::CreateGroupReq& req) {
  const Options& o = ctx_.options;
  if (req.name().size() > kMaxNameBytes)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "name over 256 bytes");
  if (req.client_msg_id().size() > kMaxClientMsgId)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "client_msg_id must be at most 64 bytes");
  std::set<std::string> users(req.members().begin(), req.members().end());
  users.erase(r.origin.user);
  if (users.count("")) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "empty user name");
  if (users.size() + 1 > o.max_group_members)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_GROUP_FULL,
                             "a group holds at most " + std::to_string(o.max_group_members) + " members");
  const std::string id = req.client_msg_id().empty() ? RandomGroupId() : GroupIdFor(r.origin.user, req.client_msg_id());
  storage::Status err;
  if (ConvState* existing = Conv(id, &err)) {  // the same creation again (idempotent by client_msg_id)
    if (auto w = creating_.find(id); w != creating_.end()) {  // still in flight: answer once it is stored
      w->second.push_back(r);
      return;
    }
    v1::Response resp;
    resp.set_req_id(r.req_id);
    FillSummary(*existing, r.origin.user, resp.mutable_conversation());
    return ctx_.Respond(r.origin, resp);
  }
  if (!err.ok()) return AnswerStorageError(r, err);
  if (RateLimited(r) || Overloaded(r)) return;

  auto owned = std::make_unique<ConvState>();
  ConvState* c = owned.get();
  c->id = id;
  c->rec.set_type(v1::CONV_GROUP);
  c->rec.set_name(req.name());
  c->rec.set_owner(r.origin.user);
  c->rec.set_created_ts(ctx_.clock.UnixMillis());
  c->rec.set_member_count(static_cast<uint32_t>(users.size() + 1));
  convs_.emplace(id, std::move(owned));
  users.insert(r.origin.user);
  for (const std::string& u : users) {
    st::MemberRecord m;
    m.set_role(u == r.origin.user ? v1::ROLE_OWNER : v1::ROLE_MEMBER);
    m.set_join_seq(1);
    m.set_joined_ts(c->rec.created_ts());
    c->members.emplace(u, std::move(m));
  }
  const uint64_t stamp = NextStamp();
  const bool large = c->large(o);
  if (large) c->rec.set_large_since(stamp);
  WriteBatch b;
  v1::Message ev;
  ev.set_type(v1::MSG_MEMBERS);
  ev.set_sender(r.origin.user);
  ev.set_sender_device(r.origin.device);
  ev.mutable_change()->set_kind(v1::MemberChange::CREATED);
  ev.mutable_change()->set_actor(r.origin.user);
  ev.mutable_change()->set_name(req.name());
  for (const std::string& u : users) ev.mutable_change()->add_users(u);
  st::StoredMessage stored = AppendEntry(*c, std::move(ev), stamp, b);
  b.Put(ctx_.fam(Fam::kConvs), ConvKey(id), c->rec.SerializeAsString());
  const std::string ucv = st::UserConvRecord().SerializeAsString();
  for (const std::string& u : users) {
    PutMember(*c, u, b);
    b.Put(ctx_.fam(Fam::kUserConvs), UserConvKey(u, id), ucv);
  }
  CommitCreation(c, std::move(b), std::move(stored), r);
}

void Writer::ChangeGroup(const Reply& r, const std::string& conv_id, v1::MemberChange change) {
  const Options& o = ctx_.options;
  // An operator may add and remove members of any group without being a member or holding a role.
  const bool op = r.origin.operator_rights &&
                  (change.kind() == v1::MemberChange::ADDED || change.kind() == v1::MemberChange::REMOVED);
  ConvState* c = WritableConv(r, conv_id, /*allow_dissolved=*/change.kind() == v1::MemberChange::LEFT, op);
  if (!c) return;
  if (c->rec.type() != v1::CONV_GROUP)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_FORBIDDEN, "a direct conversation has no group settings");
  if (static_cast<size_t>(change.users_size()) > kMaxUsersPerRequest)
    return ctx_.RespondError(r.origin, r.req_id, v1::ERR_TOO_LARGE, "at most 1000 users per request");
  const std::string& user = r.origin.user;  // the actor: "" for an operator (docs/protocol.md)
  st::MemberRecord me;
  if (const st::MemberRecord* m = MemberOf(*c, user)) me = *m;
  // The rules below then treat the operator as the owner: it may remove admins, but not the owner (a group
  // keeps exactly one owner while it has members).
  if (op) me.set_role(v1::ROLE_OWNER);
  const bool owner = me.role() == v1::ROLE_OWNER;
  auto deny = [&](const char* why) { ctx_.RespondError(r.origin, r.req_id, v1::ERR_FORBIDDEN, why); };
  change.set_actor(user);

  std::vector<std::string> added, removed;  // users whose membership this changes
  switch (change.kind()) {
    case v1::MemberChange::RENAMED:
      if (!IsAdmin(me)) return deny("only the owner and admins may rename a group");
      if (change.name().size() > kMaxNameBytes)
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "name over 256 bytes");
      break;
    case v1::MemberChange::ADDED: {
      if (!IsAdmin(me)) return deny("only the owner and admins may add members");
      std::set<std::string> want(change.users().begin(), change.users().end());
      if (want.count("")) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "empty user name");
      for (const std::string& u : want)
        if (!c->members.count(u)) added.push_back(u);
      if (added.empty())
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_CONFLICT, "everyone listed is already a member");
      if (c->members.size() + added.size() > o.max_group_members)
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_GROUP_FULL,
                                 "a group holds at most " + std::to_string(o.max_group_members) + " members");
      break;
    }
    case v1::MemberChange::REMOVED: {
      if (!IsAdmin(me)) return deny("only the owner and admins may remove members");
      std::set<std::string> want(change.users().begin(), change.users().end());
      for (const std::string& u : want) {
        auto it = c->members.find(u);
        if (it == c->members.end()) continue;
        if (u == user) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "use leave to leave");
        if (it->second.role() == v1::ROLE_OWNER) return deny("the owner cannot be removed");
        if (it->second.role() == v1::ROLE_ADMIN && !owner) return deny("only the owner may remove an admin");
        removed.push_back(u);
      }
      if (removed.empty())
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_CONFLICT, "nobody listed is a member");
      break;
    }
    case v1::MemberChange::LEFT:
      change.clear_users();
      removed.push_back(user);
      if (owner) {  // ownership passes to the longest-standing admin, else the longest-standing member
        const std::string* heir = nullptr;
        std::pair<int, uint64_t> best{0, 0};
        for (const auto& [u, m] : c->members) {
          if (u == user) continue;
          const std::pair<int, uint64_t> rank{m.role() == v1::ROLE_ADMIN ? 2 : 1, UINT64_MAX - m.join_seq()};
          if (!heir || rank > best || (rank == best && u < *heir)) {
            heir = &u;
            best = rank;
          }
        }
        if (heir) {
          change.add_users(*heir);
          change.set_role(v1::ROLE_OWNER);
        }
      }
      break;
    case v1::MemberChange::DISSOLVED:
      if (!owner) return deny("only the owner may dissolve a group");
      break;
    case v1::MemberChange::ROLE: {
      if (!owner) return deny("only the owner may change roles");
      const v1::Role role = change.role();
      if (role != v1::ROLE_ADMIN && role != v1::ROLE_MEMBER && role != v1::ROLE_OWNER)
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "role must be admin, member or owner");
      if (change.users_size() == 0 || (role == v1::ROLE_OWNER && change.users_size() != 1))
        return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST,
                                 "name the users (exactly one for an ownership transfer)");
      for (const std::string& u : change.users()) {
        if (!c->members.count(u))
          return ctx_.RespondError(r.origin, r.req_id, v1::ERR_NOT_MEMBER, u + " is not a member");
        if (u == user) return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "cannot change your own role");
      }
      break;
    }
    default:
      return ctx_.RespondError(r.origin, r.req_id, v1::ERR_BAD_REQUEST, "unknown change");
  }
  if (RateLimited(r) || Overloaded(r)) return;

  const uint64_t stamp = NextStamp();
  const bool was_large = c->large(o);
  WriteBatch b;
  // Apply to the cache; the rows follow below.
  const uint64_t entry_seq = c->max_seq + 1;
  std::vector<std::string> touched;  // member rows to write
  switch (change.kind()) {
    case v1::MemberChange::RENAMED:
      c->rec.set_name(change.name());
      break;
    case v1::MemberChange::ADDED:
      for (const std::string& u : added) {
        st::MemberRecord m;
        m.set_role(v1::ROLE_MEMBER);
        m.set_join_seq(entry_seq);  // history starts at the join
        m.set_read_seq(entry_seq);
        m.set_read_count(c->count);
        m.set_joined_ts(ctx_.clock.UnixMillis());
        c->members.emplace(u, std::move(m));
        touched.push_back(u);
      }
      change.clear_users();
      for (const std::string& u : added) change.add_users(u);
      break;
    case v1::MemberChange::REMOVED:
    case v1::MemberChange::LEFT:
      for (const std::string& u : removed) {
        c->members.erase(u);
        touched.push_back(u);
      }
      if (change.kind() == v1::MemberChange::REMOVED) {
        change.clear_users();
        for (const std::string& u : removed) change.add_users(u);
      } else if (change.users_size() == 1) {
        c->members.at(change.users(0)).set_role(v1::ROLE_OWNER);
        c->rec.set_owner(change.users(0));
        touched.push_back(change.users(0));
      }
      if (c->members.empty()) c->rec.set_dissolved(true);  // the last one out closes the group
      break;
    case v1::MemberChange::DISSOLVED:
      c->rec.set_dissolved(true);
      break;
    case v1::MemberChange::ROLE:
      for (const std::string& u : change.users()) {
        c->members.at(u).set_role(change.role());
        touched.push_back(u);
      }
      if (change.role() == v1::ROLE_OWNER) {
        c->members.at(user).set_role(v1::ROLE_ADMIN);
        c->rec.set_owner(change.users(0));
        touched.push_back(user);
      }
      break;
    default:
      break;
  }
  c->rec.set_member_count(static_cast<uint32_t>(c->members.size()));
  const bool large = c->large(o);
  if (large && !was_large) c->rec.set_large_since(stamp);
  if (!large && was_large) {
    c->rec.set_large_since(0);
    c->rec.set_small_since(stamp);  // a sync from before this must still compare the newest stamp
  }
  b.Put(ctx_.fam(Fam::kConvs), ConvKey(c->id), c->rec.SerializeAsString());
  for (const std::string& u : touched) PutMember(*c, u, b);
  const std::string ucv = st::UserConvRecord().SerializeAsString();
  for (const std::string& u : added) b.Put(ctx_.fam(Fam::kUserConvs), UserConvKey(u, c->id), ucv);
  for (const std::string& u : removed) b.Delete(ctx_.fam(Fam::kUserConvs), UserConvKey(u, c->id));

  v1::Message ev;
  ev.set_type(v1::MSG_MEMBERS);
  ev.set_sender(user);
  ev.set_sender_device(r.origin.device);
  *ev.mutable_change() = change;
  // Everyone whose membership changed hears of it in their own inbox, large group or not.
  std::vector<std::string> inbox = added;
  inbox.insert(inbox.end(), removed.begin(), removed.end());
  st::StoredMessage stored = AppendEntry(*c, std::move(ev), stamp, b, inbox);
  const v1::Ack ack = AckFor(stored);
  v1::Message entry = stored.msg();
  Commit(c, std::move(b), {{ack.seq(), std::move(stored)}},
         [this, r, ack, entry, added, removed](const storage::Status& s) {
           if (!s.ok()) return AnswerStorageError(r, s);
           v1::Response resp;
           resp.set_req_id(r.req_id);
           *resp.mutable_ack() = ack;
           ctx_.Respond(r.origin, resp);
           storage::Status err;
           ConvState* c = Conv(ack.conv_id(), &err);
           if (!c) return;
           for (const std::string& u : added) PushSummary(*c, u);
           for (const std::string& u : removed) PushSummary(*c, u);
           Deliver(*c, entry, r.origin.device, removed);
         });
}

}  // namespace parley::im
