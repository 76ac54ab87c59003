// Rendering admin API objects as text: a key/value block for any object (formatted by what its field names
// say: *_ms are times, *_seconds durations, *_bytes sizes), and the tables more than one command prints.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "tools/ctl/api.h"
#include "tools/ctl/context.h"
#include "tools/ctl/table.h"

namespace parley::ctl {

// One field's value for display, by its name: "connected_at_ms" / "serverTs" → local time and "5m ago";
// "*_seconds", "keep_alive", "session_expiry", "expiry_interval" → 1h30m ("never" for 4294967295 where MQTT
// means it); "*_bytes" / "bytes" → 4.0 MiB (with the exact count); booleans → yes/no; null → "-".
std::string FormatField(std::string_view key, const Json& value, int64_t now_ms);

// A size field as "4.0 MiB" for a table cell; "-" when absent.
std::string BytesText(const Json& j, std::string_view key);

// Adds every field of `obj` to `kv`, in the server's order; nested objects are flattened
// ("storage.data_dir"); arrays of objects are summarised as "N entries" (print them as tables).
void AddObject(KeyValues& kv, const Json& obj, int64_t now_ms, const std::string& prefix = "");

// Prints `obj` as a key/value block on `out`.
void PrintObject(std::ostream& out, const Json& obj);

// Prints `table`, or "no <what>" when it has no rows.
void PrintTable(std::ostream& out, const Table& table, std::string_view what);

// When a page response has "next" set, a note on stderr naming the key to continue after.
void NoteNext(const Context& ctx, const Json& response, std::string_view command);

// A table of Subscription objects (docs/admin-api.md, Subscriptions); with_client adds the client id column.
Table SubscriptionsTable(const Json& subscriptions, bool with_client);

}  // namespace parley::ctl
