// CONNECT and CONNACK: spec byte vectors, round trips in both versions, and CONNECT-specific errors.
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

Connect FullConnect(Version v) {
  Connect c;
  c.version = v;
  c.clean_start = false;
  c.keep_alive = 65535;
  c.client_id = "client-\xc3\xa9";  // "client-é"
  Will w;
  w.topic = "status/client";
  w.payload = std::string("off\0line", 8);
  w.qos = 2;
  w.retain = true;
  if (v == Version::kV5) w.props = testing::WillProps();
  c.will = w;
  c.username = "user";
  c.password = std::string("p\0ss", 4);
  if (v == Version::kV5) c.props = testing::ConnectProps();
  return c;
}

TEST_CASE("CONNECT 3.1.1 from mosquitto_pub decodes to the expected fields") {
  // mosquitto_pub -i mosq-pub -t t -m x: clean session, keep alive 60.
  const Bytes b = Cat(B({0x10, 0x14, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x08}),
                      B(std::string("mosq-pub")));
  Connect want;
  want.version = Version::kV311;
  want.clean_start = true;
  want.keep_alive = 60;
  want.client_id = "mosq-pub";
  testing::CheckDecodesIncrementally(b, Version::kV5 /* ignored for CONNECT */, want);
  CHECK(testing::EncodeBytes(want, Version::kV311) == b);

  Packet p;
  const DecodeResult r = testing::DecodeBytes(b, Version::kV311, &p);
  REQUIRE(r.connect_version.has_value());
  CHECK(*r.connect_version == Version::kV311);
}

TEST_CASE("CONNECT 3.1.1 with will, user name and password: exact bytes") {
  // mosquitto_pub -i c -u user -P pass --will-topic w --will-payload bye --will-qos 1
  const Bytes b = B({0x10, 0x21, 0x00, 0x04, 'M',  'Q', 'T',  'T',  0x04, 0xCE, 0x00, 0x3C,  //
                     0x00, 0x01, 'c',                                                        //
                     0x00, 0x01, 'w',  0x00, 0x03, 'b', 'y',  'e',                           //
                     0x00, 0x04, 'u',  's',  'e',  'r', 0x00, 0x04, 'p',  'a',  's',  's'});
  Connect want;
  want.keep_alive = 60;
  want.client_id = "c";
  want.will = Will{"w", "bye", 1, false, {}};
  want.username = "user";
  want.password = "pass";
  testing::CheckDecodesIncrementally(b, Version::kV311, want);
  CHECK(testing::EncodeBytes(want, Version::kV311) == b);
}

TEST_CASE("CONNECT 5.0 with Receive Maximum: exact bytes") {
  const Bytes b = B({0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C,  //
                     0x03, 0x21, 0x00, 0x14,                                              //
                     0x00, 0x01, 'c'});
  Connect want;
  want.version = Version::kV5;
  want.keep_alive = 60;
  want.client_id = "c";
  want.props.receive_maximum = 20;
  testing::CheckDecodesIncrementally(b, Version::kV311, want);
  CHECK(testing::EncodeBytes(want, Version::kV5) == b);
}

TEST_CASE("CONNECT round trips with every field and property") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CAPTURE(static_cast<int>(v));
    RoundTrip(FullConnect(v), v);
    Connect minimal;
    minimal.version = v;
    RoundTrip(minimal, v);  // empty client id, clean start
    Connect no_will = FullConnect(v);
    no_will.will.reset();
    RoundTrip(no_will, v);
    Connect will_qos0 = FullConnect(v);
    will_qos0.will->qos = 0;
    will_qos0.will->retain = false;
    RoundTrip(will_qos0, v);
  }
  Connect pass_only = FullConnect(Version::kV5);
  pass_only.username.reset();
  RoundTrip(pass_only, Version::kV5);  // allowed in 5.0
}

TEST_CASE("CONNECT sets connect_version as soon as the level is known") {
  Connect c = FullConnect(Version::kV5);
  Bytes b = testing::EncodeBytes(c, Version::kV5);
  const size_t len_bytes = (b[1] & 0x80) ? 2 : 1;
  b[1 + len_bytes + 7] |= 0x01;  // reserved flag, after the protocol name and level
  DecodeResult r;
  CHECK(ErrorReason(b, Version::kV311, &r) == rc::kMalformedPacket);
  REQUIRE(r.connect_version.has_value());
  CHECK(*r.connect_version == Version::kV5);
}

