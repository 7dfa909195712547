// Keys between Python and C++: 32-byte bytes (or 64 hex characters) <-> kvstore::Key,
// and kvstore.block_keys / namespace_seed / chain_key over the C++ key function.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "kvstore/key.h"

namespace kvstore::python {

// InvalidArgument unless `obj` is 32 bytes (bytes, bytearray, memoryview) or 64 hex characters.
Key KeyFromPy(pybind11::handle obj);
// A sequence of keys (not a single key).
std::vector<Key> KeysFromPy(pybind11::handle seq);
pybind11::bytes KeyToPy(const Key& key);

void BindKeys(pybind11::module_& m);

}  // namespace kvstore::python
