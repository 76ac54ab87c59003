// Jobs: admin operations that take longer than a request (backup, compaction) run on their own thread and
// are polled by id (docs/admin-api.md, "Jobs"). At most one job of each kind runs at a time; the last
// kKeep finished jobs are remembered.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace parley::admin {

// What a running job reports; written by the job's thread, read by the admin thread.
class JobProgress {
 public:
  void Phase(std::string phase, uint64_t total) {
    std::lock_guard lock(mu_);
    phase_ = std::move(phase);
    total_ = total;
    done_ = 0;
  }
  void Add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  void SetResult(nlohmann::json result) {
    std::lock_guard lock(mu_);
    result_ = std::move(result);
  }

 private:
  friend class Jobs;
  std::mutex mu_;
  std::string phase_;
  uint64_t total_ = 0;
  std::atomic<uint64_t> done_{0};
  nlohmann::json result_;
};

class Jobs {
 public:
  static constexpr size_t kKeep = 20;
  using Work = std::function<Status(JobProgress&)>;

  Jobs() = default;
  // Waits for running jobs to finish (a backup or compaction is not interrupted halfway).
  ~Jobs();
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;

  // Starts `work` on a new thread as a job of `kind` whose progress counts `unit` ("bytes", "families").
  // Returns the job's JSON; an error if a job of this kind is running. Any thread.
  Result<nlohmann::json> Start(const std::string& kind, const std::string& unit, Work work);
  // The job's JSON (docs/admin-api.md), or null if unknown. Any thread.
  nlohmann::json Get(const std::string& id) const;
  // Newest first.
  nlohmann::json List() const;

 private:
  struct Job {
    std::string id, kind, unit;
    std::string state = "running";
    std::string error;
    int64_t started_at_ms = 0, finished_at_ms = 0;
    mutable JobProgress progress;  // written by the job thread (its own locking)
    std::thread thread;
  };
  static nlohmann::json ToJson(const Job& j);
  void Finish(Job* job, const Status& st);

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Job>> jobs_;  // guarded by mu_; newest at the back
  uint64_t next_id_ = 1;                   // guarded by mu_
};

}  // namespace parley::admin
