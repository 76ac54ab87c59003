// TaskQueue: one thread that runs posted closures in the order they were posted. The IM layer's writer
// strand and its reader are each one of these.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace parley::im {

class TaskQueue {
 public:
  explicit TaskQueue(std::string name);
  // Stop().
  ~TaskQueue();
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // Queues `task`; false (task dropped) once Stop() has begun. Any thread, including the queue's own.
  bool Post(std::function<void()> task);
  // Stops accepting tasks, runs every task already queued (tasks they post are dropped), joins the thread.
  // Idempotent. Any thread but the queue's own.
  void Stop();
  bool OnThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  size_t pending() const;

 private:
  void Run();

  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;
};

}  // namespace parley::im
