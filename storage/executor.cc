#include "storage/executor.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

#include "base/check.h"

namespace parley::storage {

const char* DurabilityName(Durability d) {
  switch (d) {
    case Durability::kFsync:
      return "fsync";
    case Durability::kBatch:
      return "batch";
    case Durability::kNone:
      return "none";
  }
  return "unknown";
}

std::optional<Durability> ParseDurability(std::string_view s) {
  if (s == "fsync") return Durability::kFsync;
  if (s == "batch") return Durability::kBatch;
  if (s == "none") return Durability::kNone;
  return std::nullopt;
}

WriteExecutor::WriteExecutor(Store* store, ExecutorOptions options)
    : store_(store), options_(std::move(options)) {
  PARLEY_CHECK(store_ != nullptr);
  thread_ = std::thread([this] { Run(); });
  thread_id_.store(thread_.get_id());
}

WriteExecutor::~WriteExecutor() {
  Shutdown();
}

bool WriteExecutor::Submit(WriteBatch batch, Done done, uint64_t txn) {
  const size_t bytes = batch.ByteSize();
  const auto now = std::chrono::steady_clock::now();
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    const size_t queued = queued_bytes_.load(std::memory_order_relaxed);
    if (queued > 0 && queued + bytes > options_.max_queue_bytes) return false;
    queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    queue_.push_back(Item{std::move(batch), std::move(done), {}, txn, now});
    wake = queue_.size() == 1;  // the thread waits on an empty queue (or on a transaction: EndTxn wakes it)
  }
  if (wake) cv_.notify_one();
  return true;
}

bool WriteExecutor::Post(std::function<void()> task) {
  PARLEY_DCHECK(task);
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    queue_.push_back(Item{{}, {}, std::move(task)});
    wake = queue_.size() == 1;
  }
  if (wake) cv_.notify_one();
  return true;
}

uint64_t WriteExecutor::BeginTxn() {
  std::lock_guard lock(mu_);
  const uint64_t id = next_txn_++;
  open_txns_.push_back(id);
  return id;
}

void WriteExecutor::EndTxn(uint64_t txn) {
  {
    std::lock_guard lock(mu_);
    auto it = std::find(open_txns_.begin(), open_txns_.end(), txn);
    PARLEY_CHECK(it != open_txns_.end());
    *it = open_txns_.back();
    open_txns_.pop_back();
  }
  cv_.notify_one();
}

size_t WriteExecutor::ReadyLocked() const {
  if (open_txns_.empty() || stopping_) return queue_.size();
  for (size_t i = 0; i < queue_.size(); ++i) {
    const uint64_t t = queue_[i].txn;
    if (t && std::find(open_txns_.begin(), open_txns_.end(), t) != open_txns_.end()) return i;
  }
  return queue_.size();
}

void WriteExecutor::Shutdown() {
  PARLEY_CHECK(!OnExecutorThread());
  std::lock_guard guard(shutdown_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

WriteExecutor::Stats WriteExecutor::stats() const {
  Stats s;
  s.batches = batches_.load();
  s.groups = groups_.load();
  s.max_group = max_group_.load();
  s.synced_groups = synced_groups_.load();
  s.wal_syncs = wal_syncs_.load();
  s.failed_batches = failed_batches_.load();
  s.tasks = tasks_.load();
  s.queued_bytes = queued_bytes_.load();
  return s;
}

void WriteExecutor::CollectMetrics(std::vector<metrics::Family>& out) const {
  metrics::Family latency;
  latency.name = "parley_storage_write_seconds";
  latency.help = "Write batches: from submission to the storage thread until written with the configured durability.";
  latency.type = metrics::Type::kHistogram;
  latency.histograms.push_back(write_seconds_.Snapshot());
  out.push_back(std::move(latency));
  out.push_back(metrics::Family{"parley_storage_write_errors_total", "Write batches that failed (disk full, I/O error).",
                                metrics::Type::kCounter,
                                {metrics::Sample{{}, static_cast<double>(failed_batches_.load(std::memory_order_relaxed))}},
                                {}});
  out.push_back(metrics::Family{"parley_storage_queue_bytes", "Bytes of write batches waiting for the storage thread.",
                                metrics::Type::kGauge,
                                {metrics::Sample{{}, static_cast<double>(queued_bytes_.load(std::memory_order_relaxed))}},
                                {}});
}

void WriteExecutor::Run() {
  pthread_setname_np(pthread_self(), options_.thread_name.substr(0, 15).c_str());
  std::deque<Item> items;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      size_t ready = 0;
      while ((ready = ReadyLocked()) == 0 && !stopping_) {
        if (!unsynced_) {
          cv_.wait(lock);
        } else if (cv_.wait_until(lock, next_sync_) == std::cv_status::timeout) {
          break;
        }
      }
      if (queue_.empty() && stopping_) break;
      if (ready == queue_.size()) {
        items.swap(queue_);
      } else {
        for (size_t i = 0; i < ready; ++i) items.push_back(std::move(queue_[i]));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(ready));
      }
    }
    Process(&items);
    items.clear();
    if (unsynced_ && std::chrono::steady_clock::now() >= next_sync_) SyncNow();
  }
  if (unsynced_) SyncNow();
}

