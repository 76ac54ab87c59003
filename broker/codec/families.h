// Private to broker/codec: the per-family decoders and encoders behind Decode/Encode in codec.cc.
// One .cc per family: connect.cc, publish.cc, subscribe.cc, acks.cc, auth.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "broker/codec/packets.h"
#include "broker/codec/wire.h"

namespace parley::mqtt::detail {

// --- decoding ---
// `r` holds exactly the packet body (the remaining-length bytes); codec.cc has already checked the
// fixed-header flags (PUBLISH's QoS and DUP included) and that the type exists in `v`. Each decoder
// fills a fresh struct and fails if it does not use up `r` exactly.

wire::Error DecodeConnect(wire::Reader r, Connect* out, std::optional<Version>* version);
wire::Error DecodeConnack(wire::Reader r, Version v, Connack* out);
wire::Error DecodePublish(wire::Reader r, uint8_t flags, Version v, Publish* out);
wire::Error DecodeAck(wire::Reader r, PacketType type, Version v, Ack* out);
wire::Error DecodeSubscribe(wire::Reader r, Version v, Subscribe* out);
wire::Error DecodeSuback(wire::Reader r, Version v, Suback* out);
wire::Error DecodeUnsubscribe(wire::Reader r, Version v, Unsubscribe* out);
wire::Error DecodeUnsuback(wire::Reader r, Version v, Unsuback* out);
wire::Error DecodeDisconnect(wire::Reader r, Version v, Disconnect* out);
wire::Error DecodeAuth(wire::Reader r, Version v, Auth* out);

// Whether `code` is a reason code that packet `type` may carry in version `v` (spec 2.4 and each packet's
// reason code table; 3.1.1 CONNACK and SUBACK return codes).
bool IsValidReasonCode(PacketType type, Version v, uint8_t code);

// --- encoding ---
// Encoding is two passes over a packet: BodySize computes the remaining length (and caches the property
// block sizes in `Layout`, so they are walked once), then WriteBody fills exactly that many bytes.
// `Layout::ok` is false when the packet cannot be encoded: a string over 65535 bytes, a packet type that
// does not exist in `v`, or an Ack whose type is not one of the four acks.

struct Layout {
  size_t props = 0;       // body size of the packet's property block (v5)
  size_t will_props = 0;  // CONNECT only: body size of the will property block
  bool ok = true;
};

size_t BodySize(const Connect& p, Version v, Layout* l);
size_t BodySize(const Connack& p, Version v, Layout* l);
size_t BodySize(const Ack& p, Version v, Layout* l);
size_t BodySize(const Subscribe& p, Version v, Layout* l);
size_t BodySize(const Suback& p, Version v, Layout* l);
size_t BodySize(const Unsubscribe& p, Version v, Layout* l);
size_t BodySize(const Unsuback& p, Version v, Layout* l);
size_t BodySize(const Pingreq& p, Version v, Layout* l);
size_t BodySize(const Pingresp& p, Version v, Layout* l);
size_t BodySize(const Disconnect& p, Version v, Layout* l);
size_t BodySize(const Auth& p, Version v, Layout* l);

void WriteBody(const Connect& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Connack& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Ack& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Subscribe& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Suback& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Unsubscribe& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Unsuback& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Pingreq& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Pingresp& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Disconnect& p, Version v, const Layout& l, wire::Writer& w);
void WriteBody(const Auth& p, Version v, const Layout& l, wire::Writer& w);

// PUBLISH is encoded through PublishOut (publish.cc), so a stored message and a decoded one share a path.
size_t EncodePublishPacket(const Publish& p, Version v, std::string* out);
size_t PublishPacketSize(const Publish& p, Version v);

// First byte of the fixed header: type << 4 | the flags the spec fixes for that type.
inline uint8_t FixedByte(PacketType t) {
  const uint8_t flags =
      (t == PacketType::kPubrel || t == PacketType::kSubscribe || t == PacketType::kUnsubscribe) ? 0x02
                                                                                                 : 0x00;
  return static_cast<uint8_t>(static_cast<uint8_t>(t) << 4 | flags);
}

}  // namespace parley::mqtt::detail
