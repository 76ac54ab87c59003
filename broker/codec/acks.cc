// PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.4-3.7), PINGREQ and PINGRESP (3.12, 3.13).
#include "broker/codec/families.h"
#include "broker/codec/properties.h"

namespace parley::mqtt::detail {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;
using wire::Writer;

namespace {

bool IsAckType(PacketType t) {
  return t == PacketType::kPuback || t == PacketType::kPubrec || t == PacketType::kPubrel ||
         t == PacketType::kPubcomp;
}

}  // namespace

Error DecodeAck(Reader r, PacketType type, Version v, Ack* a) {
  a->type = type;
  if (!r.U16(&a->packet_id)) return Malformed("truncated packet identifier");
  if (a->packet_id == 0) return ProtocolError("packet identifier 0");
  if (v != Version::kV5) {
    if (!r.empty()) return Malformed("3.1.1 ack longer than 2 bytes");
    return {};
  }
  // 5.0 (spec 3.4.2.1): remaining length 2 means Success and no properties; 3 means no properties.
  if (r.empty()) return {};
  r.U8(&a->reason_code);
  if (!IsValidReasonCode(type, v, a->reason_code)) return ProtocolError("bad ack reason code");
  if (r.empty()) return {};
  if (Error e = DecodeProperties(r, PropCtx::kAck, &a->props)) return e;
  if (!r.empty()) return Malformed("trailing bytes in ack");
  return {};
}

// 5.0 uses the shortest form: packet id alone for Success without properties, then packet id and reason.
size_t BodySize(const Ack& p, Version v, Layout* l) {
  if (!IsAckType(p.type)) {
    l->ok = false;
    return 0;
  }
  if (v != Version::kV5) return 2;
  wire::Size s;
  l->props = PropertiesBodySize(p.props, PropCtx::kAck, &s);
  l->ok &= s.ok;
  if (l->props) return 3 + PropertyBlockSize(l->props);
  return p.reason_code ? 3 : 2;
}

void WriteBody(const Ack& p, Version v, const Layout& l, Writer& w) {
  w.U16(p.packet_id);
  if (v != Version::kV5) return;
  if (l.props == 0 && p.reason_code == 0) return;
  w.U8(p.reason_code);
  if (l.props) WritePropertyBlock(p.props, PropCtx::kAck, l.props, w);
}

size_t BodySize(const Pingreq&, Version, Layout*) {
  return 0;
}
size_t BodySize(const Pingresp&, Version, Layout*) {
  return 0;
}
void WriteBody(const Pingreq&, Version, const Layout&, Writer&) {}
void WriteBody(const Pingresp&, Version, const Layout&, Writer&) {}

}  // namespace parley::mqtt::detail
