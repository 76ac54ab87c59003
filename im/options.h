// The IM layer's settings: the [im] table of the configuration (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstdint>

namespace parley::im {

struct Options {
  uint32_t max_group_members = 10'000;
  // Conversations with at most this many members write one inbox pointer per member per stream entry (a
  // reconnecting device finds them in O(changes)); larger ones write nothing per member.
  uint32_t inbox_fanout_max = 500;
  uint32_t receipts_max_members = 100;  // read receipts go to the other members of groups up to this size
  uint32_t typing_max_members = 100;    // typing indicators are forwarded in groups up to this size
  std::chrono::seconds dedup_window{7 * 24 * 3600};
  std::chrono::seconds edit_window{24 * 3600};
  std::chrono::seconds recall_window{24 * 3600};
  uint32_t max_message_bytes = 64 * 1024;  // text + body + attachments of one message
  uint32_t max_mentions = 50;
  uint32_t max_versions = 20;  // edits kept per message; older versions are dropped
  double send_rate = 50;       // writes per second per user (token bucket): sends, edits, recalls, deletions,
                               // conversation creations and group changes ...
  uint32_t send_burst = 200;   // ... with this bucket size
  std::chrono::milliseconds presence_grace{5000};   // offline is announced after this long without a device
  std::chrono::milliseconds typing_interval{2000};  // at most one typing event per user per conversation
  std::chrono::seconds retention_max_age{0};        // 0 = keep messages forever
  uint64_t retention_max_count = 0;                 // per conversation; 0 = no limit
  std::chrono::seconds inbox_retention{30 * 24 * 3600};  // older sync cursors get a full sync
  std::chrono::seconds sweep_interval{60};          // retention, dedup and inbox clean-up
};

}  // namespace parley::im
