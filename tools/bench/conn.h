// One MQTT client connection on a worker's libuv loop: TCP connect, CONNECT/CONNACK, incremental decode
// of what the broker sends, an output buffer written once per callback, keep alive, DISCONNECT and close.
// Publisher and Subscriber add their roles on top. Every method: the owning worker's loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "broker/codec/codec.h"
#include "broker/codec/packets.h"
#include "tools/bench/control.h"

namespace parley::bench {

class Worker;
struct RunConfig;

class Conn {
 public:
  // `worker` owns this connection and outlives it.
  Conn(Worker* worker, std::string client_id);
  virtual ~Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Starts the TCP connect (from the next --source address, if any). The worker hears back through
  // OnHandshakeDone (ready) or OnConnClosed (failed).
  void Start();
  // Ends the connection: DISCONNECT if the session is up (after what is buffered), then close. Idempotent.
  void Close();
  // Closes the socket now, without DISCONNECT.
  void ForceClose();
  // Every second: sends PINGREQ if nothing was written for half the keep alive (the broker drops a client
  // silent for 1.5 keep alives), and gives up a handshake older than RunConfig::handshake_timeout_ns.
  void KeepAlive(uint64_t now_ns);
  // Gives up a handshake still under way (counted like any other failure, under `why`). No-op once ready.
  void AbandonHandshake(const std::string& why);

  bool open() const { return state_ == State::kOpen; }
  bool closed() const { return state_ == State::kClosed; }
  const std::string& client_id() const { return client_id_; }
  // Bytes read from the socket so far (every packet, all connections of this client).
  uint64_t bytes_read() const { return bytes_read_; }
  // Keep alive traffic so far.
  uint64_t pings_sent() const { return pings_sent_; }
  uint64_t pingresps() const { return pingresps_; }
  // The --source address this client binds to ("" if none).
  std::string source_name() const;
  // When Start() last began a TCP connect (uv_hrtime); 0 if never started.
  uint64_t connect_start_ns() const { return connect_start_ns_; }

  // Clients other than Publisher and Subscriber (added to a worker with Worker::Add(unique_ptr<Conn>)) hear
  // of the run's phases here: kPublish when the run starts, kDrain when it stops sending.
  virtual void OnPhase(Phase) {}
  // Every millisecond during kPublish, for those same clients.
  virtual void OnTick(uint64_t /*now_ns*/) {}

 protected:
  // Fills the role's CONNECT fields (clean start, session expiry). Version and client id are set.
  virtual void PrepareConnect(mqtt::Connect* c) = 0;
  // The broker accepted the session. Call HandshakeDone() once the client is ready to run.
  virtual void OnConnack(const mqtt::Connack& ack) = 0;
  // Any packet after CONNACK, except PINGRESP and DISCONNECT (handled here).
  virtual void OnPacket(mqtt::Packet& p) = 0;
  // Fills the final DISCONNECT (v5 properties).
  virtual void PrepareDisconnect(mqtt::Disconnect*) {}

  void Send(const mqtt::Packet& p);
  // SUBSCRIBE (packet id 1) to one filter.
  void SubscribeOne(const std::string& filter, uint8_t qos);
  void SendPublish(const mqtt::PublishOut& p);
  // Writes out_ (uv_try_write, then uv_write for the rest). Safe to call at any time.
  void Flush();
  // Records a fatal error for the run (prefixed with the client id) and closes.
  void Fail(const std::string& msg);
  // A failure of the connection itself (connect error, CONNACK refusal, the broker closing or disconnecting
  // it, a handshake timeout): fatal for the run (Fail(msg)) unless Tolerate(key) takes it, in which case the
  // connection just closes. `key` is short and groups failures of one kind ("ECONNREFUSED", "CONNACK 0x87
  // Not authorized", "closed by the broker").
  void Lose(const std::string& key, const std::string& msg);
  // Clients that measure failures instead of stopping on them (conns) record `key` and return true.
  virtual bool Tolerate(const std::string& /*key*/) { return false; }
  // Tells the worker this client is ready for the run (once).
  void HandshakeDone();
  // Sends DISCONNECT, waits for the broker to close, then connects again (used to clear an old session).
  void Reconnect();

  const RunConfig& config() const;
  bool write_pending() const { return write_pending_; }
  size_t buffered() const { return out_.size(); }

  Worker* worker_;
  mqtt::Version version_;
  uint16_t server_receive_max_ = 65535;
  uint8_t server_max_qos_ = 2;

 private:
  enum class State : uint8_t {
    kIdle,          // not started
    kConnecting,    // TCP connect under way
    kHandshake,     // CONNECT sent, waiting for CONNACK
    kOpen,          // session up
    kReconnecting,  // DISCONNECT sent, waiting for the broker's close before connecting again
    kClosing,       // DISCONNECT (maybe) sent, closing
    kClosed,
  };

  static void OnConnectCb(uv_connect_t* req, int status);
  static void OnAllocCb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnReadCb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void OnWriteCb(uv_write_t* req, int status);
  static void OnCloseCb(uv_handle_t* h);

  void OnRead(ssize_t n, const char* data);
  // Decodes and handles whole packets from data[0, n); returns bytes consumed, or SIZE_MAX after a failure.
  size_t Consume(const char* data, size_t n);
  void Handle(mqtt::Packet& p);
  void CloseHandle();
  // Binds the socket to this client's --source address (IP_BIND_ADDRESS_NO_PORT: the port is picked at
  // connect time, per destination, so each source address gives a whole ephemeral range per broker).
  // Returns 0 or a libuv error code.
  int BindSource();

  std::string client_id_;
  State state_ = State::kIdle;
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  bool handle_open_ = false;
  bool write_pending_ = false;
  bool handshake_reported_ = false;
  bool started_ = false;
  std::string in_;       // bytes of a partial packet carried to the next read
  std::string out_;      // encoded packets not yet handed to the kernel
  std::string writing_;  // bytes owned by the uv_write in flight
  uint64_t last_write_ns_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t connect_start_ns_ = 0;
  uint64_t pings_sent_ = 0;
  uint64_t pingresps_ = 0;
  int64_t source_ = -1;  // index into RunConfig::sources, taken at the first Start()
  uint16_t keep_alive_ = 0;  // as granted (v5 Server Keep Alive overrides ours)
};

}  // namespace parley::bench
