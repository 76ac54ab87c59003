// Log set-up: spdlog's default logger in the configured level and format (docs/operations.md, "Logs").
//
// "text": `[2026-11-28 16:45:33.123] [info] message` (spdlog's default pattern).
// "json": one JSON object per line, `{"ts":"2026-11-28T16:45:33.123+00:00","level":"info","thread":123,
// "msg":"..."}`, the message escaped as a JSON string (quotes, backslashes, control characters; bytes that are
// not UTF-8 become \ufffd), so a client id or topic in a message can never break or forge a line.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace parley::log {

// Level "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off"; format "text" | "json".
// Startup and reload; any thread.
Status Configure(std::string_view level, std::string_view format);
// Changes only the level (the admin API's log-level). Any thread.
Status SetLevel(std::string_view level);
// The current level's name.
std::string LevelName();

// `text` as the body of a JSON string (without the quotes). For the JSON formatter and tests.
std::string JsonEscape(std::string_view text);

}  // namespace parley::log
