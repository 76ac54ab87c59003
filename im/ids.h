// Conversation and message ids (docs/protocol.md "Identifiers").
//   direct: "d_" + 32 hex digits of sha256 over both user names (sorted): one canonical id per pair, which
//           either user can compute without asking;
//   group:  "g_" + 32 hex digits, random, or derived from (creator, client_msg_id) so a retried creation lands
//           on the same group;
//   msg_id: "{conv_id}:{seq}".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace parley::im {

std::string DirectConvId(std::string_view a, std::string_view b);
std::string GroupIdFor(std::string_view creator, std::string_view client_msg_id);
std::string RandomGroupId();
inline bool IsDirectConvId(std::string_view id) { return id.starts_with("d_"); }
inline std::string MsgId(std::string_view conv_id, uint64_t seq) {
  return std::string(conv_id) + ":" + std::to_string(seq);
}

}  // namespace parley::im
