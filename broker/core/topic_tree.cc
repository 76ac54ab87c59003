#include "broker/core/topic_tree.h"

#include "broker/core/topic_levels.h"

#include <algorithm>
#include <mutex>

namespace parley::broker {

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

bool ParseSharedFilter(std::string_view full, SharedFilter* out) {
  static constexpr std::string_view kPrefix = "$share/";
  if (full.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = full.substr(kPrefix.size());
  size_t slash = rest.find('/');
  out->valid = false;
  if (slash == std::string_view::npos) return true;
  out->group = rest.substr(0, slash);
  out->filter = rest.substr(slash + 1);
  out->valid = !out->group.empty() && out->group.find_first_of("+#") == std::string_view::npos &&
               !out->filter.empty();
  return true;
}

struct TopicTree::Entry {
  SessionPtr session;
  mqtt::SubscribeOptions opts;
  uint32_t sub_id = 0;
};

// The subscribers of one node (or share group). A flat vector, which Collect walks; once it is long, also a
// hash index from session to position, so that subscribing and unsubscribing stay O(1) when 100,000
// sessions share one topic (a broadcast topic, or a restart restoring them all) instead of O(n) each.
class TopicTree::Subscribers {
 public:
  const std::vector<Entry>& entries() const { return v_; }
  bool empty() const { return v_.empty(); }
  size_t size() const { return v_.size(); }

  Entry* Find(const Session* s) {
    if (index_) {
      auto it = index_->find(s);
      return it == index_->end() ? nullptr : &v_[it->second];
    }
    for (auto& e : v_)
      if (e.session.get() == s) return &e;
    return nullptr;
  }
  void Add(Entry e) {
    if (index_) index_->emplace(e.session.get(), static_cast<uint32_t>(v_.size()));
    v_.push_back(std::move(e));
    if (!index_ && v_.size() > kIndexAbove) {
      index_ = std::make_unique<std::unordered_map<const Session*, uint32_t>>();
      index_->reserve(v_.size() * 2);
      for (uint32_t i = 0; i < v_.size(); ++i) index_->emplace(v_[i].session.get(), i);
    }
  }
  // Removes `s`'s entry (the last entry takes its place); false if it had none.
  bool Remove(const Session* s) {
    size_t pos;
    if (index_) {
      auto it = index_->find(s);
      if (it == index_->end()) return false;
      pos = it->second;
      index_->erase(it);
    } else {
      pos = 0;
      while (pos < v_.size() && v_[pos].session.get() != s) ++pos;
      if (pos == v_.size()) return false;
    }
    if (pos + 1 != v_.size()) {
      v_[pos] = std::move(v_.back());
      if (index_) (*index_)[v_[pos].session.get()] = static_cast<uint32_t>(pos);
    }
    v_.pop_back();
    if (index_ && v_.size() < kIndexAbove / 2) index_.reset();
    return true;
  }

 private:
  static constexpr size_t kIndexAbove = 32;
  std::vector<Entry> v_;
  std::unique_ptr<std::unordered_map<const Session*, uint32_t>> index_;
};

struct TopicTree::SharedGroup {
  std::string name;
  std::shared_ptr<const std::string> key;  // "$share/name/filter"
  Subscribers members;
  mutable std::atomic<size_t> next{0};
};

struct TopicTree::Node {
  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  Subscribers subs;
  std::vector<std::unique_ptr<SharedGroup>> groups;

  bool Empty() const { return children.empty() && !plus && !hash && subs.empty() && groups.empty(); }
  Node* Child(std::string_view level) const {
    if (level == "+") return plus.get();
    if (level == "#") return hash.get();
    auto it = children.find(level);
    return it == children.end() ? nullptr : it->second.get();
  }
  Node* ChildOrCreate(std::string_view level) {
    std::unique_ptr<Node>* slot;
    if (level == "+") {
      slot = &plus;
    } else if (level == "#") {
      slot = &hash;
    } else {
      auto it = children.find(level);
      if (it != children.end()) return it->second.get();
      slot = &children[std::string(level)];
    }
    if (!*slot) *slot = std::make_unique<Node>();
    return slot->get();
  }
  void RemoveChild(std::string_view level) {
    if (level == "+") {
      plus.reset();
    } else if (level == "#") {
      hash.reset();
    } else {
      auto it = children.find(level);
      if (it != children.end()) children.erase(it);
    }
  }
};

TopicTree::TopicTree() : root_(std::make_unique<Node>()) {}
TopicTree::~TopicTree() = default;

bool TopicTree::Subscribe(const SessionPtr& session, std::string_view filter, const mqtt::SubscribeOptions& opts,
                          uint32_t sub_id) {
  SharedFilter sf;
  const bool shared = ParseSharedFilter(filter, &sf);
  std::string_view path = shared ? sf.filter : filter;
  std::vector<std::string_view> levels;
  SplitLevels(path, &levels);

  std::unique_lock lock(mu_);
  Node* node = root_.get();
  for (auto level : levels) node = node->ChildOrCreate(level);

  Subscribers* entries = &node->subs;
  if (shared) {
    SharedGroup* group = nullptr;
    for (auto& g : node->groups)
      if (g->name == sf.group) group = g.get();
    if (!group) {
      node->groups.push_back(std::make_unique<SharedGroup>());
      group = node->groups.back().get();
      group->name = std::string(sf.group);
      group->key = std::make_shared<const std::string>(filter);
    }
    entries = &group->members;
  }
  if (Entry* e = entries->Find(session.get())) {
    e->opts = opts;
    e->sub_id = sub_id;
    return true;
  }
  entries->Add(Entry{session, opts, sub_id});
  count_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool TopicTree::Unsubscribe(const Session* session, std::string_view filter) {
  SharedFilter sf;
  const bool shared = ParseSharedFilter(filter, &sf);
  if (shared && !sf.valid) return false;
  std::string_view path = shared ? sf.filter : filter;
  std::vector<std::string_view> levels;
  SplitLevels(path, &levels);

  std::unique_lock lock(mu_);
  std::vector<Node*> trail{root_.get()};
  for (auto level : levels) {
    Node* next = trail.back()->Child(level);
    if (!next) return false;
    trail.push_back(next);
  }
  Node* node = trail.back();
  bool removed = false;
  auto erase_from = [&](Subscribers& v) { removed = v.Remove(session); };
  if (shared) {
    for (size_t i = 0; i < node->groups.size(); ++i) {
      if (node->groups[i]->name != sf.group) continue;
      erase_from(node->groups[i]->members);
      if (node->groups[i]->members.empty()) node->groups.erase(node->groups.begin() + i);
      break;
    }
  } else {
    erase_from(node->subs);
  }
  if (!removed) return false;
  count_.fetch_sub(1, std::memory_order_relaxed);
  // Prune nodes left empty, leaf first.
  for (size_t i = levels.size(); i > 0; --i) {
    if (!trail[i]->Empty()) break;
    trail[i - 1]->RemoveChild(levels[i - 1]);
  }
  return true;
}

void TopicTree::Collect(std::string_view topic, std::string_view origin_client_id,
                        std::vector<Match>* out) const {
  thread_local std::vector<std::string_view> levels;
  thread_local std::vector<const Entry*> hits;
  thread_local std::vector<const SharedGroup*> groups;
  SplitLevels(topic, &levels);
  hits.clear();
  groups.clear();
  const bool dollar = !topic.empty() && topic[0] == '$';
  int nodes_with_subs = 0;

  auto add_node = [&](const Node* n) {
    if (!n->subs.empty()) {
      ++nodes_with_subs;
      for (const auto& e : n->subs.entries()) hits.push_back(&e);
    }
    for (const auto& g : n->groups) groups.push_back(g.get());
  };

  std::shared_lock lock(mu_);
  // Iterative walk: a stack of (node, level index).
  thread_local std::vector<std::pair<const Node*, size_t>> stack;
  stack.clear();
  stack.emplace_back(root_.get(), 0);
  const size_t n = levels.size();
  while (!stack.empty()) {
    auto [node, i] = stack.back();
    stack.pop_back();
    const bool wildcard_ok = !(i == 0 && dollar);  // MQTT 4.7.2: '$' topics never match leading wildcards
    if (i == n) {
      add_node(node);
      if (node->hash) add_node(node->hash.get());  // "a/#" matches "a"
      continue;
    }
    if (node->hash && wildcard_ok) add_node(node->hash.get());
    if (node->plus && wildcard_ok) stack.emplace_back(node->plus.get(), i + 1);
    auto it = node->children.find(levels[i]);
    if (it != node->children.end()) stack.emplace_back(it->second.get(), i + 1);
  }

  // Merge overlapping subscriptions of one session into one receiver.
  if (nodes_with_subs > 1)
    std::sort(hits.begin(), hits.end(),
              [](const Entry* a, const Entry* b) { return a->session.get() < b->session.get(); });
  Match* last = nullptr;
  for (const Entry* e : hits) {
    if (e->opts.no_local && e->session->client_id() == origin_client_id) continue;
    if (last && last->session.get() == e->session.get()) {
      last->qos = std::max(last->qos, e->opts.qos);
      last->retain_as_published |= e->opts.retain_as_published;
      if (e->sub_id) last->sub_ids.push_back(e->sub_id);
      continue;
    }
    out->push_back(Match{e->session, e->opts.qos, e->opts.retain_as_published, {}, nullptr});
    last = &out->back();
    if (e->sub_id) last->sub_ids.push_back(e->sub_id);
  }

  // One member per share group: round robin, preferring members that are online.
  for (const SharedGroup* g : groups) {
    const size_t size = g->members.size();
    if (size == 0) continue;
    const size_t start = g->next.fetch_add(1, std::memory_order_relaxed);
    const Entry* chosen = nullptr;
    for (size_t k = 0; k < size; ++k) {
      const Entry& e = g->members.entries()[(start + k) % size];
      if (e.session->online_.load(std::memory_order_relaxed)) {
        chosen = &e;
        // Continue the rotation after the member chosen, not after the offline ones skipped: else the
        // member behind an offline one would get its turn as well as its own.
        if (k) g->next.fetch_add(k, std::memory_order_relaxed);
        break;
      }
    }
    if (!chosen) chosen = &g->members.entries()[start % size];
    Match m{chosen->session, chosen->opts.qos, chosen->opts.retain_as_published, {}, g->key};
    if (chosen->sub_id) m.sub_ids.push_back(chosen->sub_id);
    out->push_back(std::move(m));
  }
}

SessionPtr TopicTree::PickSharedMember(const std::string& shared_group, const Session* exclude) const {
  SharedFilter sf;
  if (!ParseSharedFilter(shared_group, &sf) || !sf.valid) return nullptr;
  std::vector<std::string_view> levels;
  SplitLevels(sf.filter, &levels);
  std::shared_lock lock(mu_);
  const Node* node = root_.get();
  for (auto level : levels) {
    node = node->Child(level);
    if (!node) return nullptr;
  }
  for (const auto& g : node->groups) {
    if (g->name != sf.group) continue;
    const size_t size = g->members.size();
    const size_t start = g->next.fetch_add(1, std::memory_order_relaxed);
    SessionPtr fallback;
    for (size_t k = 0; k < size; ++k) {
      const Entry& e = g->members.entries()[(start + k) % size];
      if (e.session.get() == exclude) continue;
      if (e.session->online_.load(std::memory_order_relaxed)) return e.session;
      if (!fallback) fallback = e.session;
    }
    return fallback;
  }
  return nullptr;
}

}  // namespace parley::broker
