// Writer: the one owner of the IM layer's mutable state, running on the writer strand (im/README.md).
//
// Each operation checks the request against the cached conversation, allocates seq / stamp, builds ONE
// WriteBatch (the stream entry with its seq, the dedup row, counters, inbox pointers) and submits it to the
// storage executor. Only when the executor reports it durable does the continuation — again on the strand —
// answer the sender and deliver the entry live. The cache is ahead of the disk by the batches in flight; if
// one of them fails, the conversation stops taking writes until they have all come back and is then reloaded
// from disk, so the cache never invents a seq the disk does not have.
//
// Threads: every method, strand only (the service posts to it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "im/context.h"
#include "im/summary.h"
#include "im/task_queue.h"

namespace parley::im {

class Writer {
 public:
  Writer(Context& ctx, TaskQueue& strand);

  // Reads the last stamp from disk. Before serving.
  Status Start();

  // A write request (everything but the reader's queries).
  void Handle(const Origin& from, v1::Request& req);

  // Devices.
  void DeviceConnected(const std::string& user, const std::string& client_id);
  void DeviceDisconnected(const std::string& user, const std::string& client_id);
  void Subscription(const std::string& user, const std::string& client_id, Format f, bool added);
  void SetDeviceCursor(const std::string& client_id, uint64_t cursor);

  // About every 200 ms: presence grace, typing throttle, periodic sweeps.
  void Tick();

  struct Stats {
    uint64_t sends = 0, duplicates = 0, events = 0, failed_writes = 0, cached_convs = 0;
  };
  Stats stats() const { return stats_; }

 private:
  struct ConvState {
    std::string id;
    st::ConvRecord rec;
    uint64_t max_seq = 0;  // including batches in flight
    uint64_t count = 0;    // countable total at max_seq
    std::unordered_map<std::string, st::MemberRecord> members;
    int inflight = 0;     // batches submitted, not yet back
    bool broken = false;  // one failed: no new writes; reload when inflight reaches 0
    bool large(const Options& o) const { return members.size() > o.inbox_fanout_max; }
  };

  // A request in progress: what the continuation needs to answer.
  struct Reply {
    Origin origin;
    std::string req_id;
  };

  using Then = std::function<void(const storage::Status&)>;

  // ---- infrastructure
  uint64_t NextStamp();
  // Loads (or returns the cached) conversation. Null if it does not exist; `err` set on a storage error.
  ConvState* Conv(const std::string& id, storage::Status* err);
  // Checks conversation / membership for a write by the requester; answers the error itself and returns null.
  // `allow_dissolved`: the operation still makes sense in a dissolved group (read state, leaving).
  // `operator_may`: an origin with operator rights need not be a member (the operations Origin lists).
  ConvState* WritableConv(const Reply& r, const std::string& conv_id, bool allow_dissolved = false,
                          bool operator_may = false);
  st::MemberRecord* MemberOf(ConvState& c, const std::string& user);
  // The newest version of a stored entry: one written by a batch in flight, else the disk's.
  std::optional<st::StoredMessage> Entry(const ConvState& c, uint64_t seq, storage::Status* err);
  // Submits `b` (adding the stamp row); `then` runs on the strand when it is durable or has failed.
  void Commit(ConvState* c, storage::WriteBatch b, std::vector<std::pair<uint64_t, st::StoredMessage>> entries,
              Then then);
  bool RateLimited(const Reply& r);
  bool Overloaded(const Reply& r);
  void AnswerStorageError(const Reply& r, const storage::Status& s);

  // Appends a stream entry to `c`: seq, msg_id, server_ts, count_at, stamp; puts it and the inbox pointers
  // (small conversations; plus `extra_inbox` users always) into `b`.
  st::StoredMessage AppendEntry(ConvState& c, v1::Message entry, uint64_t stamp, storage::WriteBatch& b,
                                const std::vector<std::string>& extra_inbox = {});
  static v1::Ack AckFor(const st::StoredMessage& stored);
  // The usual continuation of a write that appended `entry`: answer `ack` (and the duplicates waiting on
  // `dedup_key`, if any), then deliver the entry live; or answer the storage error.
  Then AckThenDeliver(const Reply& r, const v1::Ack& ack, const std::string& dedup_key, v1::Message entry);
  void PutMember(ConvState& c, const std::string& user, storage::WriteBatch& b);
  void PutInbox(const std::string& user, const std::string& conv_id, uint64_t stamp, storage::WriteBatch& b);
  // Live delivery of a durable entry to every online device of the members (and `extra` users), except
  // `except_device`.
  void Deliver(const ConvState& c, const v1::Message& entry, std::string_view except_device,
               const std::vector<std::string>& extra = {});
  void PushSummary(ConvState& c, const std::string& user, std::string_view except_device = {});
  void FillSummary(ConvState& c, const std::string& user, v1::Conversation* out);

