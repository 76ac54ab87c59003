// WebSocketFilter: the server side of RFC 6455 as MQTT over WebSocket needs it (MQTT 5.0 section 6, MQTT
// 3.1.1 section 6): the HTTP upgrade handshake, then binary frames carrying the MQTT byte stream.
//
// Handshake (answered with a complete HTTP response; a refusal ends the connection). Checked in this order:
//   - GET, HTTP/1.1 or later 1.x, exactly one Host header, no request body                  else 400
//   - `Upgrade` holding the token "websocket", `Connection` holding "upgrade"               else 400
//   - `Sec-WebSocket-Version: 13`                            else 426 with Sec-WebSocket-Version: 13
//   - one `Sec-WebSocket-Key`, base64 of 16 bytes                                           else 400
//   - the request path equal to options.path (the query is ignored)                         else 404
//   - an `Origin` in options.allowed_origins, when that list is not empty                   else 403
//   - subprotocol: the first of the client's offers that is "mqtt" or "mqttv3.1" is echoed; a client that
//     offers none is accepted without one; a client that offers only others is refused      400
//   - a head larger than options.max_request_head: 414 (in the request line) or 431; malformed: 400
// Frames (after the 101): binary and continuation frames pass up as their bytes arrive, never buffered
// whole, so a message may be of any size up to max_message_size and memory stays at wslay's 4 KiB input
// buffer plus one control frame. Client frames must be masked and carry no reserved bits (no extension is
// negotiated). Ping is answered with pong; pong is ignored. Errors end the connection after a close frame:
// text frame 1003, message over max_message_size 1009, any protocol error 1002, invalid close payload
// UTF-8 1007. A close frame from the peer is answered with a close frame echoing its code, and OnInput()
// returns a Status whose message starts with kClosedByPeer.
//
// Loop thread only, like every Filter. No libuv, no clock: the connection must put a deadline on the
// handshake (ready()) itself. The sink's Up() may call Write() or Close() on this filter (an MQTT reply, a
// disconnect) but must not destroy it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "broker/net/filter.h"
#include "broker/net/http_request.h"

struct wslay_frame_context;  // <wslay/wslay.h>, kept out of this header.

namespace parley::net {

struct WebSocketOptions {
  std::string path = "/mqtt";  // exact match on the request path, not percent-decoded
  // Origins ("scheme://host[:port]") allowed to connect, compared ASCII case-insensitively. Empty: any
  // Origin, or none, is accepted. Not empty: a request without an Origin is refused too (403).
  std::vector<std::string> allowed_origins;
  // The most bytes one WebSocket message (a frame and its continuations) may carry; the caller sets it from
  // the MQTT maximum packet size. A message may hold several MQTT packets, so allow some headroom.
  uint64_t max_message_size = 268'435'455 + 5;
  size_t max_request_head = 8 * 1024;
};

// RFC 6455 section 1.3: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), via OpenSSL EVP.
std::string WebSocketAcceptKey(std::string_view sec_websocket_key);

// Close status codes (RFC 6455 section 7.4.1) this filter sends.
inline constexpr uint16_t kWsCloseNormal = 1000;
inline constexpr uint16_t kWsCloseProtocolError = 1002;
inline constexpr uint16_t kWsCloseUnsupportedData = 1003;
inline constexpr uint16_t kWsCloseNoStatus = 1005;  // never sent: a peer close without a code
inline constexpr uint16_t kWsCloseInvalidPayload = 1007;
inline constexpr uint16_t kWsCloseMessageTooBig = 1009;

class WebSocketFilter final : public Filter {
 public:
  // Prefix of the Status message OnInput() returns when the peer closed the connection cleanly (a close
  // frame, already answered): the connection may log it as a normal end.
  static constexpr std::string_view kClosedByPeer = "websocket: closed by peer";

  explicit WebSocketFilter(WebSocketOptions options);
  ~WebSocketFilter() override;
  WebSocketFilter(const WebSocketFilter&) = delete;
  WebSocketFilter& operator=(const WebSocketFilter&) = delete;

  // Loop thread only (the Filter contract). Each Write() becomes one unmasked binary frame; before the
  // handshake completes the frames are kept (unbounded: the MQTT layer writes nothing before CONNECT).
  Status OnInput(std::span<const uint8_t> bytes) override;
  Status Write(std::string_view bytes) override;
  void Close() override;
  bool ready() const override { return state_ == State::kOpen; }

  // For the connection's log line. Valid once the handshake is done (empty before and when absent).
  std::string_view subprotocol() const { return subprotocol_; }
  // The request's X-Forwarded-For, as sent (several fields joined by ", "); untrusted: it is whatever the
  // peer (or a proxy in front of us) wrote.
  std::string_view forwarded_for() const { return forwarded_for_; }
  // The request path and query, for the log (the query may carry a client's token: log with care).
  std::string_view request_target() const { return request_target_; }
  // Close codes exchanged, 0 when none. The received code is kWsCloseNoStatus for a close without one.
  uint16_t close_code_sent() const { return close_code_sent_; }
  uint16_t close_code_received() const { return close_code_received_; }
  bool closed_by_peer() const { return close_code_received_ != 0; }

 private:
  enum class State { kHandshake, kOpen, kClosed };
  friend struct WebSocketCallbacks;

  Status OnHandshakeInput(std::span<const uint8_t> bytes);
  // Checks the request; on success fills subprotocol_, forwarded_for_ and request_target_ and returns
  // 101, else the refusal's status with its reason (static storage) in *reason.
  int CheckRequest(const HttpRequest& req, std::string_view* reason);
  // Sends the error reply and stops; returns the error for OnInput.
  Status Refuse(int status, std::string_view reason);
  // Runs wslay's frame reader over `bytes` until it wants more or the connection ends.
  Status OnFrames(std::span<const uint8_t> bytes);
  // Handles one piece of a frame's payload as wslay hands it over.
  Status OnFrameChunk(uint8_t opcode, bool fin, uint8_t rsv, bool masked, uint64_t payload_length,
                      std::span<const uint8_t> data);
  Status OnControlFrame();
  // Sends a close frame with `code` (and `reason` as its text) and stops; returns the error for OnInput.
  Status Fail(uint16_t code, std::string_view reason);
  // Frames `payload` (one frame, fin set, unmasked) into out_, which Flush() sends Down() once the
  // handshake is done. False only if wslay refuses the frame, which would be a bug.
  bool AppendFrame(uint8_t opcode, std::span<const uint8_t> payload);
  void SendClose(uint16_t code, std::string_view reason);
  void Flush();

  WebSocketOptions options_;
  State state_ = State::kHandshake;
  std::unique_ptr<HttpRequestParser> http_;  // during the handshake only
  wslay_frame_context* frames_ = nullptr;    // owned; wslay_frame_context_free in the destructor
  std::span<const uint8_t> input_;           // what wslay's recv callback reads from, during OnFrames()
  std::string out_;                          // encoded frames not yet sent Down()

  // The frame being received.
  bool in_frame_ = false;
  uint8_t frame_opcode_ = 0;
  bool frame_fin_ = false;
  uint64_t frame_remaining_ = 0;
  // The data message being received (binary, then continuations).
  bool in_message_ = false;
  uint64_t message_size_ = 0;
  // A control frame's payload (at most 125 bytes, RFC 6455 section 5.5).
  std::array<uint8_t, 125> control_{};
  size_t control_size_ = 0;

  std::string subprotocol_;
  std::string forwarded_for_;
  std::string request_target_;
  uint16_t close_code_sent_ = 0;
  uint16_t close_code_received_ = 0;
};

}  // namespace parley::net
