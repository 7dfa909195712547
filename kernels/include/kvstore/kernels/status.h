// Status of a kernel launch or CPU kernel call.
//
// The kernels library is pure math and knows nothing of the store, so it
// carries its own small status instead of linking the client library. The
// engine converts it at its boundary. Codes follow the store's meaning:
//   kInvalidArgument  a shape or pointer argument is wrong; fix the call
//   kUnavailable      no GPU or the library was built without CUDA
//   kInternal         a CUDA/cuBLAS call failed; the message says where
//
// Thread-safety: a value; safe to copy between threads.
#pragma once

#include <string>
#include <utility>

namespace kvstore::kernels {

enum class Code : unsigned char { kOk = 0, kInvalidArgument, kUnavailable, kInternal };

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace kvstore::kernels

#define KVSTORE_KERNEL_RETURN_IF_ERROR(expr)            \
  do {                                                  \
    ::kvstore::kernels::Status kernel_status_ = (expr); \
    if (!kernel_status_.ok()) return kernel_status_;    \
  } while (0)
