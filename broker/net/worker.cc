#include "broker/net/worker.h"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <cerrno>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "broker/net/connection.h"
#include "broker/net/overload.h"
#include "broker/net/server.h"

namespace parley::net {

namespace {
constexpr uint64_t kTickMs = 1000;
constexpr uint64_t kBrokerTickMs = 200;
constexpr uint64_t kShutdownGraceMs = 2000;
}  // namespace

Worker::Worker(broker::Broker& broker, int index)
    : broker_(broker), index_(index), read_buffer_(new char[kReadBufferSize]) {
  ReopenReserve();
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    fd_limit_ = rl.rlim_cur;
    fd_warn_at_ = fd_limit_ - fd_limit_ / 20;
  }
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &async_, &Worker::OnAsync);
  async_.data = this;
  uv_prepare_init(&loop_, &prepare_);
  prepare_.data = this;
  uv_timer_init(&loop_, &tick_);
  tick_.data = this;
  uv_timer_init(&loop_, &broker_tick_);
  broker_tick_.data = this;
  uv_timer_init(&loop_, &shutdown_timer_);
  shutdown_timer_.data = this;
  uv_timer_init(&loop_, &resume_timer_);
  resume_timer_.data = this;
}

Worker::~Worker() {
  Join();
  // A worker that never ran (startup failed after the Server was built) still has its handles open,
  // and uv_loop_close refuses a busy loop, leaking what uv_loop_init allocated. Close them first; after
  // a normal run the thread already did this and nothing is left.
  uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

bool Worker::AddListenFd(int fd, ListenerShared* shared, std::string* error) {
  auto h = std::make_unique<Listener>();
  h->worker = this;
  h->shared = shared;
  uv_tcp_init(&loop_, &h->tcp);
  h->tcp.data = h.get();
  int r = uv_tcp_open(&h->tcp, fd);
  if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&h->tcp), SOMAXCONN, &Worker::OnConnection);
  if (r != 0) {
    *error = uv_strerror(r);
    uv_close(reinterpret_cast<uv_handle_t*>(&h.release()->tcp), [](uv_handle_t* x) { delete static_cast<Listener*>(x->data); });
    return false;
  }
  h->spare = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // -1 if none is left: this listener then cannot pause
  listeners_.push_back(std::move(h));
  return true;
}

void Worker::PauseListener(Listener* l) {
  if (l->spare < 0) return;  // nothing to resume from: libuv keeps retrying (and the tick keeps warning)
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
    if (it->get() != l) continue;
    paused_.push_back(Paused{l->spare, l->shared});
    l->spare = -1;
    spdlog::error("listener {}: out of file descriptors, even to refuse connections: paused until some are free",
                  l->shared->name);
    // Closing the handle from its own callback ends libuv's accept loop; the socket stays open (the spare).
    uv_close(reinterpret_cast<uv_handle_t*>(&it->release()->tcp),
             [](uv_handle_t* x) { delete static_cast<Listener*>(x->data); });
    listeners_.erase(it);
    return;
  }
}

void Worker::ResumeListeners() {
  if (paused_.empty() || shutting_down_ || reserve_fd_ < 0) return;
  std::vector<Paused> paused;
  paused.swap(paused_);
  for (const Paused& p : paused) {
    std::string error;
    if (AddListenFd(p.fd, p.shared, &error)) {
      spdlog::warn("listener {}: accepting connections again", p.shared->name);
    } else {
      spdlog::error("listener {}: cannot listen again: {}", p.shared->name, error);
    }
  }
}

