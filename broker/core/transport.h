// The seams between broker/core and the network layer that carries a connection (broker/net).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"

namespace parley::broker {

// The listener a connection came in on, for the connection log lines and the per-listener metrics.
struct ListenerInfo {
  uint32_t index = 0;                  // position in Broker::SetListeners' list (0 without one)
  std::string_view name = "default";   // the config's listener name
  std::string_view protocol = "mqtt";  // mqtt | mqtts | ws | wss
};

// One network connection as the protocol handler (Client) sees it. Implemented by broker/net.
// Loop thread only: every method is called on the thread that owns the connection.
class Transport {
 public:
  virtual ~Transport() = default;
  // The buffer outgoing bytes are appended to; flushed once per loop iteration.
  virtual std::string& OutBuffer() = 0;
  // Bytes appended but not yet accepted by the kernel.
  virtual size_t PendingOutBytes() const = 0;
  // Flush what is buffered, then close. Further input is ignored.
  virtual void CloseAfterFlush() = 0;
  // Peer address for logs and auth ("127.0.0.1:53122").
  virtual std::string_view PeerAddress() const = 0;
  // The user name a verified TLS client certificate proves, when the listener takes user names from
  // certificates (listener.tls.username_from_cert); empty otherwise. Such a client needs no password.
  virtual std::string_view CertificateIdentity() const { return {}; }
  // The listener this connection came in on. The views stay valid for the connection's life.
  virtual ListenerInfo Listener() const { return {}; }
  // Stop reading from the peer until `until` (rate limits). Bytes already read and not yet consumed are
  // offered again to Client::OnData when reading resumes.
  virtual void PauseReading(SteadyTime until) = 0;
};

// The handle a Session keeps to the connection currently bound to it, so publishers on any thread can
// tell that connection there is work. Implemented by broker/net; shared between the session and the
// connection, and outlives the connection (methods are no-ops after it closed).
class SessionLink {
 public:
  virtual ~SessionLink() = default;
  // Any thread: the session has new deliveries queued; the owning loop should call Client::Pump().
  virtual void Wake() = 0;
  // Any thread: the session was taken over (or an admin kicked it). The owning loop sends DISCONNECT
  // with `reason` to v5 clients and closes the connection without touching the session again.
  virtual void Kick(uint8_t reason) = 0;
};

}  // namespace parley::broker
