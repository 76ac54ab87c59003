// MQTT string rules shared by the decoder and broker/core: UTF-8 (spec 1.5.4) and topic syntax (spec 4.7).
#include <cstring>
#include <string_view>

#include "broker/codec/codec.h"
#include "broker/codec/wire.h"

namespace parley::mqtt {
namespace wire {

bool ValidUtf8(const uint8_t* p, size_t n) {
  const uint8_t* const end = p + n;
  while (p < end) {
    // Fast path: eight ASCII bytes, none of them NUL.
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      constexpr uint64_t kHigh = 0x8080808080808080ULL;
      constexpr uint64_t kOnes = 0x0101010101010101ULL;
      if (((w | ((w - kOnes) & ~w)) & kHigh) == 0) {
        p += 8;
        continue;
      }
    }
    const uint8_t b = *p;
    if (b < 0x80) {
      if (b == 0) return false;  // U+0000 is forbidden [MQTT-1.5.4-2]
      ++p;
      continue;
    }
    // Multi-byte sequence (RFC 3629 table 3.1): the second byte's range excludes overlong forms,
    // surrogates (ED A0..BF) and code points above U+10FFFF.
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;  // continuation byte, C0/C1 (always overlong) or F5..FF
    }
    if (static_cast<size_t>(end - p) < len) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += len;
  }
  return true;
}

}  // namespace wire

bool IsValidMqttUtf8(std::string_view s) {
  return wire::ValidUtf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

bool IsValidTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > 0xFFFF) return false;
  if (wire::ContainsWildcard(topic)) return false;
  return IsValidMqttUtf8(topic);
}

bool IsValidTopicFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > 0xFFFF) return false;
  const size_t n = filter.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = filter[i];
    if (c != '+' && c != '#') continue;
    // A wildcard must be a whole level: preceded by '/' or the start...
    if (i > 0 && filter[i - 1] != '/') return false;
    if (c == '#') {
      // ...and '#' must be the last character [MQTT-4.7.1-1]
      if (i != n - 1) return false;
    } else if (i + 1 < n && filter[i + 1] != '/') {
      return false;  // '+' followed by anything but '/' [MQTT-4.7.1-2]
    }
  }
  return IsValidMqttUtf8(filter);
}

}  // namespace parley::mqtt