void Worker::Start() {
  uv_prepare_start(&prepare_, &Worker::OnPrepare);
  uv_timer_start(&tick_, &Worker::OnTick, kTickMs, kTickMs);
  if (index_ == 0) uv_timer_start(&broker_tick_, &Worker::OnBrokerTick, kBrokerTickMs, kBrokerTickMs);
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
    uv_run(&loop_, UV_RUN_DEFAULT);
    {
      // From now on posts are dropped: the async handle is about to close, and other threads (the storage
      // thread completing acks, publishers waking sessions) may still try to reach this loop.
      std::lock_guard lock(post_mu_);
      stopped_ = true;
    }
    // Close whatever is left so uv_loop_close succeeds.
    uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

// uv_async_send is called with post_mu_ held so that it can never race with the handle's close (stopped_).
void Worker::Post(std::function<void()> fn) {
  std::lock_guard lock(post_mu_);
  if (stopped_) return;
  posted_.push_back(std::move(fn));
  uv_async_send(&async_);
}

void Worker::PostWake(std::shared_ptr<Link> link) {
  std::lock_guard lock(post_mu_);
  if (stopped_) return;
  const bool first = posted_.empty() && wakes_.empty();
  wakes_.push_back(std::move(link));
  if (first) uv_async_send(&async_);
}

void Worker::Shutdown() {
  Post([this] { BeginShutdown(); });
}

void Worker::OnAsync(uv_async_t* h) { static_cast<Worker*>(h->data)->DrainPosted(); }

void Worker::DrainPosted() {
  {
    std::lock_guard lock(post_mu_);
    run_tasks_.swap(posted_);
    run_wakes_.swap(wakes_);
  }
  for (auto& link : run_wakes_)
    if (link->conn_) SchedulePump(link->conn_);
  run_wakes_.clear();
  for (auto& fn : run_tasks_) fn();
  run_tasks_.clear();
}

void Worker::SchedulePump(Connection* c) {
  if (c->pump_scheduled_) return;
  c->pump_scheduled_ = true;
  pumps_.push_back(c);
}

namespace {
// How often paused connections are checked: rate limits resume within this much of their time.
constexpr uint64_t kResumeCheckMs = 5;
}  // namespace

void Worker::SchedulePausedRead(Connection* c) {
  paused_reads_.push_back(c);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&resume_timer_)))
    uv_timer_start(&resume_timer_, &Worker::OnResumeReads, kResumeCheckMs, kResumeCheckMs);
}

void Worker::OnResumeReads(uv_timer_t* h) {
  auto* w = static_cast<Worker*>(h->data);
  const SteadyTime now = std::chrono::steady_clock::now();
  // ResumeReading may pause the connection again (it appends to paused_reads_): walk a snapshot.
  std::vector<Connection*>& due = w->resuming_;
  due.clear();
  auto& list = w->paused_reads_;
  size_t keep = 0;
  for (Connection* c : list) {
    if (!c) continue;
    if (c->paused_until() <= now) due.push_back(c);
    else list[keep++] = c;
  }
  list.resize(keep);
  // Connections are freed only from their close callbacks (a later loop iteration), so every pointer in
  // `due` stays valid while this loop runs, whatever ResumeReading does.
  for (Connection* c : due) c->ResumeReading();
  due.clear();
  if (w->paused_reads_.empty()) uv_timer_stop(&w->resume_timer_);
}

void Worker::MarkDirty(Connection* c) {
  if (c->dirty_) return;
  c->dirty_ = true;
  dirty_.push_back(c);
}

// Once per loop iteration, before the loop blocks: deliver what sessions queued, then write every
// connection that has output — one write per connection per iteration (Valkey's beforeSleep).
void Worker::OnPrepare(uv_prepare_t* h) {
  auto* w = static_cast<Worker*>(h->data);
  // A flush that drained a blocked connection schedules another pump; a few rounds, then let the
  // loop poll sockets again (an async to ourselves keeps it from blocking with work pending).
  for (int round = 0; round < 4; ++round) {
    while (!w->pumps_.empty()) {
      w->pumping_.swap(w->pumps_);
      for (Connection* c : w->pumping_) {
        if (!c) continue;
        c->pump_scheduled_ = false;
        c->client().Pump();
        w->MarkDirty(c);
      }
      w->pumping_.clear();
    }
    w->flushing_.swap(w->dirty_);
    for (Connection* c : w->flushing_) {
      if (!c) continue;
      c->dirty_ = false;
      c->Flush();
    }
    w->flushing_.clear();
    if (w->pumps_.empty() && w->dirty_.empty()) return;
  }
  uv_async_send(&w->async_);
}

