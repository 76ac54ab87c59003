#include "broker/core/retained.h"

#include "broker/core/topic_levels.h"

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace parley::broker {

struct MemoryRetainedStore::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
  MessagePtr msg;
};

MemoryRetainedStore::MemoryRetainedStore(uint32_t max_messages)
    : max_messages_(max_messages), root_(std::make_unique<Node>()) {}
MemoryRetainedStore::~MemoryRetainedStore() = default;

bool MemoryRetainedStore::Set(MessagePtr msg) {
  std::vector<std::string_view> levels;
  SplitLevels(msg->topic, &levels);
  std::unique_lock lock(mu_);
  if (msg->payload.empty()) {
    std::vector<std::pair<Node*, std::string_view>> trail;
    Node* node = root_.get();
    for (auto level : levels) {
      auto it = node->children.find(level);
      if (it == node->children.end()) return true;
      trail.emplace_back(node, level);
      node = it->second.get();
    }
    if (node->msg) {
      node->msg.reset();
      count_.fetch_sub(1, std::memory_order_relaxed);
    }
    // Prune empty nodes, leaf first.
    while (!trail.empty()) {
      auto [parent, level] = trail.back();
      auto it = parent->children.find(level);
      if (it->second->msg || !it->second->children.empty()) break;
      parent->children.erase(it);
      trail.pop_back();
    }
    return true;
  }
  // Replacing an existing topic is always allowed; a new topic only below the limit, checked before
  // any node is created so a refused topic leaves nothing behind.
  Node* node = root_.get();
  size_t depth = 0;
  for (; depth < levels.size(); ++depth) {
    auto it = node->children.find(levels[depth]);
    if (it == node->children.end()) break;
    node = it->second.get();
  }
  const bool is_new = depth < levels.size() || !node->msg;
  if (is_new && max_messages_ && count_.load(std::memory_order_relaxed) >= max_messages_) return false;
  for (; depth < levels.size(); ++depth)
    node = node->children.emplace(std::string(levels[depth]), std::make_unique<Node>()).first->second.get();
  if (is_new) count_.fetch_add(1, std::memory_order_relaxed);
  node->msg = std::move(msg);
  return true;
}

void MemoryRetainedStore::Match(std::string_view filter,
                                const std::function<void(const MessagePtr&)>& fn) const {
  std::vector<std::string_view> levels;
  SplitLevels(filter, &levels);
  std::shared_lock lock(mu_);

  // Every message strictly below `node`, skipping '$' topics when the wildcard stands at the root.
  auto descendants = [&](const Node* node, bool at_root, auto&& self) -> void {
    for (const auto& [name, child] : node->children) {
      if (at_root && !name.empty() && name[0] == '$') continue;
      if (child->msg) fn(child->msg);
      self(child.get(), false, self);
    }
  };
  auto walk = [&](const Node* node, size_t i, auto&& self) -> void {
    if (i == levels.size()) {
      if (node->msg) fn(node->msg);
      return;
    }
    const std::string_view level = levels[i];
    if (level == "#") {
      if (node->msg && i > 0) fn(node->msg);  // "a/#" matches "a"
      descendants(node, i == 0, descendants);
      return;
    }
    if (level == "+") {
      for (const auto& [name, child] : node->children) {
        if (i == 0 && !name.empty() && name[0] == '$') continue;
        self(child.get(), i + 1, self);
      }
      return;
    }
    auto it = node->children.find(level);
    if (it != node->children.end()) self(it->second.get(), i + 1, self);
  };
  walk(root_.get(), 0, walk);
}

}  // namespace parley::broker
