// Small file helpers shared by everything that rewrites a file in place (ban list, password file, backup
// manifest).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/status.h"

namespace parley {

// Replaces `path` with `text` so that readers see the old file or the new one, never a mix, and the new one
// survives a crash: writes "<path>.tmp" (created with `mode`), fsyncs it, renames it over `path`, then fsyncs
// the directory. On an error nothing has changed (the temporary file is removed). A failed directory sync is
// logged, not returned: the rename has happened and readers see the new file. Any thread; blocks on disk.
Status ReplaceFileAtomically(const std::string& path, std::string_view text, mode_t mode);

}  // namespace parley
