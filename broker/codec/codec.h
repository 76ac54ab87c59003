// The MQTT codec: bytes <-> packet structs for 3.1.1 and 5.0. Pure functions; no I/O, clocks or config.
// Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "broker/codec/packets.h"

namespace parley::mqtt {

enum class DecodeStatus : uint8_t {
  kOk,        // one packet decoded; `consumed` bytes used
  kNeedMore,  // the buffer holds only part of a packet; nothing consumed
  kError,     // the bytes violate the protocol; `reason` says how; the connection must close
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  size_t consumed = 0;
  // On kError: a v5 reason code — kMalformedPacket, kProtocolError, kPacketTooLarge, kTopicNameInvalid,
  // kUnsupportedProtocolVersion, kClientIdentifierNotValid, kPayloadFormatInvalid.
  uint8_t reason = 0;
  // On kError while decoding a CONNECT: the protocol version the client asked for, if it got that far,
  // so the caller can answer with a CONNACK in the client's own version.
  std::optional<Version> connect_version;
  const char* detail = "";  // static string for logs and v5 reason strings
};

struct DecodeOptions {
  // Version negotiated by CONNECT; ignored when decoding CONNECT itself.
  Version version = Version::kV311;
  // Largest whole packet (fixed header included) we accept. Bigger ones fail with kPacketTooLarge as soon
  // as the fixed header is readable, before the body arrives.
  uint32_t max_packet_size = kMaxRemainingLength + 5;
};

// Decodes one packet from the front of `in`. Incremental: returns kNeedMore, consuming nothing, until a
// whole packet is present. Validates everything that needs no session state: reserved bits and flags,
// remaining length, UTF-8 rules (MQTT 1.5.4), property identifiers allowed for the packet type and
// duplicates, property values, reason codes, topic name syntax, QoS values, packet id != 0 where required,
// non-empty SUBSCRIBE / UNSUBSCRIBE. A PUBLISH topic alias of 0 fails with kTopicAliasInvalid (0x94).
// Topic *filters* in SUBSCRIBE and UNSUBSCRIBE are checked only as UTF-8 strings, not as filters: a bad
// filter fails its own entry (SUBACK 0x8F / 3.1.1 0x80), not the packet, so broker/core must call
// IsValidTopicFilter (and check shared-subscription syntax) on each one.
// On kError, `consumed` is 0 and `*out` holds an unspecified partial packet.
DecodeResult Decode(std::span<const uint8_t> in, const DecodeOptions& opts, Packet* out);

// Appends the encoding of `p` for protocol `v` to `out`. Properties are written only for v5.
// Returns the number of bytes appended, or 0 (appending nothing) when `p` cannot be encoded: a string
// longer than 65535 bytes, AUTH on 3.1.1, an Ack whose type is not an ack, an out-of-range value.
size_t Encode(const Packet& p, Version v, std::string* out);

// Outgoing PUBLISH built from views, so one stored message can be written per receiver without copies.
// Fields here override the same properties in `props`.
struct PublishOut {
  std::string_view topic;  // may be empty when topic_alias names a mapping the peer already has
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  const Properties* props = nullptr;  // pass-through properties (ignored fields: below)
  std::optional<uint32_t> message_expiry_interval;
  std::optional<uint16_t> topic_alias;
  std::span<const uint32_t> subscription_ids;
};

// Size of the encoded PUBLISH, fixed header included.
size_t PublishSize(const PublishOut& p, Version v);
size_t EncodePublish(const PublishOut& p, Version v, std::string* out);

// Size of a whole encoded packet (fixed header included).
size_t EncodedSize(const Packet& p, Version v);

// --- validation helpers shared with broker/core ---

// MQTT UTF-8 string rules: well-formed UTF-8, no U+0000, no surrogates (U+D800..U+DFFF).
bool IsValidMqttUtf8(std::string_view s);
// Topic name: non-empty (unless alias), valid UTF-8, no '+' or '#'.
bool IsValidTopicName(std::string_view topic);
// Topic filter: non-empty, '#' only as the whole last level, '+' only as a whole level.
bool IsValidTopicFilter(std::string_view filter);

}  // namespace parley::mqtt
