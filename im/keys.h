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
  // Files (im/files.h): written by the FileStore under its own lock, except kFileRefs (the writer, in the batch
  // of the message that references the file, and of its recall / removal).
  kFiles,       // Str(file_id)                    -> FileRecord (an upload in progress or a complete file)
  kFileBlobs,   // Str(sha256 hex) Str(file_id)    -> empty: the files stored in that content blob
  kFileRefs,    // Str(file_id) Str(conv) U64(seq) -> empty: a message referencing the file
  kFileGc,      // U64(due ms) Str(file_id)        -> empty: check this file for references after `due`
  kFileQuota,   // Str(user)                       -> U64(bytes of the user's files, uploads included)
  // Push notifications (im/push.h): written by the writer.
  kPushTokens,  // Str(user) Str(token)            -> PushTokenRecord
  kSettings,    // Str(user)                       -> UserSettings
  kPushOwners,  // Str(token)                      -> user (raw): who registered the token last (one owner)
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
std::string FileKey(std::string_view file_id);
std::string FileBlobKey(std::string_view sha256_hex, std::string_view file_id);
std::string FileBlobPrefix(std::string_view sha256_hex);
std::string FileRefKey(std::string_view file_id, std::string_view conv, uint64_t seq);
std::string FileRefPrefix(std::string_view file_id);
std::string FileGcKey(int64_t due_ms, std::string_view file_id);
std::string FileQuotaKey(std::string_view user);
std::string PushTokenKey(std::string_view user, std::string_view token);
std::string SettingsKey(std::string_view user);
std::string PushOwnerKey(std::string_view token);

bool DecodeMemberUser(std::string_view key, std::string* user);       // kMembers key -> user
bool DecodeUserConv(std::string_view key, std::string* conv);         // kUserConvs key -> conv
bool DecodeMessageSeq(std::string_view key, uint64_t* seq);           // kMessages key -> seq
bool DecodeInboxStamp(std::string_view key, uint64_t* stamp);         // kInbox key -> stamp
bool DecodeHiddenSeq(std::string_view key, uint64_t* seq);            // kHidden key -> seq
bool DecodeDedupTtl(std::string_view key, int64_t* ts, std::string* user, std::string* client_msg_id);
bool DecodeFileRef(std::string_view key, std::string* file_id, std::string* conv, uint64_t* seq);
bool DecodeFileGc(std::string_view key, int64_t* due_ms, std::string* file_id);
bool DecodeFileBlob(std::string_view key, std::string* sha256_hex, std::string* file_id);
bool DecodePushToken(std::string_view key, std::string* user, std::string* token);

}  // namespace parley::im
