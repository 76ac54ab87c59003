// IM payload formats. A device picks one per request (the request topic's suffix, or an MQTT 5 Content Type)
// and per subscription (its device topic's suffix); docs/protocol.md "Payload formats".
//   protobuf — the im.proto messages in binary (the default, smallest);
//   JSON     — protobuf's canonical JSON mapping of the same messages;
//   MsgPack  — that JSON document encoded as MsgPack (same field names and value forms).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace google::protobuf {
class Message;
}

namespace parley::im {

enum class Format : uint8_t { kProtobuf = 0, kJson = 1, kMsgPack = 2 };
inline constexpr int kFormatCount = 3;

// "pb" | "json" | "msgpack": the topic suffix of each format.
std::string_view FormatSuffix(Format f);
std::optional<Format> FormatFromSuffix(std::string_view suffix);
// The MQTT 5 Content Type that selects each format ("application/x-protobuf", "application/json",
// "application/msgpack"); FormatFromContentType also accepts common aliases.
std::string_view FormatContentType(Format f);
std::optional<Format> FormatFromContentType(std::string_view content_type);

// Parses `payload` into `out` (cleared first). Unknown fields are ignored in every format (newer clients talk
// to older servers). Errors say what was wrong, for an ERR_BAD_REQUEST. Any thread.
Status Decode(std::string_view payload, Format format, google::protobuf::Message* out);
// Encodes `msg`. Never fails for messages built by the server. Any thread.
std::string Encode(const google::protobuf::Message& msg, Format format);

}  // namespace parley::im
