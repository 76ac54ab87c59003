// The IM layer's MQTT topics (docs/protocol.md "Topics"). Everything lives under "$im/": wildcard
// subscriptions such as "#" never match topics that start with '$' (MQTT 4.7.2), so ordinary MQTT clients
// never see IM traffic, and the IM layer decides alone who may publish or subscribe there.
//
//   $im/v1/req[/pb|/json|/msgpack]   a device publishes requests (no suffix = protobuf)
//   $im/v1/d/{client_id}/{format}     a device subscribes to its own responses and events
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "im/format.h"

namespace parley::im {

inline constexpr std::string_view kImPrefix = "$im/";
inline constexpr std::string_view kRequestTopic = "$im/v1/req";
inline constexpr std::string_view kDevicePrefix = "$im/v1/d/";

inline bool IsImTopic(std::string_view topic) { return topic.starts_with(kImPrefix); }

// The format of a request topic, or nullopt if `topic` is not one.
std::optional<Format> ParseRequestTopic(std::string_view topic);
// The format of `filter` if it is exactly the device topic of `client_id` (no wildcards), else nullopt.
std::optional<Format> ParseDeviceTopic(std::string_view filter, std::string_view client_id);
std::string DeviceTopic(std::string_view client_id, Format f);
// "$im/v1/d/{client_id}/": everything below it belongs to that device (it may subscribe there, and an MQTT 5
// Response Topic there is honoured).
std::string DeviceTopicPrefix(std::string_view client_id);
// Whether `client_id` can name a device topic: non-empty, one topic level (no '/', '+', '#').
bool IsValidDeviceId(std::string_view client_id);

}  // namespace parley::im
