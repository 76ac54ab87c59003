// Helpers shared by the codec tests: byte literals, full property sets per packet type, and the
// incremental-feeding check every decoder must pass (STYLE.md rule 17).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "broker/codec/codec.h"

namespace parley::mqtt::testing {

using Bytes = std::vector<uint8_t>;

inline Bytes B(std::initializer_list<int> v) {
  Bytes out;
  for (int x : v) out.push_back(static_cast<uint8_t>(x));
  return out;
}
inline Bytes B(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
inline Bytes Cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline Bytes EncodeBytes(const Packet& p, Version v) {
  std::string out = "prefix";  // Encode appends; what was there must survive
  const size_t n = Encode(p, v, &out);
  REQUIRE(n == out.size() - 6);
  REQUIRE(out.compare(0, 6, "prefix") == 0);
  CHECK(EncodedSize(p, v) == n);
  return Bytes(out.begin() + 6, out.end());
}

inline DecodeOptions Opts(Version v, uint32_t max = kMaxRemainingLength + 5) {
  DecodeOptions o;
  o.version = v;
  o.max_packet_size = max;
  return o;
}

inline DecodeResult DecodeBytes(const Bytes& b, Version v, Packet* out) {
  return Decode(std::span<const uint8_t>(b.data(), b.size()), Opts(v), out);
}

// Decodes `bytes` whole, fed one byte at a time, split at every boundary, and followed by another packet;
// every prefix must be kNeedMore with nothing consumed, every whole decode kOk with consumed == size and
// the packet equal to `want`.
inline void CheckDecodesIncrementally(const Bytes& bytes, Version v, const Packet& want) {
  const DecodeOptions opts = Opts(v);
  // Each prefix on its own (this is both "one byte at a time" and "first part of every split").
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    // A separate allocation of exactly `cut` bytes, so ASan catches any read past the end.
    Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    Packet p;
    const DecodeResult r = Decode(std::span<const uint8_t>(prefix.data(), prefix.size()), opts, &p);
    INFO("prefix of " << cut << " of " << bytes.size() << " bytes");
    REQUIRE(r.status == DecodeStatus::kNeedMore);
    REQUIRE(r.consumed == 0);
  }
  {
    Packet p;
    Bytes whole(bytes);
    const DecodeResult r = Decode(std::span<const uint8_t>(whole.data(), whole.size()), opts, &p);
    INFO("detail: " << r.detail << " reason " << int(r.reason));
    REQUIRE(r.status == DecodeStatus::kOk);
    CHECK(r.consumed == bytes.size());
    CHECK(p == want);
  }
  {
    // Followed by a PINGREQ: exactly one packet is consumed.
    Bytes two = Cat(bytes, B({0xC0, 0x00}));
    Packet p;
    const DecodeResult r = Decode(std::span<const uint8_t>(two.data(), two.size()), opts, &p);
    REQUIRE(r.status == DecodeStatus::kOk);
    CHECK(r.consumed == bytes.size());
    CHECK(p == want);
    Packet q;
    const DecodeResult r2 =
        Decode(std::span<const uint8_t>(two.data() + r.consumed, two.size() - r.consumed), opts, &q);
    CHECK(r2.status == DecodeStatus::kOk);
    CHECK(r2.consumed == 2);
    CHECK(std::holds_alternative<Pingreq>(q));
  }
}

// Encodes `p`, then checks the bytes decode back to `p` in every way above. Returns the bytes.
inline Bytes RoundTrip(const Packet& p, Version v) {
  Bytes bytes = EncodeBytes(p, v);
  CheckDecodesIncrementally(bytes, v, p);
  return bytes;
}

// Decodes `b` and returns the error reason (or -1 if it did not fail).
inline int ErrorReason(const Bytes& b, Version v, DecodeResult* res = nullptr) {
  Packet p;
  const DecodeResult r = DecodeBytes(b, v, &p);
  if (res) *res = r;
  if (r.status != DecodeStatus::kError) return -1;
  CHECK(r.consumed == 0);
  return r.reason;
}

// --- full property sets: every property the packet type allows, with non-default values ---

inline std::vector<UserProperty> SomeUserProps() {
  return {{"k1", "v1"}, {"k2", ""}, {"k1", "again"}};
}

inline Properties PublishProps() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 3600;
  p.content_type = "text/plain";
  p.response_topic = "reply/to/me";
  p.correlation_data = std::string("\x00\x01\xff", 3);
  p.subscription_identifiers = {1, 268'435'455, 77};
  p.topic_alias = 9;
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties WillProps() {
  Properties p;
  p.payload_format_indicator = 0;
  p.message_expiry_interval = 10;
  p.content_type = "application/json";
  p.response_topic = "r";
  p.correlation_data = "corr";
  p.will_delay_interval = 30;
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties ConnectProps() {
  Properties p;
  p.session_expiry_interval = 0xFFFFFFFF;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = std::string("\x00\x10", 2);
  p.request_problem_information = 0;
  p.request_response_information = 1;
  p.receive_maximum = 100;
  p.topic_alias_maximum = 10;
  p.user_properties = SomeUserProps();
  p.maximum_packet_size = 1 << 20;
  return p;
}
inline Properties ConnackProps() {
  Properties p;
  p.session_expiry_interval = 120;
  p.assigned_client_identifier = "auto-1234";
  p.server_keep_alive = 30;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = "server-first";
  p.response_information = "resp/";
  p.server_reference = "other.example:1883";
  p.reason_string = "welcome";
  p.receive_maximum = 65535;
  p.topic_alias_maximum = 0;
  p.maximum_qos = 1;
  p.retain_available = 0;
  p.user_properties = SomeUserProps();
  p.maximum_packet_size = 268'435'460;
  p.wildcard_subscription_available = 1;
  p.subscription_identifier_available = 0;
  p.shared_subscription_available = 1;
  return p;
}
inline Properties ReasonProps() {  // PUBACK..PUBCOMP, SUBACK, UNSUBACK
  Properties p;
  p.reason_string = "because";
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties SubscribeProps() {
  Properties p;
  p.subscription_identifiers = {268'435'455};
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties UnsubscribeProps() {
  Properties p;
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties DisconnectProps() {
  Properties p;
  p.session_expiry_interval = 0;
  p.server_reference = "elsewhere";
  p.reason_string = "bye";
  p.user_properties = SomeUserProps();
  return p;
}
inline Properties AuthProps() {
  Properties p;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = std::string("\x00\xff", 2);
  p.reason_string = "continue";
  p.user_properties = SomeUserProps();
  return p;
}
// Every property at once (for "encoder writes only what the type allows").
inline Properties EveryProp() {
  Properties p = ConnackProps();
  const Properties pub = PublishProps();
  p.payload_format_indicator = pub.payload_format_indicator;
  p.message_expiry_interval = pub.message_expiry_interval;
  p.content_type = pub.content_type;
  p.response_topic = pub.response_topic;
  p.correlation_data = pub.correlation_data;
  p.subscription_identifiers = pub.subscription_identifiers;
  p.topic_alias = pub.topic_alias;
  p.request_problem_information = 1;
  p.request_response_information = 1;
  p.will_delay_interval = 5;
  return p;
}

}  // namespace parley::mqtt::testing