TEST_CASE("CONNECT protocol names and levels") {
  auto connect_with = [](const std::string& name, int level) {
    Bytes body = B({0x00, static_cast<int>(name.size())});
    body = Cat(body, B(name));
    body = Cat(body, B({level, 0x02, 0x00, 0x3C}));
    if (level == 5) body.push_back(0x00);
    body = Cat(body, B({0x00, 0x01, 'c'}));
    return Cat(B({0x10, static_cast<int>(body.size())}), body);
  };
  DecodeResult r;
  // MQTT 3.1 ("MQIsdp", level 3) is not supported.
  CHECK(ErrorReason(connect_with("MQIsdp", 3), Version::kV311, &r) == rc::kUnsupportedProtocolVersion);
  CHECK_FALSE(r.connect_version.has_value());
  CHECK(ErrorReason(connect_with("MQTT", 3), Version::kV311, &r) == rc::kUnsupportedProtocolVersion);
  CHECK_FALSE(r.connect_version.has_value());
  CHECK(ErrorReason(connect_with("MQTT", 6), Version::kV311, &r) == rc::kUnsupportedProtocolVersion);
  CHECK_FALSE(r.connect_version.has_value());
  CHECK(ErrorReason(connect_with("MQTX", 4), Version::kV311, &r) == rc::kUnsupportedProtocolVersion);
  CHECK(ErrorReason(connect_with("mqtt", 5), Version::kV311, &r) == rc::kUnsupportedProtocolVersion);
  CHECK(ErrorReason(connect_with("MQTT", 4), Version::kV311) == -1);
  CHECK(ErrorReason(connect_with("MQTT", 5), Version::kV311) == -1);
}

