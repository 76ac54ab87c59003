// libFuzzer target for WebSocketFilter (broker/net/websocket.h): the handshake (and the HTTP parser under
// it) and the frame reader.
//
// Byte 0 of the input is the settings: bit 0 clear, the filter first completes a fixed valid handshake and
// the rest of the input is client frames; bit 0 set, the rest is the raw client stream, request first.
// Bit 1 turns on an origin allow-list ("https://app.example"). Bits 2-7 are a piece size (0: the whole
// input in one OnInput). The message size limit is 1024 bytes. The test sink writes back a little of
// every Up() from inside it, as an MQTT reply would. Everything the filter sends down is checked: an HTTP
// reply first, then only well-formed server frames; after an error, nothing more. Broken contracts abort.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "broker/net/websocket.h"

namespace {

using parley::Status;
using parley::net::Filter;
using parley::net::WebSocketFilter;
using parley::net::WebSocketOptions;

constexpr std::string_view kHandshake =
    "GET /mqtt HTTP/1.1\r\nHost: localhost:8083\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\nOrigin: https://app.example\r\n\r\n";

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "websocket_fuzz: %s\n", what);
  std::abort();
}

class FuzzSink : public Filter::Sink {
 public:
  WebSocketFilter* filter = nullptr;
  size_t up_bytes = 0;
  std::string down;

  void Up(std::span<const uint8_t> b) override {
    if (!filter->ready()) Fail("Up() while not ready");
    if (b.empty()) Fail("empty Up()");
    up_bytes += b.size();
    const Status st =
        filter->Write(std::string_view(reinterpret_cast<const char*>(b.data()), b.size() < 8 ? b.size() : 8));
    if (!st.ok()) Fail("Write() from Up() refused while open");
  }
  void Down(std::string_view b) override {
    if (b.empty()) Fail("empty Down()");
    down.append(b);
  }
};

// Checks `s` is a sequence of whole server frames: unmasked, final, no reserved bits, a known opcode,
// shortest length encoding, control payloads of at most 125 bytes. Returns the last frame's opcode (or -1)
// and its close code in *code.
int CheckServerFrames(std::string_view s, uint16_t* code) {
  int last = -1;
  while (!s.empty()) {
    if (s.size() < 2) Fail("truncated server frame header");
    const uint8_t b0 = static_cast<uint8_t>(s[0]), b1 = static_cast<uint8_t>(s[1]);
    if ((b0 & 0xF0) != 0x80) Fail("server frame not final or with reserved bits");
    const uint8_t op = b0 & 0x0F;
    if (op != 0x2 && op != 0x8 && op != 0xA) Fail("unexpected server opcode");
    if (b1 & 0x80) Fail("masked server frame");
    uint64_t n = b1 & 0x7F;
    size_t off = 2;
    if (n == 126) {
      if (s.size() < 4) Fail("truncated server frame length");
      n = (uint64_t{static_cast<uint8_t>(s[2])} << 8) | static_cast<uint8_t>(s[3]);
      if (n < 126) Fail("non-minimal server length");
      off = 4;
    } else if (n == 127) {
      if (s.size() < 10) Fail("truncated server frame length");
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<uint8_t>(s[2 + i]);
      if (n < 65536) Fail("non-minimal server length");
      off = 10;
    }
    if (op != 0x2 && n > 125) Fail("server control frame over 125 bytes");
    if (s.size() - off < n) Fail("truncated server frame payload");
    if (op == 0x8)
      *code =
          n >= 2
              ? static_cast<uint16_t>((static_cast<uint8_t>(s[off]) << 8) | static_cast<uint8_t>(s[off + 1]))
              : 0;
    last = op;
    s.remove_prefix(off + n);
  }
  return last;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t settings = data[0];
  const bool raw = settings & 1;
  const size_t piece = settings >> 2;
  const std::span<const uint8_t> in(data + 1, size - 1);

  WebSocketOptions options;
  options.max_message_size = 1024;
  if (settings & 2) options.allowed_origins = {"https://app.example"};
  FuzzSink sink;
  WebSocketFilter filter(options);
  sink.filter = &filter;
  filter.set_sink(&sink);

  Status st;
  if (!raw) {
    st = filter.OnInput(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kHandshake.data()), kHandshake.size()));
    if (!st.ok() || !filter.ready()) Fail("fixed handshake refused");
  }
  size_t fed = 0;
  for (size_t off = 0; st.ok() && off < in.size(); off += (piece == 0 ? in.size() : piece)) {
    const std::span<const uint8_t> chunk =
        in.subspan(off, std::min(piece == 0 ? in.size() : piece, in.size() - off));
    fed += chunk.size();
    const bool was_ready = filter.ready();
    st = filter.OnInput(chunk);
    if (sink.up_bytes > fed) Fail("more bytes passed up than came in");
    if (!st.ok() && filter.ready()) Fail("ready() after an error");
    if (was_ready && !st.ok() && sink.down.empty()) Fail("error after the handshake without a close frame");
  }

  // What went down: an HTTP reply, then (after a 101) frames only.
  std::string_view down = sink.down;
  if (!down.empty()) {
    if (down.substr(0, 9) != "HTTP/1.1 ") Fail("reply is not HTTP/1.1");
    const size_t end = down.find("\r\n\r\n");
    if (end == std::string_view::npos) Fail("reply head not terminated");
    const bool accepted = down.substr(9, 4) == "101 ";
    if (accepted != (filter.ready() || filter.close_code_sent() != 0)) Fail("101 does not match the state");
    down.remove_prefix(end + 4);
    if (!accepted) {
      if (st.ok()) Fail("refusal without an error");
      if (filter.subprotocol().size() != 0) Fail("subprotocol set on a refusal");
      const std::string_view head = std::string_view(sink.down).substr(0, end + 2);
      if (head.find("\r\nConnection: close\r\n") == std::string_view::npos)
        Fail("refusal without Connection: close");
      const std::string cl = "\r\nContent-Length: " + std::to_string(down.size()) + "\r\n";
      if (head.find(cl) == std::string_view::npos) Fail("refusal body does not match Content-Length");
      down = {};
    } else if (filter.subprotocol() != "mqtt" && filter.subprotocol() != "mqttv3.1" &&
               !filter.subprotocol().empty()) {
      Fail("unexpected subprotocol");
    }
  } else if (!st.ok()) {
    Fail("error without a reply");
  }
  uint16_t code = 0;
  const int last = CheckServerFrames(down, &code);
  if (!st.ok() && filter.close_code_sent() != 0) {
    if (last != 0x8) Fail("error not ended by a close frame");
    if (code != filter.close_code_sent() && !(code == 0 && filter.close_code_sent() == 1005))
      Fail("close code mismatch");
    const bool by_peer = st.message().rfind(WebSocketFilter::kClosedByPeer, 0) == 0;
    if (by_peer != filter.closed_by_peer()) Fail("closed-by-peer status mismatch");
  }

  // The end of the connection: a write, then a clean close, then nothing more.
  const bool was_ready = filter.ready();
  const size_t before = sink.down.size();
  const Status w = filter.Write("bye");
  if (!st.ok() && w.ok()) Fail("Write() accepted after an error");
  filter.Close();
  filter.Close();
  if (was_ready) {
    const int op = CheckServerFrames(std::string_view(sink.down).substr(before), &code);
    if (op != 0x8 || code != 1000) Fail("Close() did not send close 1000");
  } else if (!st.ok() && sink.down.size() != before) {
    Fail("output after the connection ended");
  }
  return 0;
}