void Worker::OnTick(uv_timer_t* h) {
  auto* w = static_cast<Worker*>(h->data);
  // Event-loop lag: how much later than its period this timer fired (the loop was busy that long).
  uv_update_time(&w->loop_);
  const uint64_t now_ms = uv_now(&w->loop_);
  const uint64_t late = w->last_tick_ms_ && now_ms > w->last_tick_ms_ + kTickMs ? now_ms - w->last_tick_ms_ - kTickMs : 0;
  w->last_lag_ms_.store(static_cast<int64_t>(late), std::memory_order_relaxed);
  w->last_tick_at_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  if (w->overload_) {
    w->overload_->ReportLag(w->index_, std::chrono::milliseconds(late));
    if (w->index_ == 0) w->overload_->Evaluate();
  }
  if (w->index_ == 0 && ++w->ticks_ % 10 == 0) {
    // Idle entries of the admission tables: addresses with no connection and a full bucket, quiet client ids.
    const auto& g = w->broker_.guards();
    const auto now = std::chrono::steady_clock::now();
    if (g.addresses) g.addresses->Sweep(now);
    if (g.flaps) g.flaps->Sweep(now);
  }
  w->last_tick_ms_ = now_ms;
  w->ReopenReserve();  // lost when another thread took the descriptor a shed freed
  w->ResumeListeners();
  for (Connection* c = w->head_; c;) {
    Connection* next = c->next_;
    c->OnTick();
    c = next;
  }
}

void Worker::OnBrokerTick(uv_timer_t* h) {
  auto* w = static_cast<Worker*>(h->data);
  w->broker_.Tick(w->index_);
}

void Worker::OnConnection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  Worker* w = l->worker;
  if (w->shutting_down_) return;
  if (status < 0) {
    // Out of descriptors, libuv calls back again and again while the connection waits in the backlog
    // (its own reserve-descriptor trick needs a descriptor it may not have had): shed the backlog here.
    const bool out_of_fds = status == UV_EMFILE || status == UV_ENFILE;
    uint64_t shed = 0;
    const bool shed_ok = out_of_fds && w->ShedBacklog(server, &shed);
    w->WarnAcceptTrouble(l, std::string("cannot accept connections: ") + uv_strerror(status) + "; " +
                                std::to_string(shed) + " pending connections closed");
    if (out_of_fds && !shed_ok) w->PauseListener(l);  // l may be gone now
    return;
  }
  auto* c = new Connection(*w);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(c->handle())) != 0) {
    c->CloseNow();
    return;
  }
  // Out of file descriptors, libuv's own spare-descriptor trick (when it has its spare) accepts and closes
  // pending connections without telling us, so warn while descriptors run short as well.
  uv_os_fd_t fd = -1;
  if (w->fd_warn_at_ && uv_fileno(reinterpret_cast<uv_handle_t*>(c->handle()), &fd) == 0 &&
      static_cast<uint64_t>(fd) >= w->fd_warn_at_)
    w->WarnAcceptTrouble(l, "file descriptor " + std::to_string(fd) + " in use, near the open-file limit of " +
                                std::to_string(w->fd_limit_) + ": connections beyond it are refused");
  if (!c->Admit()) {
    c->CloseNow();  // a ban or a per-address limit: closed before a byte is read
    return;
  }
  // Over the listener's or the broker's connection limit: accepted only to be closed at once (before
  // CONNECT there is no protocol version to answer in). Counted across workers; released by OnClose.
  ListenerShared* shared = l->shared;
  ConnectionBudget* total = shared->total;
  if (shared->max_connections || (total && total->max)) {
    const uint32_t here = shared->active.fetch_add(1, std::memory_order_relaxed);
    const uint32_t all = total ? total->active.fetch_add(1, std::memory_order_relaxed) : 0;
    c->set_listener(shared);
    if (shared->max_connections && here >= shared->max_connections) {
      w->broker_.counters(w->index_).Refused(broker::RefusalCause::kConnectionLimit);
      w->WarnRefused(c->PeerAddressString(), "listener " + shared->name + " holds its limit of " +
                                                 std::to_string(shared->max_connections) + " connections");
      c->CloseNow();
      return;
    }
    if (total && total->max && all >= total->max) {
      w->broker_.counters(w->index_).Refused(broker::RefusalCause::kConnectionLimit);
      w->WarnRefused(c->PeerAddressString(), "the broker holds its limit of " + std::to_string(total->max) +
                                                 " connections (limits.max_connections)");
      c->CloseNow();
      return;
    }
  }
  c->set_origin(shared);
  if (shared->protocol != ListenerProtocol::kMqtt) c->SetFilters(shared->MakeFilters());
  c->Start();
}

