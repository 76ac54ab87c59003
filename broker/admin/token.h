// The admin API's bearer token (docs/admin-api.md, "Authentication").
#pragma once

#include <string>

#include "base/status.h"

namespace parley::admin {

// The token in `path` (its first line, spaces trimmed). When `create` is set and the file does not exist,
// writes a new one first: 32 random bytes hex-encoded, mode 0600, created exclusively (O_EXCL) and fsynced.
// Refuses an empty token, one shorter than 16 characters, and a file that others may read (mode & 077): the
// token is a password.
Result<std::string> LoadOrCreateToken(const std::string& path, bool create);

}  // namespace parley::admin
