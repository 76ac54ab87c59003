#include "im/summary.h"

#include <algorithm>

namespace parley::im {

UnreadCounts ComputeUnread(const st::ConvRecord& conv, uint64_t count, const st::MemberRecord& m) {
  const uint64_t floor_seq = conv.min_seq() > 0 ? conv.min_seq() - 1 : 0;
  const uint64_t base_seq = std::max(m.read_seq(), floor_seq);
  const uint64_t base_count = std::max(m.read_count(), conv.min_count());
  uint64_t unread = count > base_count ? count - base_count : 0;

  const auto& recalled = conv.recalled();  // sorted
  auto is_recalled = [&](uint64_t seq) { return std::binary_search(recalled.begin(), recalled.end(), seq); };
  const uint64_t recalled_after =
      static_cast<uint64_t>(recalled.end() - std::upper_bound(recalled.begin(), recalled.end(), base_seq));
  uint64_t hidden_after = 0;
  for (uint64_t s : m.hidden_unread())
    if (s > base_seq && !is_recalled(s)) ++hidden_after;
  const uint64_t minus = recalled_after + hidden_after;
  unread = unread > minus ? unread - minus : 0;

  uint64_t mentions = 0;
  for (uint64_t s : m.mentions()) {
    if (s <= base_seq || is_recalled(s)) continue;
    if (std::find(m.hidden_unread().begin(), m.hidden_unread().end(), s) != m.hidden_unread().end()) continue;
    ++mentions;
  }
  return {unread, std::min(mentions, unread)};
}

uint64_t VisibleFrom(const st::ConvRecord& conv, const st::MemberRecord& m) {
  return std::max<uint64_t>({conv.min_seq(), m.join_seq(), 1});
}

void FillConversation(v1::Conversation* out, std::string_view conv_id, const st::ConvRecord& conv, uint64_t max_seq,
                      uint64_t count, const st::MemberRecord* me, std::string_view user, const st::MemberRecord* peer,
                      const v1::Message* last) {
  out->set_conv_id(std::string(conv_id));
  out->set_type(conv.type());
  out->set_name(conv.name());
  out->set_owner(conv.owner());
  for (const std::string& p : conv.peers())
    if (p != user) out->add_peers(p);
  out->set_member_count(conv.member_count());
  out->set_created_ts(conv.created_ts());
  out->set_dissolved(conv.dissolved());
  out->set_max_seq(max_seq);
  out->set_member(me != nullptr);
  if (!me) return;
  out->set_my_role(me->role());
  out->set_min_seq(VisibleFrom(conv, *me));
  out->set_read_seq(me->read_seq());
  out->set_recv_seq(me->recv_seq());
  out->set_muted_until(me->muted_until());
  const UnreadCounts u = ComputeUnread(conv, count, *me);
  out->set_unread(u.unread);
  out->set_mentions(u.mentions);
  if (last && last->seq() >= VisibleFrom(conv, *me)) *out->mutable_last_message() = *last;
  if (peer) {
    out->set_peer_read_seq(peer->read_seq());
    out->set_peer_recv_seq(peer->recv_seq());
  }
}

}  // namespace parley::im
