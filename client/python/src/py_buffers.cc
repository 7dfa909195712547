#include "py_buffers.h"

#include <cstdint>
#include <utility>

#include "kvstore/status.h"
#include "py_errors.h"

namespace py = pybind11;

namespace kvstore::python {

std::string TypeName(py::handle obj) {
  py::handle t = py::type::handle_of(obj);
  std::string mod = py::str(t.attr("__module__"));
  std::string name = py::str(t.attr("__qualname__"));
  return mod == "builtins" ? name : mod + "." + name;
}

HeldBuffer::HeldBuffer(HeldBuffer&& o) noexcept
    : bytes_(o.bytes_), device_(o.device_), owner_(std::move(o.owner_)), view_(o.view_) {
  o.view_.reset();
  o.bytes_ = {};
}

HeldBuffer& HeldBuffer::operator=(HeldBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    bytes_ = o.bytes_;
    device_ = o.device_;
    owner_ = std::move(o.owner_);
    view_ = o.view_;
    o.view_.reset();
    o.bytes_ = {};
  }
  return *this;
}

HeldBuffer::~HeldBuffer() { Release(); }

void HeldBuffer::Release() {
  if (view_) {
    PyBuffer_Release(&*view_);
    view_.reset();
  }
  owner_ = py::object();
  bytes_ = {};
}

HeldBuffer HeldBuffer::Acquire(py::handle obj, bool writable, bool allow_device) {
  HeldBuffer out;
  if (PyObject_CheckBuffer(obj.ptr())) {
    Py_buffer view;
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &view, flags) != 0) {
      py::error_already_set why;  // fetches and clears the Python error
      Raise(StatusCode::kInvalidArgument,
            std::string(writable ? "destination" : "value") + " of type " + TypeName(obj) +
                " cannot be used as " + (writable ? "a writable " : "a ") +
                "C-contiguous buffer: " + why.what() +
                (writable ? " (bytes are read-only: pass a bytearray, a NumPy array or a "
                            "memoryview of writable memory)"
                          : " (make it contiguous first, e.g. numpy.ascontiguousarray)"));
    }
    out.view_ = view;
    out.bytes_ = {static_cast<std::byte*>(view.buf), static_cast<size_t>(view.len)};
    out.owner_ = py::reinterpret_borrow<py::object>(obj);
    return out;
  }
  // torch.Tensor (torch 1.13 has no buffer protocol): contiguous memory at data_ptr().
  if (py::hasattr(obj, "data_ptr") && py::hasattr(obj, "element_size") &&
      py::hasattr(obj, "is_contiguous")) {
    if (!obj.attr("is_contiguous")().cast<bool>()) {
      Raise(StatusCode::kInvalidArgument,
            "tensor is not contiguous: pass tensor.contiguous() (a copy) or a contiguous view");
    }
    std::string device = py::str(obj.attr("device").attr("type"));
    bool is_device = device != "cpu";
    if (is_device && !allow_device) {
      Raise(StatusCode::kInvalidArgument,
            "tensor lives on " + device +
                ": values move from host memory; copy it into a pinned CPU tensor first, or "
                "register it with Client.register_region (GPU memory moves only over rdma)");
    }
    auto ptr = obj.attr("data_ptr")().cast<uintptr_t>();
    auto n = obj.attr("numel")().cast<size_t>() * obj.attr("element_size")().cast<size_t>();
    out.bytes_ = {reinterpret_cast<std::byte*>(ptr), n};
    out.device_ = is_device;
    out.owner_ = py::reinterpret_borrow<py::object>(obj);
    return out;
  }
  Raise(StatusCode::kInvalidArgument,
        "expected bytes, a buffer-protocol object (bytearray, memoryview, NumPy array) or a "
        "torch tensor, got " +
            TypeName(obj));
}

}  // namespace kvstore::python
