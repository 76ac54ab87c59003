// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

Subscribe Sub(uint16_t id, std::initializer_list<Subscription> subs) {
  Subscribe s;
  s.packet_id = id;
  s.subscriptions = subs;
  return s;
}

TEST_CASE("SUBSCRIBE exact bytes") {
  CHECK(RoundTrip(Sub(1, {{"a/b", {1, false, false, 0}}}), Version::kV311) ==
        B({0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x01}));
  CHECK(RoundTrip(Sub(1, {{"a/b", {2, true, true, 2}}}), Version::kV5) ==
        B({0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x2E}));
  // 3.1.1 has only the QoS bits; the v5 options are not written.
  CHECK(EncodeBytes(Sub(1, {{"a/b", {2, true, true, 2}}}), Version::kV311) ==
        B({0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x02}));
}

TEST_CASE("SUBSCRIBE round trips") {
  Subscribe s = Sub(0xFFFF, {{"a/+/c", {0, false, false, 0}},
                             {"#", {1, false, false, 0}},
                             {"$share/g/x/#", {2, false, false, 0}},
                             {"\xe2\x82\xac/+", {1, false, false, 0}}});
  RoundTrip(s, Version::kV311);
  s.subscriptions[0].opts = {2, true, false, 1};
  s.subscriptions[1].opts = {0, false, true, 2};
  s.props = SubscribeProps();
  RoundTrip(s, Version::kV5);
}

TEST_CASE("SUBSCRIBE leaves filter syntax to core but not UTF-8") {
  // Invalid filters decode: the broker answers that entry alone with 0x8F / 0x80.
  for (Version v : {Version::kV311, Version::kV5}) {
    RoundTrip(Sub(3, {{"a/#/b", {}}, {"", {}}, {"a+", {}}, {"ok", {}}}), v);
    Unsubscribe u;
    u.packet_id = 3;
    u.filters = {"a/#/b", "", "x"};
    RoundTrip(u, v);
  }
  CHECK(ErrorReason(EncodeBytes(Sub(3, {{"a\xff", {}}}), Version::kV5), Version::kV5) ==
        rc::kMalformedPacket);
  CHECK(ErrorReason(EncodeBytes(Sub(3, {{std::string("a\0", 2), {}}}), Version::kV5), Version::kV5) ==
        rc::kMalformedPacket);
}

