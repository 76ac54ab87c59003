#include "storage/write_batch.h"

#include <algorithm>

#include "base/check.h"
#include "storage/format.h"

namespace parley::storage {

void WriteBatch::Add(OpKind kind, FamilyId family, std::string_view key, std::string_view value) {
  PutU8(&rep_, static_cast<uint8_t>(kind));
  PutVarint32(&rep_, family.index());
  PutLengthPrefixed(&rep_, key);
  if (kind != OpKind::kDelete) PutLengthPrefixed(&rep_, value);
  ++count_;
  family_limit_ = std::max(family_limit_, family.index() + 1);
}

void WriteBatch::Put(FamilyId family, std::string_view key, std::string_view value) {
  Add(OpKind::kPut, family, key, value);
}

void WriteBatch::Delete(FamilyId family, std::string_view key) {
  Add(OpKind::kDelete, family, key, {});
}

void WriteBatch::DeleteRange(FamilyId family, std::string_view begin, std::string_view end) {
  Add(OpKind::kDeleteRange, family, begin, end);
}

void WriteBatch::Append(const WriteBatch& other) {
  rep_.append(other.rep_);
  count_ += other.count_;
  family_limit_ = std::max(family_limit_, other.family_limit_);
}

void WriteBatch::Clear() {
  rep_.clear();
  count_ = 0;
  family_limit_ = 0;
}

bool WriteBatch::Reader::Next(Op* op) {
  if (in_.empty()) return false;
  uint8_t kind = 0;
  uint32_t family = 0;
  bool ok = GetU8(&in_, &kind) && GetVarint32(&in_, &family) && GetLengthPrefixed(&in_, &op->key);
  op->kind = static_cast<OpKind>(kind);
  op->family = FamilyId(family);
  op->value = {};
  if (ok && op->kind != OpKind::kDelete) ok = GetLengthPrefixed(&in_, &op->value);
  // The representation is only ever written by the methods above: a decoding failure is our bug.
  PARLEY_CHECK(ok && kind >= 1 && kind <= 3);
  return true;
}

}  // namespace parley::storage
