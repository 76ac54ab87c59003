// One client connection on one worker loop: socket I/O, the read carry-over buffer, the output buffer
// flushed once per loop iteration, and the core Client that speaks MQTT on it.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "broker/core/client.h"
#include "broker/core/transport.h"
#include "broker/net/filter.h"

namespace parley::net {

class Worker;
class Connection;
class FilterStack;
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
  // Stacks byte-stream filters (TLS, WebSocket; socket first) between the socket and the MQTT client.
  // Before Start(); without it the client speaks straight to the socket.
  void SetFilters(std::vector<std::unique_ptr<Filter>> filters);
  // After uv_accept: learns the peer's address and applies the admission guards (address bans, per-address
  // limits). False: refused (logged); the caller closes the connection.
  bool Admit();
  // Starts reading; call once after Admit() succeeded.
  void Start();
  // Closes the socket now (no flush).
  void CloseNow();

  // Transport
  std::string& OutBuffer() override;
  size_t PendingOutBytes() const override;
  void CloseAfterFlush() override;
  std::string_view PeerAddress() const override { return peer_; }
  const std::string& PeerAddressString() const { return peer_; }
  std::string_view CertificateIdentity() const override;
  broker::ListenerInfo Listener() const override;
  void PauseReading(SteadyTime until) override;
  // Loop thread: the worker's resume timer found `until` passed: read again, and first hand the client the
  // bytes it left unread.
  void ResumeReading();
  SteadyTime paused_until() const { return spill_ ? spill_->paused_until : SteadyTime{}; }

  broker::Client& client() { return client_; }
  // The listener whose connection count this connection holds (released on close); null if uncounted.
  void set_listener(ListenerShared* l) { listener_ = l; }
  // The listener it came in on (Listener()). Before Start(); owned by the Server, which outlives it.
  void set_origin(const ListenerShared* l) { origin_ = l; }
  // Loop thread, about once a second: keep alive, CONNECT timeout, end of the close linger; returns idle
  // buffers to the allocator.
  void OnTick();
  // Loop thread: writes what is buffered (called by the worker once per iteration).
  void Flush();

  // Intrusive list links (Worker's live connections).
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  bool dirty_ = false;
  bool pump_scheduled_ = false;

 private:
  Connection(Worker& worker, std::shared_ptr<Link> link);
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
  // Bytes from the socket: through the filters, if any, then to the client.
  void Consume(const char* data, size_t n);
  // MQTT bytes for the client, with the carry-over of an incomplete packet.
  void ConsumeMqtt(const char* data, size_t n);
  void ReleaseIdleBuffers();

  // Buffers a connection needs only while a packet arrives in pieces or the kernel refuses part of a write.
  // Allocated then, released by OnTick once empty: idle connections (most of them) carry none.
  struct Spill {
    std::string in;       // carry-over: the start of a packet not yet complete
    std::string writing;  // handed to the kernel, awaiting completion
    uv_write_t write_req;
    SteadyTime paused_until{};  // PauseReading: read again then
    // limits.write_timeout: when the kernel last took any of `writing`, and how much libuv still held then.
    SteadyTime write_since{};
    size_t write_queued = 0;
  };
  Spill& spill() {
    if (!spill_) spill_ = std::make_unique<Spill>();
    return *spill_;
  }

  // First, so they share the padding after dirty_ and pump_scheduled_ (one Connection per client).
  bool close_after_flush_ = false;
  bool closing_ = false;
  bool attached_ = false;
  bool lingering_ = false;
  bool read_paused_ = false;  // PauseReading: not reading the socket until paused_until_
  bool address_counted_ = false;  // admitted with AddressLimiter's kOk: released (by peer_) at close
  // The worker is the loop's (uv_loop_t::data): one pointer less per connection.
  Worker& worker() const { return *static_cast<Worker*>(tcp_.loop->data); }
  uv_tcp_t tcp_;
  Link* link_;  // owned by client_ (and by the session while bound)
  broker::Client client_;
  std::string peer_;
  std::string out_;  // appended by the client this iteration
  std::unique_ptr<Spill> spill_;
  std::unique_ptr<FilterStack> filters_;  // TLS / WebSocket listeners only; out_ passes through it to its wire()
  ListenerShared* listener_ = nullptr;
  const ListenerShared* origin_ = nullptr;  // always set by the worker (listener_ only under a limit)
  SteadyTime linger_until_{};
};

}  // namespace parley::net
