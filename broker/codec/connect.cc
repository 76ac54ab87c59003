// CONNECT (spec 3.1 / 3.1.1 §3.1) and CONNACK (spec 3.2).
#include <string_view>

#include "broker/codec/families.h"
#include "broker/codec/properties.h"

namespace parley::mqtt::detail {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;
using wire::Writer;

namespace {

// CONNECT flags (spec 3.1.2.3).
constexpr uint8_t kFlagReserved = 0x01;
constexpr uint8_t kFlagCleanStart = 0x02;
constexpr uint8_t kFlagWill = 0x04;
constexpr int kWillQoSShift = 3;
constexpr uint8_t kFlagWillRetain = 0x20;
constexpr uint8_t kFlagPassword = 0x40;
constexpr uint8_t kFlagUsername = 0x80;

constexpr std::string_view kProtocolName = "MQTT";

}  // namespace

Error DecodeConnect(Reader r, Connect* c, std::optional<Version>* version) {
  std::string_view name;
  uint8_t level;
  if (!r.Binary(&name) || !r.U8(&level)) return Malformed("truncated CONNECT variable header");
  // "MQIsdp" level 3 is MQTT 3.1, which we do not speak; like any other name or level it is answered with
  // Unsupported Protocol Version, and the version stays unknown.
  if (name != kProtocolName) return Error{rc::kUnsupportedProtocolVersion, "unsupported protocol name"};
  if (level != static_cast<uint8_t>(Version::kV311) && level != static_cast<uint8_t>(Version::kV5)) {
    return Error{rc::kUnsupportedProtocolVersion, "unsupported protocol level"};
  }
  const Version v = static_cast<Version>(level);
  *version = v;
  c->version = v;
  c->protocol_name.assign(name);

  uint8_t flags;
  if (!r.U8(&flags) || !r.U16(&c->keep_alive)) return Malformed("truncated CONNECT variable header");
  if (flags & kFlagReserved) return Malformed("CONNECT reserved flag set");  // [MQTT-3.1.2-3]
  const bool has_will = flags & kFlagWill;
  const uint8_t will_qos = (flags >> kWillQoSShift) & 0x03;
  const bool will_retain = flags & kFlagWillRetain;
  const bool has_password = flags & kFlagPassword;
  const bool has_username = flags & kFlagUsername;
  if (will_qos == 3) return Malformed("will QoS 3");
  if (!has_will && (will_qos != 0 || will_retain)) return Malformed("will QoS/retain without will flag");
  if (v == Version::kV311 && has_password && !has_username) {
    return Malformed("password without user name");  // [MQTT-3.1.2-22]; allowed in 5.0
  }
  c->clean_start = flags & kFlagCleanStart;

  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kConnect, &c->props)) return e;
    if (c->props.authentication_data && !c->props.authentication_method) {
      return ProtocolError("authentication data without method");  // spec 3.1.2.11.10
    }
  }

  if (!r.Utf8(&c->client_id)) return Malformed("bad client identifier");
  if (v == Version::kV311 && c->client_id.empty() && !c->clean_start) {
    // [MQTT-3.1.3-8]: answered with CONNACK 0x02 Identifier rejected.
    return Error{rc::kClientIdentifierNotValid, "empty client id without clean session"};
  }

  if (has_will) {
    Will& w = c->will.emplace();
    w.qos = will_qos;
    w.retain = will_retain;
    if (v == Version::kV5) {
      if (Error e = DecodeProperties(r, PropCtx::kWill, &w.props)) return e;
    }
    std::string_view topic;
    if (!r.Utf8(&topic)) return Malformed("bad will topic");
    if (topic.empty() || wire::ContainsWildcard(topic)) {
      return Error{rc::kTopicNameInvalid, "invalid will topic"};
    }
    w.topic.assign(topic);
    if (!r.Binary(&w.payload)) return Malformed("bad will payload");
    if (w.props.payload_format_indicator == 1 &&
        !wire::ValidUtf8(reinterpret_cast<const uint8_t*>(w.payload.data()), w.payload.size())) {
      return Error{rc::kPayloadFormatInvalid, "will payload is not UTF-8"};
    }
  }
  if (has_username && !r.Utf8(&c->username.emplace())) return Malformed("bad user name");
  if (has_password && !r.Binary(&c->password.emplace())) return Malformed("bad password");
  if (!r.empty()) return Malformed("trailing bytes in CONNECT");
  return {};
}

