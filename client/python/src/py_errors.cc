#include "py_errors.h"

#include <array>

namespace py = pybind11;

namespace kvstore::python {
namespace {

// Indexed by StatusCode; filled at import from kvstore.errors (kept alive by the module).
std::array<PyObject*, 9> g_classes{};

PyObject* ClassFor(StatusCode code) {
  auto i = static_cast<size_t>(code);
  PyObject* cls = i < g_classes.size() ? g_classes[i] : nullptr;
  return cls != nullptr ? cls : g_classes[static_cast<size_t>(StatusCode::kInternal)];
}

}  // namespace

void RegisterErrors(py::module_& m) {
  py::module_ errors = py::module_::import("kvstore.errors");
  auto set = [&](StatusCode code, const char* name) {
    py::object cls = errors.attr(name);
    g_classes[static_cast<size_t>(code)] = cls.ptr();
    m.attr("_error_classes").attr("append")(cls);  // keeps a reference for the module's life
  };
  m.attr("_error_classes") = py::list();
  set(StatusCode::kOk, "KVStoreError");  // never raised; a safe default
  set(StatusCode::kNotFound, "NotFound");
  set(StatusCode::kTimeout, "Timeout");
  set(StatusCode::kResourceExhausted, "ResourceExhausted");
  set(StatusCode::kInvalidArgument, "InvalidArgument");
  set(StatusCode::kUnavailable, "Unavailable");
  set(StatusCode::kDataLoss, "DataLoss");
  set(StatusCode::kPermissionDenied, "PermissionDenied");
  set(StatusCode::kInternal, "Internal");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyErr_SetString(ClassFor(e.status().code()), e.status().message().c_str());
    }
  });
}

void Raise(StatusCode code, const std::string& message) {
  throw StatusError(Status(code, message));
}

}  // namespace kvstore::python
