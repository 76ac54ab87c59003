#include "tools/bench/conn.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>

#include "tools/bench/control.h"
#include "tools/bench/reasons.h"
#include "tools/bench/worker.h"

namespace parley::bench {

namespace {
uv_stream_t* Stream(uv_tcp_t* t) { return reinterpret_cast<uv_stream_t*>(t); }
}  // namespace

Conn::Conn(Worker* worker, std::string client_id)
    : worker_(worker), version_(worker->config().version), client_id_(std::move(client_id)) {}

const RunConfig& Conn::config() const { return worker_->config(); }

void Conn::Start() {
  started_ = true;
  state_ = State::kConnecting;
  in_.clear();
  out_.clear();
  connect_start_ns_ = uv_hrtime();
  uv_tcp_init(worker_->loop(), &tcp_);
  tcp_.data = this;
  handle_open_ = true;
  connect_req_.data = this;
  if (!config().sources.empty()) {
    if (int r = BindSource(); r < 0) {
      Lose(uv_err_name(r), "cannot bind to source address " + source_name() + ": " + uv_strerror(r));
      return;
    }
  }
  int r = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&config().addr), &OnConnectCb);
  if (r < 0) {
    Lose(uv_err_name(r), "cannot connect to " + config().target +
                             (source_ >= 0 ? " from " + source_name() : std::string()) + ": " + uv_strerror(r));
  }
}

int Conn::BindSource() {
  const auto& srcs = config().sources;
  if (source_ < 0) source_ = worker_->control().next_source.fetch_add(1) % srcs.size();
  const sockaddr_storage& a = srcs[static_cast<size_t>(source_)];
  int fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // Best effort (Linux >= 4.2): without it bind() picks the port, and ports are then unique per source
  // address over all destinations.
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (int r = uv_tcp_open(&tcp_, fd); r < 0) {
    close(fd);
    return r;
  }
  return uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&a), 0);
}

std::string Conn::source_name() const {
  return source_ < 0 ? std::string() : config().source_names[static_cast<size_t>(source_)];
}

void Conn::OnConnectCb(uv_connect_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (c->state_ != State::kConnecting) return;  // closed meanwhile (status is then UV_ECANCELED)
  if (status < 0) {
    c->Lose(uv_err_name(status), "cannot connect to " + c->config().target +
                                     (c->source_ >= 0 ? " from " + c->source_name() : std::string()) + ": " +
                                     uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  int r = uv_read_start(Stream(&c->tcp_), &OnAllocCb, &OnReadCb);
  if (r < 0) {
    c->Lose(uv_err_name(r), std::string("read: ") + uv_strerror(r));
    return;
  }
  mqtt::Connect pkt;
  pkt.version = c->version_;
  pkt.client_id = c->client_id_;
  pkt.keep_alive = c->config().keep_alive;
  c->keep_alive_ = pkt.keep_alive;
  c->PrepareConnect(&pkt);
  c->state_ = State::kHandshake;
  c->Send(pkt);
  c->Flush();
}

void Conn::OnAllocCb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(h->data);
  *buf = uv_buf_init(c->worker_->read_buffer(), static_cast<unsigned>(c->worker_->read_buffer_size()));
}

void Conn::OnReadCb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  static_cast<Conn*>(s->data)->OnRead(n, buf->base);
}

void Conn::OnRead(ssize_t n, const char* data) {
  if (n < 0) {
    if (state_ == State::kReconnecting || state_ == State::kClosing || state_ == State::kClosed) {
      CloseHandle();  // the broker closed after our DISCONNECT, as it must
      return;
    }
    if (n == UV_EOF) {
      if (state_ == State::kHandshake) {
        Lose("closed by the broker before CONNACK", "the broker closed the connection before CONNACK");
      } else {
        Lose("closed by the broker", "the broker closed the connection");
      }
    } else {
      Lose(uv_err_name(static_cast<int>(n)), std::string("read: ") + uv_strerror(static_cast<int>(n)));
    }
    return;
  }
  if (n == 0 || state_ == State::kClosing || state_ == State::kReconnecting) return;
  size_t len = static_cast<size_t>(n);
  bytes_read_ += len;
  if (in_.empty()) {
    size_t used = Consume(data, len);
    if (used == SIZE_MAX) return;
    if (used < len) in_.assign(data + used, len - used);
  } else {
    in_.append(data, len);
    size_t used = Consume(in_.data(), in_.size());
    if (used == SIZE_MAX) return;
    in_.erase(0, used);
  }
  Flush();
}