  // ---- operations
  void Send(const Reply& r, v1::SendReq& req);
  void Edit(const Reply& r, v1::EditReq& req);
  void Recall(const Reply& r, v1::RecallReq& req);
  void DeleteForMe(const Reply& r, const v1::DeleteForMeReq& req);
  void MarkRead(const Reply& r, const v1::MarkReadReq& req);
  void MarkDelivered(const Reply& r, const v1::MarkDeliveredReq& req);
  void OpenDirect(const Reply& r, const v1::OpenDirectReq& req);
  void CreateGroup(const Reply& r, v1::CreateGroupReq& req);
  void CommitCreation(ConvState* c, storage::WriteBatch b, st::StoredMessage created, const Reply& r);
  // Rename, add, remove, leave, dissolve, set role: one stream entry each.
  void ChangeGroup(const Reply& r, const std::string& conv_id, v1::MemberChange change);
  void Typing(const Origin& from, const v1::TypingReq& req);

  // ---- files and push (writer_push.cc)
  // A reference row per attachment naming an uploaded file (kFileRefs), so the file is kept while the message
  // exists; DropFileRefs removes them when the message's content goes (recall, retention) and asks the file
  // store to check the file for garbage collection later.
  void PutFileRefs(const v1::Message& m, storage::WriteBatch& b);
  void DropFileRefs(const st::StoredMessage& stored, storage::WriteBatch& b);
  // A durable countable entry: a push job for every member with no device online (docs/push.md).
  void QueuePushes(const ConvState& c, const v1::Message& entry);
  void RegisterPush(const Reply& r, const v1::RegisterPushReq& req);
  void UnregisterPush(const Reply& r, const v1::UnregisterPushReq& req);
  void PushSettings(const Reply& r, const v1::PushSettingsReq& req);
  void Mute(const Reply& r, const v1::MuteReq& req);

  // Dedup of sends / edits / recalls by (user, client_msg_id). True if answered (a duplicate, or attached to
  // the same send in flight). System messages use the user "" (no IM user has that name) and the id
  // SystemDedupId(conv, client_msg_id): an operator's ids are scoped per conversation.
  bool Deduplicated(const Reply& r, const std::string& user, const std::string& cmid);
  void FinishDedup(const std::string& key, const v1::Ack* ack, const storage::Status* err);
  void PutDedup(const std::string& user, const std::string& cmid, const v1::Ack& ack, storage::WriteBatch& b);

  // ---- presence and sweeps
  // `user`'s device `client_id` left (disconnected, or its client id was taken over by another user).
  void DeviceGone(const std::string& user, const std::string& client_id);
  void AnnouncePresence(const std::string& user, bool online, int64_t last_seen);
  void Sweep();
  void SweepRetention(int64_t now_ms);

  Context& ctx_;
  TaskQueue& strand_;
  uint64_t last_stamp_ = 0;
  int inflight_ = 0;  // batches submitted and not yet back
  Stats stats_;

  std::unordered_map<std::string, std::unique_ptr<ConvState>> convs_;
  // Entries written by batches in flight: (conv, seq) -> (newest content, batches holding it).
  std::map<std::pair<std::string, uint64_t>, std::pair<st::StoredMessage, int>> pending_entries_;
  // Conversations whose creation is in flight: repeated creations wait here to be answered once it is stored.
  std::unordered_map<std::string, std::vector<Reply>> creating_;
  // Sends in flight by dedup key: later duplicates wait here for the first one's ack.
  std::unordered_map<std::string, std::vector<Reply>> pending_dedup_;

  struct Bucket {
    double tokens = 0;
    SteadyTime at{};
  };
  // Push settings written by batches in flight (user -> newest settings, batches holding them), so that two
  // quick changes do not overwrite each other with what the disk held before the first.
  std::unordered_map<std::string, std::pair<st::UserSettings, int>> pending_settings_;
  std::unordered_map<std::string, Bucket> buckets_;  // per user
  std::unordered_map<std::string, SteadyTime> typing_last_;  // user + '\0' + conv

  struct Device {
    std::string user;
    uint32_t formats = 0;
    int connections = 0;  // > 1 briefly while a new connection takes the client id over from an old one
  };
  std::unordered_map<std::string, Device> devices_;  // by client id
  std::unordered_map<std::string, int> online_count_;      // user -> devices online
  std::unordered_map<std::string, SteadyTime> going_offline_;  // user -> when offline is announced
  std::unordered_set<std::string> announced_online_;
  SteadyTime next_sweep_{};
  std::string inbox_sweep_from_;      // where the next inbox trim starts (empty: the beginning)
  std::string retention_sweep_from_;  // the conversation id the next retention pass starts at
};

}  // namespace parley::im
