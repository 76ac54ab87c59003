// The network side of parleyd: N worker loops and the listeners they share.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "broker/core/broker.h"

namespace parley::net {

class Worker;

struct ListenSpec {
  std::string name;
  std::string bind = "127.0.0.1";
  uint16_t port = 1883;
  int backlog = 1024;
  uint32_t max_connections = 0;  // 0 = unlimited
};

// What every worker's socket of one listener shares: the connection count across all workers.
struct ListenerShared {
  std::string name;
  uint32_t max_connections = 0;
  std::atomic<uint32_t> active{0};
};

class Server {
 public:
  Server(broker::Broker& broker, int workers);
  ~Server();

  // Binds every listener (all workers share each port through SO_REUSEPORT). Port 0 picks a free
  // port; BoundPort() tells which. Fails with a message naming the listener when the address is taken.
  Status Listen(const std::vector<ListenSpec>& specs);
  uint16_t BoundPort(size_t listener_index) const { return bound_ports_.at(listener_index); }
  void Start();
  // Graceful stop: DISCONNECT 0x8B to v5 clients, flush, close, join the threads. Any thread but a worker's.
  void Stop();

 private:
  broker::Broker& broker_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<uint16_t> bound_ports_;
  std::vector<std::unique_ptr<ListenerShared>> listeners_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace parley::net
