// Pieces shared by the Store implementations. Private to storage/: not for callers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/store.h"

namespace parley::storage::internal {

// The effective [lower, upper) of an iterator: its bounds intersected with its prefix range.
struct Bounds {
  std::optional<std::string> lower;  // inclusive
  std::optional<std::string> upper;  // exclusive
  bool AboveLower(std::string_view k) const { return !lower || k >= std::string_view(*lower); }
  bool BelowUpper(std::string_view k) const { return !upper || k < std::string_view(*upper); }
  // True when no key can be in bounds.
  bool Empty() const { return lower && upper && *lower >= *upper; }
};
Bounds ResolveBounds(const IteratorOptions& options);

// Checks caller family names: non-empty, unique, and not the meta family's name.
Status ValidateFamilyNames(const std::vector<std::string>& names);

// An iterator that is never valid and reports a fixed status.
class ErrorIterator final : public Iterator {
 public:
  explicit ErrorIterator(Status status) : status_(std::move(status)) {}
  bool Valid() const override { return false; }
  void SeekToFirst() override {}
  void SeekToLast() override {}
  void Seek(std::string_view) override {}
  void SeekForPrev(std::string_view) override {}
  void Next() override {}
  void Prev() override {}
  std::string_view key() const override { return {}; }
  std::string_view value() const override { return {}; }
  Status status() const override { return status_; }

 private:
  Status status_;
};

// "data dir X" style description of a path for messages.
std::string Quote(std::string_view path);

}  // namespace parley::storage::internal
