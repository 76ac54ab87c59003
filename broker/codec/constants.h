// MQTT wire constants for 3.1.1 and 5.0: packet types, property identifiers, reason codes.
// The one header every part of Parley uses for these numbers (docs/mqtt.md describes them).
#pragma once

#include <cstdint>

namespace parley::mqtt {

enum class Version : uint8_t { kV311 = 4, kV5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// MQTT 5 property identifiers (spec 2.2.2.2).
enum class PropId : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQoS = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

// MQTT 5 reason codes (spec 2.4). 3.1.1 return codes are mapped from these where needed.
namespace rc {
inline constexpr uint8_t kSuccess = 0x00;  // also Normal disconnection, Granted QoS 0
inline constexpr uint8_t kGrantedQoS1 = 0x01;
inline constexpr uint8_t kGrantedQoS2 = 0x02;
inline constexpr uint8_t kDisconnectWithWill = 0x04;
inline constexpr uint8_t kNoMatchingSubscribers = 0x10;
inline constexpr uint8_t kNoSubscriptionExisted = 0x11;
inline constexpr uint8_t kContinueAuthentication = 0x18;
inline constexpr uint8_t kReAuthenticate = 0x19;
inline constexpr uint8_t kUnspecifiedError = 0x80;
inline constexpr uint8_t kMalformedPacket = 0x81;
inline constexpr uint8_t kProtocolError = 0x82;
inline constexpr uint8_t kImplementationSpecificError = 0x83;
inline constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t kClientIdentifierNotValid = 0x85;
inline constexpr uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr uint8_t kNotAuthorized = 0x87;
inline constexpr uint8_t kServerUnavailable = 0x88;
inline constexpr uint8_t kServerBusy = 0x89;
inline constexpr uint8_t kBanned = 0x8A;
inline constexpr uint8_t kServerShuttingDown = 0x8B;
inline constexpr uint8_t kBadAuthenticationMethod = 0x8C;
inline constexpr uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr uint8_t kSessionTakenOver = 0x8E;
inline constexpr uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr uint8_t kTopicNameInvalid = 0x90;
inline constexpr uint8_t kPacketIdentifierInUse = 0x91;
inline constexpr uint8_t kPacketIdentifierNotFound = 0x92;
inline constexpr uint8_t kReceiveMaximumExceeded = 0x93;
inline constexpr uint8_t kTopicAliasInvalid = 0x94;
inline constexpr uint8_t kPacketTooLarge = 0x95;
inline constexpr uint8_t kMessageRateTooHigh = 0x96;
inline constexpr uint8_t kQuotaExceeded = 0x97;
inline constexpr uint8_t kAdministrativeAction = 0x98;
inline constexpr uint8_t kPayloadFormatInvalid = 0x99;
inline constexpr uint8_t kRetainNotSupported = 0x9A;
inline constexpr uint8_t kQoSNotSupported = 0x9B;
inline constexpr uint8_t kUseAnotherServer = 0x9C;
inline constexpr uint8_t kServerMoved = 0x9D;
inline constexpr uint8_t kSharedSubscriptionsNotSupported = 0x9E;
inline constexpr uint8_t kConnectionRateExceeded = 0x9F;
inline constexpr uint8_t kMaximumConnectTime = 0xA0;
inline constexpr uint8_t kSubscriptionIdentifiersNotSupported = 0xA1;
inline constexpr uint8_t kWildcardSubscriptionsNotSupported = 0xA2;
}  // namespace rc

// MQTT 3.1.1 CONNACK return codes (spec 3.2.2.3).
namespace rc311 {
inline constexpr uint8_t kAccepted = 0x00;
inline constexpr uint8_t kUnacceptableProtocolVersion = 0x01;
inline constexpr uint8_t kIdentifierRejected = 0x02;
inline constexpr uint8_t kServerUnavailable = 0x03;
inline constexpr uint8_t kBadUserNameOrPassword = 0x04;
inline constexpr uint8_t kNotAuthorized = 0x05;
inline constexpr uint8_t kSubackFailure = 0x80;
}  // namespace rc311

inline constexpr uint32_t kMaxRemainingLength = 268'435'455;  // 4-byte variable byte integer
inline constexpr uint32_t kMaxVarInt = 268'435'455;
inline constexpr uint32_t kMaxSubscriptionId = 268'435'455;

}  // namespace parley::mqtt
