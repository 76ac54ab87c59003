// Micro-benchmarks of the MQTT codec (broker/codec/codec.h, its public header only): Decode and Encode of
// the packets a broker handles most — PUBLISH (QoS 0 and 1, 64-byte and 4 KiB payloads, 3.1.1 and 5.0 with
// a few properties), CONNECT 5.0 with properties and a will, SUBSCRIBE with several filters, PUBACK — and
// the incremental path: a buffer holding many packets, decoded whole or fed in TCP-sized pieces the way
// broker/net and broker/core drive the codec.
//
// Every case reports bytes/s (wire bytes), items/s (packets) and allocs/op (heap allocations per packet).
// Each case first round-trips its packet and fails (SkipWithError) if the decoded packet differs from the
// encoded one, so a broken codec cannot produce a fast figure. Run with scripts/microbench.sh.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/codec/codec.h"
#include "tests/unit/bench_util.h"

namespace parley::mqtt {
namespace {

using testing::AllocsPerOp;

// Deterministic bytes that are not all alike (so nothing is accidentally cheap), printable ASCII so the
// same payload passes the UTF-8 check when a case declares it UTF-8.
std::string Payload(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(' ' + x % 95);
  }
  return s;
}

Version VersionArg(int64_t v) {
  return v == 5 ? Version::kV5 : Version::kV311;
}

// A telemetry-style PUBLISH. On 5.0 it carries what a real client commonly adds: message expiry, content
// type, correlation data and a user property.
Publish MakePublish(uint8_t qos, size_t payload, Version v) {
  Publish p;
  p.topic = "sensors/building-7/floor-3/room-12/temperature";
  p.payload = Payload(payload);
  p.qos = qos;
  p.packet_id = qos ? 4242 : 0;
  if (v == Version::kV5) {
    p.props.message_expiry_interval = 3600;
    p.props.content_type = "application/json";
    p.props.correlation_data = "0123456789abcdef";
    p.props.user_properties.emplace_back("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  return p;
}

Connect MakeConnect() {
  Connect c;
  c.version = Version::kV5;
  c.clean_start = false;
  c.keep_alive = 60;
  c.client_id = "device-000123-7f3a9c";
  c.username = "device-000123";
  c.password = "s3cr3t-t0ken-0123456789abcdef";
  c.props.session_expiry_interval = 3600;
  c.props.receive_maximum = 100;
  c.props.maximum_packet_size = 1 << 20;
  c.props.topic_alias_maximum = 16;
  c.props.request_problem_information = 1;
  c.props.user_properties.emplace_back("app-version", "4.2.1");
  Will w;
  w.topic = "devices/device-000123/status";
  w.payload = "{\"online\":false}";
  w.qos = 1;
  w.retain = true;
  w.props.will_delay_interval = 30;
  w.props.content_type = "application/json";
  c.will = std::move(w);
  return c;
}

// Eight filters of the kinds a device or app subscribes to at once: exact, '+', '#', and a share group.
Subscribe MakeSubscribe(Version v) {
  Subscribe s;
  s.packet_id = 17;
  const char* filters[] = {
      "devices/device-000123/cmd",  "devices/device-000123/config/#", "fleet/+/alerts",
      "fleet/eu-west/broadcast",    "users/u-98765/inbox/+",          "$share/workers/jobs/+/pending",
      "sensors/building-7/+/+/co2", "system/announcements",
  };
  uint8_t qos = 0;
  for (const char* f : filters) {
    Subscription sub;
    sub.filter = f;
    sub.opts.qos = qos;
    qos = static_cast<uint8_t>((qos + 1) % 3);
    if (v == Version::kV5) sub.opts.no_local = true;
    s.subscriptions.push_back(std::move(sub));
  }
  if (v == Version::kV5) s.props.subscription_identifiers.push_back(7);
  return s;
}

Ack MakePuback() {
  Ack a;
  a.type = PacketType::kPuback;
  a.packet_id = 4242;
  return a;
}

std::string EncodeOrEmpty(const Packet& p, Version v) {
  std::string out;
  Encode(p, v, &out);
  return out;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Encodes `want`, decodes it back and checks it is the same packet: the guard every case runs before it
// times anything.
bool RoundTrips(const Packet& want, Version v, std::string* wire, benchmark::State& state) {
  *wire = EncodeOrEmpty(want, v);
  if (wire->empty()) {
    state.SkipWithError("packet did not encode");
    return false;
  }
  DecodeOptions opts;
  opts.version = v;
  Packet got;
  const DecodeResult r = Decode(Bytes(*wire), opts, &got);
  if (r.status != DecodeStatus::kOk || r.consumed != wire->size() || !(got == want)) {
    state.SkipWithError("packet did not round-trip");
    return false;
  }
  return true;
}

void Report(benchmark::State& state, size_t bytes_per_packet, size_t packets_per_iteration = 1) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes_per_packet));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packets_per_iteration));
}

