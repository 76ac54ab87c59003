// Plain values the broker's administration methods return (Broker, "Administration"; docs/admin-api.md):
// snapshots of sessions and subscriptions copied out under their locks, safe to keep and read on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "broker/codec/packets.h"

namespace parley::broker {

// One session as an operator sees it (GET /api/v1/sessions).
struct SessionInfo {
  std::string client_id;
  std::optional<std::string> username;  // of the connection that last bound it
  bool online = false;
  uint32_t expiry_interval = 0;         // seconds; 0xFFFFFFFF = never
  // Seconds left before an offline session expires; nullopt while online or when it never expires.
  std::optional<int64_t> expires_in_seconds;
  size_t subscriptions = 0;
  size_t queued = 0;          // deliveries not yet sent (any QoS)
  uint64_t queued_bytes = 0;  // their footprint, as counted against limits.max_queued_bytes
  size_t inflight = 0;        // sent QoS 1/2 messages awaiting their acks
};

// One subscription (GET /api/v1/subscriptions).
struct SubscriptionInfo {
  std::string client_id;
  std::string filter;                       // without any "$share/{group}/" prefix
  std::optional<std::string> share_group;   // the group of a shared subscription
  mqtt::SubscribeOptions opts;
  uint32_t subscription_id = 0;             // 0 = none
};

// Which sessions a listing returns.
enum class SessionState : uint8_t { kAll, kOnline, kOffline };

// What Broker::DropSession did.
struct DropResult {
  bool found = false;   // there was such a session (it is gone now)
  bool kicked = false;  // a connection was bound to it and was told to close (0x98)
};

}  // namespace parley::broker
