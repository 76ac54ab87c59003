// What the broker core needs to know from the configuration. broker/main fills it from conf/parley.toml,
// so core never parses config files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace parley::broker {

struct BrokerOptions {
  uint32_t max_packet_size = 1024 * 1024;
  uint16_t receive_maximum = 64;
  uint16_t max_inflight = 64;
  uint32_t max_queued_messages = 1000;
  uint64_t max_queued_bytes = 64ull * 1024 * 1024;
  uint16_t topic_alias_maximum = 64;
  uint16_t max_keep_alive = 0;  // 0 = no cap
  std::optional<uint32_t> max_session_expiry;
  uint8_t max_qos = 2;
  bool retain_available = true;
  bool wildcard_subscriptions = true;
  bool subscription_identifiers = true;
  bool shared_subscriptions = true;
  uint32_t max_client_id_length = 256;
  uint32_t max_topic_length = 65535;
  uint32_t max_topic_levels = 128;
  uint32_t max_subscriptions_per_client = 0;
  std::chrono::milliseconds connect_timeout{10'000};
  uint64_t max_outbound_buffer = 16ull * 1024 * 1024;
  std::chrono::milliseconds write_timeout{60'000};  // 0 = never
  uint32_t max_retained_messages = 0;
  // Inbound PUBLISH rate per client (token buckets; 0 = unlimited). Past it the client's socket is not read
  // until the bucket refills: TCP pushes back on the publisher, nothing is dropped.
  uint32_t publish_rate = 0;
  uint32_t publish_burst = 0;      // 0 = the rate
  uint64_t publish_byte_rate = 0;
  uint64_t publish_byte_burst = 0; // 0 = the rate, at least max_packet_size
  bool allow_anonymous = true;
  bool queue_qos0_offline = false;  // queue QoS 0 messages for offline persistent sessions
  bool sys_enabled = true;
  std::chrono::seconds sys_interval{10};
};

}  // namespace parley::broker
