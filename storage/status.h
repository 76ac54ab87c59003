// storage::Status and storage::Result<T>: base/status.h plus an error code, so that callers can tell a full
// disk (which the broker maps to MQTT 0x97 Quota exceeded) from corruption or a locked data dir without
// parsing messages. Convert to parley::Status with ToBase() where a layer above wants the plain type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/check.h"
#include "base/status.h"

namespace parley::storage {

enum class Code : uint8_t {
  kOk = 0,
  kNotFound,  // a path or file that should exist does not (never used for a missing key: Get returns nullopt)
  kInvalidArgument,   // caller error: unknown family, bad option, checkpoint target exists...
  kBusy,              // the data dir is locked by another process (or already open in this one)
  kPermissionDenied,  // the data dir or a file in it cannot be read or written by this process
  kCorruption,        // the data dir is damaged; restore it from a backup (parleyctl restore)
  kNoSpace,           // the disk is full; writes are refused until space returns (reads still work)
  kIo,                // any other I/O error
  kIncompatible,      // the data dir was written by a newer storage format
  kShutdown,          // the store or executor is shutting down
};

// The lower-case name of a code ("no_space"), stable: usable in logs and metrics labels.
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), msg_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
  static Status Io(std::string m) { return {Code::kIo, std::move(m)}; }
  static Status Incompatible(std::string m) { return {Code::kIncompatible, std::move(m)}; }
  static Status Shutdown(std::string m) { return {Code::kShutdown, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsBusy() const { return code_ == Code::kBusy; }

  // "ok", or "<code name>: <message>".
  std::string ToString() const;
  // The plain base status (the message keeps the code name as its prefix).
  parley::Status ToBase() const { return ok() ? parley::Status::Ok() : parley::Status::Error(ToString()); }

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// A value or a failed Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status st) : v_(std::move(st)) {    // NOLINT(google-explicit-constructor)
    PARLEY_DCHECK(!std::get<1>(v_).ok());
  }

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace parley::storage
