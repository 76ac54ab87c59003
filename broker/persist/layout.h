// THE constants header for the broker's durable state: its column families and the layout of their keys
// (prose and byte examples: docs/storage-format.md, "Broker state"). Value encodings are in records.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/format.h"

namespace parley::broker::persist {

// The broker's families, in the order given to storage::OpenOptions::families.
enum class Fam : uint32_t {
  kSessions,       // key: client id (raw)                          value: SessionRecord
  kSubscriptions,  // key: Str(client id) + filter (raw)            value: SubscriptionRecord
  kDeliveries,     // key: Str(client id) + U64(seq)                value: DeliveryRecord
  kMessages,       // key: U64(message id)                          value: MessageRecord (one per body, shared)
  kIncomingQos2,   // key: Str(client id) + U16(packet id)          value: empty
  kWills,          // key: client id (raw)                          value: WillRecord
  kRetained,       // key: topic (raw)                              value: MessageRecord
  kMeta,           // key: kProbeKey                                value: anything (disk-full recovery probe)
  kCount,
};

inline const std::vector<std::string>& FamilyNames() {
  static const std::vector<std::string> kNames = {
      "mqtt.sessions", "mqtt.subscriptions", "mqtt.deliveries", "mqtt.messages",
      "mqtt.incoming_qos2", "mqtt.wills", "mqtt.retained", "mqtt.meta",
  };
  return kNames;
}

inline constexpr std::string_view kProbeKey = "probe";

// Everything of one client in the families keyed by Str(client id) + ...: the range
// [ClientPrefix(id), storage::PrefixSuccessor(ClientPrefix(id))). Str() is prefix-free, so client "a" never
// covers client "ab".
inline std::string ClientPrefix(std::string_view client_id) { return storage::KeyBuilder().Str(client_id).Release(); }

inline std::string SubscriptionKey(std::string_view client_id, std::string_view filter) {
  return storage::KeyBuilder().Str(client_id).Raw(filter).Release();
}
inline std::string DeliveryKey(std::string_view client_id, uint64_t seq) {
  return storage::KeyBuilder().Str(client_id).U64(seq).Release();
}
inline std::string IncomingQos2Key(std::string_view client_id, uint16_t packet_id) {
  return storage::KeyBuilder().Str(client_id).U16(packet_id).Release();
}
inline std::string MessageKey(uint64_t id) { return storage::KeyBuilder().U64(id).Release(); }

}  // namespace parley::broker::persist
