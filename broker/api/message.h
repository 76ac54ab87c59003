// An application message as the broker routes it: immutable once published, shared by reference among
// every receiver (queues, in-flight windows, retained store). Per-receiver details (packet id, QoS after
// downgrade, topic alias, subscription ids, remaining expiry) are written when the message is encoded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.h"
#include "broker/codec/packets.h"

namespace parley::broker {

struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  // Properties passed through to v5 receivers in order: payload format, content type, response topic,
  // correlation data, user properties. Null when the publisher sent none (all 3.1.1 traffic).
  std::unique_ptr<const mqtt::Properties> props;
  // Absolute expiry from the v5 Message Expiry Interval; unset means never.
  std::optional<SteadyTime> expires_at;
  // The publishing session's client id, for No Local. Empty for broker-originated messages.
  std::string origin_client_id;
  // Never written to the durable session queues (only kept in memory): set by a plugin that keeps its own
  // durable copy and lets receivers catch up from it (the IM layer's live deliveries).
  bool transient = false;

  bool ExpiredAt(SteadyTime now) const { return expires_at && now >= *expires_at; }
  // Bytes this message keeps alive (queue accounting).
  size_t Footprint() const { return sizeof(Message) + topic.size() + payload.size() + (props ? 256 : 0); }
};

using MessagePtr = std::shared_ptr<const Message>;

// Whether `p` holds any of the properties a message carries through the broker to v5 receivers (payload
// format, content type, response topic, correlation data, user properties): Message::props is set only then.
inline bool HasPassThroughProperties(const mqtt::Properties& p) {
  return p.payload_format_indicator || p.content_type || p.response_topic || p.correlation_data ||
         !p.user_properties.empty();
}

}  // namespace parley::broker
