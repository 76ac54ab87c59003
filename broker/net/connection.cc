#include "broker/net/connection.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "broker/guard/ip_address.h"

#include "broker/net/filter_stack.h"
#include "broker/net/server.h"
#include "broker/net/worker.h"

namespace parley::net {

void Link::Wake() {
  if (worker_.OnLoopThread()) {
    if (conn_) worker_.SchedulePump(conn_);
    return;
  }
  worker_.PostWake(shared_from_this());
}

void Link::Kick(uint8_t reason) {
  auto self = shared_from_this();
  worker_.Post([self, reason] {
    if (!self->conn_) return;
    self->conn_->client().OnKick(reason);
    self->conn_->Flush();
  });
}

Connection::Connection(Worker& worker) : Connection(worker, std::make_shared<Link>(worker)) {}

Connection::Connection(Worker& worker, std::shared_ptr<Link> link)
    : link_(link.get()), client_(worker.broker(), *this, std::move(link), worker.index()) {
  uv_tcp_init(worker.loop(), &tcp_);
  tcp_.data = this;
}

Connection::~Connection() = default;

void Connection::SetFilters(std::vector<std::unique_ptr<Filter>> filters) {
  if (filters.empty()) return;
  filters_ = std::make_unique<FilterStack>(std::move(filters), [this](std::span<const uint8_t> bytes) {
    ConsumeMqtt(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });
}

size_t Connection::PendingOutBytes() const {
  return out_.size() + (filters_ ? filters_->wire().size() : 0) + (spill_ ? spill_->writing.size() : 0);
}

std::string_view Connection::CertificateIdentity() const {
  return filters_ ? filters_->peer_identity() : std::string_view();
}

broker::ListenerInfo Connection::Listener() const {
  if (!origin_) return {};
  return broker::ListenerInfo{origin_->index, origin_->name, ListenerProtocolName(origin_->protocol)};
}

bool Connection::Admit() {
  sockaddr_storage ss{};
  int len = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  const bool known = uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
  if (known) {
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      uv_ip4_name(a, host, sizeof(host));
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      uv_ip6_name(a, host, sizeof(host));
      port = ntohs(a->sin6_port);
    }
  }
  peer_ = ss.ss_family == AF_INET6 ? "[" + std::string(host) + "]:" + std::to_string(port)
                                   : std::string(host) + ":" + std::to_string(port);
  const broker::Broker::Guards& guards = worker().broker().guards();
  if (!known || (!guards.bans && !guards.addresses)) return true;
  const auto address = broker::guard::IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss),
                                                              static_cast<socklen_t>(len));
  if (!address) return true;
  if (guards.bans && guards.bans->size()) {
    if (auto ban = guards.bans->CheckAddress(*address, worker().broker().clock().UnixMillis())) {
      worker().broker().counters(worker().index()).Refused(broker::RefusalCause::kBanned);
      worker().WarnRefused(peer_, std::string("banned address ") + ban->value +
                                      (ban->reason.empty() ? "" : " (" + ban->reason + ")"));
      return false;
    }
  }
  if (guards.addresses) {
    const auto a = guards.addresses->Admit(*address, std::chrono::steady_clock::now());
    if (!broker::guard::Admitted(a)) {
      worker().broker().counters(worker().index()).Refused(broker::RefusalCause::kAddressLimit);
      worker().WarnRefused(peer_, broker::guard::AdmissionName(a));
      return false;
    }
    address_counted_ = a == broker::guard::Admission::kOk;
  }
  return true;
}

void Connection::Start() {
  uv_tcp_nodelay(&tcp_, 1);
  link_->conn_ = this;
  worker().Attach(this);
  attached_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &Connection::OnAlloc, &Connection::OnRead);
}

std::string& Connection::OutBuffer() {
  worker().MarkDirty(this);
  return out_;
}

void Connection::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  // One read buffer per worker: bytes are decoded straight from it; only an incomplete packet's
  // start is copied into the connection's carry-over buffer.
  buf->base = c->worker().read_buffer();
  buf->len = Worker::kReadBufferSize;
}

void Connection::OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  if (n > 0) {
    c->Consume(buf->base, static_cast<size_t>(n));
  } else if (n < 0) {
    c->CloseNow();  // EOF or error
  }
}

