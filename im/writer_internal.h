// Constants and small helpers shared by the writer's source files (writer.cc, writer_groups.cc,
// writer_upkeep.cc). Internal to im/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>

#include "im/summary.h"
#include "storage/format.h"

namespace parley::im::internal {

constexpr size_t kMaxClientMsgId = 64;
constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxUsersPerRequest = 1000;
constexpr size_t kMaxSeqsPerRequest = 100;
constexpr size_t kMaxAttachments = 32;                 // per message
constexpr size_t kOverloadBytes = size_t{48} << 20;  // executor queue depth at which writes are refused
constexpr size_t kSweepBatch = 10'000;                // rows visited per sweep step

inline std::string U64Value(uint64_t v) {
  std::string s;
  storage::PutU64(&s, v);
  return s;
}

template <typename T>
void TrimUpTo(google::protobuf::RepeatedField<T>* f, uint64_t seq) {
  f->erase(std::remove_if(f->begin(), f->end(), [&](T s) { return s <= seq; }), f->end());
}

// The dedup id of an operator's system message (stored under the user ""): "{conv_id}:{client_msg_id}", so
// the same client_msg_id sent to several conversations makes one message in each.
inline std::string SystemDedupId(const std::string& conv_id, const std::string& cmid) { return conv_id + ":" + cmid; }

inline bool IsAdmin(const st::MemberRecord& m) { return m.role() == v1::ROLE_ADMIN || m.role() == v1::ROLE_OWNER; }

}  // namespace parley::im::internal
