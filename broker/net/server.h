// The network side of parleyd: N worker loops and the listeners they share.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/metrics.h"
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
  uint32_t index = 0;  // position in Server::Listen's specs (broker::ListenerInfo::index)
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

  // ---- Administration (server_admin.cc; docs/admin-api.md): what only the worker loops know about their
  // connections, and draining. Any thread but a worker's (they wait for the workers); after Start().
  struct ConnectionInfo {
    std::string client_id;
    std::optional<std::string> username;
    std::string address;   // the peer, "127.0.0.1:52344"
    std::string listener;  // the listener's name
    std::string protocol;  // mqtt | mqtts | ws | wss
    mqtt::Version version = mqtt::Version::kV311;
    uint16_t keep_alive = 0;  // as enforced
    bool clean_start = false;
    uint32_t session_expiry = 0;  // as requested on CONNECT (after the cap)
    int64_t connected_at_ms = 0;  // when the connection was accepted (Unix ms)
    int worker = 0;
  };
  struct ConnectionQuery {
    std::string after;                    // client ids after this one ("" = from the start)
    size_t limit = 100;                   // SIZE_MAX: all of them
    std::string client_id;                // only this client ("" = any)
    std::optional<std::string> username;  // only clients of this user
    std::string listener;                 // only this listener ("" = any)
  };
  // The connected MQTT clients (CONNACK sent, not closing) matching `q`, in client id order, at most q.limit;
  // *more: others follow. Asks every worker and waits up to `timeout` for all their answers; a worker that
  // does not answer in time makes it an error (never a hang: a late answer is discarded).
  Result<std::vector<ConnectionInfo>> ListConnections(const ConnectionQuery& q, bool* more,
                                                      std::chrono::milliseconds timeout = std::chrono::seconds(2));

  struct DrainState {
    bool active = false;
    uint32_t rate = 0;             // disconnects per second
    std::string server_reference;  // "" = none
    std::optional<int64_t> started_at_ms;
    uint64_t remaining = 0;     // connected clients still to disconnect
    uint64_t disconnected = 0;  // disconnected by this drain so far
  };
  // Draining: Broker::SetDraining (new CONNECTs refused with 0x9C + `server_reference`), then the connected
  // clients are disconnected at `rate_per_second` across all workers — MQTT 5 ones with DISCONNECT 0x9C and the
  // Server Reference, 3.1.1 ones by closing. Sessions stay (a persistent one resumes wherever its client goes
  // next with the same data). Starting while a drain runs changes its rate and reference and keeps its counts.
  DrainState StartDrain(uint32_t rate_per_second, std::string server_reference);
  // Stops disconnecting and accepts new connections again. Returns the final state (active false).
  DrainState StopDrain();
  DrainState DrainStatus() const;
  // parley_draining (gauge, 0/1). Thread-safe: a metrics::Registry collector.
  void CollectDrainMetrics(std::vector<metrics::Family>& out) const;

  // /healthz: the workers whose loop has not ticked for `stall` (a callback is stuck); empty when all are
  // well. A worker that has not ticked yet counts from Start(). Any thread.
  std::vector<int> StalledWorkers(std::chrono::milliseconds stall) const;

  // parley_event_loop_lag_seconds{worker}: each worker loop's lag at its last tick (once a second). Any thread;
  // a metrics::Registry collector.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

 private:
  broker::Broker& broker_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<uint16_t> bound_ports_;
  ConnectionBudget total_;
  std::vector<std::unique_ptr<ListenerShared>> listeners_;
  std::unique_ptr<OverloadWatch> overload_;
  bool started_ = false;
  std::chrono::steady_clock::time_point started_at_{};  // Start(); written before the workers run
  bool stopped_ = false;
  // Draining (server_admin.cc): created by the first StartDrain; declared after workers_ so its thread is
  // joined before the workers are destroyed. shared_ptr: its type is complete only in server_admin.cc.
  struct Drain;
  mutable std::mutex drain_mu_;
  std::shared_ptr<Drain> drain_;  // guarded by drain_mu_
};

}  // namespace parley::net
