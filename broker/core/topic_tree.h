// The subscription tree: topic filters -> subscribers, walked for every PUBLISH.
// One std::shared_mutex guards the whole tree: publishers walk it under a shared lock (many at once,
// one per worker), SUBSCRIBE / UNSUBSCRIBE take it exclusively. Matching collects receivers and
// releases the lock before any session is touched, so the tree lock is never held with a session lock.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/codec/packets.h"
#include "broker/core/session.h"

namespace parley::broker {

// One receiver of one message after overlapping subscriptions were merged (MQTT 5 3.3.4: one copy at
// the highest QoS, carrying every matching subscription identifier).
struct Match {
  SessionPtr session;
  uint8_t qos = 0;
  bool retain_as_published = false;
  std::vector<uint32_t> sub_ids;
  std::shared_ptr<const std::string> shared_group;  // set when chosen from a $share group
};

// Splits "$share/group/filter"; returns false if `filter` is not a shared subscription.
// A shared filter with an empty or wildcard group name, or no filter part, is invalid (`valid` false).
struct SharedFilter {
  std::string_view group;
  std::string_view filter;
  bool valid = false;
};
bool ParseSharedFilter(std::string_view full, SharedFilter* out);

class TopicTree {
 public:
  TopicTree();
  ~TopicTree();

  // Adds or replaces `session`'s subscription to `filter` ("$share/g/f" for a share group).
  // Returns true when the subscription already existed. Any thread.
  bool Subscribe(const SessionPtr& session, std::string_view filter, const mqtt::SubscribeOptions& opts,
                 uint32_t sub_id);
  // Removes it; returns true when it existed. Any thread.
  bool Unsubscribe(const Session* session, std::string_view filter);

  // Receivers of a PUBLISH to `topic` from the session with `origin_client_id`, overlapping subscriptions
  // merged; for each share group matching, one member chosen round robin, online members first.
  // Appends to `out`. Any thread.
  void Collect(std::string_view topic, std::string_view origin_client_id, std::vector<Match>* out) const;

  // Picks a member of share group `shared_group` other than `exclude` (for re-routing messages of a
  // member that left). Returns null when none is left. Any thread.
  SessionPtr PickSharedMember(const std::string& shared_group, const Session* exclude) const;

  size_t SubscriptionCount() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct Node;
  struct Entry;
  class Subscribers;
  struct SharedGroup;
  mutable std::shared_mutex mu_;
  std::unique_ptr<Node> root_;
  std::atomic<size_t> count_{0};
};

}  // namespace parley::broker
