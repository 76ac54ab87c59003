// Private to broker/codec: the primitive MQTT data types (spec 1.5) read from and written to raw bytes.
//
// Reader never reads past its end: every accessor checks the bytes left and returns false instead.
// Writer never checks: the encoder sizes the packet first, grows the output string once, and then writes
// exactly that many bytes through a raw pointer (a debug check compares the end pointer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "broker/codec/constants.h"

namespace parley::mqtt::wire {

// A decode failure: a v5 reason code (0 = no failure) and a static string for logs.
struct Error {
  uint8_t reason = 0;
  const char* detail = "";
  explicit operator bool() const { return reason != 0; }
};

inline Error Malformed(const char* detail) {
  return Error{rc::kMalformedPacket, detail};
}
inline Error ProtocolError(const char* detail) {
  return Error{rc::kProtocolError, detail};
}

// Result of reading a variable byte integer from a buffer that may still be growing.
enum class VarIntStatus : uint8_t { kOk, kNeedMore, kMalformed };

// Reads a variable byte integer (spec 1.5.5) from [p, p+n): at most 4 bytes, shortest form only.
// kNeedMore when the buffer ends inside a well-formed prefix. On kOk `*len` is the bytes used.
VarIntStatus ParseVarInt(const uint8_t* p, size_t n, uint32_t* value, size_t* len);

inline constexpr size_t VarIntSize(uint32_t v) {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

// MQTT UTF-8 check (spec 1.5.4); the body of IsValidMqttUtf8, here so decoders can inline the call site.
bool ValidUtf8(const uint8_t* p, size_t n);

// Whether `s` contains '+' or '#' (a topic name must not, spec 4.7.1). Eight bytes per step: libstdc++'s
// find_first_of calls memchr on the needle for every byte of the haystack.
inline bool ContainsWildcard(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t plus = w ^ (kOnes * '+');
    const uint64_t hash = w ^ (kOnes * '#');
    if ((((plus - kOnes) & ~plus) | ((hash - kOnes) & ~hash)) & kHigh) return true;  // a zero byte in either
  }
  for (; n > 0; ++p, --n) {
    if (*p == '+' || *p == '#') return true;
  }
  return false;
}

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const uint8_t* pos() const { return p_; }

  bool U8(uint8_t* v) {
    if (p_ == end_) return false;
    *v = *p_++;
    return true;
  }
  bool U16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>(p_[0] << 8 | p_[1]);
    p_ += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = static_cast<uint32_t>(p_[0]) << 24 | static_cast<uint32_t>(p_[1]) << 16 |
         static_cast<uint32_t>(p_[2]) << 8 | p_[3];
    p_ += 4;
    return true;
  }
  // False if truncated, longer than 4 bytes, or not in its shortest form.
  bool VarInt(uint32_t* v) {
    if (p_ != end_ && *p_ < 0x80) {  // the common one-byte case
      *v = *p_++;
      return true;
    }
    size_t len = 0;
    if (ParseVarInt(p_, remaining(), v, &len) != VarIntStatus::kOk) return false;
    p_ += len;
    return true;
  }
  // Binary Data (spec 1.5.6): two-byte length, then bytes. The view points into the input buffer.
  bool Binary(std::string_view* v) {
    uint16_t n;
    if (!U16(&n) || remaining() < n) return false;
    *v = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  // UTF-8 Encoded String (spec 1.5.4): as Binary, and false if the bytes break the MQTT UTF-8 rules.
  bool Utf8(std::string_view* v) {
    return Binary(v) && ValidUtf8(reinterpret_cast<const uint8_t*>(v->data()), v->size());
  }
  bool Binary(std::string* s) {
    std::string_view v;
    if (!Binary(&v)) return false;
    s->assign(v);
    return true;
  }
  bool Utf8(std::string* s) {
    std::string_view v;
    if (!Utf8(&v)) return false;
    s->assign(v);
    return true;
  }
  // Splits off the next `n` bytes as their own reader.
  bool Take(size_t n, Reader* sub) {
    if (remaining() < n) return false;
    *sub = Reader(p_, n);
    p_ += n;
    return true;
  }
  // Everything left, as a view; the reader is then empty.
  std::string_view Rest() {
    std::string_view v(reinterpret_cast<const char*>(p_), remaining());
    p_ = end_;
    return v;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

class Writer {
 public:
  explicit Writer(char* p) : p_(reinterpret_cast<uint8_t*>(p)) {}

  char* pos() const { return reinterpret_cast<char*>(p_); }

  void U8(uint8_t v) { *p_++ = v; }
  void U16(uint16_t v) {
    p_[0] = static_cast<uint8_t>(v >> 8);
    p_[1] = static_cast<uint8_t>(v);
    p_ += 2;
  }
  void U32(uint32_t v) {
    p_[0] = static_cast<uint8_t>(v >> 24);
    p_[1] = static_cast<uint8_t>(v >> 16);
    p_[2] = static_cast<uint8_t>(v >> 8);
    p_[3] = static_cast<uint8_t>(v);
    p_ += 4;
  }
  void VarInt(uint32_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v) b |= 0x80;
      *p_++ = b;
    } while (v);
  }
  // Two-byte length then the bytes; the caller has checked s.size() <= 65535 while sizing.
  void Str(std::string_view s) {
    U16(static_cast<uint16_t>(s.size()));
    Raw(s);
  }
  void Raw(std::string_view s) {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

 private:
  uint8_t* p_;
};

// Accumulates the encoded size of a packet body and remembers whether it is encodable at all
// (every string and binary field fits a two-byte length, every length fits a variable byte integer).
struct Size {
  size_t n = 0;
  bool ok = true;

  void Str(std::string_view s) {
    n += 2 + s.size();
    ok &= s.size() <= 0xFFFF;
  }
  void Add(size_t k) { n += k; }
};

// Grows `out` by exactly 1 + VarIntSize(remaining) + remaining bytes, writes the fixed header, and
// returns a writer positioned at the first body byte. `remaining` must be <= kMaxRemainingLength.
Writer BeginPacket(std::string* out, uint8_t first_byte, uint32_t remaining);

}  // namespace parley::mqtt::wire
