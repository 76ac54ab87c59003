// Frames go through wslay's frame API (wslay_frame_recv / wslay_frame_send) rather than its event API.
// The event API would do more for us, but not what this filter must promise:
//   - it answers frame-level protocol errors (a control frame over 125 bytes or fragmented, a
//     non-minimal or 2^63+ length) with a close frame *without* a status code, where we owe 1002;
//   - with buffering off (the only way to stream a message instead of holding it whole), its message size
//     limit applies per frame, not per message, and a text frame can only be refused by shutting reads
//     from inside a callback while wslay goes on to hand over the frame's data;
//   - every outgoing message is copied into a malloc'd queue entry, and sending from inside its receive
//     loop (an MQTT reply written while Up() runs) would re-enter it.
// The frame API leaves wslay what is fiddly (header and length parsing, unmasking, chunking through its
// 4 KiB buffer, header encoding) and us the message-level rules, each with the close code RFC 6455 and
// MQTT section 6 ask for.
#include "broker/net/websocket.h"

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace parley::net {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kSubprotocols[] = {"mqtt", "mqttv3.1"};
// out_ keeps its capacity between frames unless a large one grew it past this.
constexpr size_t kKeepOutputCapacity = 64 * 1024;
constexpr size_t kMaxCloseReason = 123;  // 125-byte control payload minus the 2-byte code

bool IsControl(uint8_t opcode) {
  return (opcode & 0x8u) != 0;
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// RFC 6455 section 4.1: base64 of 16 bytes is 22 characters and "==".
bool IsValidKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, IsBase64Char);
}

// Codes a peer may send (RFC 6455 section 7.4): 1004-1006 and 1015 are reserved for local use.
bool IsValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool IsUtf8(std::span<const uint8_t> s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string WebSocketAcceptKey(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kGuid.size());
  input.append(key);
  input.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  // SHA-1 cannot fail on a working OpenSSL; if the provider is missing the handshake must not go on.
  PARLEY_CHECK(EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) == 1);
  PARLEY_CHECK(digest_len == 20);
  unsigned char b64[29];  // 4 * ceil(20 / 3) + NUL
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<const char*>(b64), static_cast<size_t>(n));
}

// wslay's frame callbacks, over memory: input_ in, out_ out.
struct WebSocketCallbacks {
  static ssize_t Send(const uint8_t* data, size_t len, int /*flags*/, void* user) {
    static_cast<WebSocketFilter*>(user)->out_.append(reinterpret_cast<const char*>(data), len);
    return static_cast<ssize_t>(len);
  }
  // Returning 0 tells wslay to wait for more (WSLAY_ERR_WANT_READ).
  static ssize_t Recv(uint8_t* buf, size_t len, int /*flags*/, void* user) {
    auto* self = static_cast<WebSocketFilter*>(user);
    const size_t n = std::min(len, self->input_.size());
    if (n == 0) return 0;
    std::memcpy(buf, self->input_.data(), n);
    self->input_ = self->input_.subspan(n);
    return static_cast<ssize_t>(n);
  }
  // Only clients mask; wslay never asks a server for a key.
  static int GenMask(uint8_t* /*buf*/, size_t /*len*/, void* /*user*/) { return -1; }
};

WebSocketFilter::WebSocketFilter(WebSocketOptions options) : options_(std::move(options)) {
  HttpLimits limits;
  limits.max_head = options_.max_request_head;
  // A body is refused by CheckRequest() with a clearer reason than the parser's 413.
  limits.max_body = UINT64_MAX;
  http_ = std::make_unique<HttpRequestParser>(limits);
  const wslay_frame_callbacks callbacks = {&WebSocketCallbacks::Send, &WebSocketCallbacks::Recv,
                                           &WebSocketCallbacks::GenMask};
  // Fails only when malloc does, which the rest of the process treats as fatal too.
  PARLEY_CHECK(wslay_frame_context_init(&frames_, &callbacks, this) == 0);
}

WebSocketFilter::~WebSocketFilter() {
  wslay_frame_context_free(frames_);
}

Status WebSocketFilter::OnInput(std::span<const uint8_t> bytes) {
  switch (state_) {
    case State::kHandshake:
      return OnHandshakeInput(bytes);
    case State::kOpen:
      return OnFrames(bytes);
    case State::kClosed:
      break;
  }
  return Status::Error("websocket: input after the connection closed");
}

