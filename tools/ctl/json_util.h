// Reading fields of admin API responses for display, tolerantly: a missing field, a null, a number sent as a
// string (protobuf JSON sends 64-bit integers as strings) and the camelCase / snake_case spellings of IM
// objects all read without throwing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "tools/ctl/api.h"

namespace parley::ctl {

// The first of `keys` present in object `j` and not null; nullptr if none (or `j` is not an object).
const Json* Field(const Json& j, std::initializer_list<std::string_view> keys);

// The field as display text: strings as they are, numbers and booleans printed, arrays of scalars joined
// with ", ", objects and other arrays as compact JSON; `missing` when absent or null.
std::string Text(const Json& j, std::initializer_list<std::string_view> keys, std::string_view missing = "");
std::string Text(const Json& value);

// The field as an integer: a JSON integer, a float (truncated), or a string of decimal digits.
std::optional<int64_t> Int(const Json& j, std::initializer_list<std::string_view> keys);

// The field as a boolean; nullopt when absent, null or not a boolean.
std::optional<bool> Bool(const Json& j, std::initializer_list<std::string_view> keys);

// "yes" / "no" / `missing`.
std::string YesNo(const Json& j, std::initializer_list<std::string_view> keys, std::string_view missing = "");

// The member `key` of `j`, or a null value when it is absent (or `j` is not an object).
const Json& Get(const Json& j, std::string_view key);

// The member `key` of `j` if it is an array, else an empty array (so `for (auto& x : Array(r, "clients"))`
// never throws).
const Json& Array(const Json& j, std::string_view key);

// The member `key` of `j` if it is an object, else an empty object.
const Json& Object(const Json& j, std::string_view key);

// A number for a table cell: "1,234,567"-style grouping is not used (scripts copy these); plain digits,
// or `missing`.
std::string IntText(const Json& j, std::initializer_list<std::string_view> keys,
                    std::string_view missing = "");

// Pretty JSON for --json: two-space indent, the server's key order, invalid UTF-8 replaced.
std::string Pretty(const Json& j);

}  // namespace parley::ctl