TEST_CASE("CONNECT flag rules") {
  // Variable header of a 3.1.1 CONNECT with client id "c" and the given flags; payload follows the flags.
  auto v311 = [](int flags, const Bytes& payload) {
    Bytes body = B({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, flags, 0x00, 0x3C, 0x00, 0x01, 'c'});
    body = Cat(body, payload);
    return Cat(B({0x10, static_cast<int>(body.size())}), body);
  };
  auto v5 = [](int flags, const Bytes& payload) {
    Bytes body = B({0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, flags, 0x00, 0x3C, 0x00, 0x00, 0x01, 'c'});
    body = Cat(body, payload);
    return Cat(B({0x10, static_cast<int>(body.size())}), body);
  };
  const Bytes will = B({0x00, 0x01, 'w', 0x00, 0x00});
  const Bytes will5 = Cat(B({0x00}), will);
  const Bytes user = B({0x00, 0x01, 'u'});
  const Bytes pass = B({0x00, 0x01, 'p'});

  CHECK(ErrorReason(v311(0x02, {}), Version::kV311) == -1);
  CHECK(ErrorReason(v311(0x03, {}), Version::kV311) == rc::kMalformedPacket);         // reserved bit
  CHECK(ErrorReason(v311(0x02 | 0x08, {}), Version::kV311) == rc::kMalformedPacket);  // will QoS w/o will
  CHECK(ErrorReason(v311(0x02 | 0x20, {}), Version::kV311) == rc::kMalformedPacket);  // will retain w/o will
  CHECK(ErrorReason(v311(0x02 | 0x04 | 0x18, will), Version::kV311) == rc::kMalformedPacket);  // will QoS 3
  CHECK(ErrorReason(v311(0x02 | 0x04 | 0x10, will), Version::kV311) == -1);                    // will QoS 2
  CHECK(ErrorReason(v311(0x02 | 0x40, pass), Version::kV311) == rc::kMalformedPacket);  // password only
  CHECK(ErrorReason(v311(0x02 | 0xC0, Cat(user, pass)), Version::kV311) == -1);
  CHECK(ErrorReason(v5(0x02 | 0x40, pass), Version::kV311) == -1);  // password only is fine in 5.0
  CHECK(ErrorReason(v5(0x02 | 0x04, will5), Version::kV311) == -1);
  CHECK(ErrorReason(v5(0x03, {}), Version::kV311) == rc::kMalformedPacket);
  // Flags promise fields the payload does not have, or the payload has more than the flags say.
  CHECK(ErrorReason(v311(0x02 | 0x80, {}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(v311(0x02 | 0x04, {}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(v311(0x02, user), Version::kV311) == rc::kMalformedPacket);
}

TEST_CASE("CONNECT payload rules") {
  Connect c = FullConnect(Version::kV311);
  c.will->topic = "a/+";
  CHECK(ErrorReason(testing::EncodeBytes(c, Version::kV311), Version::kV311) == rc::kTopicNameInvalid);
  c.will->topic = "";
  CHECK(ErrorReason(testing::EncodeBytes(c, Version::kV311), Version::kV311) == rc::kTopicNameInvalid);

  Connect bad_id = FullConnect(Version::kV311);
  bad_id.client_id = "a\xc0\x80";  // overlong NUL
  CHECK(ErrorReason(testing::EncodeBytes(bad_id, Version::kV311), Version::kV311) == rc::kMalformedPacket);

  // [MQTT-3.1.3-8]: 3.1.1 empty client id needs clean session.
  Connect empty_id;
  empty_id.clean_start = false;
  DecodeResult r;
  CHECK(ErrorReason(testing::EncodeBytes(empty_id, Version::kV311), Version::kV5, &r) ==
        rc::kClientIdentifierNotValid);
  CHECK(r.connect_version == Version::kV311);
  empty_id.version = Version::kV5;
  RoundTrip(empty_id, Version::kV5);  // 5.0: the server assigns one

  Connect pfi = FullConnect(Version::kV5);
  pfi.will->props.payload_format_indicator = 1;
  pfi.will->payload = "ok \xe2\x82\xac";
  RoundTrip(pfi, Version::kV5);
  pfi.will->payload = "\xff";
  CHECK(ErrorReason(testing::EncodeBytes(pfi, Version::kV5), Version::kV5) == rc::kPayloadFormatInvalid);

  Connect auth = FullConnect(Version::kV5);
  auth.props.authentication_method.reset();
  CHECK(ErrorReason(testing::EncodeBytes(auth, Version::kV5), Version::kV5) == rc::kProtocolError);
}

TEST_CASE("CONNACK exact bytes") {
  Connack ok311;
  CHECK(testing::EncodeBytes(ok311, Version::kV311) == B({0x20, 0x02, 0x00, 0x00}));
  Connack refused;
  refused.reason_code = rc311::kNotAuthorized;
  CHECK(RoundTrip(refused, Version::kV311) == B({0x20, 0x02, 0x00, 0x05}));

  Connack ok5;
  CHECK(RoundTrip(ok5, Version::kV5) == B({0x20, 0x03, 0x00, 0x00, 0x00}));

  Connack with_props;
  with_props.session_present = true;
  with_props.props.assigned_client_identifier = "ab";
  with_props.props.topic_alias_maximum = 10;
  CHECK(RoundTrip(with_props, Version::kV5) ==
        B({0x20, 0x0B, 0x01, 0x00, 0x08, 0x12, 0x00, 0x02, 'a', 'b', 0x22, 0x00, 0x0A}));

  // 3.1.1 CONNACK writes no properties even if some are set.
  CHECK(testing::EncodeBytes(with_props, Version::kV311) == B({0x20, 0x02, 0x01, 0x00}));
}

TEST_CASE("CONNACK round trips and rules") {
  Connack c;
  c.session_present = true;
  c.props = testing::ConnackProps();
  RoundTrip(c, Version::kV5);
  c.session_present = false;
  c.reason_code = rc::kBanned;
  RoundTrip(c, Version::kV5);

  CHECK(ErrorReason(B({0x20, 0x02, 0x02, 0x00}), Version::kV311) == rc::kMalformedPacket);  // reserved flags
  CHECK(ErrorReason(B({0x20, 0x02, 0x00, 0x06}), Version::kV311) == rc::kProtocolError);    // unknown code
  CHECK(ErrorReason(B({0x20, 0x02, 0x01, 0x05}), Version::kV311) ==
        rc::kProtocolError);  // present on refusal
  CHECK(ErrorReason(B({0x20, 0x03, 0x00, 0x00, 0x00}), Version::kV311) == rc::kMalformedPacket);  // too long
  CHECK(ErrorReason(B({0x20, 0x02, 0x00, 0x00}), Version::kV5) == rc::kMalformedPacket);  // no prop length
  CHECK(ErrorReason(B({0x20, 0x03, 0x00, 0x01, 0x00}), Version::kV5) == rc::kProtocolError);  // 0x01 not v5
  CHECK(ErrorReason(B({0x20, 0x03, 0x00, 0x84, 0x00}), Version::kV5) == -1);
}

}  // namespace
}  // namespace parley::mqtt
