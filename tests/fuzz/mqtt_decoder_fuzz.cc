// libFuzzer target for the MQTT codec (broker/codec).
//
// The input is a byte stream as a socket would deliver it. It is decoded packet after packet with each
// protocol version and with a small and the default maximum packet size. Every packet that decodes is
// re-encoded and decoded again, and must come back equal: the round-trip invariant. Any broken contract
// (consumed out of range, an error without a reason, a packet that cannot be re-encoded, a size function
// that disagrees with the encoder, a mismatch) aborts, so libFuzzer reports it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>

#include "broker/codec/codec.h"

namespace {

using namespace parley::mqtt;  // NOLINT(google-build-using-namespace)

[[noreturn]] void Fail(const char* what, const Packet& p) {
  std::fprintf(stderr, "mqtt_decoder_fuzz: %s (packet %s)\n", what, PacketTypeName(TypeOf(p)));
  std::abort();
}

// Exercise the validation helpers on every string the decoder let through; they must agree with it.
void CheckStrings(const Packet& p) {
  if (const auto* pub = std::get_if<Publish>(&p)) {
    if (!pub->topic.empty() && !IsValidTopicName(pub->topic)) Fail("decoded topic name is invalid", p);
  } else if (const auto* sub = std::get_if<Subscribe>(&p)) {
    for (const Subscription& s : sub->subscriptions) {
      if (!IsValidMqttUtf8(s.filter)) Fail("decoded filter is not UTF-8", p);
      (void)IsValidTopicFilter(s.filter);
    }
  } else if (const auto* c = std::get_if<Connect>(&p)) {
    if (!IsValidMqttUtf8(c->client_id)) Fail("decoded client id is not UTF-8", p);
    if (c->will && !IsValidTopicName(c->will->topic)) Fail("decoded will topic is invalid", p);
  }
}

void RoundTrip(const Packet& p, Version v) {
  // A CONNECT carries its own version; everything else is written in the session's.
  const Version ev = std::holds_alternative<Connect>(p) ? std::get<Connect>(p).version : v;
  std::string enc;
  const size_t n = Encode(p, ev, &enc);
  if (n == 0) Fail("decoded packet cannot be encoded", p);
  if (n != enc.size()) Fail("Encode return value != bytes appended", p);
  if (n != EncodedSize(p, ev)) Fail("EncodedSize != Encode", p);

  DecodeOptions opts;
  opts.version = ev;
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(enc.data()), enc.size());
  Packet q;
  const DecodeResult r = Decode(bytes, opts, &q);
  if (r.status != DecodeStatus::kOk) Fail("re-encoded packet does not decode", p);
  if (r.consumed != n) Fail("re-encoded packet: consumed != size", p);
  if (!(p == q)) Fail("round trip changed the packet", p);

  // Encoding is canonical: the second encoding is byte-identical.
  std::string enc2;
  Encode(q, ev, &enc2);
  if (enc2 != enc) Fail("second encoding differs", p);

  // A strict prefix is never a packet.
  for (size_t cut : {size_t{0}, size_t{1}, n / 2, n - 1}) {
    if (cut >= n) continue;
    Packet tmp;
    const DecodeResult pr = Decode(bytes.first(cut), opts, &tmp);
    if (pr.status != DecodeStatus::kNeedMore || pr.consumed != 0)
      Fail("prefix of a packet is not need-more", p);
  }
}

void DecodeStream(std::span<const uint8_t> in, Version v, uint32_t max_packet_size) {
  DecodeOptions opts;
  opts.version = v;
  opts.max_packet_size = max_packet_size;
  Packet p;
  while (!in.empty()) {
    const DecodeResult r = Decode(in, opts, &p);
    if (r.status != DecodeStatus::kOk) {
      if (r.consumed != 0) Fail("consumed bytes without a packet", p);
      if (r.status == DecodeStatus::kError && r.reason < 0x80) Fail("error without a failure reason", p);
      if (r.detail == nullptr) Fail("null detail", p);
      return;
    }
    if (r.consumed == 0 || r.consumed > in.size()) Fail("consumed out of range", p);
    if (r.consumed > max_packet_size) Fail("packet larger than the maximum decoded", p);
    CheckStrings(p);
    RoundTrip(p, v);
    in = in.subspan(r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  for (Version v : {Version::kV311, Version::kV5}) {
    DecodeStream(in, v, kMaxRemainingLength + 5);
    DecodeStream(in, v, 64);
  }
  return 0;
}
