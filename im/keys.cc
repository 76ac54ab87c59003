#include "im/keys.h"

namespace parley::im {

using storage::KeyBuilder;

const std::vector<std::string>& FamilyNames() {
  static const std::vector<std::string> kNames = {
      "im.convs", "im.members", "im.user_convs", "im.messages", "im.dedup", "im.dedup_ttl",
      "im.inbox", "im.hidden",  "im.devices",    "im.users",    "im.meta",
      "im.files", "im.file_blobs", "im.file_refs", "im.file_gc", "im.file_quota",
      "im.push_tokens", "im.settings", "im.push_owners",
  };
  static_assert(static_cast<size_t>(Fam::kCount) == 19);
  return kNames;
}

std::string ConvKey(std::string_view conv) { return KeyBuilder().Str(conv).Release(); }
std::string MemberKey(std::string_view conv, std::string_view user) {
  return KeyBuilder().Str(conv).Str(user).Release();
}
std::string MembersPrefix(std::string_view conv) { return KeyBuilder().Str(conv).Release(); }
std::string UserConvKey(std::string_view user, std::string_view conv) {
  return KeyBuilder().Str(user).Str(conv).Release();
}
std::string UserPrefix(std::string_view user) { return KeyBuilder().Str(user).Release(); }
std::string MessageKey(std::string_view conv, uint64_t seq) { return KeyBuilder().Str(conv).U64(seq).Release(); }
std::string MessagesPrefix(std::string_view conv) { return KeyBuilder().Str(conv).Release(); }
std::string DedupKey(std::string_view user, std::string_view cmid) {
  return KeyBuilder().Str(user).Str(cmid).Release();
}
std::string DedupTtlKey(int64_t ts_ms, std::string_view user, std::string_view cmid) {
  return KeyBuilder().U64(static_cast<uint64_t>(ts_ms < 0 ? 0 : ts_ms)).Str(user).Str(cmid).Release();
}
std::string InboxKey(std::string_view user, uint64_t stamp) { return KeyBuilder().Str(user).U64(stamp).Release(); }
std::string HiddenKey(std::string_view user, std::string_view conv, uint64_t seq) {
  return KeyBuilder().Str(user).Str(conv).U64(seq).Release();
}
std::string HiddenPrefix(std::string_view user, std::string_view conv) {
  return KeyBuilder().Str(user).Str(conv).Release();
}
std::string FileKey(std::string_view file_id) { return KeyBuilder().Str(file_id).Release(); }
std::string FileBlobKey(std::string_view sha, std::string_view file_id) {
  return KeyBuilder().Str(sha).Str(file_id).Release();
}
std::string FileBlobPrefix(std::string_view sha) { return KeyBuilder().Str(sha).Release(); }
std::string FileRefKey(std::string_view file_id, std::string_view conv, uint64_t seq) {
  return KeyBuilder().Str(file_id).Str(conv).U64(seq).Release();
}
std::string FileRefPrefix(std::string_view file_id) { return KeyBuilder().Str(file_id).Release(); }
std::string FileGcKey(int64_t due_ms, std::string_view file_id) {
  return KeyBuilder().U64(static_cast<uint64_t>(due_ms < 0 ? 0 : due_ms)).Str(file_id).Release();
}
std::string FileQuotaKey(std::string_view user) { return KeyBuilder().Str(user).Release(); }
std::string PushTokenKey(std::string_view user, std::string_view token) {
  return KeyBuilder().Str(user).Str(token).Release();
}
std::string SettingsKey(std::string_view user) { return KeyBuilder().Str(user).Release(); }
std::string PushOwnerKey(std::string_view token) { return KeyBuilder().Str(token).Release(); }

namespace {
// Reads the last 8 bytes of `key` as a big-endian integer.
bool TrailingU64(std::string_view key, uint64_t* v) {
  if (key.size() < 8) return false;
  std::string_view tail = key.substr(key.size() - 8);
  return storage::GetU64(&tail, v);
}
}  // namespace

bool DecodeMemberUser(std::string_view key, std::string* user) {
  std::string conv;
  return storage::GetOrderedString(&key, &conv) && storage::GetOrderedString(&key, user) && key.empty();
}
bool DecodeUserConv(std::string_view key, std::string* conv) {
  std::string user;
  return storage::GetOrderedString(&key, &user) && storage::GetOrderedString(&key, conv) && key.empty();
}
bool DecodeMessageSeq(std::string_view key, uint64_t* seq) { return TrailingU64(key, seq); }
bool DecodeInboxStamp(std::string_view key, uint64_t* stamp) { return TrailingU64(key, stamp); }
bool DecodeHiddenSeq(std::string_view key, uint64_t* seq) { return TrailingU64(key, seq); }
bool DecodeDedupTtl(std::string_view key, int64_t* ts, std::string* user, std::string* cmid) {
  uint64_t t;
  if (!storage::GetU64(&key, &t)) return false;
  *ts = static_cast<int64_t>(t);
  return storage::GetOrderedString(&key, user) && storage::GetOrderedString(&key, cmid) && key.empty();
}

bool DecodeFileRef(std::string_view key, std::string* file_id, std::string* conv, uint64_t* seq) {
  return storage::GetOrderedString(&key, file_id) && storage::GetOrderedString(&key, conv) &&
         storage::GetU64(&key, seq) && key.empty();
}
bool DecodeFileGc(std::string_view key, int64_t* due_ms, std::string* file_id) {
  uint64_t t;
  if (!storage::GetU64(&key, &t)) return false;
  *due_ms = static_cast<int64_t>(t);
  return storage::GetOrderedString(&key, file_id) && key.empty();
}
bool DecodeFileBlob(std::string_view key, std::string* sha, std::string* file_id) {
  return storage::GetOrderedString(&key, sha) && storage::GetOrderedString(&key, file_id) && key.empty();
}
bool DecodePushToken(std::string_view key, std::string* user, std::string* token) {
  return storage::GetOrderedString(&key, user) && storage::GetOrderedString(&key, token) && key.empty();
}

}  // namespace parley::im