// Decodes one whole packet per iteration into a fresh Packet, or (reuse) into one Packet kept across
// iterations, as Client::OnData does within one read.
void DecodeLoop(benchmark::State& state, const Packet& want, Version v, bool reuse = false) {
  std::string wire;
  if (!RoundTrips(want, v, &wire, state)) return;
  DecodeOptions opts;
  opts.version = v;
  const auto in = Bytes(wire);
  AllocsPerOp allocs;
  Packet kept;
  auto decode = [&](Packet* p) {
    DecodeResult r = Decode(in, opts, p);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(*p);
    return r.status;
  };
  for (auto _ : state) {
    DecodeStatus st;
    if (reuse) {
      st = decode(&kept);
    } else {
      Packet fresh;
      st = decode(&fresh);
    }
    if (st != DecodeStatus::kOk) {
      state.SkipWithError("decode failed");
      break;
    }
  }
  allocs.Report(state);
  Report(state, wire.size());
}

// Encodes one packet per iteration, appending to a buffer that is cleared each time but keeps its capacity,
// as a connection's output buffer does.
void EncodeLoop(benchmark::State& state, const Packet& p, Version v) {
  std::string wire;
  if (!RoundTrips(p, v, &wire, state)) return;
  std::string out;
  out.reserve(wire.size());
  AllocsPerOp allocs;
  for (auto _ : state) {
    out.clear();
    size_t n = Encode(p, v, &out);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  allocs.Report(state);
  Report(state, wire.size());
}

// --- PUBLISH ---

void PublishArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"v", "qos", "payload"})->ArgsProduct({{4, 5}, {0, 1}, {64, 4096}});
}

void DecodePublish(benchmark::State& state) {
  const Version v = VersionArg(state.range(0));
  DecodeLoop(state, MakePublish(static_cast<uint8_t>(state.range(1)), state.range(2), v), v);
}
BENCHMARK(DecodePublish)->Apply(PublishArgs);

void EncodePublishPacket(benchmark::State& state) {
  const Version v = VersionArg(state.range(0));
  EncodeLoop(state, MakePublish(static_cast<uint8_t>(state.range(1)), state.range(2), v), v);
}
BENCHMARK(EncodePublishPacket)->Apply(PublishArgs);