size_t Conn::Consume(const char* data, size_t n) {
  mqtt::DecodeOptions opts;
  opts.version = version_;
  size_t off = 0;
  while (off < n) {
    mqtt::Packet p;
    auto in = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data) + off, n - off);
    mqtt::DecodeResult r = mqtt::Decode(in, opts, &p);
    if (r.status == mqtt::DecodeStatus::kNeedMore) break;
    if (r.status == mqtt::DecodeStatus::kError) {
      Fail(std::string("malformed packet from the broker (") + ReasonText(r.reason) + ": " + r.detail + ")");
      return SIZE_MAX;
    }
    off += r.consumed;
    Handle(p);
    if (state_ != State::kHandshake && state_ != State::kOpen) return SIZE_MAX;  // closing or reconnecting
  }
  return off;
}

void Conn::Handle(mqtt::Packet& p) {
  mqtt::PacketType type = mqtt::TypeOf(p);
  if (state_ == State::kHandshake) {
    if (type != mqtt::PacketType::kConnack) {
      Fail(std::string("expected CONNACK, got ") + mqtt::PacketTypeName(type));
      return;
    }
    const auto& ack = std::get<mqtt::Connack>(p);
    if (ack.reason_code != 0) {
      std::string code =
          "CONNACK " + (version_ == mqtt::Version::kV5 ? ReasonText(ack.reason_code) : ConnackText311(ack.reason_code));
      Lose(code, "the broker refused the connection: " + code +
                     (ack.props.reason_string ? " (" + *ack.props.reason_string + ")" : ""));
      return;
    }
    if (ack.props.receive_maximum) server_receive_max_ = *ack.props.receive_maximum;
    if (ack.props.maximum_qos) server_max_qos_ = *ack.props.maximum_qos;
    if (ack.props.server_keep_alive) keep_alive_ = *ack.props.server_keep_alive;
    state_ = State::kOpen;
    OnConnack(ack);
    return;
  }
  switch (type) {
    case mqtt::PacketType::kPingresp:
      ++pingresps_;
      return;
    case mqtt::PacketType::kDisconnect: {
      const auto& d = std::get<mqtt::Disconnect>(p);
      std::string code = "DISCONNECT " + ReasonText(d.reason_code);
      Lose(code, "the broker sent " + code + (d.props.reason_string ? " (" + *d.props.reason_string + ")" : ""));
      return;
    }
    default:
      OnPacket(p);
  }
}

void Conn::SubscribeOne(const std::string& filter, uint8_t qos) {
  mqtt::Subscribe sub;
  sub.packet_id = 1;
  mqtt::Subscription s;
  s.filter = filter;
  s.opts.qos = qos;
  sub.subscriptions.push_back(std::move(s));
  Send(sub);
}

void Conn::Send(const mqtt::Packet& p) {
  if (mqtt::Encode(p, version_, &out_) == 0) {
    Fail(std::string("cannot encode ") + mqtt::PacketTypeName(mqtt::TypeOf(p)));
  }
}

void Conn::SendPublish(const mqtt::PublishOut& p) {
  if (mqtt::EncodePublish(p, version_, &out_) == 0) Fail("cannot encode PUBLISH");
}

