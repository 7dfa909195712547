// Borrowing the bytes of Python objects without copying them: anything with
// the buffer protocol (bytes, bytearray, memoryview, NumPy arrays, array.array)
// and torch tensors (through data_ptr(): they do not implement the protocol).
//
// Thread-safety: construct and destroy with the GIL held; the span may be used
// without the GIL while the HeldBuffer lives.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>

namespace kvstore::python {

class HeldBuffer {
 public:
  // InvalidArgument (kvstore.errors) when `obj` is not contiguous, not writable
  // while `writable` is asked, or of an unsupported type. Device (CUDA) tensors
  // are refused unless `allow_device`.
  static HeldBuffer Acquire(pybind11::handle obj, bool writable, bool allow_device = false);

  HeldBuffer() = default;
  HeldBuffer(HeldBuffer&& o) noexcept;
  HeldBuffer& operator=(HeldBuffer&& o) noexcept;
  HeldBuffer(const HeldBuffer&) = delete;
  HeldBuffer& operator=(const HeldBuffer&) = delete;
  ~HeldBuffer();  // REQUIRES: GIL held

  std::span<std::byte> bytes() const { return bytes_; }
  bool device() const { return device_; }
  const pybind11::object& owner() const { return owner_; }
  void Release();  // REQUIRES: GIL held

 private:
  std::span<std::byte> bytes_;
  bool device_ = false;
  pybind11::object owner_;         // keeps the object (and its memory) alive
  std::optional<Py_buffer> view_;  // released in Release()
};

// Type name for messages: "numpy.ndarray".
std::string TypeName(pybind11::handle obj);

}  // namespace kvstore::python
