// Internal helpers shared by the password and ACL file loaders. Not part of the library's interface.
// Pure functions except ReadSmallFile; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace parley::broker::auth {

// Standard base64 (RFC 4648 section 4, '+' and '/'), with '=' padding; no line breaks.
std::string Base64Encode(std::string_view bytes);

// Decodes standard base64. Padding is optional, whitespace is not allowed. Returns nullopt on any character
// outside the alphabet, misplaced padding, or an impossible length.
std::optional<std::string> Base64Decode(std::string_view text);

// Removes ASCII blanks (space, tab, CR, LF, VT, FF) from both ends.
std::string_view TrimBlanks(std::string_view s);

// Reads a whole regular file of at most `max_bytes`. Errors name the path and the OS reason.
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

// Splits `text` into lines at '\n', calling `fn(line_number, line)` with 1-based numbers and the line
// without its '\n'. A final line without '\n' is included; a trailing '\n' adds no empty line.
template <typename Fn>
Status ForEachLine(std::string_view text, Fn&& fn) {
  int number = 0;
  while (!text.empty()) {
    ++number;
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (Status st = fn(number, line); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace parley::broker::auth