// The broker's fan-out path: one stored message written for one receiver through PublishOut (views, the
// receiver's packet id, QoS and subscription identifier), no Packet involved.
void EncodePublishOut(benchmark::State& state) {
  const Version v = VersionArg(state.range(0));
  const Publish stored = MakePublish(static_cast<uint8_t>(state.range(1)), state.range(2), v);
  const uint32_t sub_ids[] = {12};
  PublishOut o;
  o.topic = stored.topic;
  o.payload = stored.payload;
  o.qos = stored.qos;
  o.packet_id = stored.packet_id;
  o.props = &stored.props;
  o.message_expiry_interval = stored.props.message_expiry_interval;
  if (v == Version::kV5) o.subscription_ids = sub_ids;
  const size_t size = PublishSize(o, v);
  if (size == 0) {
    state.SkipWithError("PublishSize failed");
    return;
  }
  std::string out;
  out.reserve(size);
  AllocsPerOp allocs;
  for (auto _ : state) {
    out.clear();
    size_t n = EncodePublish(o, v, &out);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  allocs.Report(state);
  Report(state, size);
}
BENCHMARK(EncodePublishOut)->Apply(PublishArgs);

// A 5.0 PUBLISH whose payload is declared UTF-8 (Payload Format Indicator 1): the decoder then validates
// all of it (spec 3.3.2.3.2). Compare with DecodePublish/v:5/qos:1/payload:4096.
void DecodePublishUtf8Payload(benchmark::State& state) {
  Publish p = MakePublish(1, state.range(0), Version::kV5);
  p.props.payload_format_indicator = 1;
  DecodeLoop(state, p, Version::kV5);
}
BENCHMARK(DecodePublishUtf8Payload)->ArgName("payload")->Arg(4096);

// --- CONNECT, SUBSCRIBE, PUBACK ---

void DecodeConnectV5(benchmark::State& state) {
  DecodeLoop(state, MakeConnect(), Version::kV5);
}
BENCHMARK(DecodeConnectV5);

void EncodeConnectV5(benchmark::State& state) {
  EncodeLoop(state, MakeConnect(), Version::kV5);
}
BENCHMARK(EncodeConnectV5);

void DecodeSubscribe(benchmark::State& state) {
  const Version v = VersionArg(state.range(0));
  DecodeLoop(state, MakeSubscribe(v), v);
}
BENCHMARK(DecodeSubscribe)->ArgName("v")->Arg(4)->Arg(5);

void EncodeSubscribe(benchmark::State& state) {
  const Version v = VersionArg(state.range(0));
  EncodeLoop(state, MakeSubscribe(v), v);
}
BENCHMARK(EncodeSubscribe)->ArgName("v")->Arg(4)->Arg(5);

void DecodePuback(benchmark::State& state) {
  DecodeLoop(state, MakePuback(), VersionArg(state.range(0)));
}
BENCHMARK(DecodePuback)->ArgName("v")->Arg(4)->Arg(5);

// The same into a reused Packet: the difference is what constructing and destroying a Packet costs.
void DecodePubackReusedPacket(benchmark::State& state) {
  DecodeLoop(state, MakePuback(), VersionArg(state.range(0)), /*reuse=*/true);
}
BENCHMARK(DecodePubackReusedPacket)->ArgName("v")->Arg(4)->Arg(5);

void EncodePuback(benchmark::State& state) {
  EncodeLoop(state, MakePuback(), VersionArg(state.range(0)));
}
BENCHMARK(EncodePuback)->ArgName("v")->Arg(4)->Arg(5);

// --- the incremental path ---

// What a subscriber that is also a publisher sends: QoS 1 PUBLISHes (5.0, `payload` bytes, the properties
// above) each followed by the PUBACK for a message it received, and a PINGREQ every 100 packets.
struct Stream {
  std::string bytes;
  size_t packets = 0;
};

Stream MakeStream(size_t payload, size_t publishes) {
  Stream s;
  Publish p = MakePublish(1, payload, Version::kV5);
  Ack ack = MakePuback();
  for (size_t i = 0; i < publishes; ++i) {
    p.packet_id = static_cast<uint16_t>(i % 65535 + 1);
    ack.packet_id = p.packet_id;
    Encode(p, Version::kV5, &s.bytes);
    Encode(ack, Version::kV5, &s.bytes);
    s.packets += 2;
    if (i % 50 == 49) {
      Encode(Pingreq{}, Version::kV5, &s.bytes);
      ++s.packets;
    }
  }
  return s;
}

// Decodes every packet of `in` front to back as Client::OnData does: into one Packet per call (per read),
// stopping at kNeedMore. Returns the bytes consumed, or SIZE_MAX on a decode error.
size_t DecodeAll(std::span<const uint8_t> in, const DecodeOptions& opts, size_t* packets) {
  size_t used = 0;
  Packet p;
  for (;;) {
    const DecodeResult r = Decode(in.subspan(used), opts, &p);
    if (r.status == DecodeStatus::kNeedMore) return used;
    if (r.status == DecodeStatus::kError) return SIZE_MAX;
    benchmark::DoNotOptimize(p);
    used += r.consumed;
    ++*packets;
  }
}

// The whole stream in one buffer (as after one big read): items = packets decoded.
void DecodeStreamWhole(benchmark::State& state) {
  const Stream s = MakeStream(state.range(0), 1000);
  DecodeOptions opts;
  opts.version = Version::kV5;
  AllocsPerOp allocs;
  for (auto _ : state) {
    size_t packets = 0;
    const size_t used = DecodeAll(Bytes(s.bytes), opts, &packets);
    if (used != s.bytes.size() || packets != s.packets) {
      state.SkipWithError("stream did not decode whole");
      break;
    }
  }
  allocs.Report(state, s.packets);
  Report(state, s.bytes.size(), s.packets);
}
BENCHMARK(DecodeStreamWhole)->ArgName("payload")->Arg(64)->Arg(4096);

// The same stream arriving in reads of `chunk` bytes (1460: one TCP segment; 65536: the worker's read
// buffer). Packets cut by a read boundary go through a carry-over buffer and are decoded again once
// whole, which is how broker/net's Connection::Consume feeds the codec; so this measures the codec's
// kNeedMore path and the re-decode of a packet's start, plus that copying.
void DecodeStreamChunked(benchmark::State& state) {
  const Stream s = MakeStream(state.range(0), 1000);
  const size_t chunk = static_cast<size_t>(state.range(1));
  DecodeOptions opts;
  opts.version = Version::kV5;
  std::string carry;
  AllocsPerOp allocs;
  for (auto _ : state) {
    size_t packets = 0;
    bool failed = false;
    for (size_t off = 0; off < s.bytes.size() && !failed; off += chunk) {
      const size_t n = std::min(chunk, s.bytes.size() - off);
      const char* data = s.bytes.data() + off;
      if (carry.empty()) {
        const size_t used = DecodeAll(Bytes(std::string_view(data, n)), opts, &packets);
        failed = used == SIZE_MAX;
        if (!failed && used < n) carry.assign(data + used, n - used);
      } else {
        carry.append(data, n);
        const size_t used = DecodeAll(Bytes(carry), opts, &packets);
        failed = used == SIZE_MAX;
        if (!failed) carry.erase(0, used);
      }
    }
    if (failed || packets != s.packets || !carry.empty()) {
      state.SkipWithError("chunked stream did not decode whole");
      break;
    }
  }
  allocs.Report(state, s.packets);
  Report(state, s.bytes.size(), s.packets);
}
BENCHMARK(DecodeStreamChunked)->ArgNames({"payload", "chunk"})->ArgsProduct({{64, 4096}, {1460, 65536}});

}  // namespace
}  // namespace parley::mqtt
