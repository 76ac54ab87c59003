// Server administration (docs/admin-api.md): listing the connections the worker loops own, and draining.
//
// Only a worker's own thread may touch its connections, so both go through Worker::Post:
// - ListConnections posts one closure per worker and waits (bounded) for all of them. The closures share a
//   Gather with the waiting thread through shared_ptr, so a worker that answers after the caller gave up
//   writes into state that is still alive and read by nobody; a closure a stopped worker drops still counts
//   as an answer (its destructor reports it), so a stopped worker costs no wait.
// - Draining runs one thread ("parley-drain") that ticks every 100 ms, turns the rate into a budget of
//   disconnects, splits it across the workers by how many clients each still has, and posts each worker its
//   share. The worker's closure kicks that many clients (Client::OnKick(0x9C): DISCONNECT with the Server
//   Reference to v5 clients, a close for 3.1.1), counts the ones left and reports both.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <condition_variable>
#include <thread>

#include "broker/net/connection.h"
#include "broker/net/server.h"
#include "broker/net/worker.h"

namespace parley::net {

namespace {

constexpr auto kDrainTick = std::chrono::milliseconds(100);

bool ById(const Server::ConnectionInfo& a, const Server::ConnectionInfo& b) { return a.client_id < b.client_id; }

// Loop thread of `w`: the connected clients matching `q`, the q.limit + 1 smallest client ids, sorted.
std::vector<Server::ConnectionInfo> ListOn(Worker& w, const Server::ConnectionQuery& q) {
  std::vector<Server::ConnectionInfo> heap;  // max-heap on client id, at most limit + 1
  const size_t keep = q.limit == SIZE_MAX ? q.limit : q.limit + 1;  // "no limit" is SIZE_MAX
  const Clock& clock = w.broker().clock();
  const SteadyTime now = clock.Now();
  const int64_t now_ms = clock.UnixMillis();
  for (Connection* c = w.connections(); c; c = c->next_) {
    broker::Client& client = c->client();
    if (!client.connected()) continue;  // before CONNACK, or closing
    const std::string& id = client.client_id();
    if (!q.after.empty() && id <= q.after) continue;
    if (!q.client_id.empty() && id != q.client_id) continue;
    if (q.username && client.username() != q.username) continue;
    const broker::ListenerInfo listener = c->Listener();
    if (!q.listener.empty() && listener.name != q.listener) continue;
    if (heap.size() == keep && id >= heap.front().client_id) continue;
    Server::ConnectionInfo info;
    info.client_id = id;
    info.username = client.username();
    info.address = c->PeerAddressString();
    info.listener = std::string(listener.name);
    info.protocol = std::string(listener.protocol);
    info.version = client.version();
    info.keep_alive = client.keep_alive();
    info.clean_start = client.clean_start();
    info.session_expiry = client.session_expiry();
    info.connected_at_ms =
        now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(now - client.accepted_at()).count();
    info.worker = w.index();
    if (heap.size() == keep) {
      std::pop_heap(heap.begin(), heap.end(), ById);
      heap.pop_back();
    }
    heap.push_back(std::move(info));
    std::push_heap(heap.begin(), heap.end(), ById);
  }
  std::sort_heap(heap.begin(), heap.end(), ById);
  return heap;
}

// What ListConnections waits on. Guarded by mu.
struct Gather {
  std::mutex mu;
  std::condition_variable cv;
  size_t answered = 0;
  std::vector<int> missing;  // workers whose closure was dropped (the loop had stopped)
  std::vector<Server::ConnectionInfo> found;
};

// One worker's part. Destroyed when the closure has run or was dropped: either way the worker has answered.
struct Reply {
  Reply(std::shared_ptr<Gather> g, int worker) : gather(std::move(g)), worker(worker) {}
  ~Reply() {
    {
      std::lock_guard lock(gather->mu);
      if (!ran) gather->missing.push_back(worker);
      for (auto& info : result) gather->found.push_back(std::move(info));
      ++gather->answered;
    }
    gather->cv.notify_all();
  }
  std::shared_ptr<Gather> gather;
  const int worker;
  bool ran = false;  // loop thread
  std::vector<Server::ConnectionInfo> result;  // loop thread, then the destructor
};

// What the drain thread and the workers' drain closures share.
struct DrainShared {
  explicit DrainShared(size_t workers) : remaining(workers) {}
  // Bumped by every start and stop: a closure of another generation kicks nobody (it was queued before a stop).
  std::atomic<uint64_t> generation{0};
  std::atomic<uint64_t> disconnected{0};
  // Per worker: its connected clients after its last closure; -1 until it has counted once.
  std::vector<std::atomic<int64_t>> remaining;
};

// Loop thread of `w`: kicks up to `quota` connected clients with 0x9C, then counts the ones left.
void DrainOn(Worker& w, DrainShared& d, uint64_t generation, int64_t quota) {
  if (d.generation.load(std::memory_order_acquire) != generation) return;
  int64_t kicked = 0, left = 0;
  // Kicking only marks a connection closing (it is freed from a later close callback): the list stays intact.
  for (Connection* c = w.connections(); c; c = c->next_) {
    broker::Client& client = c->client();
    if (!client.connected()) continue;
    if (kicked < quota) {
      client.OnKick(mqtt::rc::kUseAnotherServer);
      c->Flush();
      ++kicked;
    } else {
      ++left;
    }
  }
  d.disconnected.fetch_add(static_cast<uint64_t>(kicked), std::memory_order_relaxed);
  d.remaining[static_cast<size_t>(w.index())].store(left, std::memory_order_relaxed);
}

}  // namespace

Result<std::vector<Server::ConnectionInfo>> Server::ListConnections(const ConnectionQuery& q, bool* more,
                                                                    std::chrono::milliseconds timeout) {
  if (more) *more = false;
  auto gather = std::make_shared<Gather>();
  auto query = std::make_shared<const ConnectionQuery>(q);
  for (auto& w : workers_) {
    auto reply = std::make_shared<Reply>(gather, w->index());
    Worker* worker = w.get();
    w->Post([reply, query, worker] {
      reply->result = ListOn(*worker, *query);
      reply->ran = true;
    });
  }
  std::unique_lock lock(gather->mu);
  const size_t n = workers_.size();
  if (!gather->cv.wait_for(lock, timeout, [&] { return gather->answered == n; }))
    return Status::Error("worker loops did not answer within " + std::to_string(timeout.count()) + " ms");
  if (!gather->missing.empty())
    return Status::Error("worker " + std::to_string(gather->missing.front()) + " is not running");
  std::vector<ConnectionInfo> all = std::move(gather->found);
  lock.unlock();
  std::sort(all.begin(), all.end(), ById);
  if (all.size() > q.limit) {
    if (more) *more = true;
    all.resize(q.limit);
  }
  return all;
}

// ---- Draining ------------------------------------------------------------------------------------------------

struct Server::Drain {
  explicit Drain(size_t workers) : shared(std::make_shared<DrainShared>(workers)) {}
  ~Drain() { Halt(); }
  // Ends the thread (after `active` went false) and waits for it. Not with mu held.
  void Halt() {
    {
      std::lock_guard lock(mu);
      active = false;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
  }

  const std::shared_ptr<DrainShared> shared;
  std::mutex mu;
  std::condition_variable cv;
  bool active = false;                   // guarded by mu
  uint32_t rate = 0;                     // guarded by mu
  std::string server_reference;          // guarded by mu
  std::optional<int64_t> started_at_ms;  // guarded by mu
  std::thread thread;                    // runs while active; started and joined by the admin thread
};

namespace {

// The drain thread. `workers` are alive for its whole run (the Server joins it before destroying them).
void RunDrain(std::mutex& mu, std::condition_variable& cv, const bool& active, const uint32_t& rate_ref,
              const std::shared_ptr<DrainShared>& shared, const std::vector<Worker*>& workers) {
  using SteadyClock = std::chrono::steady_clock;
  const size_t n = workers.size();
  double budget = 0;
  size_t next = 0;  // the worker that gets the first of the units that do not split evenly
  bool counted = false;
  auto last = SteadyClock::now();
  std::unique_lock lock(mu);
  while (active) {
    const double rate = rate_ref;
    const uint64_t generation = shared->generation.load(std::memory_order_acquire);
    lock.unlock();
    const auto now = SteadyClock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    std::vector<int64_t> quota(n, 0);
    if (counted) {
      // At most a fifth of a second's worth carried over (or one disconnect, for rates below 5/s): a stall
      // does not become a burst.
      budget = std::min(budget + rate * dt, std::max(1.0, rate * 0.2));
      std::vector<int64_t> cap(n);
      for (size_t i = 0; i < n; ++i) cap[i] = std::max<int64_t>(0, shared->remaining[i].load(std::memory_order_relaxed));
      int64_t units = static_cast<int64_t>(budget);
      int64_t assigned = 0;
      while (units > 0) {
        size_t eligible = 0;
        for (size_t i = 0; i < n; ++i) eligible += cap[i] > 0;
        if (eligible == 0) break;
        const int64_t share = std::max<int64_t>(1, units / static_cast<int64_t>(eligible));
        for (size_t k = 0; k < n && units > 0; ++k) {
          const size_t i = (next + k) % n;
          const int64_t give = std::min({share, cap[i], units});
          quota[i] += give;
          cap[i] -= give;
          units -= give;
          assigned += give;
        }
      }
      budget -= static_cast<double>(assigned);
      next = (next + 1) % n;
    }
    // Every worker hears every tick: with a quota of 0 it still reports how many clients it has left.
    counted = true;
    for (size_t i = 0; i < n; ++i) {
      Worker* w = workers[i];
      const int64_t q = quota[i];
      w->Post([w, shared, generation, q] { DrainOn(*w, *shared, generation, q); });
    }
    lock.lock();
    cv.wait_for(lock, kDrainTick, [&] { return !active; });
  }
}

}  // namespace

Server::DrainState Server::StartDrain(uint32_t rate_per_second, std::string server_reference) {
  {
    std::lock_guard guard(drain_mu_);
    if (!drain_) drain_ = std::make_shared<Drain>(workers_.size());
    Drain& d = *drain_;
    // Refuse new clients first, so none of those disconnected below can come straight back.
    broker_.SetDraining(true, server_reference);
    std::unique_lock lock(d.mu);
    d.rate = std::max<uint32_t>(rate_per_second, 1);
    d.server_reference = std::move(server_reference);
    if (!d.active) {
      lock.unlock();
      if (d.thread.joinable()) d.thread.join();  // a previous drain's thread, already told to end
      lock.lock();
      d.shared->generation.fetch_add(1, std::memory_order_acq_rel);
      d.shared->disconnected.store(0, std::memory_order_relaxed);
      for (auto& r : d.shared->remaining) r.store(-1, std::memory_order_relaxed);
      d.started_at_ms = broker_.clock().UnixMillis();
      d.active = true;
      std::vector<Worker*> workers;
      for (auto& w : workers_) workers.push_back(w.get());
      d.thread = std::thread([&d, workers = std::move(workers)] {
        pthread_setname_np(pthread_self(), "parley-drain");
        RunDrain(d.mu, d.cv, d.active, d.rate, d.shared, workers);
      });
      spdlog::warn("draining: refusing new connections and disconnecting {} clients at {}/s{}",
                   broker_.clients_connected.load(std::memory_order_relaxed), d.rate,
                   d.server_reference.empty() ? std::string() : " (server reference " + d.server_reference + ")");
    } else {
      spdlog::warn("draining: rate now {}/s", d.rate);
    }
  }
  return DrainStatus();
}

Server::DrainState Server::StopDrain() {
  {
    std::lock_guard guard(drain_mu_);
    if (drain_) {
      bool was_active = false;
      {
        std::lock_guard lock(drain_->mu);
        was_active = drain_->active;
        drain_->shared->generation.fetch_add(1, std::memory_order_acq_rel);  // queued kicks are void now
      }
      drain_->Halt();
      if (was_active) spdlog::warn("draining stopped: accepting connections again");
    }
    broker_.SetDraining(false, std::string());
  }
  return DrainStatus();
}

Server::DrainState Server::DrainStatus() const {
  DrainState st;
  std::lock_guard guard(drain_mu_);
  if (!drain_) return st;
  const Drain& d = *drain_;
  {
    std::lock_guard lock(drain_->mu);
    st.active = d.active;
    st.rate = d.rate;
    st.server_reference = d.server_reference;
    st.started_at_ms = d.started_at_ms;
  }
  st.disconnected = d.shared->disconnected.load(std::memory_order_relaxed);
  bool known = true;
  for (const auto& r : d.shared->remaining) {
    const int64_t v = r.load(std::memory_order_relaxed);
    if (v < 0) known = false;
    else st.remaining += static_cast<uint64_t>(v);
  }
  // Before every worker has counted (the first tick), the broker-wide gauge stands in.
  if (!known) st.remaining = static_cast<uint64_t>(std::max<int64_t>(0, broker_.clients_connected.load()));
  return st;
}

void Server::CollectDrainMetrics(std::vector<metrics::Family>& out) const {
  metrics::Family f;
  f.name = "parley_draining";
  f.help = "1 while the broker drains (admin API): new connections refused, connected clients disconnected";
  f.type = metrics::Type::kGauge;
  f.samples.push_back(metrics::Sample{{}, broker_.draining() ? 1.0 : 0.0});
  out.push_back(std::move(f));
}

}  // namespace parley::net
