// MQTT 5 properties (spec 2.2.2): which packet may carry which, duplicates, value ranges, lengths.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

// Frames a v5 packet of each kind around a property block.
enum class Where {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth
};

Bytes Frame(int first, const Bytes& body) {
  Bytes out = B({first});
  uint32_t n = static_cast<uint32_t>(body.size());
  do {
    uint8_t b = n & 0x7F;
    n >>= 7;
    if (n) b |= 0x80;
    out.push_back(b);
  } while (n);
  return Cat(out, body);
}

Bytes WithProps(Where w, const Bytes& props) {
  Bytes block = B({static_cast<int>(props.size())});
  REQUIRE(props.size() < 128);
  block = Cat(block, props);
  const Bytes mqtt5 = B({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05});
  switch (w) {
    case Where::kConnect:
      return Frame(0x10, Cat(Cat(Cat(mqtt5, B({0x02, 0x00, 0x3C})), block), B({0, 1, 'c'})));
    case Where::kWill:
      return Frame(0x10, Cat(Cat(Cat(mqtt5, B({0x06, 0x00, 0x3C, 0x00, 0x00, 0x01, 'c'})), block),
                             B({0x00, 0x01, 'w', 0x00, 0x00})));
    case Where::kConnack:
      return Frame(0x20, Cat(B({0x00, 0x00}), block));
    case Where::kPublish:
      return Frame(0x30, Cat(B({0x00, 0x01, 't'}), block));
    case Where::kPuback:
      return Frame(0x40, Cat(B({0x00, 0x01, 0x00}), block));
    case Where::kPubrec:
      return Frame(0x50, Cat(B({0x00, 0x01, 0x00}), block));
    case Where::kPubrel:
      return Frame(0x62, Cat(B({0x00, 0x01, 0x00}), block));
    case Where::kPubcomp:
      return Frame(0x70, Cat(B({0x00, 0x01, 0x00}), block));
    case Where::kSubscribe:
      return Frame(0x82, Cat(Cat(B({0x00, 0x01}), block), B({0x00, 0x01, 't', 0x00})));
    case Where::kSuback:
      return Frame(0x90, Cat(Cat(B({0x00, 0x01}), block), B({0x00})));
    case Where::kUnsubscribe:
      return Frame(0xA2, Cat(Cat(B({0x00, 0x01}), block), B({0x00, 0x01, 't'})));
    case Where::kUnsuback:
      return Frame(0xB0, Cat(Cat(B({0x00, 0x01}), block), B({0x00})));
    case Where::kDisconnect:
      return Frame(0xE0, Cat(B({0x00}), block));
    case Where::kAuth:
      return Frame(0xF0, Cat(B({0x00}), block));
  }
  return {};
}

// One valid encoding of each property.
const std::map<int, Bytes>& SampleProps() {
  static const std::map<int, Bytes> m = {
      {0x01, B({0x01, 0x01})},
      {0x02, B({0x02, 0, 0, 0, 9})},
      {0x03, B({0x03, 0, 1, 'a'})},
      {0x08, B({0x08, 0, 1, 'a'})},
      {0x09, B({0x09, 0, 1, 0xFF})},
      {0x0B, B({0x0B, 0x81, 0x01})},
      {0x11, B({0x11, 0, 0, 0, 9})},
      {0x12, B({0x12, 0, 1, 'a'})},
      {0x13, B({0x13, 0, 9})},
      {0x15, B({0x15, 0, 1, 'a'})},
      {0x16, B({0x16, 0, 1, 0xFF})},
      {0x17, B({0x17, 0x00})},
      {0x18, B({0x18, 0, 0, 0, 9})},
      {0x19, B({0x19, 0x01})},
      {0x1A, B({0x1A, 0, 1, 'a'})},
      {0x1C, B({0x1C, 0, 1, 'a'})},
      {0x1F, B({0x1F, 0, 1, 'a'})},
      {0x21, B({0x21, 0, 9})},
      {0x22, B({0x22, 0, 9})},
      {0x23, B({0x23, 0, 9})},
      {0x24, B({0x24, 0x01})},
      {0x25, B({0x25, 0x01})},
      {0x26, B({0x26, 0, 1, 'k', 0, 1, 'v'})},
      {0x27, B({0x27, 0, 0, 1, 0})},
      {0x28, B({0x28, 0x00})},
      {0x29, B({0x29, 0x01})},
      {0x2A, B({0x2A, 0x00})},
  };
  return m;
}

