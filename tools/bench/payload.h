// The header every benchmark payload starts with; the rest of the payload is filler. Host byte order:
// the same process writes and reads it.
//   0  u32 run id    (messages of another run are counted as stale, not as deliveries)
//   4  u32 publisher id
//   8  u64 sequence number (0, 1, 2, ... per publisher)
//  16  u64 send time, ns (uv_hrtime: CLOCK_MONOTONIC, comparable across this process's threads)
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace parley::bench {

inline constexpr size_t kPayloadHeader = 24;

struct PayloadHeader {
  uint32_t run_id = 0;
  uint32_t publisher = 0;
  uint64_t seq = 0;
  uint64_t sent_ns = 0;
};

inline void WritePayloadHeader(const PayloadHeader& h, char* out) {
  std::memcpy(out, &h.run_id, 4);
  std::memcpy(out + 4, &h.publisher, 4);
  std::memcpy(out + 8, &h.seq, 8);
  std::memcpy(out + 16, &h.sent_ns, 8);
}

// False if the payload is too short to carry a header.
inline bool ReadPayloadHeader(std::string_view p, PayloadHeader* h) {
  if (p.size() < kPayloadHeader) return false;
  std::memcpy(&h->run_id, p.data(), 4);
  std::memcpy(&h->publisher, p.data() + 4, 4);
  std::memcpy(&h->seq, p.data() + 8, 8);
  std::memcpy(&h->sent_ns, p.data() + 16, 8);
  return true;
}

}  // namespace parley::bench