void Conn::Flush() {
  if (write_pending_ || !handle_open_ || state_ == State::kConnecting || state_ == State::kClosed) return;
  if (out_.empty() || uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) return;
  last_write_ns_ = uv_hrtime();
  uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int r = uv_try_write(Stream(&tcp_), &b, 1);
  if (r >= 0 && static_cast<size_t>(r) == out_.size()) {
    out_.clear();
    return;
  }
  if (r < 0 && r != UV_EAGAIN) {
    Lose(uv_err_name(r), std::string("write: ") + uv_strerror(r));
    return;
  }
  // The kernel took part or none of it: hand the rest to uv_write, which waits for the socket.
  out_.erase(0, r > 0 ? static_cast<size_t>(r) : 0);
  writing_.swap(out_);
  out_.clear();
  b = uv_buf_init(writing_.data(), static_cast<unsigned>(writing_.size()));
  write_req_.data = this;
  r = uv_write(&write_req_, Stream(&tcp_), &b, 1, &OnWriteCb);
  if (r < 0) {
    Lose(uv_err_name(r), std::string("write: ") + uv_strerror(r));
    return;
  }
  write_pending_ = true;
}

void Conn::OnWriteCb(uv_write_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  c->write_pending_ = false;
  c->writing_.clear();
  if (status < 0) {
    if (status != UV_ECANCELED) c->Lose(uv_err_name(status), std::string("write: ") + uv_strerror(status));
    return;
  }
  c->Flush();
}

void Conn::KeepAlive(uint64_t now_ns) {
  uint64_t limit = config().handshake_timeout_ns;
  if (limit > 0 && !handshake_reported_ && now_ns - connect_start_ns_ > limit) {
    AbandonHandshake("timeout");
    return;
  }
  if (state_ != State::kOpen || keep_alive_ == 0) return;
  if (now_ns - last_write_ns_ < uint64_t{keep_alive_} * 500'000'000) return;
  Send(mqtt::Pingreq{});
  ++pings_sent_;
  Flush();
}

void Conn::AbandonHandshake(const std::string& why) {
  if (handshake_reported_) return;
  if (state_ != State::kConnecting && state_ != State::kHandshake && state_ != State::kOpen) return;
  Lose(why, "gave up connecting: " + why);
}

void Conn::HandshakeDone() {
  if (handshake_reported_) return;
  handshake_reported_ = true;
  worker_->OnHandshakeDone(this);
}

void Conn::Reconnect() {
  state_ = State::kReconnecting;
  Send(mqtt::Disconnect{});
  Flush();
}

void Conn::Close() {
  switch (state_) {
    case State::kIdle:
      state_ = State::kClosed;
      worker_->OnConnClosed(this, false);
      return;
    case State::kClosing:
    case State::kClosed:
      return;
    case State::kOpen: {
      state_ = State::kClosing;
      mqtt::Disconnect d;
      PrepareDisconnect(&d);
      Send(d);
      // The broker closes on DISCONNECT; OnRead closes our side at its EOF (or the worker's close timer
      // does), so we never reset a connection the broker is still reading.
      Flush();
      return;
    }
    default:
      state_ = State::kClosing;
      CloseHandle();
  }
}

void Conn::ForceClose() {
  if (state_ == State::kIdle) {
    Close();
    return;
  }
  if (state_ == State::kClosed) return;
  state_ = State::kClosing;
  CloseHandle();
}

void Conn::Fail(const std::string& msg) {
  worker_->control().Fail(client_id_ + ": " + msg);
  ForceClose();
}

void Conn::Lose(const std::string& key, const std::string& msg) {
  if (Tolerate(key)) {
    ForceClose();
    return;
  }
  Fail(msg);
}

void Conn::CloseHandle() {
  if (!handle_open_ || uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &OnCloseCb);
}

void Conn::OnCloseCb(uv_handle_t* h) {
  auto* c = static_cast<Conn*>(h->data);
  c->handle_open_ = false;
  c->write_pending_ = false;
  c->writing_.clear();
  if (c->state_ == State::kReconnecting) {
    Control& ctl = c->worker_->control();
    if (!ctl.failed() && ctl.phase() == Phase::kSetup) {
      c->Start();
      return;
    }
  }
  c->state_ = State::kClosed;
  c->worker_->OnConnClosed(c, !c->handshake_reported_);
}

}  // namespace parley::bench