size_t BodySize(const Connect& c, Version v, Layout* l) {
  wire::Size s;
  s.Str(c.protocol_name);
  s.Add(1 + 1 + 2);  // level, flags, keep alive
  if (v == Version::kV5) {
    wire::Size ps;
    l->props = PropertiesBodySize(c.props, PropCtx::kConnect, &ps);
    s.ok &= ps.ok;
    s.Add(PropertyBlockSize(l->props));
  }
  s.Str(c.client_id);
  if (c.will) {
    if (v == Version::kV5) {
      wire::Size ps;
      l->will_props = PropertiesBodySize(c.will->props, PropCtx::kWill, &ps);
      s.ok &= ps.ok;
      s.Add(PropertyBlockSize(l->will_props));
    }
    s.Str(c.will->topic);
    s.Str(c.will->payload);
  }
  if (c.username) s.Str(*c.username);
  if (c.password) s.Str(*c.password);
  l->ok &= s.ok;
  return s.n;
}

void WriteBody(const Connect& c, Version v, const Layout& l, Writer& w) {
  w.Str(c.protocol_name);
  w.U8(static_cast<uint8_t>(v));
  uint8_t flags = 0;
  if (c.clean_start) flags |= kFlagCleanStart;
  if (c.will) {
    flags |= kFlagWill | static_cast<uint8_t>((c.will->qos & 0x03) << kWillQoSShift);
    if (c.will->retain) flags |= kFlagWillRetain;
  }
  if (c.password) flags |= kFlagPassword;
  if (c.username) flags |= kFlagUsername;
  w.U8(flags);
  w.U16(c.keep_alive);
  if (v == Version::kV5) WritePropertyBlock(c.props, PropCtx::kConnect, l.props, w);
  w.Str(c.client_id);
  if (c.will) {
    if (v == Version::kV5) WritePropertyBlock(c.will->props, PropCtx::kWill, l.will_props, w);
    w.Str(c.will->topic);
    w.Str(c.will->payload);
  }
  if (c.username) w.Str(*c.username);
  if (c.password) w.Str(*c.password);
}

Error DecodeConnack(Reader r, Version v, Connack* c) {
  uint8_t flags;
  if (!r.U8(&flags) || !r.U8(&c->reason_code)) return Malformed("truncated CONNACK");
  if (flags & 0xFE) return Malformed("CONNACK reserved flags set");  // [MQTT-3.2.2-1]
  c->session_present = flags & 0x01;
  if (!IsValidReasonCode(PacketType::kConnack, v, c->reason_code)) return ProtocolError("bad CONNACK code");
  // [MQTT-3.2.2-6] (5.0) / [MQTT-3.2.2-4] (3.1.1): a refusal never claims a session.
  if (c->reason_code != 0 && c->session_present) return ProtocolError("session present on refusal");
  if (v == Version::kV5) {
    if (Error e = DecodeProperties(r, PropCtx::kConnack, &c->props)) return e;
  }
  if (!r.empty()) return Malformed("trailing bytes in CONNACK");
  return {};
}

size_t BodySize(const Connack& c, Version v, Layout* l) {
  if (v != Version::kV5) return 2;
  wire::Size s;
  l->props = PropertiesBodySize(c.props, PropCtx::kConnack, &s);
  l->ok &= s.ok;
  return 2 + PropertyBlockSize(l->props);
}

void WriteBody(const Connack& c, Version v, const Layout& l, Writer& w) {
  w.U8(c.session_present ? 1 : 0);
  w.U8(c.reason_code);
  if (v == Version::kV5) WritePropertyBlock(c.props, PropCtx::kConnack, l.props, w);
}

}  // namespace parley::mqtt::detail
