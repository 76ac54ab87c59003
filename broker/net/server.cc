#include "broker/net/server.h"

#include <arpa/inet.h>

#include <algorithm>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "broker/net/overload.h"
#include "broker/net/tls.h"
#include "broker/net/worker.h"

namespace parley::net {

ListenerProtocol ParseListenerProtocol(std::string_view text) {
  if (text == "mqtts") return ListenerProtocol::kMqtts;
  if (text == "ws") return ListenerProtocol::kWs;
  if (text == "wss") return ListenerProtocol::kWss;
  return ListenerProtocol::kMqtt;
}

std::string_view ListenerProtocolName(ListenerProtocol p) {
  switch (p) {
    case ListenerProtocol::kMqtt: return "mqtt";
    case ListenerProtocol::kMqtts: return "mqtts";
    case ListenerProtocol::kWs: return "ws";
    case ListenerProtocol::kWss: return "wss";
  }
  return "mqtt";
}

std::shared_ptr<const TlsContext> ListenerShared::tls() const {
  std::lock_guard lock(tls_mu_);
  return tls_;
}

void ListenerShared::set_tls(std::shared_ptr<const TlsContext> tls) {
  std::lock_guard lock(tls_mu_);
  tls_ = std::move(tls);
}

std::vector<std::unique_ptr<Filter>> ListenerShared::MakeFilters() const {
  std::vector<std::unique_ptr<Filter>> filters;
  if (protocol == ListenerProtocol::kMqtts || protocol == ListenerProtocol::kWss) {
    if (auto ctx = tls()) filters.push_back(ctx->NewFilter());
  }
  if (protocol == ListenerProtocol::kWs || protocol == ListenerProtocol::kWss)
    filters.push_back(std::make_unique<WebSocketFilter>(websocket));
  return filters;
}

namespace {

bool ParseAddress(const std::string& host, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  auto* a4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// A listening socket with SO_REUSEPORT, so every worker accepts on its own socket and the kernel
// spreads connections across them.
int OpenListenSocket(const sockaddr_storage& ss, socklen_t len, int backlog, std::string* err) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0 || listen(fd, backlog) != 0) {
    *err = std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

// SO_REUSEPORT would let a second broker silently share our port. A plain bind first tells us the
// port is already taken (by anyone, reuseport group or not).
bool PortFree(const sockaddr_storage& ss, socklen_t len, std::string* err) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  bool ok = bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0;
  if (!ok) *err = std::strerror(errno);
  close(fd);
  return ok;
}

}  // namespace

Server::Server(broker::Broker& broker, int workers) : broker_(broker) {
  for (int i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>(broker, i));
}

Server::~Server() { Stop(); }

Status Server::Listen(const std::vector<ListenSpec>& specs) {
  for (const ListenSpec& spec : specs) {
    sockaddr_storage ss;
    socklen_t len;
    if (!ParseAddress(spec.bind, spec.port, &ss, &len))
      return Status::Error("listener " + spec.name + ": bad bind address '" + spec.bind + "'");
    const bool needs_tls = spec.protocol == ListenerProtocol::kMqtts || spec.protocol == ListenerProtocol::kWss;
    if (needs_tls && !spec.tls) return Status::Error("listener " + spec.name + ": TLS listener without a TLS context");
    std::string err;
    const std::string where = "listener " + spec.name + " (" + spec.bind + ":" + std::to_string(spec.port) + ")";
    if (spec.port != 0 && !PortFree(ss, len, &err)) return Status::Error(where + ": " + err);
    uint16_t port = spec.port;
    listeners_.push_back(std::make_unique<ListenerShared>());
    ListenerShared* shared = listeners_.back().get();
    shared->name = spec.name;
    shared->index = static_cast<uint32_t>(listeners_.size() - 1);
    shared->max_connections = spec.max_connections;
    shared->total = &total_;
    shared->protocol = spec.protocol;
    shared->websocket = spec.websocket;
    shared->set_tls(spec.tls);
    for (auto& w : workers_) {
      int fd = OpenListenSocket(ss, len, spec.backlog, &err);
      if (fd < 0) return Status::Error(where + ": " + err);
      if (port == 0) {
        // Port 0: the first socket picks a free port; the siblings join it.
        sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
        port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
        if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
        else reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
      }
      if (!w->AddListenFd(fd, shared, &err)) return Status::Error(where + ": " + err);
    }
    bound_ports_.push_back(port);
  }
  // The labels of the per-listener metrics, in index order.
  std::vector<broker::Broker::ListenerLabel> labels;
  for (const auto& l : listeners_) labels.push_back({l->name, std::string(ListenerProtocolName(l->protocol))});
  broker_.SetListeners(std::move(labels));
  return Status::Ok();
}

void Server::CollectMetrics(std::vector<metrics::Family>& out) const {
  metrics::Family f;
  f.name = "parley_event_loop_lag_seconds";
  f.help = "How late each worker loop's one-second timer last fired: the time the loop was busy beyond it.";
  f.type = metrics::Type::kGauge;
  for (const auto& w : workers_)
    f.samples.push_back(metrics::Sample{{{"worker", std::to_string(w->index())}}, w->last_lag().count() / 1000.0});
  out.push_back(std::move(f));
}

void Server::WatchOverload(const OverloadOptions& options) {
  overload_ = std::make_unique<OverloadWatch>(broker_, options, static_cast<int>(workers_.size()));
  for (auto& w : workers_) w->set_overload_watch(overload_.get());
}

void Server::Start() {
  started_ = true;
  started_at_ = std::chrono::steady_clock::now();
  for (auto& w : workers_) w->Start();
}

std::vector<int> Server::StalledWorkers(std::chrono::milliseconds stall) const {
  std::vector<int> stalled;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& w : workers_) {
    const auto last = std::max(w->last_tick(), started_at_);
    if (now - last > stall) stalled.push_back(w->index());
  }
  return stalled;
}

void Server::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) w->Shutdown();
  for (auto& w : workers_) w->Join();
}

}  // namespace parley::net
