// WebSocketFilter driven in memory by a test Sink: the handshake (acceptances and every refusal), frames
// whole and split at every boundary, fragmentation, control frames, close codes, Write/Close. Also writes
// and checks the seed corpus of fuzz_websocket (tests/fuzz/corpus/websocket):
//   ./net_tests --test-case='write WebSocket fuzz seed corpus' --no-skip
#include "broker/net/websocket.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace parley::net {
namespace {

using namespace std::string_view_literals;  // NOLINT(google-build-using-namespace): "\x00"sv keeps NULs

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct TestSink : Filter::Sink {
  std::string up;
  std::string down;
  std::function<void()> on_up;  // runs after each Up(), e.g. to write back from inside OnInput()
  void Up(std::span<const uint8_t> b) override {
    up.append(reinterpret_cast<const char*>(b.data()), b.size());
    if (on_up) on_up();
  }
  void Down(std::string_view b) override { down.append(b); }
};

struct Harness {
  TestSink sink;
  WebSocketFilter filter;
  explicit Harness(WebSocketOptions o = {}) : filter(std::move(o)) { filter.set_sink(&sink); }
  Status In(std::string_view s) { return filter.OnInput(Bytes(s)); }
};

// ---- Building requests and frames, reading replies ----------------------------------------------------

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
constexpr std::string_view kLine = "GET /mqtt HTTP/1.1";

using HeaderChange = std::pair<std::string_view, std::optional<std::string_view>>;

// A valid MQTT.js-like upgrade request, with `changes` applied: a header named there is replaced (or
// removed, for nullopt); new names are appended.
std::string Request(std::vector<HeaderChange> changes = {}, std::string_view line = kLine) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Host", "localhost:8083"},      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},       {"Sec-WebSocket-Key", std::string(kRfcKey)},
      {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Protocol", "mqtt"}};
  for (const auto& [name, value] : changes) {
    bool found = false;
    for (auto it = headers.begin(); it != headers.end(); ++it) {
      if (it->first == name) {
        found = true;
        if (value) {
          it->second = std::string(*value);
        } else {
          headers.erase(it);
        }
        break;
      }
    }
    if (!found && value) headers.emplace_back(std::string(name), std::string(*value));
  }
  std::string s(line);
  s += "\r\n";
  for (const auto& [n, v] : headers) s += n + ": " + v + "\r\n";
  return s + "\r\n";
}

// A client frame: masked unless told otherwise, with a fixed key.
std::string Frame(uint8_t opcode, std::string_view payload, bool fin = true, bool mask = true,
                  uint8_t rsv = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv << 4) | opcode));
  const uint8_t m = mask ? 0x80 : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(m | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  if (mask) f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (mask ? key[i % 4] : 0)));
  }
  return f;
}

std::string Binary(std::string_view p, bool fin = true) {
  return Frame(0x2, p, fin);
}
std::string Continuation(std::string_view p, bool fin = true) {
  return Frame(0x0, p, fin);
}
std::string CloseFrame(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  return Frame(0x8, p + std::string(reason));
}

struct WsFrame {
  bool fin;
  uint8_t opcode;
  std::string payload;
  uint16_t close_code() const {
    return payload.size() < 2 ? 0 : static_cast<uint16_t>((uint8_t(payload[0]) << 8) | uint8_t(payload[1]));
  }
};

// Server frames, which must be unmasked and whole.
std::vector<WsFrame> ParseFrames(std::string_view s) {
  std::vector<WsFrame> out;
  while (!s.empty()) {
    REQUIRE(s.size() >= 2);
    const uint8_t b0 = s[0], b1 = s[1];
    REQUIRE((b1 & 0x80) == 0);  // servers never mask
    REQUIRE((b0 & 0x70) == 0);
    uint64_t n = b1 & 0x7F;
    size_t off = 2;
    if (n == 126) {
      REQUIRE(s.size() >= 4);
      n = (uint64_t(uint8_t(s[2])) << 8) | uint8_t(s[3]);
      CHECK(n >= 126);
      off = 4;
    } else if (n == 127) {
      REQUIRE(s.size() >= 10);
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | uint8_t(s[2 + i]);
      CHECK(n >= 65536);
      off = 10;
    }
    REQUIRE(s.size() - off >= n);
    out.push_back({(b0 & 0x80) != 0, static_cast<uint8_t>(b0 & 0x0F), std::string(s.substr(off, n))});
    s.remove_prefix(off + n);
  }
  return out;
}

