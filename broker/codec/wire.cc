#include "broker/codec/wire.h"

#include "base/check.h"

namespace parley::mqtt::wire {

VarIntStatus ParseVarInt(const uint8_t* p, size_t n, uint32_t* value, size_t* len) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i == n) return VarIntStatus::kNeedMore;
    const uint8_t b = p[i];
    v |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      // Spec 1.5.5: the shortest encoding only. A trailing zero group (0x80 0x00) is overlong.
      if (i > 0 && b == 0) return VarIntStatus::kMalformed;
      *value = v;
      *len = i + 1;
      return VarIntStatus::kOk;
    }
  }
  return VarIntStatus::kMalformed;  // a fifth byte would be needed
}

Writer BeginPacket(std::string* out, uint8_t first_byte, uint32_t remaining) {
  PARLEY_DCHECK(remaining <= kMaxRemainingLength);
  const size_t old = out->size();
  out->resize(old + 1 + VarIntSize(remaining) + remaining);
  Writer w(out->data() + old);
  w.U8(first_byte);
  w.VarInt(remaining);
  return w;
}

}  // namespace parley::mqtt::wire
