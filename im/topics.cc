#include "im/topics.h"

namespace parley::im {

std::optional<Format> ParseRequestTopic(std::string_view topic) {
  if (!topic.starts_with(kRequestTopic)) return std::nullopt;
  topic.remove_prefix(kRequestTopic.size());
  if (topic.empty()) return Format::kProtobuf;
  if (topic.front() != '/') return std::nullopt;
  return FormatFromSuffix(topic.substr(1));
}

std::optional<Format> ParseDeviceTopic(std::string_view filter, std::string_view client_id) {
  if (!IsValidDeviceId(client_id) || !filter.starts_with(kDevicePrefix)) return std::nullopt;
  filter.remove_prefix(kDevicePrefix.size());
  if (!filter.starts_with(client_id)) return std::nullopt;
  filter.remove_prefix(client_id.size());
  if (filter.empty() || filter.front() != '/') return std::nullopt;
  return FormatFromSuffix(filter.substr(1));
}

std::string DeviceTopic(std::string_view client_id, Format f) {
  std::string t;
  t.reserve(kDevicePrefix.size() + client_id.size() + 8);
  t.append(kDevicePrefix).append(client_id).append("/").append(FormatSuffix(f));
  return t;
}

std::string DeviceTopicPrefix(std::string_view client_id) {
  std::string t(kDevicePrefix);
  t.append(client_id).push_back('/');
  return t;
}

bool IsValidDeviceId(std::string_view client_id) {
  return !client_id.empty() && client_id.find_first_of("/+#") == std::string_view::npos;
}

}  // namespace parley::im
