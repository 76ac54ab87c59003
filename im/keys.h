// THE constants header for the IM layer's storage: its column families and key layouts (prose and examples:
// docs/storage-format.md, "IM state"). Values are the records of im/proto/store.proto. Str() is storage's
// order-preserving, prefix-free string encoding and U64() a big-endian integer, so every key of one user or
// conversation is one contiguous, ordered range.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/format.h"
#include "storage/write_batch.h"

namespace parley::im {

enum class Fam : uint32_t {
  kConvs,      // Str(conv)                        -> ConvRecord
  kMembers,    // Str(conv) Str(user)              -> MemberRecord
  kUserConvs,  // Str(user) Str(conv)              -> UserConvRecord
  kMessages,   // Str(conv) U64(seq)               -> StoredMessage
  kDedup,      // Str(user) Str(client_msg_id)     -> DedupRecord
  kDedupTtl,   // U64(server_ts ms) Str(user) Str(client_msg_id) -> empty (expiry index of kDedup)
  kInbox,      // Str(user) U64(stamp)             -> conv id (raw): "this conversation changed for you"
  kHidden,     // Str(user) Str(conv) U64(seq)     -> U64(stamp): deleted for this user
  kDevices,    // client id (raw)                  -> DeviceRecord
  kUsers,      // user (raw)                       -> UserRecord
  kMeta,       // kStampKey                        -> U64(last stamp written)
  kCount,
};

// Names in Fam order, appended by parleyd after the broker's families.
const std::vector<std::string>& FamilyNames();

inline constexpr std::string_view kStampKey = "stamp";

// Maps Fam to the store's FamilyId: the IM families start at index `base` of the store's family list.
class Families {
 public:
  explicit Families(uint32_t base = 0) : base_(base) {}
  storage::FamilyId operator()(Fam f) const { return storage::FamilyId(base_ + static_cast<uint32_t>(f)); }

 private:
  uint32_t base_;
};

std::string ConvKey(std::string_view conv);
std::string MemberKey(std::string_view conv, std::string_view user);
std::string MembersPrefix(std::string_view conv);
std::string UserConvKey(std::string_view user, std::string_view conv);
std::string UserPrefix(std::string_view user);  // kUserConvs, kInbox, kDedup prefixes of one user
std::string MessageKey(std::string_view conv, uint64_t seq);
std::string MessagesPrefix(std::string_view conv);
std::string DedupKey(std::string_view user, std::string_view client_msg_id);
std::string DedupTtlKey(int64_t ts_ms, std::string_view user, std::string_view client_msg_id);
std::string InboxKey(std::string_view user, uint64_t stamp);
std::string HiddenKey(std::string_view user, std::string_view conv, uint64_t seq);
std::string HiddenPrefix(std::string_view user, std::string_view conv);

// Decoders for the trailing components of keys read back from iterators; false if malformed.
bool DecodeMemberUser(std::string_view key, std::string* user);       // kMembers key -> user
bool DecodeUserConv(std::string_view key, std::string* conv);         // kUserConvs key -> conv
bool DecodeMessageSeq(std::string_view key, uint64_t* seq);           // kMessages key -> seq
bool DecodeInboxStamp(std::string_view key, uint64_t* stamp);         // kInbox key -> stamp
bool DecodeHiddenSeq(std::string_view key, uint64_t* seq);            // kHidden key -> seq
bool DecodeDedupTtl(std::string_view key, int64_t* ts, std::string* user, std::string* client_msg_id);

}  // namespace parley::im
