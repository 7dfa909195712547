// Status and Result<T>: the error currency at every kvstore boundary.
//
// A code tells the caller what to do next:
//   kNotFound          the key is not stored (insert it, or recompute)
//   kTimeout           the deadline passed; the operation did not happen
//   kResourceExhausted the store is full or a limit was hit; retry later
//   kInvalidArgument   the call is malformed; fix the call, retrying will not help
//   kUnavailable       the peer is gone or shutting down; reconnect
//   kDataLoss          bytes failed their checksum; the entry was discarded
//   kPermissionDenied  authentication or namespace check failed
//   kInternal          a bug or an unexpected system failure; see the message
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <cassert>

namespace kvstore {

enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kTimeout = 2,
  kResourceExhausted = 3,
  kInvalidArgument = 4,
  kUnavailable = 5,
  kDataLoss = 6,
  kPermissionDenied = 7,
  kInternal = 8,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Timeout: drop_select waited 5000 ms for 3 keys" or "OK".
  std::string ToString() const;

  // Prefixes the message with where it happened: "spill put: <message>".
  Status WithContext(std::string_view where) const;

  bool operator==(const Status& o) const { return code_ == o.code_ && message_ == o.message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status carries no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kvstore

#define KVSTORE_CONCAT_INNER_(a, b) a##b
#define KVSTORE_CONCAT_(a, b) KVSTORE_CONCAT_INNER_(a, b)

#define KVSTORE_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::kvstore::Status kvstore_status_ = (expr);        \
    if (!kvstore_status_.ok()) return kvstore_status_; \
  } while (0)

#define KVSTORE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#define KVSTORE_ASSIGN_OR_RETURN(lhs, expr) \
  KVSTORE_ASSIGN_OR_RETURN_IMPL_(KVSTORE_CONCAT_(kvstore_result_, __LINE__), lhs, expr)
