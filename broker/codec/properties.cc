#include "broker/codec/properties.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace parley::mqtt {
namespace {

using wire::Error;
using wire::Malformed;
using wire::ProtocolError;
using wire::Reader;
using wire::Writer;

constexpr uint64_t Bit(PropId id) {
  return uint64_t{1} << static_cast<uint8_t>(id);
}

constexpr uint64_t kUser = Bit(PropId::kUserProperty);
constexpr uint64_t kReason = Bit(PropId::kReasonString);
constexpr uint64_t kMessageProps = Bit(PropId::kPayloadFormatIndicator) |
                                   Bit(PropId::kMessageExpiryInterval) | Bit(PropId::kContentType) |
                                   Bit(PropId::kResponseTopic) | Bit(PropId::kCorrelationData) | kUser;
constexpr uint64_t kPublishMask =
    kMessageProps | Bit(PropId::kSubscriptionIdentifier) | Bit(PropId::kTopicAlias);

// Spec 2.2.2.2, table "Properties": which packet may carry which identifier. Indexed by PropCtx.
constexpr std::array<uint64_t, 12> kAllowed = {
    /*kConnect*/ Bit(PropId::kSessionExpiryInterval) | Bit(PropId::kAuthenticationMethod) |
        Bit(PropId::kAuthenticationData) | Bit(PropId::kRequestProblemInformation) |
        Bit(PropId::kRequestResponseInformation) | Bit(PropId::kReceiveMaximum) |
        Bit(PropId::kTopicAliasMaximum) | kUser | Bit(PropId::kMaximumPacketSize),
    /*kWill*/ kMessageProps | Bit(PropId::kWillDelayInterval),
    /*kConnack*/ Bit(PropId::kSessionExpiryInterval) | Bit(PropId::kAssignedClientIdentifier) |
        Bit(PropId::kServerKeepAlive) | Bit(PropId::kAuthenticationMethod) |
        Bit(PropId::kAuthenticationData) | Bit(PropId::kResponseInformation) | Bit(PropId::kServerReference) |
        kReason | Bit(PropId::kReceiveMaximum) | Bit(PropId::kTopicAliasMaximum) | Bit(PropId::kMaximumQoS) |
        Bit(PropId::kRetainAvailable) | kUser | Bit(PropId::kMaximumPacketSize) |
        Bit(PropId::kWildcardSubscriptionAvailable) | Bit(PropId::kSubscriptionIdentifierAvailable) |
        Bit(PropId::kSharedSubscriptionAvailable),
    /*kPublish*/ kPublishMask,
    /*kAck*/ kReason | kUser,
    /*kSubscribe*/ Bit(PropId::kSubscriptionIdentifier) | kUser,
    /*kSuback*/ kReason | kUser,
    /*kUnsubscribe*/ kUser,
    /*kUnsuback*/ kReason | kUser,
    /*kDisconnect*/ Bit(PropId::kSessionExpiryInterval) | Bit(PropId::kServerReference) | kReason | kUser,
    /*kAuth*/ Bit(PropId::kAuthenticationMethod) | Bit(PropId::kAuthenticationData) | kReason | kUser,
    /*kPublishOut*/ kPublishMask & ~(Bit(PropId::kMessageExpiryInterval) |
                                     Bit(PropId::kSubscriptionIdentifier) | Bit(PropId::kTopicAlias)),
};

constexpr uint64_t AllowedIn(PropCtx ctx) {
  return kAllowed[static_cast<size_t>(ctx)];
}

// Readers for the four value types; each fails only on truncation or bad UTF-8 (Malformed Packet).
template <typename T>
bool ReadInto(Reader& r, std::optional<T>* out) {
  T v;
  bool ok;
  if constexpr (sizeof(T) == 1) {
    ok = r.U8(&v);
  } else if constexpr (sizeof(T) == 2) {
    ok = r.U16(&v);
  } else {
    ok = r.U32(&v);
  }
  if (ok) *out = v;
  return ok;
}
bool ReadUtf8Into(Reader& r, std::optional<std::string>* out) {
  std::string_view v;
  if (!r.Utf8(&v)) return false;
  out->emplace(v);
  return true;
}
bool ReadBinaryInto(Reader& r, std::optional<std::string>* out) {
  std::string_view v;
  if (!r.Binary(&v)) return false;
  out->emplace(v);
  return true;
}

// Properties whose value is a byte that may only be 0 or 1 (spec 3.1.2.11.*, 3.2.2.3.*).
bool IsBool(const std::optional<uint8_t>& v) {
  return *v <= 1;
}

}  // namespace