std::string_view AfterHead(std::string_view down) {
  const size_t end = down.find("\r\n\r\n");
  REQUIRE(end != std::string_view::npos);
  return down.substr(end + 4);
}

int StatusOf(std::string_view down) {
  REQUIRE(down.substr(0, 9) == "HTTP/1.1 ");
  return std::stoi(std::string(down.substr(9, 3)));
}

bool HasHeaderLine(std::string_view down, std::string_view line) {
  const std::string_view head = down.substr(0, down.find("\r\n\r\n") + 2);
  return head.find("\r\n" + std::string(line) + "\r\n") != std::string_view::npos;
}

std::string ExpectedAccept(std::string_view protocol) {
  std::string s =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      std::string(kRfcAccept) + "\r\n";
  if (!protocol.empty()) s += "Sec-WebSocket-Protocol: " + std::string(protocol) + "\r\n";
  return s + "\r\n";
}

// A harness whose handshake is done.
struct Open : Harness {
  explicit Open(WebSocketOptions o = {}) : Harness(std::move(o)) {
    REQUIRE(In(Request()).ok());
    REQUIRE(filter.ready());
    sink.down.clear();
  }
};

// ---- Handshake ----------------------------------------------------------------------------------------

TEST_CASE("WebSocket: accept key is the RFC 6455 example") {
  CHECK(WebSocketAcceptKey(kRfcKey) == kRfcAccept);
}

TEST_CASE("WebSocket: handshake accepted with each MQTT subprotocol, and without one") {
  struct Case {
    std::optional<std::string_view> offer;
    std::string_view chosen;
  };
  for (const Case& c :
       {Case{"mqtt", "mqtt"}, Case{"mqttv3.1", "mqttv3.1"}, Case{"wamp, mqttv3.1, mqtt", "mqttv3.1"},
        Case{"mqtt,mqttv3.1", "mqtt"}, Case{std::nullopt, ""}}) {
    CAPTURE(c.chosen);
    Harness h;
    CHECK_FALSE(h.filter.ready());
    const Status st = h.In(Request({{"Sec-WebSocket-Protocol", c.offer}}));
    CHECK(st.ok());
    CHECK(h.filter.ready());
    CHECK(h.sink.down == ExpectedAccept(c.chosen));
    CHECK(h.filter.subprotocol() == c.chosen);
    CHECK(h.sink.up.empty());
  }
  // Offers spread over repeated fields are read in order.
  Harness h;
  std::string req = Request({{"Sec-WebSocket-Protocol", "chat"}});
  req.insert(req.size() - 2, "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n");
  CHECK(h.In(req).ok());
  CHECK(h.filter.subprotocol() == "mqttv3.1");
}

