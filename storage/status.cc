#include "storage/status.h"

#include <set>

#include "storage/format.h"
#include "storage/internal.h"

namespace parley::storage {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kNotFound:
      return "not_found";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kBusy:
      return "busy";
    case Code::kPermissionDenied:
      return "permission_denied";
    case Code::kCorruption:
      return "corruption";
    case Code::kNoSpace:
      return "no_space";
    case Code::kIo:
      return "io_error";
    case Code::kIncompatible:
      return "incompatible";
    case Code::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = CodeName(code_);
  if (!msg_.empty()) {
    s += ": ";
    s += msg_;
  }
  return s;
}

namespace internal {

Bounds ResolveBounds(const IteratorOptions& options) {
  Bounds b{options.lower_bound, options.upper_bound};
  if (!options.prefix.empty()) {
    if (!b.lower || *b.lower < options.prefix) b.lower = options.prefix;
    std::string succ = PrefixSuccessor(options.prefix);
    if (!succ.empty() && (!b.upper || succ < *b.upper)) b.upper = std::move(succ);
  }
  return b;
}

Status ValidateFamilyNames(const std::vector<std::string>& names) {
  std::set<std::string_view> seen;
  for (const std::string& n : names) {
    if (n.empty()) return Status::InvalidArgument("a column family name is empty");
    if (n == kMetaFamilyName) {
      return Status::InvalidArgument("column family name '" + n + "' is reserved for storage metadata");
    }
    if (!seen.insert(n).second) return Status::InvalidArgument("column family '" + n + "' is listed twice");
  }
  return Status::Ok();
}

std::string Quote(std::string_view path) {
  return "'" + std::string(path) + "'";
}

}  // namespace internal
}  // namespace parley::storage