TEST_CASE("SUBSCRIBE decode rules") {
  // No filters at all.
  CHECK(ErrorReason(B({0x82, 0x02, 0x00, 0x01}), Version::kV311) == rc::kProtocolError);
  CHECK(ErrorReason(B({0x82, 0x03, 0x00, 0x01, 0x00}), Version::kV5) == rc::kProtocolError);
  // Packet id 0.
  CHECK(ErrorReason(B({0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 't', 0x00}), Version::kV311) ==
        rc::kProtocolError);
  // Missing options byte.
  CHECK(ErrorReason(B({0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 't'}), Version::kV311) == rc::kMalformedPacket);
  // Option bits.
  auto sub311 = [](int opts) { return B({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', opts}); };
  auto sub5 = [](int opts) { return B({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', opts}); };
  CHECK(ErrorReason(sub311(0x02), Version::kV311) == -1);
  CHECK(ErrorReason(sub311(0x03), Version::kV311) == rc::kMalformedPacket);  // QoS 3
  CHECK(ErrorReason(sub311(0x04), Version::kV311) == rc::kMalformedPacket);  // v5 bit in 3.1.1
  CHECK(ErrorReason(sub311(0x80), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(sub5(0x2E), Version::kV5) == -1);
  CHECK(ErrorReason(sub5(0x03), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(sub5(0x40), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(sub5(0x80), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(sub5(0x30), Version::kV5) == rc::kProtocolError);  // retain handling 3
  // Subscription identifier: at most one, never 0.
  CHECK(ErrorReason(B({0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 't', 0x00}), Version::kV5) ==
        rc::kProtocolError);
  CHECK(ErrorReason(B({0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 't', 0x00}),
                    Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 't', 0x00}), Version::kV5) ==
        -1);
  // Encoding writes only the first of several identifiers.
  Subscribe two = Sub(1, {{"t", {}}});
  two.props.subscription_identifiers = {5, 6};
  Packet p;
  REQUIRE(DecodeBytes(EncodeBytes(two, Version::kV5), Version::kV5, &p).status == DecodeStatus::kOk);
  CHECK(std::get<Subscribe>(p).props.subscription_identifiers == std::vector<uint32_t>{5});
}

TEST_CASE("SUBACK") {
  Suback s;
  s.packet_id = 1;
  s.reason_codes = {0x01};
  CHECK(RoundTrip(s, Version::kV311) == B({0x90, 0x03, 0x00, 0x01, 0x01}));
  s.reason_codes = {0x00, 0x80, 0x02};
  CHECK(RoundTrip(s, Version::kV311) == B({0x90, 0x05, 0x00, 0x01, 0x00, 0x80, 0x02}));
  s.reason_codes = {0x00};
  CHECK(RoundTrip(s, Version::kV5) == B({0x90, 0x04, 0x00, 0x01, 0x00, 0x00}));
  s.reason_codes = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
  s.props = ReasonProps();
  RoundTrip(s, Version::kV5);

  CHECK(ErrorReason(B({0x90, 0x03, 0x00, 0x01, 0x8F}), Version::kV311) == rc::kProtocolError);  // v5 code
  CHECK(ErrorReason(B({0x90, 0x03, 0x00, 0x01, 0x03}), Version::kV311) == rc::kProtocolError);
  CHECK(ErrorReason(B({0x90, 0x04, 0x00, 0x01, 0x00, 0x03}), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0x90, 0x02, 0x00, 0x01}), Version::kV311) == rc::kProtocolError);        // no codes
  CHECK(ErrorReason(B({0x90, 0x03, 0x00, 0x00, 0x00}), Version::kV311) == rc::kProtocolError);  // id 0
}

TEST_CASE("UNSUBSCRIBE") {
  Unsubscribe u;
  u.packet_id = 2;
  u.filters = {"a/b"};
  CHECK(RoundTrip(u, Version::kV311) == B({0xA2, 0x07, 0x00, 0x02, 0x00, 0x03, 'a', '/', 'b'}));
  CHECK(RoundTrip(u, Version::kV5) == B({0xA2, 0x08, 0x00, 0x02, 0x00, 0x00, 0x03, 'a', '/', 'b'}));
  u.filters = {"a/+", "#", "x/y/z"};
  u.props = UnsubscribeProps();
  RoundTrip(u, Version::kV5);

  CHECK(ErrorReason(B({0xA2, 0x02, 0x00, 0x02}), Version::kV311) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xA2, 0x03, 0x00, 0x02, 0x00}), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 't'}), Version::kV311) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xA2, 0x05, 0x00, 0x02, 0x00, 0x02, 't'}), Version::kV311) == rc::kMalformedPacket);
  // Reason String is not allowed in UNSUBSCRIBE.
  CHECK(ErrorReason(B({0xA2, 0x0A, 0x00, 0x02, 0x04, 0x1F, 0x00, 0x01, 'r', 0x00, 0x01, 't'}),
                    Version::kV5) == rc::kMalformedPacket);
}

TEST_CASE("UNSUBACK") {
  Unsuback u;
  u.packet_id = 2;
  CHECK(RoundTrip(u, Version::kV311) == B({0xB0, 0x02, 0x00, 0x02}));
  u.reason_codes = {0x00};
  CHECK(RoundTrip(u, Version::kV5) == B({0xB0, 0x04, 0x00, 0x02, 0x00, 0x00}));
  // 3.1.1 UNSUBACK has no payload; reason codes are not written.
  CHECK(EncodeBytes(u, Version::kV311) == B({0xB0, 0x02, 0x00, 0x02}));
  u.reason_codes = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
  u.props = ReasonProps();
  RoundTrip(u, Version::kV5);

  CHECK(ErrorReason(B({0xB0, 0x03, 0x00, 0x02, 0x00}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0xB0, 0x03, 0x00, 0x02, 0x00}), Version::kV5) == rc::kProtocolError);  // no codes
  CHECK(ErrorReason(B({0xB0, 0x04, 0x00, 0x02, 0x00, 0x02}), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(B({0xB0, 0x02, 0x00, 0x00}), Version::kV311) == rc::kProtocolError);
}

}  // namespace
}  // namespace parley::mqtt
