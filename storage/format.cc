#include "storage/format.h"

namespace parley::storage {
namespace {

template <typename T>
void PutBigEndian(std::string* dst, T v) {
  char buf[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) buf[i] = static_cast<char>(v >> (8 * (sizeof(T) - 1 - i)));
  dst->append(buf, sizeof(T));
}

template <typename T>
bool GetBigEndian(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  T r = 0;
  for (size_t i = 0; i < sizeof(T); ++i) r = static_cast<T>((r << 8) | static_cast<uint8_t>((*in)[i]));
  *v = r;
  in->remove_prefix(sizeof(T));
  return true;
}

constexpr uint64_t kSignBit = uint64_t{1} << 63;

}  // namespace

void PutU8(std::string* dst, uint8_t v) {
  dst->push_back(static_cast<char>(v));
}
void PutU16(std::string* dst, uint16_t v) {
  PutBigEndian(dst, v);
}
void PutU32(std::string* dst, uint32_t v) {
  PutBigEndian(dst, v);
}
void PutU64(std::string* dst, uint64_t v) {
  PutBigEndian(dst, v);
}
void PutI64(std::string* dst, int64_t v) {
  PutBigEndian(dst, static_cast<uint64_t>(v) ^ kSignBit);
}
bool GetU8(std::string_view* in, uint8_t* v) {
  return GetBigEndian(in, v);
}
bool GetU16(std::string_view* in, uint16_t* v) {
  return GetBigEndian(in, v);
}
bool GetU32(std::string_view* in, uint32_t* v) {
  return GetBigEndian(in, v);
}
bool GetU64(std::string_view* in, uint64_t* v) {
  return GetBigEndian(in, v);
}
bool GetI64(std::string_view* in, int64_t* v) {
  uint64_t u;
  if (!GetBigEndian(in, &u)) return false;
  *v = static_cast<int64_t>(u ^ kSignBit);
  return true;
}

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}
void PutVarint32(std::string* dst, uint32_t v) {
  PutVarint64(dst, v);
}

bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t r = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    const uint64_t byte = static_cast<uint8_t>((*in)[i]);
    if (i == 9 && byte > 1) return false;  // would overflow 64 bits
    r |= (byte & 0x7F) << (7 * i);
    if ((byte & 0x80) == 0) {
      *v = r;
      in->remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool GetVarint32(std::string_view* in, uint32_t* v) {
  std::string_view copy = *in;
  uint64_t r;
  if (!GetVarint64(&copy, &r) || r > UINT32_MAX) return false;
  *v = static_cast<uint32_t>(r);
  *in = copy;
  return true;
}

void PutLengthPrefixed(std::string* dst, std::string_view s) {
  PutVarint32(dst, static_cast<uint32_t>(s.size()));
  dst->append(s);
}

bool GetLengthPrefixed(std::string_view* in, std::string_view* out) {
  std::string_view copy = *in;
  uint32_t n;
  if (!GetVarint32(&copy, &n) || copy.size() < n) return false;
  *out = copy.substr(0, n);
  copy.remove_prefix(n);
  *in = copy;
  return true;
}

void PutOrderedString(std::string* dst, std::string_view s) {
  for (char c : s) {
    dst->push_back(c);
    if (c == kOrderedEscape) dst->push_back(kOrderedEscapedZero);
  }
  dst->push_back(kOrderedEscape);
  dst->push_back(kOrderedTerminator);
}

bool GetOrderedString(std::string_view* in, std::string* out) {
  std::string r;
  for (size_t i = 0; i < in->size(); ++i) {
    const char c = (*in)[i];
    if (c != kOrderedEscape) {
      r.push_back(c);
      continue;
    }
    if (i + 1 >= in->size()) return false;
    const char next = (*in)[i + 1];
    if (next == kOrderedTerminator) {
      *out = std::move(r);
      in->remove_prefix(i + 2);
      return true;
    }
    if (next != kOrderedEscapedZero) return false;
    r.push_back('\0');
    ++i;
  }
  return false;  // no terminator
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xFF) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<uint8_t>(s.back()) + 1);
  return s;
}

bool KeyReader::Raw(size_t n, std::string_view* out) {
  if (in_.size() < n) return false;
  *out = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

}  // namespace parley::storage
