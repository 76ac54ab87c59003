// WriteBatch: an ordered list of Put / Delete / DeleteRange operations, applied atomically by Store::Write.
// It is a plain value (copyable, movable) that knows nothing of the store it will be written to, so any
// thread may build one and hand it to a WriteExecutor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace parley::storage {

// A column family, by its index in OpenOptions::families (the list of names the caller gave at open).
// Callers define their own enum and pass its values directly:
//   enum class Fam : uint32_t { kSessions, kRetained };   // names {"sessions", "retained"}
//   batch.Put(Fam::kRetained, key, value);
class FamilyId {
 public:
  constexpr explicit FamilyId(uint32_t index) : index_(index) {}
  template <typename E>
  requires std::is_enum_v<E>
  constexpr FamilyId(E e) : index_(static_cast<uint32_t>(e)) {}  // NOLINT(google-explicit-constructor)

  constexpr uint32_t index() const { return index_; }
  friend constexpr bool operator==(FamilyId a, FamilyId b) = default;

 private:
  uint32_t index_;
};

class WriteBatch {
 public:
  enum class OpKind : uint8_t { kPut = 1, kDelete = 2, kDeleteRange = 3 };
  // One operation as read back from a batch. Views point into the batch and live as long as it is unchanged.
  struct Op {
    OpKind kind;
    FamilyId family{0};
    std::string_view key;    // DeleteRange: the first key of the range (inclusive)
    std::string_view value;  // DeleteRange: the end of the range (exclusive); Delete: empty
  };

  // Walks the operations in the order they were added.
  class Reader {
   public:
    explicit Reader(const WriteBatch& batch) : in_(batch.rep_) {}
    // False at the end.
    bool Next(Op* op);

   private:
    std::string_view in_;
  };

  WriteBatch() = default;

  void Put(FamilyId family, std::string_view key, std::string_view value);
  void Delete(FamilyId family, std::string_view key);
  // Deletes every key k with begin <= k < end. An empty range (begin >= end) deletes nothing.
  void DeleteRange(FamilyId family, std::string_view begin, std::string_view end);
  // Appends every operation of `other`, in order.
  void Append(const WriteBatch& other);
  void Clear();

  bool empty() const { return count_ == 0; }
  size_t Count() const { return count_; }
  // Bytes held by the batch: keys, values and a few bytes of framing per operation.
  size_t ByteSize() const { return rep_.size(); }
  // One past the largest family index used; 0 for an empty batch. Lets a store reject unknown families
  // before it applies anything.
  uint32_t FamilyLimit() const { return family_limit_; }

 private:
  void Add(OpKind kind, FamilyId family, std::string_view key, std::string_view value);

  // In-memory only (never on disk): per op, kind u8, varint32 family, length-prefixed key, and for Put and
  // DeleteRange a length-prefixed value / end key.
  std::string rep_;
  size_t count_ = 0;
  uint32_t family_limit_ = 0;
};

}  // namespace parley::storage