// Spec 5.0 §2.2.2.2, written out by packet.
const std::map<Where, std::set<int>>& AllowedBySpec() {
  static const std::map<Where, std::set<int>> m = {
      {Where::kConnect, {0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27}},
      {Where::kWill, {0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}},
      {Where::kConnack,
       {0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
        0x2A}},
      {Where::kPublish, {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}},
      {Where::kPuback, {0x1F, 0x26}},
      {Where::kPubrec, {0x1F, 0x26}},
      {Where::kPubrel, {0x1F, 0x26}},
      {Where::kPubcomp, {0x1F, 0x26}},
      {Where::kSubscribe, {0x0B, 0x26}},
      {Where::kSuback, {0x1F, 0x26}},
      {Where::kUnsubscribe, {0x26}},
      {Where::kUnsuback, {0x1F, 0x26}},
      {Where::kDisconnect, {0x11, 0x1C, 0x1F, 0x26}},
      {Where::kAuth, {0x15, 0x16, 0x1F, 0x26}},
  };
  return m;
}

TEST_CASE("every property is accepted exactly where the spec allows it") {
  for (const auto& [where, allowed] : AllowedBySpec()) {
    CHECK(ErrorReason(WithProps(where, {}), Version::kV5) == -1);
    for (const auto& [id, bytes] : SampleProps()) {
      CAPTURE(static_cast<int>(where));
      CAPTURE(id);
      Bytes props = bytes;
      // Authentication Data needs a method in CONNECT (checked separately below).
      if (where == Where::kConnect && id == 0x16) props = Cat(SampleProps().at(0x15), bytes);
      const int got = ErrorReason(WithProps(where, props), Version::kV5);
      CHECK(got == (allowed.count(id) ? -1 : rc::kMalformedPacket));
    }
    // Identifiers that do not exist.
    for (int id : {0x00, 0x04, 0x0A, 0x10, 0x2B, 0x3F, 0x40, 0x7F}) {
      CAPTURE(id);
      CHECK(ErrorReason(WithProps(where, B({id, 0x00})), Version::kV5) == rc::kMalformedPacket);
    }
    // A multi-byte identifier (none is defined).
    CHECK(ErrorReason(WithProps(where, B({0x81, 0x00, 0x00})), Version::kV5) == rc::kMalformedPacket);
  }
}

TEST_CASE("duplicate properties are a protocol error, except User Property and PUBLISH sub ids") {
  for (const auto& [where, allowed] : AllowedBySpec()) {
    for (int id : allowed) {
      CAPTURE(static_cast<int>(where));
      CAPTURE(id);
      Bytes props = Cat(SampleProps().at(id), SampleProps().at(id));
      if (where == Where::kConnect && id == 0x16) props = Cat(SampleProps().at(0x15), props);
      const bool repeatable = id == 0x26 || (id == 0x0B && where == Where::kPublish);
      CHECK(ErrorReason(WithProps(where, props), Version::kV5) == (repeatable ? -1 : rc::kProtocolError));
    }
  }
  Packet p;
  const Bytes pub = WithProps(Where::kPublish,
                              B({0x0B, 0x01, 0x26, 0, 1, 'a', 0, 0, 0x0B, 0x02, 0x26, 0, 1, 'a', 0, 1, 'b'}));
  REQUIRE(DecodeBytes(pub, Version::kV5, &p).status == DecodeStatus::kOk);
  const Publish& got = std::get<Publish>(p);
  CHECK(got.props.subscription_identifiers == std::vector<uint32_t>{1, 2});
  CHECK(got.props.user_properties == std::vector<UserProperty>{{"a", ""}, {"a", "b"}});
}