Status WebSocketFilter::Write(std::string_view bytes) {
  if (state_ == State::kClosed) return Status::Error("websocket: write after the connection closed");
  if (bytes.empty()) return Status::Ok();
  if (!AppendFrame(WSLAY_BINARY_FRAME,
                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))) {
    return Status::Error("websocket: frame too large to encode");
  }
  if (state_ == State::kOpen) Flush();  // else kept until the 101 is out
  return Status::Ok();
}

void WebSocketFilter::Close() {
  if (state_ != State::kOpen) return;
  SendClose(kWsCloseNormal, {});
  state_ = State::kClosed;
}

// ---- Handshake ----------------------------------------------------------------------------------------

Status WebSocketFilter::OnHandshakeInput(std::span<const uint8_t> bytes) {
  const HttpParseResult r = http_->Parse(bytes);
  switch (r.state) {
    case HttpParseState::kNeedMore:
      return Status::Ok();
    case HttpParseState::kError:
      return Refuse(http_->error().status, http_->error().reason);
    case HttpParseState::kHeadComplete:
    case HttpParseState::kMessageComplete:  // not reached: the head is reported first
      break;
  }
  std::string_view reason;
  const int status = CheckRequest(http_->request(), &reason);
  if (status != 101) return Refuse(status, reason);

  const std::string accept = WebSocketAcceptKey(*http_->request().Find("Sec-WebSocket-Key"));
  std::vector<HttpHeaderView> headers = {
      {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}};
  if (!subprotocol_.empty()) headers.push_back({"Sec-WebSocket-Protocol", subprotocol_});
  sink().Down(RenderHttpResponseHead(101, headers));
  state_ = State::kOpen;
  http_.reset();  // the head is no longer needed; free it
  Flush();        // frames written before the handshake completed
  // Bytes after the head in the same read are the client's first frames.
  if (r.consumed < bytes.size()) return OnFrames(bytes.subspan(r.consumed));
  return Status::Ok();
}

