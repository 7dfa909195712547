// kvstore._kvstore: the C++ extension behind the `kvstore` Python package.
#include <pybind11/pybind11.h>

#include "kvstore/client.h"
#include "py_client.h"
#include "py_errors.h"
#include "py_keys.h"

namespace py = pybind11;

PYBIND11_MODULE(_kvstore, m) {
  m.doc() = "libkvstore bindings: Client, keys and errors (import `kvstore`, not this module).";
  kvstore::python::RegisterErrors(m);
  kvstore::python::BindKeys(m);
  kvstore::python::BindClient(m);
  m.attr("KEY_SIZE") = kvstore::Key::kSize;
}