bool Worker::ShedBacklog(uv_stream_t* server, uint64_t* shed_count) {
  if (shed_count) *shed_count = 0;
  uv_os_fd_t lfd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(server), &lfd) != 0) return true;  // closing: nothing to shed
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);  // one descriptor to accept with
    reserve_fd_ = -1;
  }
  uint64_t shed = 0;
  bool stuck = false;
  for (int i = 0; i < 65536; ++i) {  // bounded: a flood must not keep the loop here
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: the backlog is empty. EMFILE/ENFILE: not even one descriptor (another thread took the
      // reserve's): the caller pauses the listener.
      stuck = errno == EMFILE || errno == ENFILE;
      break;
    }
    ::close(fd);
    ++shed;
  }
  ReopenReserve();
  if (shed_count) *shed_count = shed;
  return !stuck;
}

void Worker::ReopenReserve() {
  if (reserve_fd_ < 0) reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Worker::WarnAcceptTrouble(const Listener* l, const std::string& what) {
  // Once a second at most, with how many were not logged, so a flood neither goes unnoticed nor floods the log.
  ++accept_trouble_;
  const auto now = std::chrono::steady_clock::now();
  if (now - accept_trouble_logged_ < std::chrono::seconds(1)) return;
  spdlog::warn("listener {}: {} ({} such events since the last warning)", l->shared->name, what, accept_trouble_);
  accept_trouble_ = 0;
  accept_trouble_logged_ = now;
}

void Worker::WarnRefused(const std::string& peer, const std::string& why) {
  ++refused_;
  const auto now = std::chrono::steady_clock::now();
  if (now - refused_logged_ < std::chrono::seconds(1)) return;
  spdlog::warn("refused a connection from {}: {} ({} refused since the last warning)", peer, why, refused_);
  refused_ = 0;
  refused_logged_ = now;
}

void Worker::Attach(Connection* c) {
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  ++connection_count_;
}

void Worker::Detach(Connection* c) {
  if (c->prev_) c->prev_->next_ = c->next_;
  else head_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --connection_count_;
  // Drop stale pointers from this iteration's work lists.
  for (auto& p : pumps_) if (p == c) p = nullptr;
  for (auto& d : dirty_) if (d == c) d = nullptr;
  for (auto& p : pumping_) if (p == c) p = nullptr;
  for (auto& d : flushing_) if (d == c) d = nullptr;
  for (auto& r : paused_reads_) if (r == c) r = nullptr;
  MaybeFinishShutdown();
}

void Worker::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& l : listeners_) {
    if (l->spare >= 0) ::close(l->spare);
    uv_close(reinterpret_cast<uv_handle_t*>(&l.release()->tcp), [](uv_handle_t* x) { delete static_cast<Listener*>(x->data); });
  }
  listeners_.clear();
  for (const Paused& p : paused_) ::close(p.fd);
  paused_.clear();
  for (Connection* c = head_; c; c = c->next_) {
    c->client().OnShutdown();
    MarkDirty(c);
  }
  // Clients that do not read their DISCONNECT are closed after a grace period.
  uv_timer_start(&shutdown_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Worker*>(t->data);
    for (Connection* c = self->head_; c;) {
      Connection* next = c->next_;
      c->CloseNow();
      c = next;
    }
  }, kShutdownGraceMs, 0);
  MaybeFinishShutdown();
}

void Worker::MaybeFinishShutdown() {
  if (!shutting_down_ || connection_count_ > 0) return;
  uv_stop(&loop_);
}

}  // namespace parley::net
