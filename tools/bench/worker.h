// One libuv loop on its own thread, owning a share of the run's connections. The coordinator builds it,
// adds connections, starts it, and moves it through the phases with Wake(); after Join() it reads the
// connections' results and the histograms.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tools/bench/control.h"
#include "tools/bench/histogram.h"

namespace parley::bench {

class Conn;
class Publisher;
class Subscriber;

class Worker {
 public:
  // `ctl` and `cfg` outlive the worker.
  Worker(Control* ctl, const RunConfig* cfg);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Coordinator thread, before Start().
  void Add(std::unique_ptr<Publisher> p);
  void Add(std::unique_ptr<Subscriber> s);
  // Any other client (the IM scenarios' devices): told of phases by Conn::OnPhase, ticked every millisecond
  // during kPublish (Conn::OnTick). Connected after the subscribers, before the publishers.
  void Add(std::unique_ptr<Conn> c);
  // A client that only connects and stays (the conns scenario): neither told of phases nor ticked, only
  // kept alive. Connected after the other clients.
  void AddIdle(std::unique_ptr<Conn> c);
  // Coordinator thread: runs the loop on a new thread; it connects its clients at once.
  void Start();
  // Any thread: the control block's phase changed.
  void Wake();
  // Any thread: the loop has ended (every connection closed).
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Any thread: the last phase this loop has acted on (its publishers stopped once it is kDrain).
  Phase seen_phase() const { return static_cast<Phase>(seen_mon_.load(std::memory_order_acquire)); }
  // Coordinator thread, once finished() (or to wait for it).
  void Join();

  // After Join(): results.
  const std::vector<std::unique_ptr<Publisher>>& publishers() const { return pubs_; }
  const std::vector<std::unique_ptr<Subscriber>>& subscribers() const { return subs_; }
  const std::vector<std::unique_ptr<Conn>>& others() const { return others_; }
  const std::vector<std::unique_ptr<Conn>>& idle_conns() const { return idle_conns_; }
  const Histogram& ack_latency() const { return ack_; }
  const Histogram& e2e_latency() const { return e2e_; }
  const Histogram& connect_latency() const { return connect_; }
  const Histogram& subscribe_latency() const { return subscribe_; }
  // Any thread: clients this loop has started connecting (the conns scenario's "attempted").
  uint32_t started() const { return started_mon_.load(std::memory_order_relaxed); }

  // --- Loop thread only: used by the connections. ---
  uv_loop_t* loop() { return &loop_; }
  Control& control() { return *ctl_; }
  const RunConfig& config() const { return *cfg_; }
  Histogram& ack_latency_mut() { return ack_; }
  Histogram& e2e_latency_mut() { return e2e_; }
  Histogram& connect_latency_mut() { return connect_; }
  Histogram& subscribe_latency_mut() { return subscribe_; }
  char* read_buffer() { return read_buf_.data(); }
  size_t read_buffer_size() const { return read_buf_.size(); }
  // A connection finished its handshake and is ready for the run.
  void OnHandshakeDone(Conn* c);
  // A connection's socket is closed for good. `was_connecting`: it had started but never got ready.
  void OnConnClosed(Conn* c, bool was_connecting);

 private:
  void Run();
  void SyncPhase();
  void EnterPublish();
  void EnterDrain();
  void EnterClose();
  void StartMore();
  void MaybeFinish();

  Control* ctl_;
  const RunConfig* cfg_;
  uv_loop_t loop_{};
  uv_async_t wake_{};
  uv_timer_t tick_{};   // 1 s: keep alive
  uv_timer_t pace_{};   // 1 ms: paced publishers (--rate), and OnTick of the other clients
  uv_timer_t force_{};  // close phase: force-closes what did not close in time
  uv_idle_t idle_{};    // QoS 0 as fast as possible: the next batch once the socket took the last
  uv_timer_t ramp_{};   // 1 ms during kSetup with RunConfig::connect_rate: starts the connections due
  std::mutex wake_mu_;
  bool wake_closed_ = false;  // guarded by wake_mu_
  std::thread thread_;
  std::atomic<bool> finished_{false};
  std::atomic<int> seen_mon_{0};

  std::vector<std::unique_ptr<Publisher>> pubs_;
  std::vector<std::unique_ptr<Subscriber>> subs_;
  std::vector<std::unique_ptr<Conn>> others_;
  std::vector<std::unique_ptr<Conn>> idle_conns_;
  std::vector<Conn*> order_;  // connect order: subscribers, other clients, idle clients, publishers
  size_t next_start_ = 0;
  uint64_t ramp_start_ns_ = 0;
  std::atomic<uint32_t> started_mon_{0};
  size_t connecting_ = 0;
  size_t closed_ = 0;
  Phase seen_ = Phase::kSetup;
  bool handles_closed_ = false;
  Histogram ack_;
  Histogram e2e_;
  Histogram connect_;    // TCP connect start -> CONNACK
  Histogram subscribe_;  // SUBSCRIBE written -> SUBACK (conns --subscribe)
  std::vector<char> read_buf_ = std::vector<char>(64 * 1024);
};

// Ends a run's loops: sets phase kClose (each loop sends DISCONNECT and force-closes what does not close in
// 2 s), wakes them and joins their threads. A loop still running 5 s later means something is badly wrong:
// the process then exits (status 2) rather than hang.
void StopWorkers(Control& ctl, const std::vector<std::unique_ptr<Worker>>& workers);

}  // namespace parley::bench
