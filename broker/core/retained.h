// In-memory RetainedStore: a tree of topic levels under one shared_mutex (reads are per SUBSCRIBE,
// writes per retained PUBLISH).
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>

#include "broker/api/retained_store.h"

namespace parley::broker {

class MemoryRetainedStore final : public RetainedStore {
 public:
  // max_messages: 0 = unlimited.
  explicit MemoryRetainedStore(uint32_t max_messages = 0);
  ~MemoryRetainedStore() override;

  bool Set(MessagePtr msg) override;
  void Match(std::string_view filter, const std::function<void(const MessagePtr&)>& fn) const override;
  size_t Count() const override { return count_.load(std::memory_order_relaxed); }

 private:
  struct Node;
  const uint32_t max_messages_;
  mutable std::shared_mutex mu_;
  std::unique_ptr<Node> root_;
  std::atomic<size_t> count_{0};
};

}  // namespace parley::broker