TEST_CASE("property values out of range") {
  struct Case {
    Where where;
    Bytes props;
    int reason;
  };
  const Case cases[] = {
      {Where::kPublish, B({0x01, 0x02}), rc::kProtocolError},  // payload format indicator 2
      {Where::kWill, B({0x01, 0xFF}), rc::kProtocolError},
      {Where::kConnect, B({0x17, 0x02}), rc::kProtocolError},        // request problem information
      {Where::kConnect, B({0x19, 0x02}), rc::kProtocolError},        // request response information
      {Where::kConnect, B({0x21, 0x00, 0x00}), rc::kProtocolError},  // receive maximum 0
      {Where::kConnack, B({0x21, 0x00, 0x00}), rc::kProtocolError},
      {Where::kConnect, B({0x27, 0, 0, 0, 0}), rc::kProtocolError},  // maximum packet size 0
      {Where::kConnack, B({0x27, 0, 0, 0, 0}), rc::kProtocolError},
      {Where::kConnack, B({0x24, 0x02}), rc::kProtocolError},  // maximum QoS 2
      {Where::kConnack, B({0x25, 0x02}), rc::kProtocolError},
      {Where::kConnack, B({0x28, 0x02}), rc::kProtocolError},
      {Where::kConnack, B({0x29, 0x02}), rc::kProtocolError},
      {Where::kConnack, B({0x2A, 0x02}), rc::kProtocolError},
      {Where::kPublish, B({0x0B, 0x00}), rc::kProtocolError},  // subscription identifier 0
      {Where::kSubscribe, B({0x0B, 0x00}), rc::kProtocolError},
      {Where::kPublish, B({0x0B, 0x80, 0x00}), rc::kMalformedPacket},                    // overlong varint
      {Where::kPublish, B({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), rc::kMalformedPacket},  // 5 bytes
      {Where::kPublish, B({0x23, 0x00, 0x00}), rc::kTopicAliasInvalid},
      {Where::kPublish, B({0x08, 0, 3, 'a', '/', '#'}), rc::kProtocolError},  // wildcard response topic
      {Where::kPublish, B({0x08, 0, 0}), rc::kProtocolError},                 // empty response topic
      {Where::kWill, B({0x08, 0, 1, '+'}), rc::kProtocolError},
      {Where::kPublish, B({0x03, 0, 1, 0xFF}), rc::kMalformedPacket},        // content type not UTF-8
      {Where::kPublish, B({0x26, 0, 1, 0x00, 0, 0}), rc::kMalformedPacket},  // user key U+0000
      {Where::kPublish, B({0x26, 0, 1, 'k', 0, 1, 0x80}), rc::kMalformedPacket},
      {Where::kConnack, B({0x1F, 0, 2, 0xC0, 0xAF}), rc::kMalformedPacket},  // overlong '/'
      {Where::kPublish, B({0x02, 0, 0, 0}), rc::kMalformedPacket},           // truncated value
      {Where::kPublish, B({0x03, 0, 5, 'a'}), rc::kMalformedPacket},         // string past the block
      {Where::kPublish, B({0x26, 0, 1, 'k'}), rc::kMalformedPacket},         // user property w/o value
      {Where::kConnect, B({0x16, 0, 1, 'x'}), rc::kProtocolError},           // auth data without method
  };
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.where));
    CAPTURE(c.props.size());
    CHECK(ErrorReason(WithProps(c.where, c.props), Version::kV5) == c.reason);
  }
  // Binary data may hold anything.
  CHECK(ErrorReason(WithProps(Where::kPublish, B({0x09, 0, 2, 0x00, 0xFF})), Version::kV5) == -1);
}

TEST_CASE("property length must fit the packet") {
  // Property length 5 but only 2 bytes follow.
  CHECK(ErrorReason(B({0x40, 0x06, 0x00, 0x01, 0x00, 0x05, 0x1F, 0x00}), Version::kV5) ==
        rc::kMalformedPacket);
  // Overlong / unterminated property length.
  CHECK(ErrorReason(B({0x40, 0x05, 0x00, 0x01, 0x00, 0x80, 0x00}), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0x40, 0x04, 0x00, 0x01, 0x00, 0x80}), Version::kV5) == rc::kMalformedPacket);
  // A property length that ends inside a property.
  CHECK(ErrorReason(B({0x30, 0x0A, 0x00, 0x01, 't', 0x02, 0x02, 0x00, 0x00, 0x00, 0x01, 'x'}),
                    Version::kV5) == rc::kMalformedPacket);
  // A property length longer than the whole packet could be (4-byte varint).
  CHECK(ErrorReason(B({0x30, 0x08, 0x00, 0x01, 't', 0xFF, 0xFF, 0xFF, 0x7F, 'x'}), Version::kV5) ==
        rc::kMalformedPacket);
}

