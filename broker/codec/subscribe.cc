// SUBSCRIBE (spec 3.8), SUBACK (3.9), UNSUBSCRIBE (3.10), UNSUBACK (3.11).
//
// Topic filters are checked here only as MQTT UTF-8 strings. Their syntax (IsValidTopicFilter) is left to
// broker/core, because a bad filter fails only its own entry (SUBACK 0x8F / 0x80), not the packet.
#include "broker/codec/families.h"
#include "broker/codec/properties.h"

namespace parley::mqtt::detail {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;
using wire::Writer;

namespace {

// Subscription options byte (spec 3.8.3.1).
constexpr uint8_t kOptQoS = 0x03;
constexpr uint8_t kOptNoLocal = 0x04;
constexpr uint8_t kOptRetainAsPublished = 0x08;
constexpr int kOptRetainHandlingShift = 4;
constexpr uint8_t kOptReservedV5 = 0xC0;
constexpr uint8_t kOptReservedV311 = 0xFC;

Error ReadPacketId(Reader& r, uint16_t* id) {
  if (!r.U16(id)) return Malformed("truncated packet identifier");
  if (*id == 0) return ProtocolError("packet identifier 0");  // [MQTT-2.2.1-3]
  return {};
}

// Reads the reason code list that ends SUBACK and v5 UNSUBACK: at least one, each valid for `type`.
Error ReadReasonCodes(Reader& r, PacketType type, Version v, std::vector<uint8_t>* codes) {
  if (r.empty()) return ProtocolError("no reason codes");
  codes->reserve(r.remaining());
  while (!r.empty()) {
    uint8_t code;
    r.U8(&code);
    if (!IsValidReasonCode(type, v, code)) return ProtocolError("bad reason code");
    codes->push_back(code);
  }
  return {};
}

size_t PropsSize(const Properties& props, PropCtx ctx, Version v, Layout* l) {
  if (v != Version::kV5) return 0;
  wire::Size s;
  l->props = PropertiesBodySize(props, ctx, &s);
  l->ok &= s.ok;
  return PropertyBlockSize(l->props);
}

}  // namespace

Error DecodeSubscribe(Reader r, Version v, Subscribe* s) {
  if (Error e = ReadPacketId(r, &s->packet_id)) return e;
  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kSubscribe, &s->props)) return e;
  }
  while (!r.empty()) {
    Subscription& sub = s->subscriptions.emplace_back();
    uint8_t o;
    if (!r.Utf8(&sub.filter) || !r.U8(&o)) return Malformed("bad subscription");
    if (o & (v == Version::kV5 ? kOptReservedV5 : kOptReservedV311)) {
      return Malformed("subscription options reserved bits set");  // [MQTT-3.8.3-5]
    }
    sub.opts.qos = o & kOptQoS;
    if (sub.opts.qos == 3) return Malformed("subscription QoS 3");
    sub.opts.no_local = o & kOptNoLocal;
    sub.opts.retain_as_published = o & kOptRetainAsPublished;
    sub.opts.retain_handling = (o >> kOptRetainHandlingShift) & 0x03;
    if (sub.opts.retain_handling == 3) return ProtocolError("retain handling 3");
  }
  if (s->subscriptions.empty()) return ProtocolError("SUBSCRIBE without filters");  // [MQTT-3.8.3-3]
  return {};
}

size_t BodySize(const Subscribe& p, Version v, Layout* l) {
  wire::Size s;
  s.Add(2 + PropsSize(p.props, PropCtx::kSubscribe, v, l));
  for (const Subscription& sub : p.subscriptions) {
    s.Str(sub.filter);
    s.Add(1);
  }
  l->ok &= s.ok;
  return s.n;
}

void WriteBody(const Subscribe& p, Version v, const Layout& l, Writer& w) {
  w.U16(p.packet_id);
  if (v == Version::kV5) WritePropertyBlock(p.props, PropCtx::kSubscribe, l.props, w);
  for (const Subscription& sub : p.subscriptions) {
    w.Str(sub.filter);
    uint8_t o = sub.opts.qos & kOptQoS;
    if (v == Version::kV5) {
      if (sub.opts.no_local) o |= kOptNoLocal;
      if (sub.opts.retain_as_published) o |= kOptRetainAsPublished;
      o |= static_cast<uint8_t>((sub.opts.retain_handling & 0x03) << kOptRetainHandlingShift);
    }
    w.U8(o);
  }
}

Error DecodeSuback(Reader r, Version v, Suback* s) {
  if (Error e = ReadPacketId(r, &s->packet_id)) return e;
  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kSuback, &s->props)) return e;
  }
  return ReadReasonCodes(r, PacketType::kSuback, v, &s->reason_codes);
}

size_t BodySize(const Suback& p, Version v, Layout* l) {
  return 2 + PropsSize(p.props, PropCtx::kSuback, v, l) + p.reason_codes.size();
}

void WriteBody(const Suback& p, Version v, const Layout& l, Writer& w) {
  w.U16(p.packet_id);
  if (v == Version::kV5) WritePropertyBlock(p.props, PropCtx::kSuback, l.props, w);
  for (uint8_t code : p.reason_codes) w.U8(code);
}

Error DecodeUnsubscribe(Reader r, Version v, Unsubscribe* u) {
  if (Error e = ReadPacketId(r, &u->packet_id)) return e;
  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kUnsubscribe, &u->props)) return e;
  }
  while (!r.empty()) {
    if (!r.Utf8(&u->filters.emplace_back())) return Malformed("bad topic filter");
  }
  if (u->filters.empty()) return ProtocolError("UNSUBSCRIBE without filters");  // [MQTT-3.10.3-2]
  return {};
}

size_t BodySize(const Unsubscribe& p, Version v, Layout* l) {
  wire::Size s;
  s.Add(2 + PropsSize(p.props, PropCtx::kUnsubscribe, v, l));
  for (const std::string& f : p.filters) s.Str(f);
  l->ok &= s.ok;
  return s.n;
}

void WriteBody(const Unsubscribe& p, Version v, const Layout& l, Writer& w) {
  w.U16(p.packet_id);
  if (v == Version::kV5) WritePropertyBlock(p.props, PropCtx::kUnsubscribe, l.props, w);
  for (const std::string& f : p.filters) w.Str(f);
}

Error DecodeUnsuback(Reader r, Version v, Unsuback* u) {
  if (Error e = ReadPacketId(r, &u->packet_id)) return e;
  if (v != Version::kV5) {
    if (!r.empty()) return Malformed("trailing bytes in UNSUBACK");  // 3.1.1: packet id only
    return {};
  }
  if (Error e = DecodeProperties(r, PropCtx::kUnsuback, &u->props)) return e;
  return ReadReasonCodes(r, PacketType::kUnsuback, v, &u->reason_codes);
}

size_t BodySize(const Unsuback& p, Version v, Layout* l) {
  if (v != Version::kV5) return 2;
  return 2 + PropsSize(p.props, PropCtx::kUnsuback, v, l) + p.reason_codes.size();
}

void WriteBody(const Unsuback& p, Version v, const Layout& l, Writer& w) {
  w.U16(p.packet_id);
  if (v != Version::kV5) return;
  WritePropertyBlock(p.props, PropCtx::kUnsuback, l.props, w);
  for (uint8_t code : p.reason_codes) w.U8(code);
}

}  // namespace parley::mqtt::detail