void Connection::Consume(const char* data, size_t n) {
  if (closing_ || close_after_flush_) return;
  if (!filters_) return ConsumeMqtt(data, n);
  const Status st = filters_->Input(std::span(reinterpret_cast<const uint8_t*>(data), n));
  if (!filters_->wire().empty()) worker().MarkDirty(this);  // a handshake reply, a pong, an alert
  if (!st.ok() && !closing_ && !close_after_flush_) {
    // The filter has queued what the peer should read (an HTTP error, a TLS alert, a close frame): send it,
    // then close. For the MQTT client this is the network going away (its will is published).
    spdlog::debug("closing {} ({}): {}", client_.client_id(), peer_, st.message());
    CloseAfterFlush();
  }
}

void Connection::PauseReading(SteadyTime until) {
  if (closing_) return;
  spill().paused_until = until;  // kept with the unread bytes: an idle connection carries neither
  if (read_paused_) return;
  read_paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  worker().SchedulePausedRead(this);
}

void Connection::ResumeReading() {
  if (!read_paused_ || closing_) return;
  read_paused_ = false;
  if (!lingering_) uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &Connection::OnAlloc, &Connection::OnRead);
  if (spill_ && !spill_->in.empty()) ConsumeMqtt(nullptr, 0);  // what the client left unread; may pause again
  worker().MarkDirty(this);
}

void Connection::ConsumeMqtt(const char* data, size_t n) {
  if (closing_ || close_after_flush_) return;
  if (read_paused_) {
    // Over its rate: bytes a filter still decodes from the last read wait with the rest.
    if (n) spill().in.append(data, n);
    return;
  }
  if (!spill_ || spill_->in.empty()) {
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(data), n);
    size_t used = client_.OnData(bytes);
    if (used < n) spill().in.assign(data + used, n - used);
  } else {
    std::string& in = spill_->in;
    if (n) in.append(data, n);
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(in.data()), in.size());
    size_t used = client_.OnData(bytes);
    in.erase(0, used);
    if (in.empty()) in.shrink_to_fit();
  }
}

void Connection::Flush() {
  if (closing_) return;
  if (filters_) {
    // The client's bytes become records / frames in the wire buffer; a closing connection says goodbye at
    // each layer (WebSocket close frame, TLS close_notify) after its last MQTT bytes.
    if (!out_.empty()) {
      (void)filters_->Output(out_);  // an error was logged by Consume, or the connection is closing anyway
      out_.clear();
    }
    if (close_after_flush_) filters_->Close();
  }
  std::string& pending = filters_ ? filters_->wire() : out_;
  if (spill_ && !spill_->writing.empty()) {
    // OnWrite flushes the rest. Meanwhile the output keeps growing: the limit applies to both buffers, or a
    // reader that stalls while a write is outstanding would never be cut.
    CutIfOverLimit();
    return;
  }
  if (pending.empty()) {
    if (close_after_flush_) BeginLinger();
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  uv_buf_t b = uv_buf_init(pending.data(), static_cast<unsigned>(pending.size()));
  int r = uv_try_write(stream, &b, 1);
  if (r == static_cast<int>(pending.size())) {
    pending.clear();
    if (pending.capacity() > 64 * 1024) pending.shrink_to_fit();
    if (close_after_flush_) BeginLinger();
    else if (client_.output_blocked()) worker().SchedulePump(this);  // room again
    return;
  }
  if (r < 0 && r != UV_EAGAIN) {
    CloseNow();
    return;
  }
  const size_t sent = r > 0 ? static_cast<size_t>(r) : 0;
  Spill& sp = spill();
  sp.writing.assign(pending, sent);
  sp.write_since = std::chrono::steady_clock::now();
  sp.write_queued = sp.writing.size();
  pending.clear();
  if (CutIfOverLimit()) return;
  sp.write_req.data = this;
  b = uv_buf_init(sp.writing.data(), static_cast<unsigned>(sp.writing.size()));
  if (uv_write(&sp.write_req, stream, &b, 1, &Connection::OnWrite) != 0) {
    sp.writing.clear();  // no write outstanding: OnTick may release the spill
    CloseNow();
  }
}

bool Connection::CutIfOverLimit() {
  if (PendingOutBytes() <= worker().broker().options().max_outbound_buffer) return false;
  // The client's disconnect line says why (reason=outbound_buffer); the figure is for debugging.
  spdlog::debug("closing {} ({}): not reading, {} bytes pending", client_.client_id(), peer_, PendingOutBytes());
  client_.NoteCloseReason(broker::DisconnectCause::kOutboundBuffer, "not reading: over limits.max_outbound_buffer");
  CloseNow();
  return true;
}

void Connection::OnWrite(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  std::string& writing = c->spill_->writing;
  writing.clear();
  if (writing.capacity() > 64 * 1024) writing.shrink_to_fit();
  if (status < 0) {
    c->CloseNow();
    return;
  }
  if (c->closing_) return;
  if (c->client_.output_blocked()) c->worker().SchedulePump(c);  // the output drained
  if (!c->out_.empty() || c->close_after_flush_ || (c->filters_ && !c->filters_->wire().empty()))
    c->worker().MarkDirty(c);
}

namespace {
constexpr auto kLinger = std::chrono::seconds(2);
}  // namespace

void Connection::BeginLinger() {
  if (lingering_ || closing_) return;
  lingering_ = true;
  if (read_paused_) {  // the linger drains the peer's input, rate limit or not
    read_paused_ = false;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &Connection::OnAlloc, &Connection::OnRead);
  }
  // The MQTT conversation is over (nothing more is read or handled): release the session and publish
  // the will now. Waiting for the close would hold them for the whole linger when the peer is dead
  // (keep alive timeout), which never closes its side. OnClose's later call is a no-op.
  client_.OnClosed();
  linger_until_ = std::chrono::steady_clock::now() + kLinger;
  auto* req = new uv_shutdown_t;
  req->data = this;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), [](uv_shutdown_t* r, int status) {
        delete r;
        // status < 0 also covers a handle closed meanwhile (UV_ECANCELED): nothing more to do.
      }) != 0) {
    delete req;
    CloseNow();
  }
}

