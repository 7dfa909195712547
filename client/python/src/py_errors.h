// Status -> Python exception: a C++ exception carrying the Status, translated
// at the pybind11 boundary into the class of kvstore.errors named by its code.
//
// Thread-safety: ThrowIfError may run without the GIL; translation runs with it.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "kvstore/status.h"

namespace kvstore::python {

class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status s) : std::runtime_error(s.message()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

template <typename T>
T Unwrap(Result<T>&& r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Looks up kvstore.errors once and installs the translator.
void RegisterErrors(pybind11::module_& m);

// Raises kvstore.errors.<code> with `message` (GIL held).
[[noreturn]] void Raise(StatusCode code, const std::string& message);

}  // namespace kvstore::python
