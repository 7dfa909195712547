#include "py_calls.h"

#include <cmath>
#include <string>

#include "py_errors.h"

namespace kvstore::python {

namespace py = pybind11;
using std::chrono::milliseconds;

milliseconds TimeoutFromSeconds(const std::optional<double>& seconds, const char* what) {
  if (!seconds) return milliseconds(10ll * 365 * 24 * 3600 * 1000);
  if (!std::isfinite(*seconds) || *seconds < 0) {
    Raise(StatusCode::kInvalidArgument,
          std::string(what) + " must be a non-negative number of seconds or None, got " +
              std::to_string(*seconds));
  }
  return milliseconds(static_cast<int64_t>(std::ceil(*seconds * 1000.0)));
}

InsertOptions MakeInsertOptions(const std::string& layout, const std::string& producer,
                                const std::optional<double>& ttl,
                                const std::optional<uint64_t>& checksum) {
  InsertOptions o;
  o.layout = layout;
  o.producer = producer;
  if (ttl) o.ttl = TimeoutFromSeconds(ttl, "ttl");
  o.checksum = checksum;
  return o;
}

py::bytes ToBytes(std::span<const std::byte> v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

py::list EntriesToBytes(std::vector<Entry>&& entries) {
  py::list out;
  for (auto& e : entries) out.append(ToBytes(e.value));
  return out;
}

namespace {

// `obj` as a sequence of one item per key; InvalidArgument naming `call`,
// what the items are (`noun`, e.g. "buffer") and their form otherwise.
py::sequence OnePerKey(py::handle obj, size_t expected, const char* call, const char* noun,
                       const char* form) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::bytes>(obj)) {
    Raise(StatusCode::kInvalidArgument,
          std::string(call) + ": " + noun + "s must be a list of " + form + ", one per key");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != expected) {
    Raise(StatusCode::kInvalidArgument, std::string(call) + ": " + std::to_string(expected) +
                                            " keys but " + std::to_string(seq.size()) + " " + noun +
                                            "s; pass one " + noun + " per key");
  }
  return seq;
}

}  // namespace

std::vector<HeldBuffer> AcquireAll(py::handle buffers, size_t expected, const char* call) {
  py::sequence seq = OnePerKey(buffers, expected, call, "buffer", "writable buffers");
  std::vector<HeldBuffer> out;
  out.reserve(expected);
  for (py::handle b : seq) out.push_back(HeldBuffer::Acquire(b, /*writable=*/true));
  return out;
}

std::vector<std::span<std::byte>> Spans(const std::vector<HeldBuffer>& held) {
  std::vector<std::span<std::byte>> out;
  out.reserve(held.size());
  for (const auto& h : held) out.push_back(h.bytes());
  return out;
}

std::vector<RegionSlice> SlicesFromPy(py::handle slices, const std::shared_ptr<Client>& client,
                                      size_t expected, const char* call) {
  py::sequence seq = OnePerKey(slices, expected, call, "slice", "(region, offset, length) tuples");
  std::vector<RegionSlice> out;
  out.reserve(expected);
  for (py::handle item : seq) {
    auto t = py::reinterpret_borrow<py::sequence>(item);
    if (t.size() != 3) {
      Raise(StatusCode::kInvalidArgument,
            std::string(call) + ": each slice is a (region, offset, length) tuple");
    }
    auto& region = t[0].cast<PyRegion&>();
    if (region.client() != client) {
      Raise(StatusCode::kInvalidArgument,
            std::string(call) + ": region was registered with another client (or unregistered)");
    }
    out.push_back(region.Slice(t[1].cast<uint64_t>(), t[2].cast<uint64_t>()));
  }
  return out;
}

py::list MetasToPy(std::vector<EntryInfo>&& infos) {
  py::list out;
  for (auto& i : infos) out.append(py::cast(std::move(i.meta)));
  return out;
}

CallOptions CallFromPy(const std::optional<std::string>& node) {
  CallOptions call;
  if (node) call.node = *node;
  return call;
}

}  // namespace kvstore::python
