// Conversions shared by the Client's bindings: timeouts, insert and call
// options, buffers and region slices from Python, results back to Python, and
// running a C++ call without the GIL. GIL held unless a comment says otherwise.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kvstore/client.h"
#include "py_buffers.h"
#include "py_client.h"
#include "py_errors.h"

namespace kvstore::python {

// Seconds (as Python's socket and redis-py take them) to milliseconds, rounded up
// so a tiny positive timeout does not become "return at once". None: wait (10 years).
std::chrono::milliseconds TimeoutFromSeconds(const std::optional<double>& seconds,
                                             const char* what);
InsertOptions MakeInsertOptions(const std::string& layout, const std::string& producer,
                                const std::optional<double>& ttl,
                                const std::optional<uint64_t>& checksum);
// node=None: the client's placement decides; "HOST:PORT": that cluster node.
CallOptions CallFromPy(const std::optional<std::string>& node);

pybind11::bytes ToBytes(std::span<const std::byte> v);
pybind11::list EntriesToBytes(std::vector<Entry>&& entries);
pybind11::list MetasToPy(std::vector<EntryInfo>&& infos);
// One writable buffer per key; InvalidArgument naming `call` otherwise.
std::vector<HeldBuffer> AcquireAll(pybind11::handle buffers, size_t expected, const char* call);
std::vector<std::span<std::byte>> Spans(const std::vector<HeldBuffer>& held);
// [(region, offset, length), ...] -> slices, checked against each region and its client.
std::vector<RegionSlice> SlicesFromPy(pybind11::handle slices,
                                      const std::shared_ptr<Client>& client, size_t expected,
                                      const char* call);

// Runs `f` (returning Status or Result<T>) without the GIL; raises its error or returns its value.
template <typename F>
auto Released(F&& f) {
  using R = decltype(f());
  std::optional<R> r;
  {
    pybind11::gil_scoped_release release;
    r.emplace(f());
  }
  if constexpr (std::is_same_v<R, Status>) {
    ThrowIfError(*r);
  } else {
    return Unwrap(std::move(*r));
  }
}

// The reading calls of kvstore.Client (select, drop_select and their *_into
// forms, match_prefix, retain): each takes node= (see CallFromPy).
void BindClientReads(pybind11::class_<PyClient>& client);

}  // namespace kvstore::python