TEST_CASE("WebSocket: lenient where RFC 6455 allows it") {
  Harness h;
  CHECK(h.In(Request({{"Upgrade", "WebSocket"},
                      {"Connection", "keep-alive, upgrade"},
                      {"Origin", "https://anything.example"},
                      {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"},
                      {"X-Forwarded-For", "203.0.113.7"}},
                     "GET /mqtt?token=abc HTTP/1.1"))
            .ok());
  CHECK(h.filter.ready());
  // No extension is ever negotiated.
  CHECK(h.sink.down.find("Extensions") == std::string::npos);
  CHECK(h.filter.request_target() == "/mqtt?token=abc");
  CHECK(h.filter.forwarded_for() == "203.0.113.7");
}

TEST_CASE("WebSocket: X-Forwarded-For fields are joined, accessors empty when absent") {
  Harness h;
  std::string req = Request();
  req.insert(req.size() - 2, "X-Forwarded-For: 203.0.113.7\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\n");
  CHECK(h.In(req).ok());
  CHECK(h.filter.forwarded_for() == "203.0.113.7, 10.0.0.1, 10.0.0.2");
  Harness g;
  CHECK(g.In(Request()).ok());
  CHECK(g.filter.forwarded_for().empty());
}

struct Refusal {
  std::string name;
  std::string request;
  int status;
  WebSocketOptions options = {};
};

std::vector<Refusal> Refusals() {
  WebSocketOptions origins;
  origins.allowed_origins = {"https://app.example", "http://localhost:3000"};
  WebSocketOptions small;
  small.max_request_head = 256;
  std::string two_keys = Request();
  two_keys.insert(two_keys.size() - 2, "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n");
  std::string two_hosts = Request();
  two_hosts.insert(two_hosts.size() - 2, "Host: other\r\n");
  return {
      {"POST", Request({}, "POST /mqtt HTTP/1.1"), 400},
      {"HTTP/1.0", Request({}, "GET /mqtt HTTP/1.0"), 400},
      {"HTTP/2.0", Request({}, "GET /mqtt HTTP/2.0"), 505},
      {"no Host", Request({{"Host", std::nullopt}}), 400},
      {"two Hosts", two_hosts, 400},
      {"no Upgrade", Request({{"Upgrade", std::nullopt}}), 400},
      {"Upgrade: h2c", Request({{"Upgrade", "h2c"}}), 400},
      {"no Connection", Request({{"Connection", std::nullopt}}), 400},
      {"Connection: keep-alive", Request({{"Connection", "keep-alive"}}), 400},
      {"version 8", Request({{"Sec-WebSocket-Version", "8"}}), 426},
      {"no version", Request({{"Sec-WebSocket-Version", std::nullopt}}), 426},
      {"no key", Request({{"Sec-WebSocket-Key", std::nullopt}}), 400},
      {"short key", Request({{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ="}}), 400},
      {"key of 17 bytes", Request({{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZRE="}}), 400},
      {"key with a bad character", Request({{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q=="}}), 400},
      {"two keys", two_keys, 400},
      {"wrong path", Request({}, "GET /ws HTTP/1.1"), 404},
      {"path prefix", Request({}, "GET /mqtt/x HTTP/1.1"), 404},
      {"origin not listed", Request({{"Origin", "https://evil.example"}}), 403, origins},
      {"origin missing", Request(), 403, origins},
      {"origin with another port", Request({{"Origin", "http://localhost:3001"}}), 403, origins},
      {"only other subprotocols", Request({{"Sec-WebSocket-Protocol", "wamp, graphql-ws"}}), 400},
      {"subprotocol case", Request({{"Sec-WebSocket-Protocol", "MQTT"}}), 400},
      {"empty subprotocol", Request({{"Sec-WebSocket-Protocol", ""}}), 400},
      {"body", Request({{"Content-Length", "2"}}) + "hi", 400},
      {"chunked body", Request({{"Transfer-Encoding", "chunked"}}) + "0\r\n\r\n", 400},
      {"head too large", Request({{"X-Pad", std::string(300, 'p')}}), 431, small},
      {"target too long", Request({}, "GET /mqtt?" + std::string(300, 'q') + " HTTP/1.1"), 414, small},
      {"malformed", "GET /mqtt HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
      {"not HTTP", std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14), 400},
  };
}

TEST_CASE("WebSocket: every refusal is a complete HTTP reply, then an error") {
  for (const Refusal& r : Refusals()) {
    CAPTURE(r.name);
    Harness h(r.options);
    CHECK(h.filter.Write("early").ok());  // kept, then dropped with the refusal
    const Status st = h.In(r.request + std::string(Binary("frame")));
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find(std::to_string(r.status)) != std::string::npos);
    CHECK_FALSE(h.filter.ready());
    CHECK(h.sink.up.empty());
    REQUIRE(StatusOf(h.sink.down) == r.status);
    CHECK(HasHeaderLine(h.sink.down, "Connection: close"));
    CHECK(HasHeaderLine(h.sink.down, "Content-Type: text/plain; charset=utf-8"));
    const std::string_view body = AfterHead(h.sink.down);
    CHECK(HasHeaderLine(h.sink.down, "Content-Length: " + std::to_string(body.size())));
    CHECK(body.size() > 1);
    CHECK(HasHeaderLine(h.sink.down, "Sec-WebSocket-Version: 13") == (r.status == 426));
    // Nothing more happens afterwards.
    h.sink.down.clear();
    CHECK_FALSE(h.In(Request()).ok());
    CHECK_FALSE(h.filter.Write("x").ok());
    h.filter.Close();
    CHECK(h.sink.down.empty());
  }
}

TEST_CASE("WebSocket: clear reasons for the common refusals") {
  Harness h;
  CHECK_FALSE(h.In(Request({{"Sec-WebSocket-Protocol", "wamp"}})).ok());
  CHECK(AfterHead(h.sink.down) == "no supported subprotocol offered (mqtt or mqttv3.1)\n");
  Harness g;
  CHECK_FALSE(g.In("GET /mqtt HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  CHECK(AfterHead(g.sink.down) == "not a WebSocket upgrade (Upgrade: websocket)\n");
}

TEST_CASE("WebSocket: allowed origins match case-insensitively") {
  WebSocketOptions o;
  o.allowed_origins = {"https://App.Example", "http://localhost:3000"};
  for (std::string_view origin : {"https://app.example", "HTTPS://APP.EXAMPLE", "http://localhost:3000"}) {
    CAPTURE(origin);
    Harness h(o);
    CHECK(h.In(Request({{"Origin", origin}})).ok());
    CHECK(h.filter.ready());
  }
}

TEST_CASE("WebSocket: custom path") {
  WebSocketOptions o;
  o.path = "/";
  Harness h(o);
  CHECK(h.In(Request({}, "GET / HTTP/1.1")).ok());
  Harness g(o);
  CHECK_FALSE(g.In(Request()).ok());
  CHECK(StatusOf(g.sink.down) == 404);
}

TEST_CASE("WebSocket: request head split at every byte boundary, first frames in the same read") {
  const std::string req = Request();
  const std::string frames = Binary("\x10\x0c\x00\x04MQTT"sv) + Binary("\x04\x02\x00\x3c\x00\x00"sv);
  const std::string input = req + frames;
  for (size_t split = 0; split <= input.size(); ++split) {
    CAPTURE(split);
    Harness h;
    REQUIRE(h.In(std::string_view(input).substr(0, split)).ok());
    CHECK(h.filter.ready() == (split >= req.size()));
    if (split < req.size()) CHECK(h.sink.down.empty());
    REQUIRE(h.In(std::string_view(input).substr(split)).ok());
    CHECK(h.sink.down == ExpectedAccept("mqtt"));
    CHECK(h.sink.up == std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14));
  }
}

// ---- Frames -------------------------------------------------------------------------------------------

TEST_CASE("WebSocket: frames in one buffer and split at every boundary") {
  const std::string big(300, 'B');  // 16-bit length
  const std::string input = Binary("ab") + Binary("") + Frame(0x9, "ping!") + Binary(big) +
                            Binary("frag", false) + Frame(0xA, "pong") + Continuation("ment", false) +
                            Continuation("ed");
  const std::string expected_up = "ab" + big + "fragmented";
  for (size_t split = 0; split <= input.size(); ++split) {
    CAPTURE(split);
    Open h;
    REQUIRE(h.In(std::string_view(input).substr(0, split)).ok());
    REQUIRE(h.In(std::string_view(input).substr(split)).ok());
    CHECK(h.sink.up == expected_up);
    const std::vector<WsFrame> out = ParseFrames(h.sink.down);
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == 0xA);
    CHECK(out[0].payload == "ping!");
    CHECK(h.filter.ready());
  }
  // And one byte at a time.
  Open h;
  for (char c : input) REQUIRE(h.In(std::string_view(&c, 1)).ok());
  CHECK(h.sink.up == expected_up);
}

TEST_CASE("WebSocket: large frames stream up in pieces (64-bit length)") {
  std::string payload(200'000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  const std::string input = Binary(payload) + Binary("tail");
  for (size_t piece : {size_t{1000}, size_t{4096}, size_t{65536}, input.size()}) {
    CAPTURE(piece);
    Open h;
    size_t ups = 0;
    h.sink.on_up = [&] { ++ups; };
    for (size_t off = 0; off < input.size(); off += piece) {
      REQUIRE(h.In(std::string_view(input).substr(off, piece)).ok());
    }
    CHECK(h.sink.up == payload + "tail");
    CHECK(ups > 1);  // never buffered whole
  }
}

TEST_CASE("WebSocket: ping is answered with pong, pong is ignored") {
  Open h;
  REQUIRE(h.In(Frame(0x9, "")).ok());
  REQUIRE(h.In(Frame(0x9, std::string(125, 'p'))).ok());
  REQUIRE(h.In(Frame(0xA, "unsolicited")).ok());
  const std::vector<WsFrame> out = ParseFrames(h.sink.down);
  REQUIRE(out.size() == 2);
  CHECK(out[0].opcode == 0xA);
  CHECK(out[0].fin);
  CHECK(out[0].payload.empty());
  CHECK(out[1].payload == std::string(125, 'p'));
}

// The connection ends with a close frame carrying `code`, and nothing is passed up after it.
void CheckClosedWith(Harness& h, const Status& st, uint16_t code) {
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find(std::to_string(code)) != std::string::npos);
  const std::vector<WsFrame> out = ParseFrames(h.sink.down);
  REQUIRE_FALSE(out.empty());
  CHECK(out.back().opcode == 0x8);
  CHECK(out.back().close_code() == code);
  CHECK(h.filter.close_code_sent() == code);
  CHECK_FALSE(h.filter.ready());
  // Everything afterwards is refused quietly: no second close frame.
  const size_t down = h.sink.down.size();
  const size_t up = h.sink.up.size();
  CHECK_FALSE(h.In(Binary("more")).ok());
  CHECK_FALSE(h.filter.Write("more").ok());
  h.filter.Close();
  CHECK(h.sink.down.size() == down);
  CHECK(h.sink.up.size() == up);
}

TEST_CASE("WebSocket: a text frame closes with 1003") {
  Open h;
  const Status st = h.In(Frame(0x1, "{\"hello\":1}") + Binary("after"));
  CheckClosedWith(h, st, kWsCloseUnsupportedData);
  CHECK(h.sink.up.empty());
}

TEST_CASE("WebSocket: a message over max_message_size closes with 1009") {
  WebSocketOptions o;
  o.max_message_size = 100;
  {
    Open h(o);
    CHECK(h.In(Binary(std::string(100, 'x'))).ok());  // exactly the limit
    CHECK(h.In(Binary("a", false) + Continuation(std::string(98, 'b'), false) + Continuation("c")).ok());
    CHECK(h.sink.up.size() == 200);
  }
  {
    Open h(o);
    const Status st = h.In(Binary(std::string(101, 'x')));
    CheckClosedWith(h, st, kWsCloseMessageTooBig);
    CHECK(h.sink.up.empty());  // refused on the declared length
  }
  {
    Open h(o);
    const Status st =
        h.In(Binary(std::string(60, 'x'), false) + Frame(0x9, "p") + Continuation(std::string(41, 'y')));
    CheckClosedWith(h, st, kWsCloseMessageTooBig);
    CHECK(h.sink.up == std::string(60, 'x'));
  }
  {
    // A frame declaring 2^62 bytes is refused with its first payload byte (wslay reports a frame when
    // payload arrives), before anything is passed up.
    Open h(o);
    std::string f = "\x82\xFF";
    f += std::string("\x40\x00\x00\x00\x00\x00\x00\x00", 8);
    f += "\x01\x02\x03\x04";
    CHECK(h.In(f).ok());
    f = "z";
    CheckClosedWith(h, h.In(f), kWsCloseMessageTooBig);
  }
}

TEST_CASE("WebSocket: protocol errors close with 1002") {
  struct Case {
    std::string name;
    std::string frames;
  };
  std::string non_minimal = "\x82\xFE";  // 16-bit length 5
  non_minimal += std::string("\x00\x05", 2) + "\x01\x02\x03\x04" + "hello";
  const std::vector<Case> cases = {
      {"unmasked", Frame(0x2, "abc", true, false)},
      {"continuation first", Continuation("abc")},
      {"binary inside a fragmented message", Binary("a", false) + Binary("b")},
      {"text inside a fragmented message", Binary("a", false) + Frame(0x1, "b")},
      {"rsv1", Frame(0x2, "abc", true, true, 4)},
      {"rsv3", Frame(0x2, "abc", true, true, 1)},
      {"opcode 3", Frame(0x3, "abc")},
      {"opcode 11", Frame(0xB, "")},
      {"ping of 126 bytes", Frame(0x9, std::string(126, 'p'))},
      {"fragmented ping", Frame(0x9, "p", false)},
      {"close with 1 byte", Frame(0x8, "x")},
      {"close code 1005", CloseFrame(1005)},
      {"close code 999", CloseFrame(999)},
      {"close code 5000", CloseFrame(5000)},
      {"non-minimal length", non_minimal},
      {"length past 2^63", std::string("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04z", 15)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Open h;
    const Status st = h.In(c.frames);
    CheckClosedWith(h, st, kWsCloseProtocolError);
  }
}

TEST_CASE("WebSocket: a close reason that is not UTF-8 closes with 1007") {
  Open h;
  CheckClosedWith(h, h.In(CloseFrame(1000, "\xC0\xAF")), kWsCloseInvalidPayload);
}

TEST_CASE("WebSocket: close handshake started by the peer") {
  Open h;
  h.filter.Write("queued?");  // sent at once: the handshake is done
  h.sink.down.clear();
  const Status st = h.In(Binary("last") + CloseFrame(1001, "going away") + Binary("ignored"));
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().rfind(WebSocketFilter::kClosedByPeer, 0) == 0);
  CHECK(h.filter.closed_by_peer());
  CHECK(h.filter.close_code_received() == 1001);
  CHECK(h.sink.up == "last");
  const std::vector<WsFrame> out = ParseFrames(h.sink.down);
  REQUIRE(out.size() == 1);
  CHECK(out[0].opcode == 0x8);
  CHECK(out[0].payload == std::string("\x03\xE9", 2));  // the code echoed, no reason
  // A close from us afterwards is not sent twice.
  h.filter.Close();
  CHECK(ParseFrames(h.sink.down).size() == 1);

  Open g;
  const Status st2 = g.In(Frame(0x8, ""));
  REQUIRE_FALSE(st2.ok());
  CHECK(st2.message().rfind(WebSocketFilter::kClosedByPeer, 0) == 0);
  CHECK(g.filter.close_code_received() == kWsCloseNoStatus);
  const std::vector<WsFrame> out2 = ParseFrames(g.sink.down);
  REQUIRE(out2.size() == 1);
  CHECK(out2[0].payload.empty());
}

// ---- Write and Close ----------------------------------------------------------------------------------

TEST_CASE("WebSocket: Write before the handshake is sent after the 101, in order") {
  Harness h;
  CHECK(h.filter.Write("\x20\x02\x00\x00"sv).ok());  // CONNACK, say
  CHECK(h.filter.Write("second").ok());
  CHECK(h.In(std::string_view(Request()).substr(0, 10)).ok());
  CHECK(h.sink.down.empty());
  CHECK(h.In(std::string_view(Request()).substr(10)).ok());
  REQUIRE(h.sink.down.rfind(ExpectedAccept("mqtt"), 0) == 0);
  const std::vector<WsFrame> out = ParseFrames(AfterHead(h.sink.down));
  REQUIRE(out.size() == 2);
  CHECK(out[0].opcode == 0x2);
  CHECK(out[0].fin);
  CHECK(out[0].payload == std::string("\x20\x02\x00\x00", 4));
  CHECK(out[1].payload == "second");
}

TEST_CASE("WebSocket: Write after the handshake: one binary frame per call, exact bytes") {
  Open h;
  CHECK(h.filter.Write("abc").ok());
  CHECK(h.sink.down ==
        "\x82\x03"
        "abc");
  h.sink.down.clear();
  CHECK(h.filter.Write("").ok());
  CHECK(h.sink.down.empty());
  for (size_t n : {size_t{125}, size_t{126}, size_t{65535}, size_t{65536}, size_t{300'000}}) {
    CAPTURE(n);
    h.sink.down.clear();
    CHECK(h.filter.Write(std::string(n, 'w')).ok());
    const std::vector<WsFrame> out = ParseFrames(h.sink.down);
    REQUIRE(out.size() == 1);
    CHECK(out[0].payload.size() == n);
  }
}

TEST_CASE("WebSocket: writes from inside Up() (an MQTT reply) and Close() from inside Up()") {
  Open h;
  h.sink.on_up = [&] { CHECK(h.filter.Write("echo").ok()); };
  CHECK(h.In(Binary("a") + Frame(0x9, "p") + Binary("b")).ok());
  std::vector<WsFrame> out = ParseFrames(h.sink.down);
  REQUIRE(out.size() == 3);
  CHECK(out[0].payload == "echo");
  CHECK(out[1].opcode == 0xA);
  CHECK(out[2].payload == "echo");

  Open g;
  g.sink.on_up = [&] { g.filter.Close(); };
  CHECK(g.In(Binary("a") + Binary("b")).ok());
  CHECK(g.sink.up == "a");  // nothing passed up once closed
  out = ParseFrames(g.sink.down);
  REQUIRE(out.size() == 1);
  CHECK(out[0].close_code() == kWsCloseNormal);
}

TEST_CASE("WebSocket: Close() sends close 1000 once, and nothing before the handshake") {
  Open h;
  h.filter.Close();
  h.filter.Close();
  const std::vector<WsFrame> out = ParseFrames(h.sink.down);
  REQUIRE(out.size() == 1);
  CHECK(out[0].opcode == 0x8);
  CHECK(out[0].close_code() == kWsCloseNormal);
  CHECK(h.filter.close_code_sent() == kWsCloseNormal);
  CHECK_FALSE(h.filter.ready());
  CHECK_FALSE(h.filter.Write("x").ok());

  Harness g;
  g.filter.Close();
  CHECK(g.sink.down.empty());
  CHECK(g.In(std::string_view(Request()).substr(0, 5)).ok());
  g.filter.Close();
  CHECK(g.sink.down.empty());
}

// ---- Fuzz seed corpus ---------------------------------------------------------------------------------

std::filesystem::path CorpusDir() {
  return std::filesystem::path(PARLEY_SOURCE_DIR) / "tests" / "fuzz" / "corpus" /
         "websocket";
}

// The fuzz target reads byte 0 as its settings (see tests/fuzz/websocket_fuzz.cc): bit 0 set, the input is
// the raw request (then frames); clear, frames after a fixed valid handshake. Bit 1: an origin allow-list
// of "https://app.example". Bits 2-7: piece size (0: whole). The message limit there is 1024 bytes.
struct Seed {
  std::string name;
  uint8_t settings;
  std::string input;
};

constexpr uint8_t kRaw = 1;
constexpr uint8_t kOrigins = 2;
constexpr uint8_t Pieces(uint8_t n) {
  return static_cast<uint8_t>(n << 2);
}
constexpr uint64_t kFuzzMaxMessage = 1024;

std::vector<Seed> Seeds() {
  const std::string connect("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14);
  const std::string publish("\x30\x0a\x00\x03\x61\x2f\x62hello", 12);
  return {
      {"ok_frames_connect", 0, Binary(connect)},
      {"ok_frames_two_packets_one_frame", 0, Binary(connect + publish)},
      {"ok_frames_packet_across_frames", Pieces(3), Binary(connect.substr(0, 5)) + Binary(connect.substr(5))},
      {"ok_frames_fragmented", 0,
       Binary("\x10\x0c", false) + Frame(0x9, "hb") + Continuation(connect.substr(2), false) +
           Continuation("")},
      {"ok_frames_ping_pong", Pieces(1),
       Frame(0x9, "") + Frame(0xA, "x") + Frame(0x9, std::string(125, 'p'))},
      {"ok_frames_16bit_length", Pieces(7), Binary(std::string(1000, 'm'))},
      {"ok_frames_empty_binary", 0, Binary("") + Binary(publish)},
      {"err_frames_close_1000", 0, Binary(publish) + CloseFrame(1000, "bye")},
      {"err_frames_close_empty", 0, Frame(0x8, "")},
      {"err_frames_text", 0, Frame(0x1, "hello")},
      {"err_frames_too_big", 0, Binary(std::string(kFuzzMaxMessage + 1, 'x'))},
      {"err_frames_too_big_fragmented", Pieces(50),
       Binary(std::string(600, 'x'), false) + Continuation(std::string(600, 'y'))},
      {"err_frames_unmasked", 0, Frame(0x2, "abc", true, false)},
      {"err_frames_continuation_first", 0, Continuation("abc")},
      {"err_frames_rsv", 0, Frame(0x2, "abc", true, true, 4)},
      {"err_frames_bad_opcode", 0, Frame(0x5, "abc")},
      {"err_frames_long_ping", 0, Frame(0x9, std::string(126, 'p'))},
      {"err_frames_close_bad_code", 0, CloseFrame(1006)},
      {"err_frames_close_bad_utf8", 0, CloseFrame(1000, "\xFF")},
      {"err_frames_64bit_length", 0,
       std::string("\x82\xFF\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x00\x00\x00\x00\x00", 15)},
      {"ok_raw_mqtt", kRaw, Request() + Binary(connect)},
      {"ok_raw_mqttv31", kRaw | Pieces(5), Request({{"Sec-WebSocket-Protocol", "mqttv3.1"}})},
      {"ok_raw_no_subprotocol", kRaw, Request({{"Sec-WebSocket-Protocol", std::nullopt}}) + Binary(publish)},
      {"ok_raw_origin", kRaw | kOrigins,
       Request({{"Origin", "https://app.example"}, {"X-Forwarded-For", "1.2.3.4"}})},
      {"ok_raw_bytewise", kRaw | Pieces(1), Request() + Binary(connect) + Frame(0x9, "hb")},
      {"err_raw_origin", kRaw | kOrigins, Request({{"Origin", "https://evil.example"}})},
      {"err_raw_version", kRaw, Request({{"Sec-WebSocket-Version", "8"}})},
      {"err_raw_path", kRaw, Request({}, "GET /other HTTP/1.1")},
      {"err_raw_subprotocol", kRaw, Request({{"Sec-WebSocket-Protocol", "wamp"}})},
      {"err_raw_key", kRaw, Request({{"Sec-WebSocket-Key", "short"}})},
      {"err_raw_post", kRaw, Request({}, "POST /mqtt HTTP/1.1")},
      {"err_raw_not_http", kRaw, connect},
      {"err_raw_head_too_large", kRaw, Request({{"X-Pad", std::string(9000, 'p')}})},
  };
}

TEST_CASE("write WebSocket fuzz seed corpus" * doctest::skip()) {
  std::filesystem::create_directories(CorpusDir());
  for (const Seed& s : Seeds()) {
    std::ofstream f(CorpusDir() / s.name, std::ios::binary);
    f.put(static_cast<char>(s.settings));
    f << s.input;
  }
}

// Every seed in the tree is one of Seeds(), and does what its name says: ok_ seeds leave the connection
// open, err_ seeds end it.
TEST_CASE("WebSocket fuzz seed corpus") {
  for (const Seed& s : Seeds()) {
    CAPTURE(s.name);
    std::ifstream f(CorpusDir() / s.name, std::ios::binary);
    REQUIRE(f.good());
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(bytes == std::string(1, static_cast<char>(s.settings)) + s.input);
    WebSocketOptions o;
    o.max_message_size = kFuzzMaxMessage;
    if (s.settings & kOrigins) o.allowed_origins = {"https://app.example"};
    Harness h(o);
    Status st;
    if (!(s.settings & kRaw)) st = h.In(Request());
    const size_t piece = (s.settings >> 2) == 0 ? s.input.size() : (s.settings >> 2);
    for (size_t off = 0; st.ok() && off < s.input.size(); off += piece)
      st = h.In(std::string_view(s.input).substr(off, piece));
    CHECK(st.ok() == (s.name.rfind("ok_", 0) == 0));
  }
}

}  // namespace
}  // namespace parley::net
