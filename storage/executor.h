// WriteExecutor: the one thread that writes to a Store, with group commit.
//
// Loop threads must never block on disk, so they do not call Store::Write. They Submit a WriteBatch with a
// completion callback instead; the executor's thread takes everything queued, writes it to the store as
// ONE batch (one WAL append, one fsync under kFsync), then calls each callback with the shared result.
// Under load a single fsync therefore acknowledges many writes (group commit).
//
// Callbacks (`done`) run on the executor thread, in submission order, after the write they belong to has
// finished with the durability of the policy below. They must not block: the usual `done` posts a closure
// back to the caller's own loop and returns. A callback may Submit or Post again.
//
// Reads: Store reads are thread-safe and need no executor, but a read that may miss the block cache hits
// the disk, which a loop thread must not do either. Post such work here (it runs in order with the writes
// submitted before it, so it sees them), and post its result back to the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/metrics.h"
#include "storage/store.h"

namespace parley::storage {

// When an acknowledged write is on stable storage (config key: storage durability; docs/storage-format.md).
enum class Durability : uint8_t {
  kFsync,  // default. Every group is written with Sync::kSync: `done` runs after the WAL is fsync'ed.
           // Nothing acknowledged is lost, even on power loss.
  kBatch,  // Groups are written without sync and acknowledged at once; the executor syncs the WAL every
           // batch_sync_interval. A process crash loses nothing (the WAL is in the OS page cache); an OS
           // crash or power loss loses at most the writes acknowledged in the last interval.
  kNone,   // Never synced by us (the OS writes back when it likes, typically within ~30 s; RocksDB syncs
           // when it switches WAL files and at close). Process crash: nothing lost; power loss: unbounded.
};
const char* DurabilityName(Durability d);                       // "fsync" | "batch" | "none"
std::optional<Durability> ParseDurability(std::string_view s);  // the inverse; nullopt if unknown

struct ExecutorOptions {
  Durability durability = Durability::kFsync;
  std::chrono::milliseconds batch_sync_interval{50};  // kBatch only: the window of loss on power failure
  // Submit refuses new batches while more than this many bytes wait (backpressure, see Submit).
  size_t max_queue_bytes = size_t{64} << 20;
  // A group is cut once it holds this many bytes, bounding the latency one write adds to the others.
  size_t max_group_bytes = size_t{4} << 20;
  std::string thread_name = "parley-storage";
};

class WriteExecutor {
 public:
  using Done = std::function<void(const Status&)>;

  struct Stats {
    uint64_t batches = 0;         // batches written (each Submit that reached the store)
    uint64_t groups = 0;          // Store::Write calls made for them
    uint64_t max_group = 0;       // most batches in one group
    uint64_t synced_groups = 0;   // groups written with Sync::kSync
    uint64_t wal_syncs = 0;       // SyncWal calls (kBatch timer, shutdown)
    uint64_t failed_batches = 0;  // batches whose done got an error
    uint64_t tasks = 0;           // Post()ed tasks run
    size_t queued_bytes = 0;      // bytes waiting now
  };

  // Starts the executor thread. `store` must outlive the executor.
  WriteExecutor(Store* store, ExecutorOptions options);
  // Shutdown().
  ~WriteExecutor();
  WriteExecutor(const WriteExecutor&) = delete;
  WriteExecutor& operator=(const WriteExecutor&) = delete;

  // Queues `batch`; `done` (may be empty) later runs on the executor thread with the write's status.
  // Returns false — and will never call `done` — when the executor is shutting down, or when the bytes
  // already waiting exceed max_queue_bytes (a batch is always accepted into an empty queue): the caller
  // should then refuse new work (e.g. not read more from a publisher) rather than queue without bound.
  // Any thread; never blocks beyond a short mutex hold.
  // `txn`: 0, or a transaction from BeginTxn (see there).
  bool Submit(WriteBatch batch, Done done, uint64_t txn = 0);

  // Transactions: batches submitted separately (each at the right moment, interleaved with other threads'
  // batches whose order is kept) that must reach the disk together or not at all. Every batch submitted
  // with an open transaction is written in the same group as the others of that transaction, and nothing
  // queued at or after its first batch is written before EndTxn. So keep transactions short: they hold
  // back the queue (not the callers). Any thread; EndTxn must be called exactly once per BeginTxn.
  uint64_t BeginTxn();
  void EndTxn(uint64_t txn);

  // Runs `task` on the executor thread after every batch submitted before it has been written and
  // acknowledged (batches submitted after it may already be written too: a task never splits a group, so
  // it costs no extra fsync). False when shutting down (the task is dropped). Not bounded by
  // max_queue_bytes. Any thread.
  bool Post(std::function<void()> task);

  // Stops accepting work, drains the queue (every accepted batch is written and its done called, every
  // accepted task run), syncs the WAL under kBatch, and joins the thread. Idempotent. Any thread except the
  // executor's own (a callback must not call it).
  void Shutdown();

  size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  Stats stats() const;
  // parley_storage_write_seconds (histogram: Submit until the batch's write returned with the configured
  // durability, i.e. until its `done` may run), parley_storage_write_errors_total (batches whose done got an
  // error) and parley_storage_queue_bytes. Any thread; a metrics::Registry collector.
  void CollectMetrics(std::vector<metrics::Family>& out) const;
  bool OnExecutorThread() const { return std::this_thread::get_id() == thread_id_.load(); }

 private:
  struct Item {
    WriteBatch batch;
    Done done;
    std::function<void()> task;  // set for Post()ed items
    uint64_t txn = 0;
    std::chrono::steady_clock::time_point submitted{};  // batches: when Submit took it (write latency)
  };

  void Run();
  // How many items at the front of queue_ may be written now: up to the first one of an open transaction
  // (all of them when stopping). Caller holds mu_.
  size_t ReadyLocked() const;
  void Process(std::deque<Item>* items);
  void WriteGroup(std::deque<Item>* items, size_t begin, size_t end, size_t bytes);
  void SyncNow();

  Store* const store_;
  const ExecutorOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::vector<uint64_t> open_txns_;  // guarded by mu_; a handful at most (one per thread)
  uint64_t next_txn_ = 1;            // guarded by mu_
  std::atomic<size_t> queued_bytes_{0};

  // Executor thread only.
  bool unsynced_ = false;                            // kBatch: acknowledged writes not yet synced
  std::chrono::steady_clock::time_point next_sync_;  // kBatch: when they will be

  std::atomic<uint64_t> batches_{0}, groups_{0}, max_group_{0}, synced_groups_{0}, wal_syncs_{0},
      failed_batches_{0}, tasks_{0};
  metrics::Histogram write_seconds_{metrics::LatencyBounds()};  // Submit -> written (CollectMetrics)

  std::mutex shutdown_mu_;  // serialises Shutdown callers
  std::atomic<std::thread::id> thread_id_{};
  std::thread thread_;
};

}  // namespace parley::storage
