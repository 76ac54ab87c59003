// The network side of parleyd: N worker loops and the listeners they share.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "broker/core/broker.h"
#include "broker/net/filter.h"
#include "broker/net/websocket.h"

namespace parley::net {

class Worker;
class TlsContext;
class OverloadWatch;
struct OverloadOptions;

// What a listener's connections speak on top of TCP.
enum class ListenerProtocol : uint8_t {
  kMqtt,   // MQTT straight on TCP
  kMqtts,  // MQTT over TLS
  kWs,     // MQTT over WebSocket
  kWss,    // MQTT over WebSocket over TLS
};
// "mqtt" | "mqtts" | "ws" | "wss" (the config's spelling); kMqtt for anything else.
ListenerProtocol ParseListenerProtocol(std::string_view text);
std::string_view ListenerProtocolName(ListenerProtocol p);

struct ListenSpec {
  std::string name;
  std::string bind = "127.0.0.1";
  uint16_t port = 1883;
  int backlog = 1024;
  uint32_t max_connections = 0;  // 0 = unlimited
  ListenerProtocol protocol = ListenerProtocol::kMqtt;
  std::shared_ptr<const TlsContext> tls;  // kMqtts / kWss: required
  WebSocketOptions websocket;             // kWs / kWss
};

// The broker-wide connection count (limits.max_connections), shared by every listener.
struct ConnectionBudget {
  uint32_t max = 0;  // 0 = unlimited
  std::atomic<uint32_t> active{0};
};

// What every worker's socket of one listener shares: the connection count across all workers, and how to
// build a new connection's filters. Counts are kept only while a limit is set (max_connections here, or the
// broker-wide one); a connection that counted releases both at close.
struct ListenerShared {
  std::string name;
  uint32_t max_connections = 0;
  std::atomic<uint32_t> active{0};
  ConnectionBudget* total = nullptr;  // owned by the Server
  ListenerProtocol protocol = ListenerProtocol::kMqtt;
  WebSocketOptions websocket;

  // Any thread. The filters one new connection needs, socket first (none for plain MQTT).
  std::vector<std::unique_ptr<Filter>> MakeFilters() const;
  // Any thread. The TLS context new connections use; a reload swaps it, live connections keep theirs.
  std::shared_ptr<const TlsContext> tls() const;
  void set_tls(std::shared_ptr<const TlsContext> tls);

 private:
  mutable std::mutex tls_mu_;
  std::shared_ptr<const TlsContext> tls_;  // guarded by tls_mu_
};

class Server {
 public:
  Server(broker::Broker& broker, int workers);
  ~Server();

  // Binds every listener (all workers share each port through SO_REUSEPORT). Port 0 picks a free
  // port; BoundPort() tells which. Fails with a message naming the listener when the address is taken.
  Status Listen(const std::vector<ListenSpec>& specs);
  uint16_t BoundPort(size_t listener_index) const { return bound_ports_.at(listener_index); }
  // Any thread, after Listen. New connections of listener `index` (a TLS one) use `tls` from now on; open
  // connections keep the context they started with (certificate reload on SIGHUP).
  void SetTls(size_t listener_index, std::shared_ptr<const TlsContext> tls) {
    listeners_.at(listener_index)->set_tls(std::move(tls));
  }
  // Before Listen(): at most `max` connections across all listeners (0 = unlimited).
  void SetMaxConnections(uint32_t max) { total_.max = max; }
  // Before Start(): watch memory and event-loop lag (overload protection).
  void WatchOverload(const OverloadOptions& options);
  void Start();
  // Graceful stop: DISCONNECT 0x8B to v5 clients, flush, close, join the threads. Any thread but a worker's.
  void Stop();

 private:
  broker::Broker& broker_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<uint16_t> bound_ports_;
  ConnectionBudget total_;
  std::vector<std::unique_ptr<ListenerShared>> listeners_;
  std::unique_ptr<OverloadWatch> overload_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace parley::net
