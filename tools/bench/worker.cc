#include "tools/bench/worker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "tools/bench/publisher.h"
#include "tools/bench/subscriber.h"

namespace parley::bench {

namespace {
uv_handle_t* H(void* h) { return static_cast<uv_handle_t*>(h); }
constexpr uint64_t kForceCloseMs = 2000;  // close phase: how long DISCONNECTs may take before we cut
}  // namespace

Worker::Worker(Control* ctl, const RunConfig* cfg) : ctl_(ctl), cfg_(cfg) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wake_, [](uv_async_t* a) { static_cast<Worker*>(a->data)->SyncPhase(); });
  uv_timer_init(&loop_, &tick_);
  uv_timer_init(&loop_, &pace_);
  uv_timer_init(&loop_, &force_);
  uv_idle_init(&loop_, &idle_);
  uv_timer_init(&loop_, &ramp_);
  wake_.data = tick_.data = pace_.data = force_.data = idle_.data = ramp_.data = this;
}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Add(std::unique_ptr<Publisher> p) { pubs_.push_back(std::move(p)); }
void Worker::Add(std::unique_ptr<Subscriber> s) { subs_.push_back(std::move(s)); }
void Worker::Add(std::unique_ptr<Conn> c) { others_.push_back(std::move(c)); }
void Worker::AddIdle(std::unique_ptr<Conn> c) { idle_conns_.push_back(std::move(c)); }

void Worker::Start() {
  for (auto& s : subs_) order_.push_back(s.get());
  for (auto& c : others_) order_.push_back(c.get());
  for (auto& c : idle_conns_) order_.push_back(c.get());
  for (auto& p : pubs_) order_.push_back(p.get());
  thread_ = std::thread([this] { Run(); });
}

void Worker::Wake() {
  std::lock_guard<std::mutex> lock(wake_mu_);
  if (!wake_closed_) uv_async_send(&wake_);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Run() {
  uv_timer_start(&tick_, [](uv_timer_t* t) {
    auto* w = static_cast<Worker*>(t->data);
    uint64_t now = uv_hrtime();
    for (Conn* c : w->order_) c->KeepAlive(now);
  }, 1000, 1000);
  SyncPhase();  // the coordinator may have moved on (e.g. to kClose) before this thread ran
  ramp_start_ns_ = uv_hrtime();
  if (seen_ == Phase::kSetup && cfg_->connect_rate > 0) {
    uv_timer_start(&ramp_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->StartMore(); }, 1, 1);
  }
  if (seen_ == Phase::kSetup) StartMore();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  finished_.store(true, std::memory_order_release);
}

void Worker::SyncPhase() {
  Phase target = ctl_->phase();
  if (target == Phase::kClose) {
    if (seen_ != Phase::kClose) EnterClose();
  } else {
    while (seen_ < target) {
      seen_ = static_cast<Phase>(static_cast<int>(seen_) + 1);
      if (seen_ == Phase::kPublish) EnterPublish();
      if (seen_ == Phase::kDrain) EnterDrain();
    }
  }
  seen_mon_.store(static_cast<int>(seen_), std::memory_order_release);
}

void Worker::EnterPublish() {
  uv_timer_stop(&ramp_);
  // conns: the ramp is over; a handshake still under way is given up (counted as refused).
  for (auto& c : idle_conns_) c->AbandonHandshake("not ready when the ramp ended");  // as conns_scenario.cc
  for (auto& p : pubs_) p->Begin();
  for (auto& c : others_) c->OnPhase(Phase::kPublish);
  if (cfg_->rate_per_publisher > 0 || !others_.empty()) {
    uv_timer_start(&pace_, [](uv_timer_t* t) {
      auto* w = static_cast<Worker*>(t->data);
      uint64_t now = uv_hrtime();
      if (w->cfg_->rate_per_publisher > 0)
        for (auto& p : w->pubs_) p->Pace(now);
      for (auto& c : w->others_) c->OnTick(now);
    }, 1, 1);
  }
  if (cfg_->rate_per_publisher == 0 && cfg_->qos == 0 && !pubs_.empty()) {
    uv_idle_start(&idle_, [](uv_idle_t* i) {
      for (auto& p : static_cast<Worker*>(i->data)->pubs_) p->Pump();
    });
  }
}

void Worker::EnterDrain() {
  uv_timer_stop(&pace_);
  uv_idle_stop(&idle_);
  for (auto& p : pubs_) p->Stop();
  for (auto& c : others_) c->OnPhase(Phase::kDrain);
}

void Worker::EnterClose() {
  seen_ = Phase::kClose;
  uv_timer_stop(&pace_);
  uv_idle_stop(&idle_);
  uv_timer_stop(&tick_);
  uv_timer_stop(&ramp_);
  uv_timer_start(&force_, [](uv_timer_t* t) {
    for (Conn* c : static_cast<Worker*>(t->data)->order_) c->ForceClose();
  }, kForceCloseMs, 0);
  for (Conn* c : order_) c->Close();
  MaybeFinish();
}

void Worker::StartMore() {
  size_t limit = order_.size();
  if (cfg_->connect_rate > 0) {
    // Connection k is due k / rate seconds after the loop started; a late loop catches up in a burst.
    double due = static_cast<double>(uv_hrtime() - ramp_start_ns_) / 1e9 * cfg_->connect_rate;
    limit = std::min(limit, static_cast<size_t>(std::floor(due)) + 1);
  }
  while (connecting_ < cfg_->max_connecting && next_start_ < limit && seen_ == Phase::kSetup && !ctl_->failed()) {
    ++connecting_;
    started_mon_.store(static_cast<uint32_t>(next_start_ + 1), std::memory_order_relaxed);
    order_[next_start_++]->Start();
  }
  if (next_start_ == order_.size()) uv_timer_stop(&ramp_);
}

void Worker::OnHandshakeDone(Conn*) {
  --connecting_;
  ctl_->ready.fetch_add(1);
  StartMore();
}

void Worker::OnConnClosed(Conn*, bool was_connecting) {
  ++closed_;
  if (was_connecting && connecting_ > 0) --connecting_;
  if (seen_ == Phase::kSetup) StartMore();
  MaybeFinish();
}

void Worker::MaybeFinish() {
  if (seen_ != Phase::kClose || closed_ < order_.size() || handles_closed_) return;
  handles_closed_ = true;
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    wake_closed_ = true;
  }
  uv_close(H(&wake_), nullptr);
  uv_close(H(&tick_), nullptr);
  uv_close(H(&pace_), nullptr);
  uv_close(H(&force_), nullptr);
  uv_close(H(&idle_), nullptr);
  uv_close(H(&ramp_), nullptr);
}

void StopWorkers(Control& ctl, const std::vector<std::unique_ptr<Worker>>& workers) {
  ctl.SetPhase(Phase::kClose);
  for (auto& w : workers) w->Wake();
  const uint64_t deadline = uv_hrtime() + 5'000'000'000ull;
  for (auto& w : workers) {
    while (!w->finished()) {
      if (uv_hrtime() > deadline) {
        std::fprintf(stderr, "parley-bench: error: the client loops did not stop within 5 s; giving up\n");
        std::fflush(nullptr);
        std::_Exit(2);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    w->Join();
  }
}

}  // namespace parley::bench
