// Mosquitto 2.0's mosquitto.conf read as a Parley configuration, so an operator can start parleyd on the
// file they already have (docs/migrating-from-mosquitto.md lists every option and what it becomes).
//
// - Options with a Parley equivalent are translated into Config.
// - Options without one leave Config alone and add one line each to Config::warnings:
//   "<file>:<line>: <option>: <what Parley does instead>; <what to do>".
// - Bad values are errors, reported like the TOML loader's: "<file>:<line>: <option>: <what is wrong>", every
//   problem at once (at most 20), in file order then line order.
// - Where a default differs, Mosquitto's wins when it changes what clients see (anonymous access, listeners,
//   persistence, in-flight window, topic aliases); Parley's stays where Mosquitto has no bound at all
//   (packet size, queued bytes). The doc has the table.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "broker/config/config.h"

namespace parley::config {

// Whether `text`, the contents of the config file at `path`, is a mosquitto.conf rather than TOML. The first
// line that is neither blank nor a comment decides: one starting with '[' or reading `key = ...` is TOML; one
// starting with a Mosquitto option name (`listener 1883`, `allow_anonymous false`, ...) is Mosquitto. When
// no line decides (an empty file, only comments, an unknown first word), the name does: a path ending in
// ".conf" is Mosquitto, anything else TOML. Pure; any thread.
bool IsMosquittoConfig(std::string_view text, std::string_view path);

// Translates mosquitto.conf text. `source_name` names the file in messages and becomes Config::source_path.
// Relative paths in the file (password_file, acl_file, certfile, keyfile, cafile, persistence_location,
// include_dir) are resolved against `base_dir`, or, when it is empty, against the directory part of
// source_name (Mosquitto itself resolves them against its working directory). `include_dir` reads the
// "*.conf" files of that directory from disk, in Mosquitto's order; nothing else touches the file system.
// Never throws. Startup; any thread.
Result<Config> ParseMosquittoConfig(std::string_view text, const std::string& source_name,
                                    const std::string& base_dir = "");

}  // namespace parley::config
