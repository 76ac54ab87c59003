#include "broker/admin/jobs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace parley::admin {
namespace {
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Jobs::~Jobs() {
  std::deque<std::unique_ptr<Job>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.swap(jobs_);
  }
  for (auto& j : jobs)
    if (j->thread.joinable()) j->thread.join();
}

Result<nlohmann::json> Jobs::Start(const std::string& kind, const std::string& unit, Work work) {
  std::lock_guard lock(mu_);
  for (const auto& j : jobs_)
    if (j->kind == kind && j->state == "running") return Status::Error("a " + kind + " job is running (job " + j->id + ")");
  // Forget the oldest finished jobs; a running one is never dropped (its thread still uses it).
  while (jobs_.size() >= kKeep) {
    auto it = std::find_if(jobs_.begin(), jobs_.end(), [](const auto& j) { return j->state != "running"; });
    if (it == jobs_.end()) break;
    if ((*it)->thread.joinable()) (*it)->thread.join();  // finished: returns at once
    jobs_.erase(it);
  }
  auto job = std::make_unique<Job>();
  job->id = std::to_string(next_id_++);
  job->kind = kind;
  job->unit = unit;
  job->started_at_ms = NowMs();
  Job* raw = job.get();
  jobs_.push_back(std::move(job));
  spdlog::info("job {} ({}) started", raw->id, kind);
  raw->thread = std::thread([this, raw, work = std::move(work)] {
    Status st;
    try {
      st = work(raw->progress);
    } catch (const std::exception& e) {
      st = Status::Error(std::string("unexpected error: ") + e.what());
    }
    Finish(raw, st);
  });
  return ToJson(*raw);
}

void Jobs::Finish(Job* job, const Status& st) {
  std::lock_guard lock(mu_);
  job->finished_at_ms = NowMs();
  job->state = st.ok() ? "done" : "failed";
  if (!st.ok()) job->error = st.message();
  if (st.ok()) {
    spdlog::info("job {} ({}) done in {} ms", job->id, job->kind, job->finished_at_ms - job->started_at_ms);
  } else {
    spdlog::error("job {} ({}) failed: {}", job->id, job->kind, st.message());
  }
}

nlohmann::json Jobs::ToJson(const Job& j) {
  nlohmann::json out;
  out["id"] = j.id;
  out["kind"] = j.kind;
  out["state"] = j.state;
  out["unit"] = j.unit;
  out["started_at_ms"] = j.started_at_ms;
  out["finished_at_ms"] = j.finished_at_ms ? nlohmann::json(j.finished_at_ms) : nlohmann::json(nullptr);
  out["error"] = j.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.error);
  JobProgress& p = j.progress;
  std::lock_guard lock(p.mu_);
  out["phase"] = p.phase_;
  out["done"] = p.done_.load(std::memory_order_relaxed);
  out["total"] = p.total_;
  out["result"] = p.result_.is_null() ? nlohmann::json(nullptr) : p.result_;
  return out;
}

nlohmann::json Jobs::Get(const std::string& id) const {
  std::lock_guard lock(mu_);
  for (const auto& j : jobs_)
    if (j->id == id) return ToJson(*j);
  return nullptr;
}

nlohmann::json Jobs::List() const {
  std::lock_guard lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) out.push_back(ToJson(**it));
  return out;
}

}  // namespace parley::admin
