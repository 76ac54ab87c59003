// PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, PINGRESP.
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

Ack MakeAck(PacketType t, uint16_t id, uint8_t reason = 0) {
  Ack a;
  a.type = t;
  a.packet_id = id;
  a.reason_code = reason;
  return a;
}

constexpr PacketType kAckTypes[] = {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel,
                                    PacketType::kPubcomp};

TEST_CASE("acks: exact bytes in 3.1.1") {
  CHECK(RoundTrip(MakeAck(PacketType::kPuback, 10), Version::kV311) == B({0x40, 0x02, 0x00, 0x0A}));
  CHECK(RoundTrip(MakeAck(PacketType::kPubrec, 10), Version::kV311) == B({0x50, 0x02, 0x00, 0x0A}));
  CHECK(RoundTrip(MakeAck(PacketType::kPubrel, 10), Version::kV311) == B({0x62, 0x02, 0x00, 0x0A}));
  CHECK(RoundTrip(MakeAck(PacketType::kPubcomp, 10), Version::kV311) == B({0x70, 0x02, 0x00, 0x0A}));
  // 3.1.1 has no reason code or properties.
  Ack a = MakeAck(PacketType::kPuback, 10, rc::kNotAuthorized);
  a.props = ReasonProps();
  CHECK(EncodeBytes(a, Version::kV311) == B({0x40, 0x02, 0x00, 0x0A}));
}

TEST_CASE("acks: 5.0 short forms") {
  // Success without properties: packet id only.
  CHECK(RoundTrip(MakeAck(PacketType::kPuback, 10), Version::kV5) == B({0x40, 0x02, 0x00, 0x0A}));
  // Another reason without properties: no property length.
  CHECK(RoundTrip(MakeAck(PacketType::kPuback, 10, rc::kNoMatchingSubscribers), Version::kV5) ==
        B({0x40, 0x03, 0x00, 0x0A, 0x10}));
  CHECK(RoundTrip(MakeAck(PacketType::kPubrel, 10, rc::kPacketIdentifierNotFound), Version::kV5) ==
        B({0x62, 0x03, 0x00, 0x0A, 0x92}));
  // Properties: everything.
  Ack a = MakeAck(PacketType::kPuback, 10);
  a.props.reason_string = "r";
  CHECK(RoundTrip(a, Version::kV5) == B({0x40, 0x08, 0x00, 0x0A, 0x00, 0x04, 0x1F, 0x00, 0x01, 'r'}));
  // The long forms decode too.
  Packet p;
  REQUIRE(DecodeBytes(B({0x40, 0x04, 0x00, 0x0A, 0x00, 0x00}), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Ack>(p) == MakeAck(PacketType::kPuback, 10));
  REQUIRE(DecodeBytes(B({0x50, 0x03, 0x00, 0x0A, 0x00}), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Ack>(p) == MakeAck(PacketType::kPubrec, 10));
}

TEST_CASE("acks: round trips with properties") {
  for (PacketType t : kAckTypes) {
    CAPTURE(PacketTypeName(t));
    for (Version v : {Version::kV311, Version::kV5}) {
      RoundTrip(MakeAck(t, 1), v);
      RoundTrip(MakeAck(t, 0xFFFF), v);
    }
    const uint8_t reason = (t == PacketType::kPuback || t == PacketType::kPubrec)
                               ? rc::kQuotaExceeded
                               : rc::kPacketIdentifierNotFound;
    Ack a = MakeAck(t, 77, reason);
    RoundTrip(a, Version::kV5);
    a.props = ReasonProps();
    RoundTrip(a, Version::kV5);
    a.reason_code = 0;
    RoundTrip(a, Version::kV5);
    // Only Reason String and User Property are written for an ack.
    Ack every = MakeAck(t, 77);
    every.props = EveryProp();
    Packet p;
    REQUIRE(DecodeBytes(EncodeBytes(every, Version::kV5), Version::kV5, &p).status == DecodeStatus::kOk);
    Properties want;
    want.reason_string = every.props.reason_string;
    want.user_properties = every.props.user_properties;
    CHECK(std::get<Ack>(p).props == want);
  }
}

TEST_CASE("acks: decode rules") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CHECK(ErrorReason(B({0x40, 0x02, 0x00, 0x00}), v) == rc::kProtocolError);  // packet id 0
    CHECK(ErrorReason(B({0x40, 0x01, 0x00}), v) == rc::kMalformedPacket);
    CHECK(ErrorReason(B({0x40, 0x00}), v) == rc::kMalformedPacket);
    CHECK(ErrorReason(B({0x60, 0x02, 0x00, 0x01}), v) == rc::kMalformedPacket);  // PUBREL flags 0000
    CHECK(ErrorReason(B({0x42, 0x02, 0x00, 0x01}), v) == rc::kMalformedPacket);  // PUBACK flags 0010
    CHECK(ErrorReason(B({0x72, 0x02, 0x00, 0x01}), v) == rc::kMalformedPacket);
  }
  CHECK(ErrorReason(B({0x40, 0x03, 0x00, 0x01, 0x00}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0x40, 0x03, 0x00, 0x01, 0x92}), Version::kV5) == rc::kProtocolError);  // PUBREL-only
  CHECK(ErrorReason(B({0x62, 0x03, 0x00, 0x01, 0x10}), Version::kV5) == rc::kProtocolError);  // PUBACK-only
  CHECK(ErrorReason(B({0x40, 0x04, 0x00, 0x01, 0x00, 0x01}), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}), Version::kV5) == rc::kMalformedPacket);
  // Session Expiry is not an ack property.
  CHECK(ErrorReason(B({0x40, 0x09, 0x00, 0x01, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}), Version::kV5) ==
        rc::kMalformedPacket);
}

TEST_CASE("acks: an Ack of another type is not encodable") {
  Ack a = MakeAck(PacketType::kConnect, 1);
  std::string out;
  CHECK(Encode(a, Version::kV5, &out) == 0);
  CHECK(EncodedSize(a, Version::kV5) == 0);
  CHECK(out.empty());
}

TEST_CASE("PINGREQ and PINGRESP") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CHECK(RoundTrip(Pingreq{}, v) == B({0xC0, 0x00}));
    CHECK(RoundTrip(Pingresp{}, v) == B({0xD0, 0x00}));
    CHECK(ErrorReason(B({0xC0, 0x01, 0x00}), v) == rc::kMalformedPacket);
    CHECK(ErrorReason(B({0xD0, 0x01, 0x00}), v) == rc::kMalformedPacket);
    CHECK(ErrorReason(B({0xC1, 0x00}), v) == rc::kMalformedPacket);
    CHECK(ErrorReason(B({0xD8, 0x00}), v) == rc::kMalformedPacket);
  }
}

}  // namespace
}  // namespace parley::mqtt
