// Reader: answers the IM layer's queries — sync, history, ranges, conversation summaries, member lists,
// presence — from RocksDB snapshots, on its own thread. It never sees a batch that is not committed, so
// nothing it returns can disappear in a crash; what the writer has in flight shows up in the next sync (its
// cursor is the committed watermark) or arrives live.
//
// Threads: Handle runs on the reader thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "im/context.h"
#include "im/summary.h"

namespace parley::im {

class Reader {
 public:
  explicit Reader(Context& ctx) : ctx_(ctx) {}

  // Answers `req`. For a sync, returns the cursor the device reported (it has everything before it): the
  // service records it as the device's delivered position. Otherwise 0.
  uint64_t Handle(const Origin& from, const v1::Request& req);

  // The user's unread count over all their conversations (a push notification's badge), from committed
  // state. Any thread: it touches nothing but the store.
  uint64_t TotalUnread(const std::string& user);

 private:
  struct ConvRead {
    st::ConvRecord rec;
    uint64_t max_seq = 0;
    uint64_t count = 0;
    uint64_t last_stamp = 0;
    std::optional<st::StoredMessage> last;
  };

  // False if the conversation does not exist; `err` on a storage error or an undecodable row.
  bool ReadConv(const storage::Snapshot* snap, const std::string& id, ConvRead* out, storage::Status* err);
  std::optional<st::MemberRecord> ReadMember(const storage::Snapshot* snap, const std::string& conv,
                                             const std::string& user, storage::Status* err);
  // Seqs in [lo, hi] that `user` deleted for themselves.
  std::set<uint64_t> Hidden(const storage::Snapshot* snap, const std::string& user, const std::string& conv,
                            uint64_t lo, uint64_t hi, uint64_t since_stamp, storage::Status* err);
  // Up to `limit` entries of `conv` with seq in [lo, hi], not in `skip`, newest first when `backward`, and
  // no more than kPageBudgetBytes of them (at least one): an answer must fit the client's maximum packet size.
  // `more`: entries remain past the last one returned, within [lo, hi]. Results in ascending seq order.
  void Entries(const storage::Snapshot* snap, const std::string& conv, uint64_t lo, uint64_t hi, size_t limit,
               bool backward, const std::set<uint64_t>& skip, bool with_versions,
               google::protobuf::RepeatedPtrField<v1::Message>* out, bool* more, storage::Status* err);
  void Summary(const storage::Snapshot* snap, const std::string& user, const std::string& conv_id,
               const ConvRead& c, const st::MemberRecord* me, v1::Conversation* out, storage::Status* err);

  void Sync(const Origin& from, const std::string& req_id, const v1::SyncReq& req);
  void History(const Origin& from, const std::string& req_id, const v1::HistoryReq& req);
  void Range(const Origin& from, const std::string& req_id, const v1::RangeReq& req);
  void GetConversation(const Origin& from, const std::string& req_id, const v1::GetConversationReq& req);
  void ListMembers(const Origin& from, const std::string& req_id, const v1::ListMembersReq& req);
  void GetPresence(const Origin& from, const std::string& req_id, const v1::PresenceReq& req);
  void Files(const Origin& from, const v1::Request& req);  // CreateUploadReq, FileAccessReq
  // Conversation + membership checks shared by the per-conversation queries; answers errors itself. An
  // origin with operator rights may read any conversation: `me` is then nullopt when it is not a member (it
  // sees the whole stream, as nobody's in particular).
  bool MemberView(const Origin& from, const std::string& req_id, const storage::Snapshot* snap,
                  const std::string& conv_id, ConvRead* c, std::optional<st::MemberRecord>* me);
  void AnswerStorageError(const Origin& from, const std::string& req_id, const storage::Status& s);

  Context& ctx_;
};

}  // namespace parley::im