void WriteExecutor::Process(std::deque<Item>* items) {
  // Tasks do not cut a group: cutting one per Barrier-style task would cost an fsync per task under load,
  // which is exactly when group commit matters. A task runs after the group that holds it is written, in
  // its place among the callbacks, so it still follows every batch submitted before it.
  // A group is cut at max_group_bytes, but never inside a transaction (all of its batches go in one group).
  std::unordered_map<uint64_t, size_t> txn_last;
  for (size_t i = 0; i < items->size(); ++i)
    if ((*items)[i].txn) txn_last[(*items)[i].txn] = i;
  size_t begin = 0, bytes = 0, txn_until = 0;  // a transaction seen so far ends at txn_until
  for (size_t i = 0; i < items->size(); ++i) {
    Item& item = (*items)[i];
    if (item.txn) txn_until = std::max(txn_until, txn_last[item.txn]);
    if (item.task) continue;
    bytes += item.batch.ByteSize();
    if (bytes >= options_.max_group_bytes && txn_until <= i) {
      WriteGroup(items, begin, i + 1, bytes);
      bytes = 0;
      begin = i + 1;
    }
  }
  WriteGroup(items, begin, items->size(), bytes);
}

void WriteExecutor::WriteGroup(std::deque<Item>* items, size_t begin, size_t end, size_t bytes) {
  if (begin >= end) return;
  // A batch naming an unknown family fails alone instead of failing the whole group.
  const uint32_t families = store_->family_count();
  auto valid = [&](const Item& it) { return !it.task && it.batch.FamilyLimit() <= families; };
  size_t n = 0;
  const WriteBatch* one = nullptr;
  for (size_t i = begin; i < end; ++i) {
    if (valid((*items)[i])) {
      ++n;
      one = &(*items)[i].batch;
    }
  }
  WriteBatch merged;
  if (n > 1) {
    for (size_t i = begin; i < end; ++i) {
      if (valid((*items)[i])) merged.Append((*items)[i].batch);
    }
    one = &merged;
  }
  Status status;
  if (n > 0) {
    const Sync sync = options_.durability == Durability::kFsync ? Sync::kSync : Sync::kNoSync;
    status = store_->Write(*one, sync);
    groups_.fetch_add(1, std::memory_order_relaxed);
    batches_.fetch_add(n, std::memory_order_relaxed);
    if (sync == Sync::kSync) synced_groups_.fetch_add(1, std::memory_order_relaxed);
    uint64_t prev = max_group_.load(std::memory_order_relaxed);
    while (n > prev && !max_group_.compare_exchange_weak(prev, n)) {
    }
    if (status.ok() && options_.durability == Durability::kBatch && !unsynced_) {
      unsynced_ = true;
      next_sync_ = std::chrono::steady_clock::now() + options_.batch_sync_interval;
    }
  }
  // Each batch's latency: from its Submit until now, when its write has returned with the durability asked for.
  const auto written = std::chrono::steady_clock::now();
  for (size_t i = begin; i < end; ++i) {
    const Item& item = (*items)[i];
    if (!item.task) write_seconds_.Observe(std::chrono::duration<double>(written - item.submitted).count());
  }
  // Release the bytes before the callbacks run, so that a callback's own Submit is not refused for them.
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  const Status unknown_family = Status::InvalidArgument("write batch uses an unknown column family");
  for (size_t i = begin; i < end; ++i) {
    Item& item = (*items)[i];
    if (item.task) {
      item.task();
      tasks_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const Status& s = valid(item) ? status : unknown_family;
    if (!s.ok()) failed_batches_.fetch_add(1, std::memory_order_relaxed);
    if (item.done) item.done(s);
  }
}

void WriteExecutor::SyncNow() {
  Status s = store_->SyncWal();
  wal_syncs_.fetch_add(1, std::memory_order_relaxed);
  if (s.ok()) {
    unsynced_ = false;
    return;
  }
  // Acknowledged writes are not yet durable; retry after another interval.
  spdlog::error("storage: periodic WAL sync failed: {}", s.ToString());
  next_sync_ = std::chrono::steady_clock::now() + options_.batch_sync_interval;
}

}  // namespace parley::storage
