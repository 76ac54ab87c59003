// DISCONNECT and AUTH.
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_CASE("DISCONNECT exact bytes") {
  CHECK(RoundTrip(Disconnect{}, Version::kV311) == B({0xE0, 0x00}));
  CHECK(RoundTrip(Disconnect{}, Version::kV5) == B({0xE0, 0x00}));
  CHECK(RoundTrip(Disconnect{rc::kDisconnectWithWill, {}}, Version::kV5) == B({0xE0, 0x01, 0x04}));
  Disconnect d{rc::kServerMoved, {}};
  d.props.server_reference = "b";
  CHECK(RoundTrip(d, Version::kV5) == B({0xE0, 0x06, 0x9D, 0x04, 0x1C, 0x00, 0x01, 'b'}));
  // 3.1.1 DISCONNECT is always empty.
  CHECK(EncodeBytes(d, Version::kV311) == B({0xE0, 0x00}));
}

TEST_CASE("DISCONNECT round trips and rules") {
  Disconnect d{rc::kSessionTakenOver, DisconnectProps()};
  RoundTrip(d, Version::kV5);
  d.reason_code = 0;
  RoundTrip(d, Version::kV5);

  Packet p;
  REQUIRE(DecodeBytes(B({0xE0, 0x02, 0x00, 0x00}), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Disconnect>(p) == Disconnect{});

  CHECK(ErrorReason(B({0xE0, 0x01, 0x00}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0xE1, 0x00}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0xE0, 0x01, 0x05}), Version::kV5) == rc::kProtocolError);  // not a DISCONNECT code
  CHECK(ErrorReason(B({0xE0, 0x01, 0x18}), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xE0, 0x03, 0x00, 0x00, 0x00}), Version::kV5) == rc::kMalformedPacket);  // trailing
  CHECK(ErrorReason(B({0xE0, 0x03, 0x00, 0x02, 0x00}), Version::kV5) == rc::kMalformedPacket);  // short props
  // Topic Alias is not a DISCONNECT property.
  CHECK(ErrorReason(B({0xE0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01}), Version::kV5) == rc::kMalformedPacket);
  // Every code DISCONNECT allows decodes.
  for (int code : {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
                   0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}) {
    CAPTURE(code);
    CHECK(ErrorReason(B({0xE0, 0x01, code}), Version::kV5) == -1);
  }
}

TEST_CASE("AUTH") {
  CHECK(RoundTrip(Auth{}, Version::kV5) == B({0xF0, 0x00}));
  // A non-zero reason without properties keeps its property length (we send the spelled-out form).
  CHECK(RoundTrip(Auth{rc::kContinueAuthentication, {}}, Version::kV5) == B({0xF0, 0x02, 0x18, 0x00}));
  Auth a{rc::kReAuthenticate, AuthProps()};
  RoundTrip(a, Version::kV5);
  a.reason_code = rc::kSuccess;
  RoundTrip(a, Version::kV5);

  // The reason-only form is accepted.
  Packet p;
  REQUIRE(DecodeBytes(B({0xF0, 0x01, 0x18}), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Auth>(p) == Auth{rc::kContinueAuthentication, {}});

  // AUTH does not exist in 3.1.1 (packet type 15 is reserved there).
  CHECK(ErrorReason(B({0xF0, 0x00}), Version::kV311) == rc::kMalformedPacket);
  std::string out;
  CHECK(Encode(Auth{}, Version::kV311, &out) == 0);
  CHECK(out.empty());
  CHECK(EncodedSize(Auth{}, Version::kV311) == 0);

  CHECK(ErrorReason(B({0xF1, 0x00}), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0xF0, 0x01, 0x04}), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xF0, 0x01, 0x87}), Version::kV5) == rc::kProtocolError);
  // Session Expiry is not an AUTH property.
  CHECK(ErrorReason(B({0xF0, 0x07, 0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}), Version::kV5) ==
        rc::kMalformedPacket);
}

}  // namespace
}  // namespace parley::mqtt
