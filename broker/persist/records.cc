#include "broker/persist/records.h"

#include "storage/format.h"

namespace parley::broker::persist {

using storage::GetI64;
using storage::GetLengthPrefixed;
using storage::GetU8;
using storage::GetVarint32;
using storage::GetVarint64;
using storage::PutI64;
using storage::PutLengthPrefixed;
using storage::PutU8;
using storage::PutVarint32;
using storage::PutVarint64;

namespace {

bool GetString(std::string_view* in, std::string* out) {
  std::string_view v;
  if (!GetLengthPrefixed(in, &v)) return false;
  out->assign(v);
  return true;
}

bool GetVersion(std::string_view* in) {
  uint8_t v = 0;
  return GetU8(in, &v) && v == kRecordVersion;
}

// The properties a message or will carries through the broker. Presence bits, then the present fields.
enum PropBits : uint8_t {
  kPayloadFormat = 1,
  kMessageExpiry = 2,  // wills only: messages store an absolute expiry instead
  kContentType = 4,
  kResponseTopic = 8,
  kCorrelationData = 16,
  kWillDelay = 32,
  kUserProperties = 64,
};

void EncodeProps(const mqtt::Properties& p, bool with_will_fields, std::string* out) {
  uint8_t bits = 0;
  if (p.payload_format_indicator) bits |= kPayloadFormat;
  if (with_will_fields && p.message_expiry_interval) bits |= kMessageExpiry;
  if (p.content_type) bits |= kContentType;
  if (p.response_topic) bits |= kResponseTopic;
  if (p.correlation_data) bits |= kCorrelationData;
  if (with_will_fields && p.will_delay_interval) bits |= kWillDelay;
  if (!p.user_properties.empty()) bits |= kUserProperties;
  PutU8(out, bits);
  if (bits & kPayloadFormat) PutU8(out, *p.payload_format_indicator);
  if (bits & kMessageExpiry) PutVarint32(out, *p.message_expiry_interval);
  if (bits & kContentType) PutLengthPrefixed(out, *p.content_type);
  if (bits & kResponseTopic) PutLengthPrefixed(out, *p.response_topic);
  if (bits & kCorrelationData) PutLengthPrefixed(out, *p.correlation_data);
  if (bits & kWillDelay) PutVarint32(out, *p.will_delay_interval);
  if (bits & kUserProperties) {
    PutVarint32(out, static_cast<uint32_t>(p.user_properties.size()));
    for (const auto& [k, v] : p.user_properties) {
      PutLengthPrefixed(out, k);
      PutLengthPrefixed(out, v);
    }
  }
}

bool DecodeProps(std::string_view* in, mqtt::Properties* p) {
  uint8_t bits = 0;
  if (!GetU8(in, &bits) || (bits & 0x80)) return false;
  if (bits & kPayloadFormat) {
    uint8_t v;
    if (!GetU8(in, &v)) return false;
    p->payload_format_indicator = v;
  }
  if (bits & kMessageExpiry) {
    uint32_t v;
    if (!GetVarint32(in, &v)) return false;
    p->message_expiry_interval = v;
  }
  auto str = [&](uint8_t bit, std::optional<std::string>* field) {
    if (!(bits & bit)) return true;
    std::string s;
    if (!GetString(in, &s)) return false;
    *field = std::move(s);
    return true;
  };
  if (!str(kContentType, &p->content_type) || !str(kResponseTopic, &p->response_topic) ||
      !str(kCorrelationData, &p->correlation_data))
    return false;
  if (bits & kWillDelay) {
    uint32_t v;
    if (!GetVarint32(in, &v)) return false;
    p->will_delay_interval = v;
  }
  if (bits & kUserProperties) {
    uint32_t n = 0;
    if (!GetVarint32(in, &n) || n > in->size()) return false;  // each pair takes at least 2 bytes
    p->user_properties.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!GetString(in, &k) || !GetString(in, &v)) return false;
      p->user_properties.emplace_back(std::move(k), std::move(v));
    }
  }
  return true;
}

}  // namespace

// ---- Session: version, varint32 expiry, flags (1 username, 2 disconnected), [username], [I64 ms] ----------
void EncodeSession(const SessionRecord& r, std::string* out) {
  PutU8(out, kRecordVersion);
  PutVarint32(out, r.expiry_interval);
  PutU8(out, static_cast<uint8_t>((r.username ? 1 : 0) | (r.disconnected_at_ms ? 2 : 0)));
  if (r.username) PutLengthPrefixed(out, *r.username);
  if (r.disconnected_at_ms) PutI64(out, *r.disconnected_at_ms);
}

bool DecodeSession(std::string_view in, SessionRecord* r) {
  uint8_t flags = 0;
  if (!GetVersion(&in) || !GetVarint32(&in, &r->expiry_interval) || !GetU8(&in, &flags) || (flags & ~3)) return false;
  if (flags & 1) {
    std::string u;
    if (!GetString(&in, &u)) return false;
    r->username = std::move(u);
  }
  if (flags & 2) {
    int64_t t;
    if (!GetI64(&in, &t)) return false;
    r->disconnected_at_ms = t;
  }
  return in.empty();
}