Error DecodeProperties(Reader& r, PropCtx ctx, Properties* p) {
  uint32_t len;
  if (!r.VarInt(&len)) return Malformed("bad property length");
  Reader pr(nullptr, 0);
  if (!r.Take(len, &pr)) return Malformed("property length exceeds packet");

  const uint64_t allowed = AllowedIn(ctx);
  uint64_t seen = 0;
  while (!pr.empty()) {
    // The identifier is a variable byte integer, but every defined one is below 0x80; a first byte with
    // the continuation bit set can therefore only start an unknown identifier.
    uint8_t id;
    pr.U8(&id);
    if (id >= 64 || ((allowed >> id) & 1) == 0) return Malformed("property not allowed in this packet");
    const uint64_t bit = uint64_t{1} << id;
    if (seen & bit) {
      const bool repeatable =
          id == static_cast<uint8_t>(PropId::kUserProperty) ||
          (id == static_cast<uint8_t>(PropId::kSubscriptionIdentifier) && ctx == PropCtx::kPublish);
      if (!repeatable) return ProtocolError("duplicate property");
    }
    seen |= bit;

    bool ok = false;
    switch (static_cast<PropId>(id)) {
      case PropId::kPayloadFormatIndicator:
        ok = ReadInto(pr, &p->payload_format_indicator);
        if (ok && !IsBool(p->payload_format_indicator)) return ProtocolError("bad payload format indicator");
        break;
      case PropId::kMessageExpiryInterval:
        ok = ReadInto(pr, &p->message_expiry_interval);
        break;
      case PropId::kContentType:
        ok = ReadUtf8Into(pr, &p->content_type);
        break;
      case PropId::kResponseTopic:
        ok = ReadUtf8Into(pr, &p->response_topic);
        // Spec 3.3.2.3.5: the Response Topic is a Topic Name, so never empty and never a wildcard.
        if (ok && (p->response_topic->empty() || wire::ContainsWildcard(*p->response_topic))) {
          return ProtocolError("bad response topic");
        }
        break;
      case PropId::kCorrelationData:
        ok = ReadBinaryInto(pr, &p->correlation_data);
        break;
      case PropId::kSubscriptionIdentifier: {
        uint32_t v;
        ok = pr.VarInt(&v);
        if (ok && v == 0) return ProtocolError("subscription identifier 0");
        if (ok) p->subscription_identifiers.push_back(v);
        break;
      }
      case PropId::kSessionExpiryInterval:
        ok = ReadInto(pr, &p->session_expiry_interval);
        break;
      case PropId::kAssignedClientIdentifier:
        ok = ReadUtf8Into(pr, &p->assigned_client_identifier);
        break;
      case PropId::kServerKeepAlive:
        ok = ReadInto(pr, &p->server_keep_alive);
        break;
      case PropId::kAuthenticationMethod:
        ok = ReadUtf8Into(pr, &p->authentication_method);
        break;
      case PropId::kAuthenticationData:
        ok = ReadBinaryInto(pr, &p->authentication_data);
        break;
      case PropId::kRequestProblemInformation:
        ok = ReadInto(pr, &p->request_problem_information);
        if (ok && !IsBool(p->request_problem_information)) return ProtocolError("bad request problem info");
        break;
      case PropId::kWillDelayInterval:
        ok = ReadInto(pr, &p->will_delay_interval);
        break;
      case PropId::kRequestResponseInformation:
        ok = ReadInto(pr, &p->request_response_information);
        if (ok && !IsBool(p->request_response_information)) return ProtocolError("bad request response info");
        break;
      case PropId::kResponseInformation:
        ok = ReadUtf8Into(pr, &p->response_information);
        break;
      case PropId::kServerReference:
        ok = ReadUtf8Into(pr, &p->server_reference);
        break;
      case PropId::kReasonString:
        ok = ReadUtf8Into(pr, &p->reason_string);
        break;
      case PropId::kReceiveMaximum:
        ok = ReadInto(pr, &p->receive_maximum);
        if (ok && *p->receive_maximum == 0) return ProtocolError("receive maximum 0");
        break;
      case PropId::kTopicAliasMaximum:
        ok = ReadInto(pr, &p->topic_alias_maximum);
        break;
      case PropId::kTopicAlias:
        ok = ReadInto(pr, &p->topic_alias);
        // Spec 3.3.2.3.4: alias 0 is a Protocol Error answered with Topic Alias invalid.
        if (ok && *p->topic_alias == 0) return Error{rc::kTopicAliasInvalid, "topic alias 0"};
        break;
      case PropId::kMaximumQoS:
        ok = ReadInto(pr, &p->maximum_qos);
        if (ok && !IsBool(p->maximum_qos)) return ProtocolError("bad maximum qos");
        break;
      case PropId::kRetainAvailable:
        ok = ReadInto(pr, &p->retain_available);
        if (ok && !IsBool(p->retain_available)) return ProtocolError("bad retain available");
        break;
      case PropId::kUserProperty: {
        std::string_view k, v;
        ok = pr.Utf8(&k) && pr.Utf8(&v);
        if (ok) p->user_properties.emplace_back(std::string(k), std::string(v));
        break;
      }
      case PropId::kMaximumPacketSize:
        ok = ReadInto(pr, &p->maximum_packet_size);
        if (ok && *p->maximum_packet_size == 0) return ProtocolError("maximum packet size 0");
        break;
      case PropId::kWildcardSubscriptionAvailable:
        ok = ReadInto(pr, &p->wildcard_subscription_available);
        if (ok && !IsBool(p->wildcard_subscription_available)) return ProtocolError("bad wildcard available");
        break;
      case PropId::kSubscriptionIdentifierAvailable:
        ok = ReadInto(pr, &p->subscription_identifier_available);
        if (ok && !IsBool(p->subscription_identifier_available)) return ProtocolError("bad sub id available");
        break;
      case PropId::kSharedSubscriptionAvailable:
        ok = ReadInto(pr, &p->shared_subscription_available);
        if (ok && !IsBool(p->shared_subscription_available)) return ProtocolError("bad shared sub available");
        break;
    }
    if (!ok) return Malformed("truncated or malformed property value");
  }
  return {};
}

