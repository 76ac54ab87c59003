// Unread / mention arithmetic and conversation summaries, shared by the writer (events) and the reader (sync).
//
// Counters, never scans (IM.md): a conversation's stream keeps a running total of countable messages
// (StoredMessage.count_at); a member keeps the total at their read position (read_count). Then
//   unread   = count - max(read_count, min_count)              (min_count: what retention removed)
//            - recalled countable seqs after the read position  (ConvRecord.recalled)
//            - seqs the member deleted for themselves after it  (MemberRecord.hidden_unread)
//   mentions = MemberRecord.mentions after the read position, minus recalled and hidden ones.
// A member's own messages are never unread: sending moves the sender's read position to the new message.
#pragma once

#include <cstdint>
#include <string_view>

#include "im.pb.h"
#include "store.pb.h"

namespace parley::im {

namespace st = parley::im::store;

struct UnreadCounts {
  uint64_t unread = 0;
  uint64_t mentions = 0;
};

inline bool IsCountable(v1::MsgType t) {
  return t == v1::MSG_TEXT || t == v1::MSG_FILE || t == v1::MSG_CUSTOM;
}

UnreadCounts ComputeUnread(const st::ConvRecord& conv, uint64_t count, const st::MemberRecord& m);

// The first seq `m` may read: their join point or what retention kept, whichever is later (at least 1).
uint64_t VisibleFrom(const st::ConvRecord& conv, const st::MemberRecord& m);

// Fills a summary for `user`. `me` null: the user is no longer a member (member = false, no counters).
// `peer`: the other member of a direct conversation, if known. `last`: the newest stream entry, if any.
void FillConversation(v1::Conversation* out, std::string_view conv_id, const st::ConvRecord& conv, uint64_t max_seq,
                      uint64_t count, const st::MemberRecord* me, std::string_view user, const st::MemberRecord* peer,
                      const v1::Message* last);

}  // namespace parley::im
