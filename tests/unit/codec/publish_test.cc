// PUBLISH: spec byte vectors, round trips, the PublishOut fast path, and PUBLISH-specific errors.
#include <doctest/doctest.h>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

Publish Pub(const std::string& topic, const std::string& payload, uint8_t qos = 0, uint16_t id = 0) {
  Publish p;
  p.topic = topic;
  p.payload = payload;
  p.qos = qos;
  p.packet_id = id;
  return p;
}

TEST_CASE("PUBLISH exact bytes") {
  CHECK(RoundTrip(Pub("a/b", "hi"), Version::kV311) == B({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
  Publish q1 = Pub("a/b", "hi", 1, 10);
  q1.retain = true;
  CHECK(RoundTrip(q1, Version::kV311) == B({0x33, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'}));
  Publish q2 = Pub("a/b", "", 2, 0xFFFF);
  q2.dup = true;
  CHECK(RoundTrip(q2, Version::kV311) == B({0x3C, 0x07, 0x00, 0x03, 'a', '/', 'b', 0xFF, 0xFF}));

  q1.retain = false;
  CHECK(RoundTrip(q1, Version::kV5) ==
        B({0x32, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x00, 'h', 'i'}));
  Publish alias = Pub("", "x");
  alias.props.topic_alias = 5;
  CHECK(RoundTrip(alias, Version::kV5) == B({0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, 'x'}));
}

TEST_CASE("PUBLISH round trips in both versions") {
  for (Version v : {Version::kV311, Version::kV5}) {
    CAPTURE(static_cast<int>(v));
    for (uint8_t qos : {uint8_t{0}, uint8_t{1}, uint8_t{2}}) {
      Publish p =
          Pub("sensors/\xe6\xb8\xa9\xe5\xba\xa6/1", std::string("\x00\x01\x02\xff", 4), qos, qos ? 4242 : 0);
      p.retain = qos != 1;
      p.dup = qos == 2;
      if (v == Version::kV5) p.props = PublishProps();
      if (v == Version::kV5) p.props.payload_format_indicator = 0;  // binary payload
      RoundTrip(p, v);
    }
    RoundTrip(Pub("/", ""), v);
    RoundTrip(Pub(std::string(65535, 't'), "p", 1, 1), v);
  }
  Publish utf8 = Pub("t", "caf\xc3\xa9");
  utf8.props.payload_format_indicator = 1;
  RoundTrip(utf8, Version::kV5);
}

TEST_CASE("PUBLISH with remaining lengths of 1 to 4 bytes") {
  for (size_t n : {0u, 120u, 121u, 200u, 16'380u, 16'400u, 2'097'140u, 2'097'200u}) {
    CAPTURE(n);
    const Publish p = Pub("t", std::string(n, 'x'));
    const Bytes b = EncodeBytes(p, Version::kV311);
    CHECK(b.size() == 1 + 3 + n + (n + 3 < 128 ? 1 : n + 3 < 16384 ? 2 : n + 3 < 2097152 ? 3 : 4));
    Packet out;
    DecodeResult r = DecodeBytes(b, Version::kV311, &out);
    REQUIRE(r.status == DecodeStatus::kOk);
    CHECK(r.consumed == b.size());
    CHECK(std::get<Publish>(out) == p);
    for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, b.size() - 1}) {
      if (cut >= b.size()) continue;
      Bytes prefix(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut));
      r = DecodeBytes(prefix, Version::kV311, &out);
      CHECK(r.status == DecodeStatus::kNeedMore);
      CHECK(r.consumed == 0);
    }
  }
}

TEST_CASE("PublishOut: pass-through properties, overrides and sizes") {
  Properties stored = PublishProps();  // carries expiry, alias and sub ids that must NOT be forwarded
  PublishOut o;
  o.topic = "a/b";
  o.payload = "payload";
  o.qos = 1;
  o.packet_id = 7;
  o.props = &stored;

  std::string out = "xx";
  size_t n = EncodePublish(o, Version::kV5, &out);
  CHECK(n == out.size() - 2);
  CHECK(n == PublishSize(o, Version::kV5));
  Packet p;
  Bytes b(out.begin() + 2, out.end());
  REQUIRE(DecodeBytes(b, Version::kV5, &p).status == DecodeStatus::kOk);
  Publish want = Pub("a/b", "payload", 1, 7);
  want.props = stored;
  want.props.message_expiry_interval.reset();
  want.props.topic_alias.reset();
  want.props.subscription_identifiers.clear();
  CHECK(std::get<Publish>(p) == want);

  // Per-receiver fields.
  const uint32_t ids[] = {3, 200'000};
  o.message_expiry_interval = 59;
  o.topic_alias = 2;
  o.subscription_ids = ids;
  o.dup = true;
  o.retain = true;
  out.clear();
  n = EncodePublish(o, Version::kV5, &out);
  CHECK(n == out.size());
  CHECK(n == PublishSize(o, Version::kV5));
  REQUIRE(DecodeBytes(Bytes(out.begin(), out.end()), Version::kV5, &p).status == DecodeStatus::kOk);
  want.props.message_expiry_interval = 59;
  want.props.topic_alias = 2;
  want.props.subscription_identifiers = {3, 200'000};
  want.dup = true;
  want.retain = true;
  CHECK(std::get<Publish>(p) == want);

  // 3.1.1 writes none of it.
  out.clear();
  n = EncodePublish(o, Version::kV311, &out);
  CHECK(n == PublishSize(o, Version::kV311));
  CHECK(Bytes(out.begin(), out.end()) ==
        B({0x3B, 0x0E, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x07, 'p', 'a', 'y', 'l', 'o', 'a', 'd'}));

  // No props pointer at all: a property length of 0.
  PublishOut bare;
  bare.topic = "t";
  out.clear();
  EncodePublish(bare, Version::kV5, &out);
  CHECK(Bytes(out.begin(), out.end()) == B({0x30, 0x04, 0x00, 0x01, 't', 0x00}));
}

TEST_CASE("PUBLISH that cannot be encoded appends nothing") {
  PublishOut o;
  const std::string long_topic(65536, 'a');
  o.topic = long_topic;
  std::string out = "keep";
  CHECK(EncodePublish(o, Version::kV311, &out) == 0);
  CHECK(PublishSize(o, Version::kV311) == 0);
  CHECK(out == "keep");
  Publish p = Pub(long_topic, "");
  CHECK(Encode(p, Version::kV5, &out) == 0);
  CHECK(EncodedSize(p, Version::kV5) == 0);
  const uint32_t big_id[] = {kMaxSubscriptionId + 1};
  PublishOut bad_id;
  bad_id.topic = "t";
  bad_id.subscription_ids = big_id;
  CHECK(EncodePublish(bad_id, Version::kV5, &out) == 0);
  CHECK(out == "keep");
}

TEST_CASE("PUBLISH decode rules") {
  // Topic names.
  CHECK(ErrorReason(EncodeBytes(Pub("a/+", "x"), Version::kV311), Version::kV311) == rc::kTopicNameInvalid);
  CHECK(ErrorReason(EncodeBytes(Pub("a/#", "x"), Version::kV5), Version::kV5) == rc::kTopicNameInvalid);
  CHECK(ErrorReason(EncodeBytes(Pub("#", "x"), Version::kV5), Version::kV5) == rc::kTopicNameInvalid);
  CHECK(ErrorReason(EncodeBytes(Pub("", "x"), Version::kV311), Version::kV311) == rc::kProtocolError);
  CHECK(ErrorReason(EncodeBytes(Pub("", "x"), Version::kV5), Version::kV5) == rc::kProtocolError);
  CHECK(ErrorReason(EncodeBytes(Pub("a\xed\xa0\x80", "x"), Version::kV5), Version::kV5) ==
        rc::kMalformedPacket);

  // Topic alias 0.
  Publish alias0 = Pub("t", "x");
  alias0.props.topic_alias = 0;
  CHECK(ErrorReason(EncodeBytes(alias0, Version::kV5), Version::kV5) == rc::kTopicAliasInvalid);

  // Payload format indicator 1 with a payload that is not UTF-8.
  Publish pfi = Pub("t", "\xc3\x28");
  pfi.props.payload_format_indicator = 1;
  CHECK(ErrorReason(EncodeBytes(pfi, Version::kV5), Version::kV5) == rc::kPayloadFormatInvalid);
  pfi.props.payload_format_indicator = 0;
  RoundTrip(pfi, Version::kV5);

  // Packet id 0 with QoS > 0.
  CHECK(ErrorReason(B({0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}), Version::kV311) == rc::kProtocolError);
  // QoS 0 has no packet id: the two bytes are payload.
  Packet p;
  REQUIRE(DecodeBytes(B({0x30, 0x05, 0x00, 0x01, 't', 0x00, 0x00}), Version::kV311, &p).status ==
          DecodeStatus::kOk);
  CHECK(std::get<Publish>(p).payload == std::string("\0\0", 2));

  // Truncated inside the topic or the packet id.
  CHECK(ErrorReason(B({0x30, 0x02, 0x00, 0x05}), Version::kV311) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0x32, 0x04, 0x00, 0x01, 't', 0x01}), Version::kV311) == rc::kMalformedPacket);
  // v5 needs the property length.
  CHECK(ErrorReason(B({0x30, 0x03, 0x00, 0x01, 't'}), Version::kV5) == rc::kMalformedPacket);
  CHECK(ErrorReason(B({0x30, 0x03, 0x00, 0x01, 't'}), Version::kV311) == -1);
}

}  // namespace
}  // namespace parley::mqtt
