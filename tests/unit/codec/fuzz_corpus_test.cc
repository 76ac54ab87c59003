// The seed corpus of the MQTT decoder fuzzer (tests/fuzz/corpus/mqtt): every seed must decode, and the
// seeds are written by the skipped test case below, so the corpus can be regenerated from the tree:
//   ./codec_tests --test-case='write MQTT fuzz seed corpus' --no-skip
// File names start with the protocol version the stream is meant for (v311_ / v5_).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/unit/codec/test_util.h"

namespace parley::mqtt {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

std::filesystem::path CorpusDir() {
  return std::filesystem::path(PARLEY_SOURCE_DIR) / "tests" / "fuzz" / "corpus" /
         "mqtt";
}

struct Seed {
  std::string name;
  Version version;
  std::vector<Packet> packets;
};

std::vector<Seed> Seeds() {
  const Version v3 = Version::kV311;
  const Version v5 = Version::kV5;
  Connect c3;
  c3.client_id = "mosq-pub";
  c3.keep_alive = 60;
  Connect c3full = c3;
  c3full.clean_start = false;
  c3full.will = Will{"status/c", "offline", 1, true, {}};
  c3full.username = "user";
  c3full.password = "secret";
  Connect c5 = c3full;
  c5.version = v5;
  c5.props = ConnectProps();
  c5.will->props = WillProps();

  Publish p0{"sensors/room1/temp", "21.5", 0, false, false, 0, {}};
  Publish p1{"a/b", "hello", 1, true, false, 1, {}};
  Publish p2{"a/b/c", std::string("\x00\x01\x02", 3), 2, false, true, 65535, {}};
  Publish p5{"chat/room/42", "{\"text\":\"hi\"}", 1, false, false, 7, PublishProps()};
  Publish alias{"", "x", 0, false, false, 0, {}};
  alias.props.topic_alias = 3;

  Subscribe s3{1, {{"a/+/c", {1}}, {"#", {0}}, {"x/y", {2}}}, {}};
  Subscribe s5{2, {{"$share/g/a/#", {1, false, true, 1}}, {"b/+", {2, true, false, 2}}}, SubscribeProps()};
  Unsubscribe u3{3, {"a/+/c", "#"}, {}};
  Unsubscribe u5{4, {"b/+"}, UnsubscribeProps()};
  Suback sa3{1, {0x01, 0x00, 0x80}, {}};
  Suback sa5{2, {0x01, 0x8F, 0xA2}, ReasonProps()};

  return {
      {"v311_connect", v3, {c3}},
      {"v311_connect_will_user_pass", v3, {c3full}},
      {"v311_connack", v3, {Connack{true, 0, {}}}},
      {"v311_connack_refused", v3, {Connack{false, rc311::kNotAuthorized, {}}}},
      {"v311_publish_qos0", v3, {p0}},
      {"v311_publish_qos1_retain", v3, {p1}},
      {"v311_publish_qos2_dup", v3, {p2}},
      {"v311_acks",
       v3,
       {Ack{PacketType::kPuback, 1, 0, {}}, Ack{PacketType::kPubrec, 2, 0, {}},
        Ack{PacketType::kPubrel, 2, 0, {}}, Ack{PacketType::kPubcomp, 2, 0, {}}}},
      {"v311_subscribe", v3, {s3}},
      {"v311_suback", v3, {sa3}},
      {"v311_unsubscribe", v3, {u3}},
      {"v311_unsuback", v3, {Unsuback{3, {}, {}}}},
      {"v311_ping", v3, {Pingreq{}, Pingresp{}}},
      {"v311_disconnect", v3, {Disconnect{}}},
      {"v311_session", v3, {c3, s3, p1, Ack{PacketType::kPuback, 1, 0, {}}, Pingreq{}, u3, Disconnect{}}},
      {"v5_connect", v5, {c5}},
      {"v5_connack", v5, {Connack{true, 0, ConnackProps()}}},
      {"v5_connack_refused", v5, {Connack{false, rc::kBadUserNameOrPassword, {}}}},
      {"v5_publish_props", v5, {p5}},
      {"v5_publish_alias", v5, {alias}},
      {"v5_acks",
       v5,
       {Ack{PacketType::kPuback, 1, 0, {}}, Ack{PacketType::kPuback, 2, rc::kNoMatchingSubscribers, {}},
        Ack{PacketType::kPubrec, 3, rc::kQuotaExceeded, ReasonProps()},
        Ack{PacketType::kPubrel, 3, rc::kPacketIdentifierNotFound, {}},
        Ack{PacketType::kPubcomp, 3, 0, ReasonProps()}}},
      {"v5_subscribe", v5, {s5}},
      {"v5_suback", v5, {sa5}},
      {"v5_unsubscribe", v5, {u5}},
      {"v5_unsuback", v5, {Unsuback{4, {0x00, 0x11}, ReasonProps()}}},
      {"v5_disconnect", v5, {Disconnect{}, Disconnect{rc::kDisconnectWithWill, {}}}},
      {"v5_disconnect_props", v5, {Disconnect{rc::kServerMoved, DisconnectProps()}}},
      {"v5_auth",
       v5,
       {Auth{}, Auth{rc::kContinueAuthentication, AuthProps()}, Auth{rc::kReAuthenticate, {}}}},
      {"v5_session",
       v5,
       {c5, s5, p5, alias, Ack{PacketType::kPuback, 7, 0, {}}, Pingreq{}, u5, Disconnect{}}},
  };
}

Bytes Stream(const Seed& s) {
  Bytes out;
  for (const Packet& p : s.packets) out = Cat(out, EncodeBytes(p, s.version));
  return out;
}

TEST_CASE("write MQTT fuzz seed corpus" * doctest::skip()) {
  const std::filesystem::path dir = CorpusDir();
  std::filesystem::create_directories(dir);
  for (const Seed& s : Seeds()) {
    const Bytes b = Stream(s);
    std::ofstream f(dir / (s.name + ".bin"), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(f.good());
  }
  MESSAGE("wrote " << Seeds().size() << " seeds to " << dir.string());
}

TEST_CASE("every seed in the MQTT fuzz corpus decodes completely") {
  const std::filesystem::path dir = CorpusDir();
  if (!std::filesystem::is_directory(dir)) {
    MESSAGE("corpus not found at " << dir.string() << "; skipped");
    return;
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    CAPTURE(name);
    const Version v = name.rfind("v5_", 0) == 0 ? Version::kV5 : Version::kV311;
    std::ifstream f(entry.path(), std::ios::binary);
    const Bytes b{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    std::span<const uint8_t> in(b.data(), b.size());
    int packets = 0;
    while (!in.empty()) {
      Packet p;
      const DecodeResult r = Decode(in, Opts(v), &p);
      REQUIRE(r.status == DecodeStatus::kOk);
      in = in.subspan(r.consumed);
      ++packets;
    }
    CHECK(packets > 0);
    ++files;
  }
  CHECK(files >= 20);
}

TEST_CASE("the seed list itself round-trips") {
  for (const Seed& s : Seeds()) {
    CAPTURE(s.name);
    for (const Packet& p : s.packets) RoundTrip(p, s.version);
  }
}

}  // namespace
}  // namespace parley::mqtt
