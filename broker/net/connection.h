// One client connection on one worker loop: socket I/O, the read carry-over buffer, the output buffer
// flushed once per loop iteration, and the core Client that speaks MQTT on it.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "broker/core/client.h"
#include "broker/core/transport.h"

namespace parley::net {

class Worker;
class Connection;
struct ListenerShared;

// The SessionLink for a connection. Shared by the session (any thread) and the connection (its loop).
// conn_ is touched only on the owning loop thread and cleared when the connection closes.
class Link final : public broker::SessionLink, public std::enable_shared_from_this<Link> {
 public:
  explicit Link(Worker& w) : worker_(w) {}
  void Wake() override;
  void Kick(uint8_t reason) override;
  Connection* conn_ = nullptr;  // loop thread only

 private:
  Worker& worker_;
};

class Connection final : public broker::Transport {
 public:
  // Takes an accepted socket handle initialised on `worker`'s loop.
  Connection(Worker& worker);
  ~Connection() override;
  uv_tcp_t* handle() { return &tcp_; }
  // Starts reading; call once after uv_accept succeeded.
  void Start();
  // Closes the socket now (no flush).
  void CloseNow();

  // Transport
  std::string& OutBuffer() override;
  size_t PendingOutBytes() const override { return out_.size() + writing_.size(); }
  void CloseAfterFlush() override;
  std::string_view PeerAddress() const override { return peer_; }

  broker::Client& client() { return *client_; }
  // The listener whose connection count this connection holds (released on close); null if uncounted.
  void set_listener(ListenerShared* l) { listener_ = l; }
  // Loop thread, about once a second: keep alive, CONNECT timeout, end of the close linger.
  void OnTick();
  // Loop thread: writes what is buffered (called by the worker once per iteration).
  void Flush();

  // Intrusive list links (Worker's live connections).
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  bool dirty_ = false;
  bool pump_scheduled_ = false;

 private:
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnClose(uv_handle_t* h);
  // After the last byte is written: half-close, then drain the peer's input until it closes or the
  // linger time passes. A client still sending (e.g. PUBREL after our DISCONNECT) then reads our
  // DISCONNECT instead of hitting a reset.
  void BeginLinger();
  // Closes the connection when its unwritten output passed limits.max_outbound_buffer; true if it did.
  bool CutIfOverLimit();
  void Consume(const char* data, size_t n);

  Worker& worker_;
  uv_tcp_t tcp_;
  std::shared_ptr<Link> link_;
  std::unique_ptr<broker::Client> client_;
  std::string peer_;
  std::string in_;       // carry-over: the start of a packet not yet complete
  std::string out_;      // appended by the client this iteration
  std::string writing_;  // handed to the kernel, awaiting completion
  std::unique_ptr<uv_write_t> write_req_;
  bool close_after_flush_ = false;
  bool closing_ = false;
  bool attached_ = false;
  ListenerShared* listener_ = nullptr;
  bool lingering_ = false;
  SteadyTime linger_until_{};
};

}  // namespace parley::net