int WebSocketFilter::CheckRequest(const HttpRequest& req, std::string_view* reason) {
  const auto refuse = [reason](int status, std::string_view why) {
    *reason = why;
    return status;
  };
  if (req.method != "GET") return refuse(400, "WebSocket handshake must be a GET");
  if (req.version_major != 1 || req.version_minor < 1) return refuse(400, "HTTP/1.1 required");
  if (req.Count("Host") != 1) return refuse(400, "exactly one Host header required");
  if (req.has_body()) return refuse(400, "request body not allowed");
  if (!req.HasToken("Upgrade", "websocket"))
    return refuse(400, "not a WebSocket upgrade (Upgrade: websocket)");
  if (!req.HasToken("Connection", "upgrade")) return refuse(400, "Connection: upgrade required");
  if (req.Count("Sec-WebSocket-Version") != 1 || req.Find("Sec-WebSocket-Version") != "13") {
    return refuse(426, "unsupported WebSocket version (13 required)");
  }
  if (req.Count("Sec-WebSocket-Key") != 1 || !IsValidKey(*req.Find("Sec-WebSocket-Key"))) {
    return refuse(400, "invalid Sec-WebSocket-Key");
  }
  if (req.path != options_.path) return refuse(404, "no WebSocket endpoint at this path");
  if (!options_.allowed_origins.empty()) {
    const std::optional<std::string_view> origin = req.Find("Origin");
    const bool allowed = req.Count("Origin") == 1 &&
                         std::any_of(options_.allowed_origins.begin(), options_.allowed_origins.end(),
                                     [&](const std::string& o) { return EqualsIgnoreCase(o, *origin); });
    if (!allowed) return refuse(403, "origin not allowed");
  }

  // Subprotocol: the client's first offer that we speak, in the order it listed them.
  bool offered = false;
  for (const HttpHeader& h : req.headers) {
    if (!subprotocol_.empty()) break;
    if (!EqualsIgnoreCase(h.name, "Sec-WebSocket-Protocol")) continue;
    std::string_view rest = h.value;
    while (subprotocol_.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view token = TrimOws(rest.substr(0, comma));
      if (!token.empty()) {
        offered = true;
        for (std::string_view ours : kSubprotocols) {
          if (token == ours) subprotocol_ = std::string(ours);  // subprotocol names are case-sensitive
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (subprotocol_.empty() && req.Count("Sec-WebSocket-Protocol") > 0) {
    return refuse(400, offered ? "no supported subprotocol offered (mqtt or mqttv3.1)"
                               : "empty Sec-WebSocket-Protocol");
  }

  // For the log: every X-Forwarded-For field, in order, as one list.
  for (const HttpHeader& h : req.headers) {
    if (!EqualsIgnoreCase(h.name, "X-Forwarded-For")) continue;
    if (!forwarded_for_.empty()) forwarded_for_ += ", ";
    forwarded_for_ += h.value;
  }
  request_target_ = req.target;
  return 101;
}

Status WebSocketFilter::Refuse(int status, std::string_view reason) {
  std::vector<HttpHeaderView> extra;
  if (status == 426) extra.push_back({"Sec-WebSocket-Version", "13"});
  sink().Down(RenderHttpErrorResponse(status, reason, extra));
  state_ = State::kClosed;
  http_.reset();
  out_.clear();  // writes made before the handshake: never sent
  return Status::Error("websocket handshake refused: " + std::to_string(status) + " " + std::string(reason));
}

// ---- Frames -------------------------------------------------------------------------------------------

Status WebSocketFilter::OnFrames(std::span<const uint8_t> bytes) {
  input_ = bytes;
  Status st;
  // Up() may close us (the client above decided to end the connection): stop reading then.
  while (state_ == State::kOpen) {
    wslay_frame_iocb iocb;
    std::memset(&iocb, 0, sizeof(iocb));
    const ssize_t r = wslay_frame_recv(frames_, &iocb);
    if (r == WSLAY_ERR_WANT_READ) break;  // input_ is used up
    if (r < 0) {
      // WSLAY_ERR_PROTO: a control frame longer than 125 bytes or fragmented, or a length not in its
      // shortest form or past 2^63.
      st = Fail(kWsCloseProtocolError, "malformed frame header");
      break;
    }
    st = OnFrameChunk(iocb.opcode, iocb.fin != 0, iocb.rsv, iocb.mask != 0, iocb.payload_length,
                      std::span<const uint8_t>(iocb.data, iocb.data_length));
    if (!st.ok()) break;
  }
  input_ = {};
  return st;
}

Status WebSocketFilter::OnFrameChunk(uint8_t opcode, bool fin, uint8_t rsv, bool masked,
                                     uint64_t payload_length, std::span<const uint8_t> data) {
  if (!in_frame_) {
    // The first piece of a frame: its header is complete. RFC 6455 section 5.
    if (!masked) return Fail(kWsCloseProtocolError, "client frame not masked");
    if (rsv != 0) return Fail(kWsCloseProtocolError, "reserved bits set (no extension negotiated)");
    switch (opcode) {
      case WSLAY_CONTINUATION_FRAME:
        if (!in_message_) return Fail(kWsCloseProtocolError, "continuation frame outside a message");
        break;
      case WSLAY_TEXT_FRAME:
      case WSLAY_BINARY_FRAME:
        if (in_message_) return Fail(kWsCloseProtocolError, "new message inside a fragmented message");
        // MQTT section 6: "MQTT Control Packets MUST be sent in WebSocket binary data frames".
        if (opcode == WSLAY_TEXT_FRAME) return Fail(kWsCloseUnsupportedData, "text frames are not supported");
        in_message_ = true;
        message_size_ = 0;
        break;
      case WSLAY_CONNECTION_CLOSE:
      case WSLAY_PING:
      case WSLAY_PONG:
        control_size_ = 0;  // wslay has checked fin and the 125-byte limit
        break;
      default:
        return Fail(kWsCloseProtocolError, "unknown opcode");
    }
    if (!IsControl(opcode)) {
      // Refused on the declared length, before any of it is read.
      if (payload_length > options_.max_message_size - message_size_) {
        return Fail(kWsCloseMessageTooBig, "message too big");
      }
      message_size_ += payload_length;
    }
    in_frame_ = true;
    frame_opcode_ = opcode;
    frame_fin_ = fin;
    frame_remaining_ = payload_length;
  }

  if (data.size() > frame_remaining_) {
    PARLEY_BUG("wslay handed over more payload than the frame declared");
    return Fail(kWsCloseProtocolError, "frame payload overrun");
  }
  frame_remaining_ -= data.size();
  if (IsControl(frame_opcode_)) {
    if (data.size() > control_.size() - control_size_) {
      PARLEY_BUG("control frame longer than 125 bytes");
      return Fail(kWsCloseProtocolError, "control frame too long");
    }
    if (!data.empty()) std::memcpy(control_.data() + control_size_, data.data(), data.size());
    control_size_ += data.size();
  } else if (!data.empty()) {
    sink().Up(data);  // MQTT bytes; packets may span frames and a frame may hold several
    if (state_ != State::kOpen) return Status::Ok();
  }
  if (frame_remaining_ != 0) return Status::Ok();

  in_frame_ = false;
  if (IsControl(frame_opcode_)) return OnControlFrame();
  if (frame_fin_) in_message_ = false;
  return Status::Ok();
}

Status WebSocketFilter::OnControlFrame() {
  const std::span<const uint8_t> payload(control_.data(), control_size_);
  switch (frame_opcode_) {
    case WSLAY_PING:
      AppendFrame(WSLAY_PONG, payload);  // RFC 6455 section 5.5.3: the same application data
      Flush();
      return Status::Ok();
    case WSLAY_PONG:
      return Status::Ok();  // unsolicited or not, nothing to do
    default:
      break;
  }
  // Close (RFC 6455 section 5.5.1): no payload, or a 2-byte code and a UTF-8 reason.
  uint16_t code = 0;
  if (payload.size() == 1) return Fail(kWsCloseProtocolError, "close frame with a 1-byte payload");
  if (payload.size() >= 2) {
    code = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
    if (!IsValidCloseCode(code)) return Fail(kWsCloseProtocolError, "invalid close code");
    if (!IsUtf8(payload.subspan(2))) return Fail(kWsCloseInvalidPayload, "close reason is not UTF-8");
  }
  close_code_received_ = code == 0 ? kWsCloseNoStatus : code;
  SendClose(code, {});  // echo the code, as section 5.5.1 suggests
  state_ = State::kClosed;
  return Status::Error(std::string(kClosedByPeer) + " (code " + std::to_string(close_code_received_) + ")");
}

Status WebSocketFilter::Fail(uint16_t code, std::string_view reason) {
  SendClose(code, reason);
  state_ = State::kClosed;
  return Status::Error("websocket: " + std::string(reason) + " (sent close " + std::to_string(code) + ")");
}

bool WebSocketFilter::AppendFrame(uint8_t opcode, std::span<const uint8_t> payload) {
  wslay_frame_iocb iocb;
  std::memset(&iocb, 0, sizeof(iocb));
  iocb.fin = 1;
  iocb.opcode = opcode;
  iocb.mask = 0;  // RFC 6455 section 5.1: a server never masks
  iocb.payload_length = payload.size();
  iocb.data = payload.data();
  iocb.data_length = payload.size();
  // Send() always takes every byte, so one call writes the whole frame.
  const ssize_t r = wslay_frame_send(frames_, &iocb);
  if (r < 0 || static_cast<size_t>(r) != payload.size()) {
    PARLEY_BUG("wslay_frame_send did not write a whole frame");
    return false;
  }
  return true;
}

void WebSocketFilter::SendClose(uint16_t code, std::string_view reason) {
  uint8_t payload[2 + kMaxCloseReason];
  size_t n = 0;
  if (code != 0) {
    payload[0] = static_cast<uint8_t>(code >> 8);
    payload[1] = static_cast<uint8_t>(code & 0xFF);
    reason = reason.substr(0, kMaxCloseReason);  // our reasons are short ASCII: no UTF-8 to cut
    if (!reason.empty()) std::memcpy(payload + 2, reason.data(), reason.size());  // data() may be null
    n = 2 + reason.size();
  }
  close_code_sent_ = code == 0 ? kWsCloseNoStatus : code;
  AppendFrame(WSLAY_CONNECTION_CLOSE, std::span<const uint8_t>(payload, n));
  Flush();
}

void WebSocketFilter::Flush() {
  if (out_.empty()) return;
  sink().Down(out_);
  out_.clear();
  if (out_.capacity() > kKeepOutputCapacity) std::string().swap(out_);
}

}  // namespace parley::net
