// DISCONNECT (spec 3.14) and AUTH (3.15, 5.0 only).
#include "broker/codec/families.h"
#include "broker/codec/properties.h"

namespace parley::mqtt::detail {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;
using wire::Writer;

namespace {

// DISCONNECT and AUTH share a body: [reason code [property block]]. Remaining length 0 means reason 0 and
// no properties; 1 means no properties (spec 3.14.2.2.1, 3.15.2.2.1).
Error DecodeReasonAndProps(Reader& r, PacketType type, PropCtx ctx, uint8_t* reason, Properties* props) {
  if (r.empty()) return {};
  r.U8(reason);
  if (!IsValidReasonCode(type, Version::kV5, *reason)) return ProtocolError("bad reason code");
  if (r.empty()) return {};
  if (Error e = DecodeProperties(r, ctx, props)) return e;
  if (!r.empty()) return Malformed("trailing bytes");
  return {};
}

}  // namespace

Error DecodeDisconnect(Reader r, Version v, Disconnect* d) {
  if (v != Version::kV5) {
    if (!r.empty()) return Malformed("3.1.1 DISCONNECT with a body");
    return {};
  }
  return DecodeReasonAndProps(r, PacketType::kDisconnect, PropCtx::kDisconnect, &d->reason_code, &d->props);
}

// Shortest forms: empty for reason 0 without properties, else the reason alone when there are none.
size_t BodySize(const Disconnect& p, Version v, Layout* l) {
  if (v != Version::kV5) return 0;
  wire::Size s;
  l->props = PropertiesBodySize(p.props, PropCtx::kDisconnect, &s);
  l->ok &= s.ok;
  if (l->props) return 1 + PropertyBlockSize(l->props);
  return p.reason_code ? 1 : 0;
}

void WriteBody(const Disconnect& p, Version v, const Layout& l, Writer& w) {
  if (v != Version::kV5 || (l.props == 0 && p.reason_code == 0)) return;
  w.U8(p.reason_code);
  if (l.props) WritePropertyBlock(p.props, PropCtx::kDisconnect, l.props, w);
}

Error DecodeAuth(Reader r, Version v, Auth* a) {
  if (v != Version::kV5) return Malformed("AUTH in MQTT 3.1.1");  // codec.cc rejects it earlier
  return DecodeReasonAndProps(r, PacketType::kAuth, PropCtx::kAuth, &a->reason_code, &a->props);
}

// AUTH is written empty for reason 0 without properties, else always with a property length: spec 3.15
// spells out only the empty short form, so we do not rely on the reason-only one when sending.
size_t BodySize(const Auth& p, Version v, Layout* l) {
  if (v != Version::kV5) {
    l->ok = false;  // AUTH does not exist in 3.1.1
    return 0;
  }
  wire::Size s;
  l->props = PropertiesBodySize(p.props, PropCtx::kAuth, &s);
  l->ok &= s.ok;
  if (l->props == 0 && p.reason_code == 0) return 0;
  return 1 + PropertyBlockSize(l->props);
}

void WriteBody(const Auth& p, Version v, const Layout& l, Writer& w) {
  if (l.props == 0 && p.reason_code == 0) return;
  w.U8(p.reason_code);
  WritePropertyBlock(p.props, PropCtx::kAuth, l.props, w);
}

}  // namespace parley::mqtt::detail
