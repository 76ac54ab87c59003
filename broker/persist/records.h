// Value encodings of the broker's durable rows (keys: layout.h; prose: docs/storage-format.md). Every
// value starts with a version byte (kRecordVersion) so a later build can tell old rows from new. Decoders
// never read past their input and return false on anything malformed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "broker/api/message.h"
#include "broker/api/persistence.h"
#include "broker/codec/packets.h"

namespace parley::broker::persist {

inline constexpr uint8_t kRecordVersion = 1;

// Converts between the broker's monotonic expiry times and the wall clock stored on disk.
struct TimeBase {
  SteadyTime steady_now;
  int64_t unix_ms_now;
  int64_t ToUnixMs(SteadyTime t) const {
    return unix_ms_now + std::chrono::duration_cast<std::chrono::milliseconds>(t - steady_now).count();
  }
  SteadyTime ToSteady(int64_t unix_ms) const { return steady_now + std::chrono::milliseconds(unix_ms - unix_ms_now); }
};

struct SessionRecord {
  uint32_t expiry_interval = 0;
  std::optional<std::string> username;
  std::optional<int64_t> disconnected_at_ms;
};
void EncodeSession(const SessionRecord& r, std::string* out);
bool DecodeSession(std::string_view in, SessionRecord* r);

void EncodeSubscription(const mqtt::SubscribeOptions& opts, uint32_t sub_id, std::string* out);
bool DecodeSubscription(std::string_view in, mqtt::SubscribeOptions* opts, uint32_t* sub_id);

// A delivery row: the message id of its body (0 = released), QoS, RETAIN, subscription ids, share group.
struct DeliveryRecord {
  uint64_t message_id = 0;
  uint8_t qos = 1;
  bool retain = false;
  std::vector<uint32_t> sub_ids;
  std::string shared_group;
};
void EncodeDelivery(uint64_t message_id, uint8_t qos, bool retain, const std::vector<uint32_t>& sub_ids,
                    std::string_view shared_group, std::string* out);
bool DecodeDelivery(std::string_view in, DeliveryRecord* r);

// A message body (also the value of a retained row). Expiry is stored as wall-clock ms.
void EncodeMessage(const Message& m, const TimeBase& tb, std::string* out);
bool DecodeMessage(std::string_view in, const TimeBase& tb, Message* m);

void EncodeWill(const mqtt::Will& w, std::string* out);
bool DecodeWill(std::string_view in, mqtt::Will* w);

}  // namespace parley::broker::persist
