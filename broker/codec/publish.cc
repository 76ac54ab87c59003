// PUBLISH (spec 3.3): decoding, and the copy-free encoder used to fan one message out to many receivers.
#include <string_view>

#include "base/check.h"
#include "broker/codec/codec.h"
#include "broker/codec/families.h"
#include "broker/codec/properties.h"

namespace parley::mqtt {
namespace detail {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;

Error DecodePublish(Reader r, uint8_t flags, Version v, Publish* p) {
  // QoS 3 and DUP on QoS 0 were rejected with the fixed header (codec.cc).
  p->retain = flags & 0x01;
  p->qos = (flags >> 1) & 0x03;
  p->dup = flags & 0x08;

  std::string_view topic;
  if (!r.Utf8(&topic)) return Malformed("bad topic name");
  if (wire::ContainsWildcard(topic)) {
    return Error{rc::kTopicNameInvalid, "wildcard in topic name"};  // [MQTT-3.3.2-2]
  }
  if (p->qos > 0) {
    if (!r.U16(&p->packet_id)) return Malformed("truncated packet identifier");
    if (p->packet_id == 0) return ProtocolError("packet identifier 0");  // [MQTT-2.2.1-3]
  }
  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kPublish, &p->props)) return e;
  }
  // An empty topic stands for a topic alias (5.0 only, spec 3.3.2.3.4); without one it is a Protocol Error.
  if (topic.empty() && !p->props.topic_alias) return ProtocolError("empty topic name without topic alias");
  p->topic.assign(topic);

  const std::string_view payload = r.Rest();
  // Spec 3.3.2.3.2: the receiver MAY check a payload declared UTF-8. We do; the check is cheap next to
  // the copy below and lets core answer with Payload format invalid.
  if (p->props.payload_format_indicator == 1 &&
      !wire::ValidUtf8(reinterpret_cast<const uint8_t*>(payload.data()), payload.size())) {
    return Error{rc::kPayloadFormatInvalid, "payload is not UTF-8"};
  }
  p->payload.assign(payload);
  return {};
}

}  // namespace detail

namespace {

struct PublishPlan {
  size_t remaining = 0;  // remaining length
  size_t props = 0;      // property block body (v5)
  bool ok = true;
};

PublishPlan Plan(const PublishOut& p, Version v) {
  PublishPlan plan;
  wire::Size s;
  s.Str(p.topic);
  if (p.qos > 0) s.Add(2);
  if (v == Version::kV5) {
    size_t props = p.props ? PropertiesBodySize(*p.props, PropCtx::kPublishOut, &s) : 0;
    if (p.message_expiry_interval) props += 1 + 4;
    if (p.topic_alias) props += 1 + 2;
    for (uint32_t id : p.subscription_ids) {
      props += 1 + wire::VarIntSize(id);
      s.ok &= id <= kMaxVarInt;
    }
    s.ok &= props <= kMaxVarInt;
    plan.props = props;
    s.Add(PropertyBlockSize(props));
  }
  s.Add(p.payload.size());
  plan.remaining = s.n;
  plan.ok = s.ok && s.n <= kMaxRemainingLength;
  return plan;
}

PublishOut ViewOf(const Publish& p) {
  PublishOut o;
  o.topic = p.topic;
  o.payload = p.payload;
  o.qos = p.qos;
  o.retain = p.retain;
  o.dup = p.dup;
  o.packet_id = p.packet_id;
  o.props = &p.props;
  o.message_expiry_interval = p.props.message_expiry_interval;
  o.topic_alias = p.props.topic_alias;
  o.subscription_ids = p.props.subscription_identifiers;
  return o;
}

}  // namespace

size_t PublishSize(const PublishOut& p, Version v) {
  const PublishPlan plan = Plan(p, v);
  if (!plan.ok) return 0;
  return 1 + wire::VarIntSize(static_cast<uint32_t>(plan.remaining)) + plan.remaining;
}

size_t EncodePublish(const PublishOut& p, Version v, std::string* out) {
  PARLEY_DCHECK(p.qos <= 2);  // a caller bug, never client input: decoded QoS is always 0..2
  const PublishPlan plan = Plan(p, v);
  if (!plan.ok) return 0;
  const uint32_t remaining = static_cast<uint32_t>(plan.remaining);
  const size_t total = 1 + wire::VarIntSize(remaining) + remaining;
  const size_t head = total - p.payload.size();
  const size_t old = out->size();

  // One allocation at most; the payload is appended rather than zero-filled and then overwritten.
  out->reserve(old + total);
  out->resize(old + head);
  wire::Writer w(out->data() + old);
  const uint8_t qos = p.qos & 0x03;
  w.U8(static_cast<uint8_t>(static_cast<uint8_t>(PacketType::kPublish) << 4 | (p.dup ? 0x08 : 0) | qos << 1 |
                            (p.retain ? 0x01 : 0)));
  w.VarInt(remaining);
  w.Str(p.topic);
  if (qos > 0) w.U16(p.packet_id);
  if (v == Version::kV5) {
    w.VarInt(static_cast<uint32_t>(plan.props));
    if (p.message_expiry_interval) {
      w.U8(static_cast<uint8_t>(PropId::kMessageExpiryInterval));
      w.U32(*p.message_expiry_interval);
    }
    if (p.topic_alias) {
      w.U8(static_cast<uint8_t>(PropId::kTopicAlias));
      w.U16(*p.topic_alias);
    }
    for (uint32_t id : p.subscription_ids) {
      w.U8(static_cast<uint8_t>(PropId::kSubscriptionIdentifier));
      w.VarInt(id);
    }
    if (p.props) WritePropertiesBody(*p.props, PropCtx::kPublishOut, w);
  }
  PARLEY_DCHECK(w.pos() == out->data() + old + head);
  out->append(p.payload);
  return total;
}

namespace detail {

size_t EncodePublishPacket(const Publish& p, Version v, std::string* out) {
  return EncodePublish(ViewOf(p), v, out);
}
size_t PublishPacketSize(const Publish& p, Version v) {
  return PublishSize(ViewOf(p), v);
}

}  // namespace detail
}  // namespace parley::mqtt
