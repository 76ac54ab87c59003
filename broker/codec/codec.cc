// Decode/Encode entry points: the fixed header (spec 2.1), size limits, and dispatch to the packet
// families. Everything packet-specific lives in connect.cc, publish.cc, subscribe.cc, acks.cc, auth.cc.
#include "broker/codec/codec.h"

#include <initializer_list>
#include <type_traits>
#include <variant>

#include "base/check.h"
#include "broker/codec/families.h"
#include "broker/codec/wire.h"

namespace parley::mqtt {

PacketType TypeOf(const Packet& p) {
  struct Visitor {
    PacketType operator()(const Connect&) const { return PacketType::kConnect; }
    PacketType operator()(const Connack&) const { return PacketType::kConnack; }
    PacketType operator()(const Publish&) const { return PacketType::kPublish; }
    PacketType operator()(const Ack& a) const { return a.type; }
    PacketType operator()(const Subscribe&) const { return PacketType::kSubscribe; }
    PacketType operator()(const Suback&) const { return PacketType::kSuback; }
    PacketType operator()(const Unsubscribe&) const { return PacketType::kUnsubscribe; }
    PacketType operator()(const Unsuback&) const { return PacketType::kUnsuback; }
    PacketType operator()(const Pingreq&) const { return PacketType::kPingreq; }
    PacketType operator()(const Pingresp&) const { return PacketType::kPingresp; }
    PacketType operator()(const Disconnect&) const { return PacketType::kDisconnect; }
    PacketType operator()(const Auth&) const { return PacketType::kAuth; }
  };
  return std::visit(Visitor{}, p);
}

const char* PacketTypeName(PacketType t) {
  switch (t) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
    case PacketType::kAuth:
      return "AUTH";
  }
  return "UNKNOWN";
}

namespace detail {
namespace {

// A set of byte values, built at compile time.
struct CodeSet {
  uint64_t bits[4] = {};
  constexpr CodeSet(std::initializer_list<uint8_t> codes) {
    for (uint8_t c : codes) bits[c >> 6] |= uint64_t{1} << (c & 63);
  }
  constexpr bool Has(uint8_t c) const { return (bits[c >> 6] >> (c & 63)) & 1; }
};

// Reason codes each packet may carry (spec 5.0 §3.x.2.1 tables; 3.1.1 §3.2.2.3 and §3.9.3).
constexpr CodeSet kConnackV5 = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr CodeSet kConnackV311 = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05};
constexpr CodeSet kPubackPubrec = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
constexpr CodeSet kPubrelPubcomp = {0x00, 0x92};
constexpr CodeSet kSubackV5 = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr CodeSet kSubackV311 = {0x00, 0x01, 0x02, 0x80};
constexpr CodeSet kUnsuback = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
constexpr CodeSet kDisconnect = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr CodeSet kAuth = {0x00, 0x18, 0x19};

}  // namespace

bool IsValidReasonCode(PacketType type, Version v, uint8_t code) {
  const bool v5 = v == Version::kV5;
  switch (type) {
    case PacketType::kConnack:
      return (v5 ? kConnackV5 : kConnackV311).Has(code);
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return kPubackPubrec.Has(code);
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return kPubrelPubcomp.Has(code);
    case PacketType::kSuback:
      return (v5 ? kSubackV5 : kSubackV311).Has(code);
    case PacketType::kUnsuback:
      return kUnsuback.Has(code);
    case PacketType::kDisconnect:
      return kDisconnect.Has(code);
    case PacketType::kAuth:
      return kAuth.Has(code);
    default:
      return false;
  }
}

}  // namespace detail

namespace {

using wire::Error;
using wire::Malformed;

// Checks the first byte alone, so a bad type or flags fails before the rest of the packet arrives.
Error CheckFirstByte(uint8_t b, Version v) {
  const uint8_t flags = b & 0x0F;
  switch (static_cast<PacketType>(b >> 4)) {
    case PacketType::kPublish: {
      const uint8_t qos = (flags >> 1) & 0x03;
      if (qos == 3) return Malformed("PUBLISH QoS 3");                               // [MQTT-3.3.1-4]
      if (qos == 0 && (flags & 0x08)) return Malformed("PUBLISH DUP set on QoS 0");  // [MQTT-3.3.1-2]
      return {};
    }
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      if (flags != 0x02) return Malformed("reserved fixed header flags must be 0010");  // [MQTT-2.1.3-1]
      return {};
    case PacketType::kAuth:
      if (v != Version::kV5) return Malformed("AUTH is not an MQTT 3.1.1 packet");
      [[fallthrough]];
    case PacketType::kConnect:
    case PacketType::kConnack:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubcomp:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect:
      if (flags != 0) return Malformed("reserved fixed header flags must be 0000");
      return {};
  }
  return Malformed("reserved packet type 0");
}

Error DecodeBody(PacketType type, uint8_t flags, wire::Reader body, Version v, Packet* out,
                 std::optional<Version>* connect_version) {
  using namespace detail;  // NOLINT(google-build-using-namespace)
  switch (type) {
    case PacketType::kConnect:
      return DecodeConnect(body, &out->emplace<Connect>(), connect_version);
    case PacketType::kConnack:
      return DecodeConnack(body, v, &out->emplace<Connack>());
    case PacketType::kPublish:
      return DecodePublish(body, flags, v, &out->emplace<Publish>());
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return DecodeAck(body, type, v, &out->emplace<Ack>());
    case PacketType::kSubscribe:
      return DecodeSubscribe(body, v, &out->emplace<Subscribe>());
    case PacketType::kSuback:
      return DecodeSuback(body, v, &out->emplace<Suback>());
    case PacketType::kUnsubscribe:
      return DecodeUnsubscribe(body, v, &out->emplace<Unsubscribe>());
    case PacketType::kUnsuback:
      return DecodeUnsuback(body, v, &out->emplace<Unsuback>());
    case PacketType::kPingreq:
      out->emplace<Pingreq>();
      return body.empty() ? Error{} : Malformed("PINGREQ with a body");
    case PacketType::kPingresp:
      out->emplace<Pingresp>();
      return body.empty() ? Error{} : Malformed("PINGRESP with a body");
    case PacketType::kDisconnect:
      return DecodeDisconnect(body, v, &out->emplace<Disconnect>());
    case PacketType::kAuth:
      return DecodeAuth(body, v, &out->emplace<Auth>());
  }
  return Malformed("reserved packet type");  // unreachable: CheckFirstByte rejected it
}

DecodeResult Fail(const Error& e, std::optional<Version> connect_version = std::nullopt) {
  DecodeResult r;
  r.status = DecodeStatus::kError;
  r.reason = e.reason;
  r.detail = e.detail;
  r.connect_version = connect_version;
  return r;
}

}  // namespace

