// Plain structs for every MQTT 3.1.1 / 5.0 control packet. No behaviour beyond value semantics:
// the decoder fills them, the encoder writes them, broker/core acts on them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/codec/constants.h"

namespace parley::mqtt {

using UserProperty = std::pair<std::string, std::string>;

// Every MQTT 5 property. A field is set only when the property was present on the wire (or is to be
// written). Which properties a packet may carry is checked by the decoder (a stray one is malformed, 2.2.2.2).
struct Properties {
  std::optional<uint8_t> payload_format_indicator;
  std::optional<uint32_t> message_expiry_interval;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;        // binary
  std::vector<uint32_t> subscription_identifiers;     // PUBLISH may carry several; SUBSCRIBE at most one
  std::optional<uint32_t> session_expiry_interval;
  std::optional<std::string> assigned_client_identifier;
  std::optional<uint16_t> server_keep_alive;
  std::optional<std::string> authentication_method;
  std::optional<std::string> authentication_data;     // binary
  std::optional<uint8_t> request_problem_information;
  std::optional<uint32_t> will_delay_interval;
  std::optional<uint8_t> request_response_information;
  std::optional<std::string> response_information;
  std::optional<std::string> server_reference;
  std::optional<std::string> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::vector<UserProperty> user_properties;          // order preserved, duplicates allowed
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_subscription_available;
  std::optional<uint8_t> subscription_identifier_available;
  std::optional<uint8_t> shared_subscription_available;

  bool operator==(const Properties&) const = default;
};

struct Will {
  std::string topic;
  std::string payload;  // binary
  uint8_t qos = 0;
  bool retain = false;
  Properties props;     // v5 will properties
  bool operator==(const Will&) const = default;
};

struct Connect {
  Version version = Version::kV311;
  std::string protocol_name = "MQTT";  // "MQTT" (3.1.1 / 5.0)
  bool clean_start = true;             // 3.1.1: Clean Session
  uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary
  Properties props;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  uint8_t reason_code = 0;  // v5 reason code, or 3.1.1 return code (rc311)
  Properties props;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;  // empty when a v5 topic alias stands in for it
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // 0 for QoS 0
  Properties props;
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct Ack {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t reason_code = 0;
  Properties props;
  bool operator==(const Ack&) const = default;
};

struct SubscribeOptions {
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;  // 0, 1 or 2
  bool operator==(const SubscribeOptions&) const = default;
};

struct Subscription {
  std::string filter;
  SubscribeOptions opts;
  bool operator==(const Subscription&) const = default;
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
  Properties props;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;
  Properties props;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties props;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;  // v5 only; empty on 3.1.1
  Properties props;
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  uint8_t reason_code = 0;
  Properties props;
  bool operator==(const Disconnect&) const = default;
};

struct Auth {
  uint8_t reason_code = 0;
  Properties props;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe, Unsuback, Pingreq,
                            Pingresp, Disconnect, Auth>;

PacketType TypeOf(const Packet& p);
const char* PacketTypeName(PacketType t);

}  // namespace parley::mqtt