namespace {

// One walk over the properties for both sizing and writing, so the two can never disagree.
// A Sink takes the identifier (Id) and then the value (U8, U16, U32, VarInt or Str).
struct SizeSink {
  wire::Size* s;
  void Id(PropId) { s->Add(1); }
  void U8(uint8_t) { s->Add(1); }
  void U16(uint16_t) { s->Add(2); }
  void U32(uint32_t) { s->Add(4); }
  void VarInt(uint32_t v) {
    s->Add(wire::VarIntSize(v));
    s->ok &= v <= kMaxVarInt;
  }
  void Str(std::string_view v) { s->Str(v); }
};
struct WriteSink {
  Writer* w;
  void Id(PropId id) { w->U8(static_cast<uint8_t>(id)); }
  void U8(uint8_t v) { w->U8(v); }
  void U16(uint16_t v) { w->U16(v); }
  void U32(uint32_t v) { w->U32(v); }
  void VarInt(uint32_t v) { w->VarInt(v); }
  void Str(std::string_view v) { w->Str(v); }
};

template <typename Sink>
void Walk(const Properties& p, PropCtx ctx, Sink& k) {
  const uint64_t allowed = AllowedIn(ctx);
  auto on = [allowed](PropId id) { return (allowed & Bit(id)) != 0; };
  auto byte = [&](PropId id, const std::optional<uint8_t>& v) {
    if (v && on(id)) {
      k.Id(id);
      k.U8(*v);
    }
  };
  auto u16 = [&](PropId id, const std::optional<uint16_t>& v) {
    if (v && on(id)) {
      k.Id(id);
      k.U16(*v);
    }
  };
  auto u32 = [&](PropId id, const std::optional<uint32_t>& v) {
    if (v && on(id)) {
      k.Id(id);
      k.U32(*v);
    }
  };
  auto str = [&](PropId id, const std::optional<std::string>& v) {
    if (v && on(id)) {
      k.Id(id);
      k.Str(*v);
    }
  };

  byte(PropId::kPayloadFormatIndicator, p.payload_format_indicator);
  u32(PropId::kMessageExpiryInterval, p.message_expiry_interval);
  str(PropId::kContentType, p.content_type);
  str(PropId::kResponseTopic, p.response_topic);
  str(PropId::kCorrelationData, p.correlation_data);
  if (on(PropId::kSubscriptionIdentifier)) {
    // SUBSCRIBE carries at most one (spec 3.8.2.1.2); write the first.
    const size_t n = ctx == PropCtx::kSubscribe ? std::min<size_t>(1, p.subscription_identifiers.size())
                                                : p.subscription_identifiers.size();
    for (size_t i = 0; i < n; ++i) {
      k.Id(PropId::kSubscriptionIdentifier);
      k.VarInt(p.subscription_identifiers[i]);
    }
  }
  u32(PropId::kSessionExpiryInterval, p.session_expiry_interval);
  str(PropId::kAssignedClientIdentifier, p.assigned_client_identifier);
  u16(PropId::kServerKeepAlive, p.server_keep_alive);
  str(PropId::kAuthenticationMethod, p.authentication_method);
  str(PropId::kAuthenticationData, p.authentication_data);
  byte(PropId::kRequestProblemInformation, p.request_problem_information);
  u32(PropId::kWillDelayInterval, p.will_delay_interval);
  byte(PropId::kRequestResponseInformation, p.request_response_information);
  str(PropId::kResponseInformation, p.response_information);
  str(PropId::kServerReference, p.server_reference);
  str(PropId::kReasonString, p.reason_string);
  u16(PropId::kReceiveMaximum, p.receive_maximum);
  u16(PropId::kTopicAliasMaximum, p.topic_alias_maximum);
  u16(PropId::kTopicAlias, p.topic_alias);
  byte(PropId::kMaximumQoS, p.maximum_qos);
  byte(PropId::kRetainAvailable, p.retain_available);
  if (on(PropId::kUserProperty)) {
    for (const auto& [key, value] : p.user_properties) {
      k.Id(PropId::kUserProperty);
      k.Str(key);
      k.Str(value);
    }
  }
  u32(PropId::kMaximumPacketSize, p.maximum_packet_size);
  byte(PropId::kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  byte(PropId::kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  byte(PropId::kSharedSubscriptionAvailable, p.shared_subscription_available);
}

}  // namespace

size_t PropertiesBodySize(const Properties& props, PropCtx ctx, wire::Size* s) {
  wire::Size local;
  SizeSink sink{&local};
  Walk(props, ctx, sink);
  if (local.n > kMaxVarInt) local.ok = false;
  s->ok &= local.ok;
  return local.n;
}

void WritePropertiesBody(const Properties& props, PropCtx ctx, Writer& w) {
  WriteSink sink{&w};
  Walk(props, ctx, sink);
}

}  // namespace parley::mqtt
