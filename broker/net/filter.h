// A byte-stream layer between a connection's socket and its MQTT client: TLS, WebSocket. A connection
// stacks zero (plain MQTT over TCP) or more of them, socket first (wss = TLS, then WebSocket): bytes read
// from the socket pass up through the stack to the client; the client's bytes pass down to the socket.
// No libuv in filters: they are plain objects driven by their connection, and unit-tested and fuzzed alone.
// Loop thread only, like the connection that owns them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace parley::net {

class Filter {
 public:
  // Where a filter sends what it produces; implemented by the stack that owns it (FilterStack, or a test).
  class Sink {
   public:
    virtual ~Sink() = default;
    // Decoded application bytes for the layer above (the MQTT client at the top).
    virtual void Up(std::span<const uint8_t> bytes) = 0;
    // Encoded bytes for the layer below (the socket at the bottom): handshakes, records, frames, alerts.
    virtual void Down(std::string_view bytes) = 0;
  };

  virtual ~Filter() = default;
  // Called once by the stack before any other method. `sink` outlives the filter.
  void set_sink(Sink* sink) { sink_ = sink; }

  // Bytes from below. A handshake in progress may answer Down() on its own. An error ends the connection:
  // the filter has already sent Down() what the peer should read first (an HTTP error response, a TLS
  // alert, a WebSocket close frame); its message is for the log.
  virtual Status OnInput(std::span<const uint8_t> bytes) = 0;
  // Application bytes from above, to be encoded and sent Down(). Before the handshake is done the
  // filter keeps them and sends them once it is.
  virtual Status Write(std::string_view bytes) = 0;
  // The connection is ending cleanly: send Down() the layer's own goodbye (TLS close_notify, WebSocket
  // close frame), if its handshake got that far. Further calls are ignored.
  virtual void Close() {}
  // True once the filter carries application data (its handshake is complete).
  virtual bool ready() const = 0;
  // Who the peer proved to be at this layer, if anything: the identity from a verified TLS client
  // certificate (Common Name or Subject Alternative Name, as configured). Empty: none.
  virtual std::string_view peer_identity() const { return {}; }

 protected:
  Sink& sink() { return *sink_; }

 private:
  Sink* sink_ = nullptr;
};

}  // namespace parley::net
