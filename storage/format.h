// THE constants header for Parley's on-disk key and value encodings (prose: docs/storage-format.md).
//
// Keys are compared as unsigned bytes (RocksDB's default comparator; MemStore uses the same order), so every
// key component is encoded to keep its logical order in byte order:
//   - unsigned integers: fixed-width big-endian (PutU16/U32/U64);
//   - signed 64-bit integers: big-endian with the sign bit flipped (PutI64), so -1 < 0 < 1 bytewise;
//   - strings inside a composite key: PutOrderedString — 0x00 is escaped as 0x00 0xFF and the string ends
//     with 0x00 0x01. The encoding is prefix-free and keeps order, so ("a","z") < ("ab","a") as it should.
// Values are not compared; they may use varints and length-prefixed strings (not order-preserving).
//
// All decoders take a string_view by pointer, consume what they decode, and return false (consuming
// nothing useful) on truncated or malformed input. They never read past the view and never abort.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace parley::storage {

// ---- Format version --------------------------------------------------------------------------------------
// Bumped on any change that an older build could misread. Stored as PutU32 under kFormatVersionKey in the
// storage-owned meta family; a store refuses to open a data dir whose version is greater than this.
inline constexpr uint32_t kFormatVersion = 1;
// The meta family is RocksDB's "default" column family. It is owned by storage/ and never handed to callers.
inline constexpr std::string_view kMetaFamilyName = "default";
inline constexpr std::string_view kFormatVersionKey = "parley.storage.format_version";

// ---- Ordered string escape bytes (see PutOrderedString) ---------------------------------------------------
inline constexpr char kOrderedEscape = '\x00';
inline constexpr char kOrderedEscapedZero = '\xFF';  // 0x00 in the string -> 0x00 0xFF
inline constexpr char kOrderedTerminator = '\x01';   // end of string      -> 0x00 0x01

// ---- Fixed-width big-endian integers (order-preserving) ---------------------------------------------------
void PutU8(std::string* dst, uint8_t v);
void PutU16(std::string* dst, uint16_t v);
void PutU32(std::string* dst, uint32_t v);
void PutU64(std::string* dst, uint64_t v);
void PutI64(std::string* dst, int64_t v);  // sign bit flipped, then big-endian
bool GetU8(std::string_view* in, uint8_t* v);
bool GetU16(std::string_view* in, uint16_t* v);
bool GetU32(std::string_view* in, uint32_t* v);
bool GetU64(std::string_view* in, uint64_t* v);
bool GetI64(std::string_view* in, int64_t* v);

// ---- Varints and length-prefixed strings (compact, NOT order-preserving: values only) --------------------
// LEB128: 7 bits per byte, least significant group first, high bit set on all but the last byte.
void PutVarint32(std::string* dst, uint32_t v);
void PutVarint64(std::string* dst, uint64_t v);
bool GetVarint32(std::string_view* in, uint32_t* v);
bool GetVarint64(std::string_view* in, uint64_t* v);
// Varint32 length, then the bytes. Strings longer than 4 GiB are not representable (the caller's bug).
void PutLengthPrefixed(std::string* dst, std::string_view s);
// On success *out views into the input.
bool GetLengthPrefixed(std::string_view* in, std::string_view* out);

// ---- Order-preserving, prefix-free strings (for composite keys) -------------------------------------------
void PutOrderedString(std::string* dst, std::string_view s);
bool GetOrderedString(std::string_view* in, std::string* out);

// The smallest key greater than every key that starts with `prefix`: the prefix with its last byte
// incremented after dropping trailing 0xFF bytes. Empty when no such key exists (prefix empty or all 0xFF),
// meaning "no upper bound".
std::string PrefixSuccessor(std::string_view prefix);

// Builds a composite key from typed components. Every component keeps its order, so keys sort by their
// first component, then the second, and so on. Raw() appends bytes as they are: use it only for a last
// component or a fixed-width tag.
class KeyBuilder {
 public:
  KeyBuilder() = default;
  explicit KeyBuilder(std::string_view prefix) : key_(prefix) {}

  KeyBuilder& U8(uint8_t v) {
    PutU8(&key_, v);
    return *this;
  }
  KeyBuilder& U16(uint16_t v) {
    PutU16(&key_, v);
    return *this;
  }
  KeyBuilder& U32(uint32_t v) {
    PutU32(&key_, v);
    return *this;
  }
  KeyBuilder& U64(uint64_t v) {
    PutU64(&key_, v);
    return *this;
  }
  KeyBuilder& I64(int64_t v) {
    PutI64(&key_, v);
    return *this;
  }
  KeyBuilder& Str(std::string_view s) {
    PutOrderedString(&key_, s);
    return *this;
  }
  KeyBuilder& Raw(std::string_view s) {
    key_.append(s);
    return *this;
  }

  const std::string& key() const { return key_; }
  std::string Release() { return std::move(key_); }

 private:
  std::string key_;
};

// Reads back what a KeyBuilder wrote, component by component. Each getter returns false (and leaves the
// reader where it was) if the next bytes are not a valid component of that type.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : in_(key) {}

  bool U8(uint8_t* v) {
    return Try([&](std::string_view* in) { return GetU8(in, v); });
  }
  bool U16(uint16_t* v) {
    return Try([&](std::string_view* in) { return GetU16(in, v); });
  }
  bool U32(uint32_t* v) {
    return Try([&](std::string_view* in) { return GetU32(in, v); });
  }
  bool U64(uint64_t* v) {
    return Try([&](std::string_view* in) { return GetU64(in, v); });
  }
  bool I64(int64_t* v) {
    return Try([&](std::string_view* in) { return GetI64(in, v); });
  }
  bool Str(std::string* s) {
    return Try([&](std::string_view* in) { return GetOrderedString(in, s); });
  }
  // Consumes exactly n raw bytes.
  bool Raw(size_t n, std::string_view* out);
  // The bytes not consumed yet.
  std::string_view rest() const { return in_; }
  bool done() const { return in_.empty(); }

 private:
  template <typename F>
  bool Try(F&& f) {
    std::string_view copy = in_;
    if (!f(&copy)) return false;
    in_ = copy;
    return true;
  }
  std::string_view in_;
};

}  // namespace parley::storage
