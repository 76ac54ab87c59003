// Duration and size literals used in conf/parley.toml (docs/configuration.md, "Units").
// Pure functions on strings; no TOML, no key names. The loader adds "<file>:<line>: <key>: " to the
// messages. Any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace parley::config {

// "<digits><unit>" with unit one of ms, s, m, h, d (lower case, no space, no sign, no fraction),
// e.g. "500ms", "10s", "5m", "1h", "7d". Returns milliseconds. A bare number is an error: durations
// always carry their unit so that "30" can never be misread as 30 ms or 30 minutes.
Result<uint64_t> ParseDurationMs(std::string_view text);

// "<digits><unit>" with unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024),
// unit case-insensitive, no space: "512B", "64KiB", "1MiB", "10MB". Returns bytes. Integers (bytes)
// are handled by the loader, not here.
Result<uint64_t> ParseSizeBytes(std::string_view text);

// The shortest exact spelling of a duration in the largest whole unit: 90000 -> "90s", 7200000 -> "2h".
std::string FormatDurationMs(uint64_t ms);

// s in double quotes with quotes, backslashes and control bytes escaped, for error messages: a value
// copied from a config file must not be able to forge a second log line.
std::string QuoteForMessage(std::string_view s);
// `text` with control characters written as \xNN, so a message that quotes a file's bytes (a TOML parser's
// description, an unknown option's name) stays one line and cannot forge log lines.
std::string Printable(std::string_view text);
// Levenshtein distance, for "did you mean" suggestions on unknown keys and options.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace parley::config