DecodeResult Decode(std::span<const uint8_t> in, const DecodeOptions& opts, Packet* out) {
  DecodeResult res;  // kNeedMore, consumed 0
  if (in.empty()) return res;
  if (Error e = CheckFirstByte(in[0], opts.version)) return Fail(e);

  uint32_t remaining;
  size_t len_bytes;
  switch (wire::ParseVarInt(in.data() + 1, in.size() - 1, &remaining, &len_bytes)) {
    case wire::VarIntStatus::kNeedMore:
      return res;
    case wire::VarIntStatus::kMalformed:
      return Fail(Malformed("bad remaining length"));
    case wire::VarIntStatus::kOk:
      break;
  }
  const size_t header = 1 + len_bytes;
  const uint64_t total = header + uint64_t{remaining};
  if (total > opts.max_packet_size) return Fail(Error{rc::kPacketTooLarge, "packet exceeds maximum size"});
  if (in.size() < total) return res;

  const auto type = static_cast<PacketType>(in[0] >> 4);
  std::optional<Version> connect_version;
  const Error e = DecodeBody(type, in[0] & 0x0F, wire::Reader(in.data() + header, remaining), opts.version,
                             out, &connect_version);
  if (e) return Fail(e, connect_version);
  res.status = DecodeStatus::kOk;
  res.consumed = static_cast<size_t>(total);
  res.connect_version = connect_version;
  return res;
}

namespace {

// Packet type of each struct but Ack (whose type is a field) and Publish (encoded in publish.cc).
template <typename P>
constexpr PacketType kTypeOf = PacketType::kConnect;
template <>
constexpr PacketType kTypeOf<Connack> = PacketType::kConnack;
template <>
constexpr PacketType kTypeOf<Subscribe> = PacketType::kSubscribe;
template <>
constexpr PacketType kTypeOf<Suback> = PacketType::kSuback;
template <>
constexpr PacketType kTypeOf<Unsubscribe> = PacketType::kUnsubscribe;
template <>
constexpr PacketType kTypeOf<Unsuback> = PacketType::kUnsuback;
template <>
constexpr PacketType kTypeOf<Pingreq> = PacketType::kPingreq;
template <>
constexpr PacketType kTypeOf<Pingresp> = PacketType::kPingresp;
template <>
constexpr PacketType kTypeOf<Disconnect> = PacketType::kDisconnect;
template <>
constexpr PacketType kTypeOf<Auth> = PacketType::kAuth;

template <typename P>
size_t EncodeGeneric(const P& p, Version v, std::string* out) {
  detail::Layout l;
  const size_t body = detail::BodySize(p, v, &l);
  if (!l.ok || body > kMaxRemainingLength) return 0;
  const uint32_t remaining = static_cast<uint32_t>(body);
  const size_t total = 1 + wire::VarIntSize(remaining) + remaining;
  const size_t old = out->size();
  PacketType type = kTypeOf<P>;
  if constexpr (std::is_same_v<P, Ack>) type = p.type;
  wire::Writer w = wire::BeginPacket(out, detail::FixedByte(type), remaining);
  detail::WriteBody(p, v, l, w);
  PARLEY_DCHECK(w.pos() == out->data() + old + total);
  (void)old;
  return total;
}

}  // namespace

size_t Encode(const Packet& p, Version v, std::string* out) {
  return std::visit(
      [&](const auto& pkt) -> size_t {
        using P = std::decay_t<decltype(pkt)>;
        if constexpr (std::is_same_v<P, Publish>) {
          return detail::EncodePublishPacket(pkt, v, out);
        } else {
          return EncodeGeneric(pkt, v, out);
        }
      },
      p);
}

size_t EncodedSize(const Packet& p, Version v) {
  return std::visit(
      [&](const auto& pkt) -> size_t {
        using P = std::decay_t<decltype(pkt)>;
        if constexpr (std::is_same_v<P, Publish>) {
          return detail::PublishPacketSize(pkt, v);
        } else {
          detail::Layout l;
          const size_t body = detail::BodySize(pkt, v, &l);
          if (!l.ok || body > kMaxRemainingLength) return 0;
          return 1 + wire::VarIntSize(static_cast<uint32_t>(body)) + body;
        }
      },
      p);
}

}  // namespace parley::mqtt
