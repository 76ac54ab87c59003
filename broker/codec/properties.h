// Private to broker/codec: MQTT 5 properties (spec 2.2.2) decoded straight into `Properties` and written
// back. Which identifiers a packet may carry is a per-context bit mask (bit n = property id n).
#pragma once

#include <cstddef>
#include <cstdint>

#include "broker/codec/packets.h"
#include "broker/codec/wire.h"

namespace parley::mqtt {

// Where a property block sits. The four acks (PUBACK, PUBREC, PUBREL, PUBCOMP) share one list.
enum class PropCtx : uint8_t {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kAck,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
  // PUBLISH written from a PublishOut: as kPublish minus message expiry, topic alias and subscription
  // identifiers, which PublishOut supplies itself.
  kPublishOut,
};

// Reads a property block (length, then properties) into `*props`, which must start empty. Checks:
// identifiers allowed in `ctx` (else Malformed Packet, spec 2.2.2.2), duplicates (Protocol Error, except
// User Property and the Subscription Identifiers of a PUBLISH), value ranges, UTF-8 strings, and that the
// block fits in the reader.
wire::Error DecodeProperties(wire::Reader& r, PropCtx ctx, Properties* props);

// Bytes of the properties of `props` that `ctx` allows, without the length prefix. Sets s->ok = false if
// one cannot be encoded (a string over 65535 bytes).
size_t PropertiesBodySize(const Properties& props, PropCtx ctx, wire::Size* s);

// Writes those properties (no length prefix). User properties keep their order.
void WritePropertiesBody(const Properties& props, PropCtx ctx, wire::Writer& w);

// A whole property block: the length prefix, then the properties, given the body size from above.
inline size_t PropertyBlockSize(size_t body) {
  return wire::VarIntSize(static_cast<uint32_t>(body)) + body;
}
inline void WritePropertyBlock(const Properties& props, PropCtx ctx, size_t body, wire::Writer& w) {
  w.VarInt(static_cast<uint32_t>(body));
  if (body) WritePropertiesBody(props, ctx, w);
}

}  // namespace parley::mqtt