void Connection::OnTick() {
  if (closing_) return;
  if (lingering_) {
    if (std::chrono::steady_clock::now() >= linger_until_) CloseNow();
    return;
  }
  if (close_after_flush_) {
    // Still writing its last bytes to a peer that does not read: give up after the linger time.
    if (std::chrono::steady_clock::now() >= linger_until_) CloseNow();
    return;
  }
  // A peer that takes none of a write for write_timeout has stopped reading (or vanished without a FIN): it
  // would otherwise hold its buffers, and its queue, until keep alive notices — if it has one.
  const auto write_timeout = worker().broker().options().write_timeout;
  if (write_timeout.count() > 0 && spill_ && !spill_->writing.empty()) {
    const auto now = std::chrono::steady_clock::now();
    const size_t queued = uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&tcp_));
    if (queued < spill_->write_queued) spill_->write_since = now;  // the peer took some: still reading
    spill_->write_queued = queued;
  }
  if (write_timeout.count() > 0 && spill_ && !spill_->writing.empty() &&
      std::chrono::steady_clock::now() - spill_->write_since > write_timeout) {
    spdlog::debug("closing {} ({}): not reading, a write pending for more than {} ms", client_.client_id(), peer_,
                  write_timeout.count());
    client_.NoteCloseReason(broker::DisconnectCause::kWriteTimeout, "not reading: a write pending past limits.write_timeout");
    CloseNow();
    return;
  }
  client_.OnTick();  // anything it writes or closes marks the connection dirty itself
  ReleaseIdleBuffers();
}

void Connection::ReleaseIdleBuffers() {
  // Between ticks a busy connection empties out_ every loop iteration, so this frees at most one small
  // buffer per connection per second; an idle one drops its last reply's buffer (a v5 CONNACK with
  // properties outgrows the string's inline capacity) and its spill.
  if (out_.empty() && out_.capacity() > std::string().capacity()) std::string().swap(out_);
  if (filters_ && filters_->wire().empty() && filters_->wire().capacity() > std::string().capacity())
    std::string().swap(filters_->wire());
  if (spill_ && spill_->in.empty() && spill_->writing.empty() && !read_paused_) spill_.reset();
}

void Connection::CloseAfterFlush() {
  if (!close_after_flush_) linger_until_ = std::chrono::steady_clock::now() + kLinger;
  close_after_flush_ = true;
  worker().MarkDirty(this);
}

void Connection::CloseNow() {
  if (closing_) return;
  closing_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Connection::OnClose);
}

void Connection::OnClose(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  c->link_->conn_ = nullptr;
  c->client_.OnClosed();
  if (c->listener_) {
    c->listener_->active.fetch_sub(1, std::memory_order_relaxed);
    if (c->listener_->total) c->listener_->total->active.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c->address_counted_) {
    if (auto address = broker::guard::IpAddress::ParsePeer(c->peer_))
      c->worker().broker().guards().addresses->Release(*address);
  }
  if (c->attached_) c->worker().Detach(c);
  delete c;
}

}  // namespace parley::net
