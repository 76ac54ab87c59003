// Inputs that must fail, each with the reason code the connection is closed with; and the fixed-header
// contract (need-more, remaining length, maximum packet size).
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

constexpr int kMalformed = rc::kMalformedPacket;
constexpr int kProtocol = rc::kProtocolError;

struct Case {
  const char* name;
  Bytes bytes;
  Version version;
  int reason;
};

const Bytes kConnectHead311 = B({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04});

TEST_CASE("malformed inputs and their reason codes") {
  const Version v3 = Version::kV311;
  const Version v5 = Version::kV5;
  const Case cases[] = {
      // Fixed header.
      {"packet type 0", B({0x00, 0x00}), v3, kMalformed},
      {"packet type 0 (v5)", B({0x0F, 0x00}), v5, kMalformed},
      {"AUTH in 3.1.1", B({0xF0, 0x00}), v3, kMalformed},
      {"CONNECT flags", B({0x11, 0x00}), v3, kMalformed},
      {"CONNACK flags", B({0x28, 0x02, 0x00, 0x00}), v3, kMalformed},
      {"PUBACK flags", B({0x41, 0x02, 0x00, 0x01}), v5, kMalformed},
      {"PUBREC flags", B({0x52, 0x02, 0x00, 0x01}), v5, kMalformed},
      {"PUBREL flags 0000", B({0x60, 0x02, 0x00, 0x01}), v3, kMalformed},
      {"PUBREL flags 0011", B({0x63, 0x02, 0x00, 0x01}), v3, kMalformed},
      {"PUBCOMP flags", B({0x7F, 0x02, 0x00, 0x01}), v3, kMalformed},
      {"SUBSCRIBE flags 0000", B({0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00}), v3, kMalformed},
      {"SUBSCRIBE flags 1010", B({0x8A, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00}), v3, kMalformed},
      {"SUBACK flags", B({0x92, 0x03, 0x00, 0x01, 0x00}), v3, kMalformed},
      {"UNSUBSCRIBE flags", B({0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 't'}), v3, kMalformed},
      {"UNSUBACK flags", B({0xB2, 0x02, 0x00, 0x01}), v3, kMalformed},
      {"PINGREQ flags", B({0xC2, 0x00}), v3, kMalformed},
      {"PINGRESP flags", B({0xD1, 0x00}), v5, kMalformed},
      {"DISCONNECT flags", B({0xE8, 0x00}), v5, kMalformed},
      {"AUTH flags", B({0xF2, 0x00}), v5, kMalformed},
      {"PUBLISH QoS 3", B({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}), v3, kMalformed},
      {"PUBLISH QoS 3 + DUP", B({0x3E, 0x05, 0x00, 0x01, 't', 0x00, 0x01}), v5, kMalformed},
      {"PUBLISH DUP on QoS 0", B({0x38, 0x03, 0x00, 0x01, 't'}), v3, kMalformed},
      // Remaining length.
      {"overlong remaining length 0x80 0x00", B({0xC0, 0x80, 0x00}), v3, kMalformed},
      {"overlong remaining length 3 bytes", B({0x30, 0x83, 0x80, 0x00}), v3, kMalformed},
      {"5-byte remaining length", B({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), v3, kMalformed},
      {"5-byte remaining length, cut", B({0x30, 0x80, 0x80, 0x80, 0x80}), v3, kMalformed},
      {"remaining length too short for the topic", B({0x30, 0x03, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e'}), v3,
       kMalformed},
      {"remaining length too short for the packet id", B({0x32, 0x04, 0x00, 0x01, 't', 0x00, 0x01}), v3,
       kMalformed},
      {"extra byte in PINGREQ", B({0xC0, 0x01, 0x00}), v3, kMalformed},
      {"extra byte in 3.1.1 PUBACK", B({0x40, 0x03, 0x00, 0x01, 0x00}), v3, kMalformed},
      {"extra byte in 3.1.1 DISCONNECT", B({0xE0, 0x01, 0x00}), v3, kMalformed},
      {"extra byte in 3.1.1 CONNACK", B({0x20, 0x03, 0x00, 0x00, 0x00}), v3, kMalformed},
      {"extra byte in 3.1.1 UNSUBACK", B({0xB0, 0x03, 0x00, 0x01, 0x00}), v3, kMalformed},
      {"extra byte after v5 PUBACK properties", B({0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}), v5,
       kMalformed},
      {"extra byte after v5 DISCONNECT properties", B({0xE0, 0x03, 0x00, 0x00, 0x00}), v5, kMalformed},
      {"extra byte in CONNECT",
       Cat(Cat(B({0x10, 0x0E}), kConnectHead311), B({0x02, 0x00, 0x3C, 0x00, 0x01, 'c', 'X'})), v3,
       kMalformed},
      {"missing client id", Cat(Cat(B({0x10, 0x0A}), kConnectHead311), B({0x02, 0x00, 0x3C})), v3,
       kMalformed},
      {"PUBACK too short", B({0x40, 0x01, 0x00}), v5, kMalformed},
      // UTF-8 strings.
      {"topic not UTF-8", B({0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}), v3, kMalformed},
      {"topic with U+0000", B({0x30, 0x04, 0x00, 0x02, 'a', 0x00}), v3, kMalformed},
      {"topic with a surrogate", B({0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80}), v5 /* needs prop len */,
       kMalformed},
      {"topic with overlong NUL", B({0x30, 0x04, 0x00, 0x02, 0xC0, 0x80}), v3, kMalformed},
      {"client id with U+0000",
       Cat(Cat(B({0x10, 0x0D}), kConnectHead311), B({0x02, 0x00, 0x3C, 0x00, 0x01, 0x00})), v3, kMalformed},
      {"user name not UTF-8",
       Cat(Cat(B({0x10, 0x10}), kConnectHead311), B({0x82, 0x00, 0x3C, 0x00, 0x01, 'c', 0x00, 0x01, 0xFF})),
       v3, kMalformed},
      {"SUBSCRIBE filter with a surrogate", B({0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0xED, 0xBF, 0xBF, 0x00}),
       v3, kMalformed},
      {"UNSUBSCRIBE filter not UTF-8", B({0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80}), v3, kMalformed},
      // Topic names.
      {"'+' in PUBLISH topic", B({0x30, 0x05, 0x00, 0x03, 'a', '/', '+'}), v3, rc::kTopicNameInvalid},
      {"'#' in PUBLISH topic", B({0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 0x00}), v5, rc::kTopicNameInvalid},
      {"empty topic in 3.1.1", B({0x30, 0x02, 0x00, 0x00}), v3, kProtocol},
      {"empty topic, no alias", B({0x30, 0x03, 0x00, 0x00, 0x00}), v5, kProtocol},
      // Properties.
      {"duplicate property", B({0x30, 0x0E, 0x00, 0x01, 't', 0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2}), v5,
       kProtocol},
      {"property not allowed (session expiry in PUBLISH)",
       B({0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x11, 0, 0, 0, 1}), v5, kMalformed},
      {"unknown property", B({0x30, 0x05, 0x00, 0x01, 't', 0x01, 0x7F}), v5, kMalformed},
      {"property length beyond the packet", B({0x30, 0x04, 0x00, 0x01, 't', 0x02}), v5, kMalformed},
      // Packet identifiers.
      {"PUBLISH QoS 1 id 0", B({0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}), v3, kProtocol},
      {"PUBACK id 0", B({0x40, 0x02, 0x00, 0x00}), v3, kProtocol},
      {"PUBREC id 0", B({0x50, 0x02, 0x00, 0x00}), v5, kProtocol},
      {"PUBREL id 0", B({0x62, 0x02, 0x00, 0x00}), v3, kProtocol},
      {"PUBCOMP id 0", B({0x70, 0x02, 0x00, 0x00}), v5, kProtocol},
      {"SUBSCRIBE id 0", B({0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 't', 0x00}), v3, kProtocol},
      {"UNSUBSCRIBE id 0", B({0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 't'}), v3, kProtocol},
      // SUBSCRIBE payload.
      {"empty SUBSCRIBE", B({0x82, 0x02, 0x00, 0x01}), v3, kProtocol},
      {"empty UNSUBSCRIBE", B({0xA2, 0x03, 0x00, 0x01, 0x00}), v5, kProtocol},
      {"subscription QoS 3", B({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x03}), v3, kMalformed},
      {"3.1.1 subscription option bits", B({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x08}), v3, kMalformed},
      {"v5 subscription reserved bits", B({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0xC0}), v5,
       kMalformed},
      {"retain handling 3", B({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x30}), v5, kProtocol},
      // CONNECT.
      {"protocol level 3 (MQIsdp)",
       B({0x10, 0x11, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x03, 'a', 'b',
          'c'}),
       v3, rc::kUnsupportedProtocolVersion},
      {"protocol level 6",
       B({0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01, 'c'}), v3,
       rc::kUnsupportedProtocolVersion},
      {"CONNECT reserved flag",
       Cat(Cat(B({0x10, 0x0D}), kConnectHead311), B({0x03, 0x00, 0x3C, 0x00, 0x01, 'c'})), v3, kMalformed},
      {"CONNECT truncated in the protocol name", B({0x10, 0x04, 0x00, 0x04, 'M', 'Q'}), v3, kMalformed},
      {"will QoS 3",
       Cat(Cat(B({0x10, 0x12}), kConnectHead311),
           B({0x1E, 0x00, 0x3C, 0x00, 0x01, 'c', 0x00, 0x01, 'w', 0x00, 0x00})),
       v3, kMalformed},
      // Reason codes.
      {"PUBACK reason 0x92", B({0x40, 0x03, 0x00, 0x01, 0x92}), v5, kProtocol},
      {"DISCONNECT reason 0x01", B({0xE0, 0x01, 0x01}), v5, kProtocol},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    DecodeResult r;
    CHECK(ErrorReason(c.bytes, c.version, &r) == c.reason);
    CHECK(r.consumed == 0);
    CHECK(r.detail != nullptr);
    CHECK(std::string(r.detail).size() > 0);
  }
}

TEST_CASE("every truncation of a CONNECT body is an error") {
  Connect c;
  c.version = Version::kV5;
  c.client_id = "cid";
  c.will = Will{"w/t", "bye", 1, true, WillProps()};
  c.username = "u";
  c.password = "p";
  c.props = ConnectProps();
  const Bytes full = EncodeBytes(c, Version::kV5);
  const size_t header = 1 + ((full[1] & 0x80) ? 2 : 1);
  for (size_t body = 0; body + header < full.size(); ++body) {
    CAPTURE(body);
    Bytes b = B({0x10});
    if (body < 128) {
      b.push_back(static_cast<uint8_t>(body));
    } else {
      b.push_back(static_cast<uint8_t>(body | 0x80));
      b.push_back(static_cast<uint8_t>(body >> 7));
    }
    b.insert(b.end(), full.begin() + static_cast<std::ptrdiff_t>(header),
             full.begin() + static_cast<std::ptrdiff_t>(header + body));
    CHECK(ErrorReason(b, Version::kV5) > 0);
  }
}

TEST_CASE("incomplete fixed headers and bodies need more") {
  for (const Bytes& b :
       {B({}), B({0x30}), B({0x30, 0x80}), B({0x30, 0xFF, 0xFF}), B({0x30, 0xFF, 0xFF, 0xFF}),
        B({0x30, 0x05, 0x00, 0x01}), B({0xC0, 0x01}), B({0x30, 0xFF, 0xFF, 0xFF, 0x7F})}) {
    CAPTURE(b.size());
    Packet p;
    const DecodeResult r = DecodeBytes(b, Version::kV311, &p);
    CHECK(r.status == DecodeStatus::kNeedMore);
    CHECK(r.consumed == 0);
  }
}

TEST_CASE("maximum packet size is checked from the fixed header alone") {
  const Bytes pub = EncodeBytes(Publish{"t", std::string(100, 'x'), 0, false, false, 0, {}}, Version::kV311);
  REQUIRE(pub.size() == 1 + 1 + 3 + 100);
  Packet p;
  auto decode = [&](const Bytes& b, uint32_t max) {
    return Decode(std::span<const uint8_t>(b.data(), b.size()), Opts(Version::kV311, max), &p);
  };
  CHECK(decode(pub, 105).status == DecodeStatus::kOk);
  DecodeResult r = decode(pub, 104);
  CHECK(r.status == DecodeStatus::kError);
  CHECK(r.reason == rc::kPacketTooLarge);
  CHECK(r.consumed == 0);
  // Only the fixed header has arrived: already too large.
  r = decode(Bytes(pub.begin(), pub.begin() + 2), 104);
  CHECK(r.status == DecodeStatus::kError);
  CHECK(r.reason == rc::kPacketTooLarge);
  r = decode(Bytes(pub.begin(), pub.begin() + 2), 105);
  CHECK(r.status == DecodeStatus::kNeedMore);
  // The largest remaining length: too large for any reasonable limit, before a byte of body.
  r = decode(B({0x30, 0xFF, 0xFF, 0xFF, 0x7F}), 1 << 20);
  CHECK(r.reason == rc::kPacketTooLarge);
  // A partial length is not judged yet.
  r = decode(B({0x30, 0xFF, 0xFF}), 1 << 20);
  CHECK(r.status == DecodeStatus::kNeedMore);
  // Bad flags fail on the first byte, before the length.
  r = decode(B({0x60}), 1 << 20);
  CHECK(r.status == DecodeStatus::kError);
  CHECK(r.reason == rc::kMalformedPacket);
}

TEST_CASE("a decode into a used Packet replaces it entirely") {
  Packet p = Publish{"old", "old", 1, true, true, 9, PublishProps()};
  REQUIRE(DecodeBytes(B({0x30, 0x04, 0x00, 0x01, 't', 'x'}), Version::kV311, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Publish>(p) == Publish{"t", "x", 0, false, false, 0, {}});
}

TEST_CASE("TypeOf and PacketTypeName") {
  CHECK(TypeOf(Connect{}) == PacketType::kConnect);
  CHECK(TypeOf(Ack{PacketType::kPubrel, 1, 0, {}}) == PacketType::kPubrel);
  CHECK(TypeOf(Auth{}) == PacketType::kAuth);
  CHECK(std::string(PacketTypeName(PacketType::kUnsuback)) == "UNSUBACK");
  CHECK(std::string(PacketTypeName(static_cast<PacketType>(0))) == "UNKNOWN");
}

}  // namespace
}  // namespace parley::mqtt