// ---- Subscription: version, options byte (QoS | NL<<2 | RAP<<3 | RH<<4), varint32 subscription id --------
void EncodeSubscription(const mqtt::SubscribeOptions& o, uint32_t sub_id, std::string* out) {
  PutU8(out, kRecordVersion);
  PutU8(out, static_cast<uint8_t>(o.qos | (o.no_local ? 4 : 0) | (o.retain_as_published ? 8 : 0) |
                                  (o.retain_handling << 4)));
  PutVarint32(out, sub_id);
}

bool DecodeSubscription(std::string_view in, mqtt::SubscribeOptions* o, uint32_t* sub_id) {
  uint8_t b = 0;
  if (!GetVersion(&in) || !GetU8(&in, &b) || !GetVarint32(&in, sub_id)) return false;
  o->qos = b & 3;
  o->no_local = b & 4;
  o->retain_as_published = b & 8;
  o->retain_handling = (b >> 4) & 3;
  return o->qos <= 2 && o->retain_handling <= 2 && !(b & 0xC0) && in.empty();
}

// ---- Delivery: version, varint64 message id, QoS | RETAIN<<2, varint32 n + n varint32 ids, [group] ---------
void EncodeDelivery(uint64_t message_id, uint8_t qos, bool retain, const std::vector<uint32_t>& sub_ids,
                    std::string_view shared_group, std::string* out) {
  PutU8(out, kRecordVersion);
  PutVarint64(out, message_id);
  PutU8(out, static_cast<uint8_t>(qos | (retain ? 4 : 0)));
  PutVarint32(out, static_cast<uint32_t>(sub_ids.size()));
  for (uint32_t id : sub_ids) PutVarint32(out, id);
  PutLengthPrefixed(out, shared_group);
}

bool DecodeDelivery(std::string_view in, DeliveryRecord* r) {
  uint8_t b = 0;
  uint32_t n = 0;
  if (!GetVersion(&in) || !GetVarint64(&in, &r->message_id) || !GetU8(&in, &b) || !GetVarint32(&in, &n)) return false;
  r->qos = b & 3;
  r->retain = b & 4;
  if (r->qos < 1 || r->qos > 2 || (b & ~7) || n > in.size()) return false;
  r->sub_ids.resize(n);
  for (uint32_t& id : r->sub_ids)
    if (!GetVarint32(&in, &id)) return false;
  return GetString(&in, &r->shared_group) && in.empty();
}

// ---- Message: version, flags (QoS | RETAIN<<2 | expiry<<3 | props<<4), topic, payload, origin, [I64 expiry
// ms], [props] ------------------------------------------------------------------------------------------
void EncodeMessage(const Message& m, const TimeBase& tb, std::string* out) {
  const bool props = m.props && HasPassThroughProperties(*m.props);
  out->reserve(out->size() + 24 + m.topic.size() + m.payload.size() + m.origin_client_id.size());
  PutU8(out, kRecordVersion);
  PutU8(out, static_cast<uint8_t>(m.qos | (m.retain ? 4 : 0) | (m.expires_at ? 8 : 0) | (props ? 16 : 0)));
  PutLengthPrefixed(out, m.topic);
  PutLengthPrefixed(out, m.payload);
  PutLengthPrefixed(out, m.origin_client_id);
  if (m.expires_at) PutI64(out, tb.ToUnixMs(*m.expires_at));
  if (props) EncodeProps(*m.props, false, out);
}

bool DecodeMessage(std::string_view in, const TimeBase& tb, Message* m) {
  uint8_t b = 0;
  if (!GetVersion(&in) || !GetU8(&in, &b) || (b & ~31) || (b & 3) > 2) return false;
  m->qos = b & 3;
  m->retain = b & 4;
  if (!GetString(&in, &m->topic) || !GetString(&in, &m->payload) || !GetString(&in, &m->origin_client_id)) return false;
  if (b & 8) {
    int64_t ms;
    if (!GetI64(&in, &ms)) return false;
    m->expires_at = tb.ToSteady(ms);
  }
  if (b & 16) {
    auto props = std::make_unique<mqtt::Properties>();
    if (!DecodeProps(&in, props.get())) return false;
    m->props = std::move(props);
  }
  return in.empty();
}

// ---- Will: version, QoS | RETAIN<<2, topic, payload, props (with will delay and message expiry) ----------
void EncodeWill(const mqtt::Will& w, std::string* out) {
  PutU8(out, kRecordVersion);
  PutU8(out, static_cast<uint8_t>(w.qos | (w.retain ? 4 : 0)));
  PutLengthPrefixed(out, w.topic);
  PutLengthPrefixed(out, w.payload);
  EncodeProps(w.props, true, out);
}

bool DecodeWill(std::string_view in, mqtt::Will* w) {
  uint8_t b = 0;
  if (!GetVersion(&in) || !GetU8(&in, &b) || (b & ~7) || (b & 3) > 2) return false;
  w->qos = b & 3;
  w->retain = b & 4;
  return GetString(&in, &w->topic) && GetString(&in, &w->payload) && DecodeProps(&in, &w->props) && in.empty();
}

}  // namespace parley::broker::persist