TEST_CASE("the encoder writes only the properties a packet may carry") {
  const Properties every = EveryProp();
  auto decoded_props = [](const Packet& p) -> Properties {
    Packet out;
    const DecodeResult r = DecodeBytes(EncodeBytes(p, Version::kV5), Version::kV5, &out);
    REQUIRE(r.status == DecodeStatus::kOk);
    return std::visit(
        [](const auto& x) -> Properties {
          if constexpr (requires { x.props; }) {
            return x.props;
          } else {
            return {};
          }
        },
        out);
  };
  auto only = [&](std::initializer_list<int> ids) {
    Properties p;
    for (int id : ids) {
      switch (static_cast<PropId>(id)) {
        case PropId::kPayloadFormatIndicator:
          p.payload_format_indicator = every.payload_format_indicator;
          break;
        case PropId::kMessageExpiryInterval:
          p.message_expiry_interval = every.message_expiry_interval;
          break;
        case PropId::kContentType:
          p.content_type = every.content_type;
          break;
        case PropId::kResponseTopic:
          p.response_topic = every.response_topic;
          break;
        case PropId::kCorrelationData:
          p.correlation_data = every.correlation_data;
          break;
        case PropId::kSubscriptionIdentifier:
          p.subscription_identifiers = every.subscription_identifiers;
          break;
        case PropId::kSessionExpiryInterval:
          p.session_expiry_interval = every.session_expiry_interval;
          break;
        case PropId::kAssignedClientIdentifier:
          p.assigned_client_identifier = every.assigned_client_identifier;
          break;
        case PropId::kServerKeepAlive:
          p.server_keep_alive = every.server_keep_alive;
          break;
        case PropId::kAuthenticationMethod:
          p.authentication_method = every.authentication_method;
          break;
        case PropId::kAuthenticationData:
          p.authentication_data = every.authentication_data;
          break;
        case PropId::kRequestProblemInformation:
          p.request_problem_information = every.request_problem_information;
          break;
        case PropId::kWillDelayInterval:
          p.will_delay_interval = every.will_delay_interval;
          break;
        case PropId::kRequestResponseInformation:
          p.request_response_information = every.request_response_information;
          break;
        case PropId::kResponseInformation:
          p.response_information = every.response_information;
          break;
        case PropId::kServerReference:
          p.server_reference = every.server_reference;
          break;
        case PropId::kReasonString:
          p.reason_string = every.reason_string;
          break;
        case PropId::kReceiveMaximum:
          p.receive_maximum = every.receive_maximum;
          break;
        case PropId::kTopicAliasMaximum:
          p.topic_alias_maximum = every.topic_alias_maximum;
          break;
        case PropId::kTopicAlias:
          p.topic_alias = every.topic_alias;
          break;
        case PropId::kMaximumQoS:
          p.maximum_qos = every.maximum_qos;
          break;
        case PropId::kRetainAvailable:
          p.retain_available = every.retain_available;
          break;
        case PropId::kUserProperty:
          p.user_properties = every.user_properties;
          break;
        case PropId::kMaximumPacketSize:
          p.maximum_packet_size = every.maximum_packet_size;
          break;
        case PropId::kWildcardSubscriptionAvailable:
          p.wildcard_subscription_available = every.wildcard_subscription_available;
          break;
        case PropId::kSubscriptionIdentifierAvailable:
          p.subscription_identifier_available = every.subscription_identifier_available;
          break;
        case PropId::kSharedSubscriptionAvailable:
          p.shared_subscription_available = every.shared_subscription_available;
          break;
      }
    }
    return p;
  };

  Connect c;
  c.version = Version::kV5;
  c.client_id = "c";
  c.props = every;
  c.will = Will{"w", "x", 0, false, every};
  c.will->payload = "utf8";
  Packet pc;
  REQUIRE(DecodeBytes(EncodeBytes(c, Version::kV5), Version::kV5, &pc).status == DecodeStatus::kOk);
  CHECK(std::get<Connect>(pc).props == only({0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27}));
  CHECK(std::get<Connect>(pc).will->props == only({0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}));

  CHECK(decoded_props(Connack{false, 0, every}) == only({0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21,
                                                         0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A}));
  Publish pub;
  pub.topic = "t";
  pub.payload = "utf8";
  pub.props = every;
  CHECK(decoded_props(pub) == only({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}));
  Subscribe sub;
  sub.packet_id = 1;
  sub.subscriptions = {{"t", {}}};
  sub.props = every;
  Properties sub_want = only({0x26});
  sub_want.subscription_identifiers = {every.subscription_identifiers[0]};
  CHECK(decoded_props(sub) == sub_want);
  CHECK(decoded_props(Suback{1, {0}, every}) == only({0x1F, 0x26}));
  CHECK(decoded_props(Unsubscribe{1, {"t"}, every}) == only({0x26}));
  CHECK(decoded_props(Unsuback{1, {0}, every}) == only({0x1F, 0x26}));
  CHECK(decoded_props(Disconnect{0, every}) == only({0x11, 0x1C, 0x1F, 0x26}));
  CHECK(decoded_props(Auth{0x18, every}) == only({0x15, 0x16, 0x1F, 0x26}));
}

TEST_CASE("property strings longer than 65535 bytes make a packet unencodable") {
  Disconnect d;
  d.props.reason_string = std::string(65536, 'r');
  std::string out;
  CHECK(Encode(d, Version::kV5, &out) == 0);
  CHECK(out.empty());
  d.props.reason_string = std::string(65535, 'r');
  const size_t n = Encode(d, Version::kV5, &out);
  CHECK(n == out.size());
  Packet p;
  REQUIRE(DecodeBytes(Bytes(out.begin(), out.end()), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Disconnect>(p) == d);
  // 3.1.1 writes no properties, so the same packet encodes.
  d.props.reason_string = std::string(65536, 'r');
  out.clear();
  CHECK(Encode(d, Version::kV311, &out) == 2);
}

}  // namespace
}  // namespace parley::mqtt
