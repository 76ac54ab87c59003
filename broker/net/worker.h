// One event-loop thread. Owns its connections for their whole life; other threads reach it only by
// posting work (Post / PostWake), which an MPSC queue + uv_async_t hands to the loop.
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "broker/core/broker.h"

namespace parley::net {

class Connection;
class Link;
class OverloadWatch;
struct ListenerShared;

class Worker {
 public:
  Worker(broker::Broker& broker, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Adopts a bound, listening socket (this worker's SO_REUSEPORT sibling). Before Start().
  // `shared` (owned by the Server) outlives the worker.
  bool AddListenFd(int fd, ListenerShared* shared, std::string* error);
  // Before Start(): the watchdog this worker reports its loop lag to (worker 0 also evaluates it). Not owned.
  void set_overload_watch(OverloadWatch* w) { overload_ = w; }
  void Start();
  // Any thread: stop accepting, send DISCONNECT 0x8B to v5 clients, close everything, end the loop.
  void Shutdown();
  void Join();

  // Any thread. Runs `fn` on this worker's loop.
  void Post(std::function<void()> fn);
  // Any thread. Asks the loop to pump `link`'s session into its connection.
  void PostWake(std::shared_ptr<Link> link);
  bool OnLoopThread() const { return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire); }

  // ---- loop thread only ----
  uv_loop_t* loop() { return &loop_; }
  broker::Broker& broker() { return broker_; }
  int index() const { return index_; }
  void MarkDirty(Connection* c);       // has output to flush this iteration
  void SchedulePump(Connection* c);    // Client::Pump() before this iteration's flush
  // `c` stopped reading until c->paused_until() (rate limits): the resume timer starts it again.
  void SchedulePausedRead(Connection* c);
  void Attach(Connection* c);
  void Detach(Connection* c);
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr size_t kReadBufferSize = 64 * 1024;
  size_t connection_count() const { return connection_count_; }
  // Any thread: how late the loop's one-second tick fired last time (the event-loop lag; metrics).
  std::chrono::milliseconds last_lag() const {
    return std::chrono::milliseconds(last_lag_ms_.load(std::memory_order_relaxed));
  }
  // Any thread: when the loop last ran its tick (steady clock; zero before the first). A loop that stops
  // ticking is stuck in some callback (/healthz).
  std::chrono::steady_clock::time_point last_tick() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(last_tick_at_.load(std::memory_order_relaxed)));
  }
  // The live connections, linked through Connection::next_ (the admin API's listings and the drain walk it).
  // Connections are freed only from their close callbacks, so the list stays valid for one callback's length.
  Connection* connections() const { return head_; }
  // A connection refused at accept (a ban, a per-address limit): logged once a second at most, with a count.
  void WarnRefused(const std::string& peer, const std::string& why);

 private:
  static void OnAsync(uv_async_t* h);
  static void OnPrepare(uv_prepare_t* h);
  static void OnTick(uv_timer_t* h);
  static void OnBrokerTick(uv_timer_t* h);
  static void OnResumeReads(uv_timer_t* h);
  static void OnConnection(uv_stream_t* server, int status);
  void DrainPosted();
  void BeginShutdown();
  void MaybeFinishShutdown();

  broker::Broker& broker_;
  const int index_;
  uv_loop_t loop_;
  uv_async_t async_;
  uv_prepare_t prepare_;
  uv_timer_t tick_;
  uv_timer_t broker_tick_;
  uv_timer_t shutdown_timer_;
  uv_timer_t resume_timer_;  // runs while paused_reads_ is not empty
  std::vector<Connection*> paused_reads_;
  std::vector<Connection*> resuming_;  // scratch for OnResumeReads
  struct Listener {
    uv_tcp_t tcp;
    Worker* worker;
    ListenerShared* shared;
    int spare = -1;  // a duplicate of the listening socket, so it can be paused and resumed (PauseListener)
  };
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Listeners paused because no descriptor was left even to shed their backlog: the socket (kept open by its
  // spare descriptor) is listened on again by the tick once the reserve descriptor could be reopened.
  struct Paused {
    int fd;
    ListenerShared* shared;
  };
  std::vector<Paused> paused_;
  void PauseListener(Listener* l);
  void ResumeListeners();
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};

  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;   // guarded by post_mu_
  std::vector<std::shared_ptr<Link>> wakes_;    // guarded by post_mu_
  bool stopped_ = false;                        // guarded by post_mu_: the loop has ended; posts are dropped
  std::vector<std::function<void()>> run_tasks_;  // loop thread: swapped out of posted_
  std::vector<std::shared_ptr<Link>> run_wakes_;  // loop thread

  std::vector<Connection*> dirty_;
  std::vector<Connection*> pumps_;
  std::vector<Connection*> pumping_;   // scratch for OnPrepare
  std::vector<Connection*> flushing_;  // scratch for OnPrepare
  Connection* head_ = nullptr;  // intrusive list of live connections
  size_t connection_count_ = 0;
  // Accept trouble (errors, file descriptors near the limit): counted, and logged once a second at most.
  void WarnAcceptTrouble(const Listener* l, const std::string& what);
  uint64_t accept_trouble_ = 0;
  uint64_t refused_ = 0;
  std::chrono::steady_clock::time_point refused_logged_{};
  std::chrono::steady_clock::time_point accept_trouble_logged_{};
  // A descriptor held in reserve (on /dev/null): out of descriptors, it is closed to accept and close the
  // connections waiting in the backlog, then reopened (ShedBacklog); the tick reopens it if that failed.
  // False when not even one descriptor could be had (the listener must pause); *shed_count: connections closed.
  bool ShedBacklog(uv_stream_t* server, uint64_t* shed_count);
  void ReopenReserve();
  int reserve_fd_ = -1;
  uint64_t fd_limit_ = 0;    // the process's open-file limit (0 = none known)
  uint64_t fd_warn_at_ = 0;  // warn when an accepted connection's descriptor reaches this (95 % of the limit)
  std::unique_ptr<char[]> read_buffer_;
  bool shutting_down_ = false;
  OverloadWatch* overload_ = nullptr;
  uint64_t last_tick_ms_ = 0;  // uv_now at the previous tick, for the loop lag
  std::atomic<int64_t> last_lag_ms_{0};  // the lag the last tick measured (last_lag())
  std::atomic<std::chrono::steady_clock::rep> last_tick_at_{0};  // last_tick()
  uint64_t ticks_ = 0;
};

}  // namespace parley::net
