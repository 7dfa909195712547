#include "py_client.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <vector>

#include "py_errors.h"
#include "py_keys.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kvstore::python {
namespace {

using std::chrono::milliseconds;

// Seconds (as Python's socket and redis-py take them) to milliseconds, rounded up
// so a tiny positive timeout does not become "return at once". None: wait (10 years).
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

std::vector<HeldBuffer> AcquireAll(py::handle buffers, size_t expected, const char* call) {
  if (!py::isinstance<py::sequence>(buffers) || py::isinstance<py::bytes>(buffers)) {
    Raise(StatusCode::kInvalidArgument,
          std::string(call) + ": buffers must be a list with one writable buffer per key");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(buffers);
  if (seq.size() != expected) {
    Raise(StatusCode::kInvalidArgument, std::string(call) + ": " + std::to_string(expected) +
                                            " keys but " + std::to_string(seq.size()) +
                                            " buffers; pass one buffer per key");
  }
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

// [(region, offset, length), ...] -> slices, checked against each region and its client.
std::vector<RegionSlice> SlicesFromPy(py::handle slices, const std::shared_ptr<Client>& client,
                                      size_t expected, const char* call) {
  if (!py::isinstance<py::sequence>(slices)) {
    Raise(StatusCode::kInvalidArgument,
          std::string(call) + ": slices must be a list of (region, offset, length) tuples");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(slices);
  if (seq.size() != expected) {
    Raise(StatusCode::kInvalidArgument, std::string(call) + ": " + std::to_string(expected) +
                                            " keys but " + std::to_string(seq.size()) +
                                            " slices; pass one slice per key");
  }
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

// Runs op(0..n-1) on up to `threads` threads (the client's connection pool
// serves them at once); stops at the first error. Returns one flag per item.
std::vector<bool> RunBatch(size_t n, size_t threads, const char* call,
                           const std::function<Result<bool>(size_t)>& op) {
  std::vector<char> stored(n, 0);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status err;
  auto work = [&] {
    for (size_t i = next++; i < n && !failed.load(); i = next++) {
      Result<bool> r = op(i);
      if (r.ok()) {
        stored[i] = *r ? 1 : 0;
      } else {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) {
          err = r.status().WithContext(std::string(call) + " item " + std::to_string(i));
        }
      }
    }
  };
  {
    py::gil_scoped_release release;
    size_t k = std::max<size_t>(1, std::min(threads, n));
    std::vector<std::thread> pool;
    for (size_t t = 1; t < k; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }
  ThrowIfError(err);
  return {stored.begin(), stored.end()};
}

}  // namespace

PyClient::PyClient(const ClientOptions& options) : options_(options) {
  Result<std::unique_ptr<Client>> c = Status::Internal("not connected");
  {
    py::gil_scoped_release release;
    c = Client::Connect(options_);
  }
  client_ = std::shared_ptr<Client>(Unwrap(std::move(c)));
}

std::shared_ptr<Client> PyClient::Get() const {
  std::lock_guard lock(mu_);
  if (!client_) Raise(StatusCode::kUnavailable, "client is closed; create a new kvstore.Client");
  return client_;
}

void PyClient::Close() {
  std::shared_ptr<Client> c;
  {
    std::lock_guard lock(mu_);
    c = std::move(client_);
  }
  py::gil_scoped_release release;  // the destructor closes sockets
  c.reset();
}

bool PyClient::closed() const {
  std::lock_guard lock(mu_);
  return client_ == nullptr;
}

PyRegion::~PyRegion() {
  if (client_) (void)client_->UnregisterRegion(id_);
}

void PyRegion::Unregister() {
  if (!client_) return;
  Status s = client_->UnregisterRegion(id_);
  client_.reset();
  buffer_.Release();
  ThrowIfError(s);
}

RegionSlice PyRegion::Slice(uint64_t offset, std::optional<uint64_t> length) const {
  if (!client_) Raise(StatusCode::kInvalidArgument, "region is unregistered");
  uint64_t size = buffer_.bytes().size();
  if (offset > size) {
    Raise(StatusCode::kInvalidArgument, "offset " + std::to_string(offset) +
                                            " is past the end of a region of " +
                                            std::to_string(size) + " bytes");
  }
  uint64_t len = length.value_or(size - offset);
  if (len > size - offset) {
    Raise(StatusCode::kInvalidArgument, "slice [" + std::to_string(offset) + ", +" +
                                            std::to_string(len) + ") exceeds the region's " +
                                            std::to_string(size) + " bytes");
  }
  return RegionSlice{id_, offset, len};
}

void BindClient(py::module_& m) {
  py::class_<EntryMeta>(m, "EntryMeta", "Metadata of a stored value.")
      .def_readonly("size", &EntryMeta::size, "Value size in bytes.")
      .def_readonly("checksum", &EntryMeta::checksum, "XXH3-64 of the value.")
      .def_readonly("layout", &EntryMeta::layout, "Free-form layout tag given at insert.")
      .def_readonly("producer", &EntryMeta::producer, "Producer name given at insert.")
      .def_readonly("created_unix_ms", &EntryMeta::created_unix_ms)
      .def_readonly("expires_unix_ms", &EntryMeta::expires_unix_ms, "0 = never.")
      .def_property_readonly(
          "tier", [](const EntryMeta& e) { return std::string(TierName(e.tier)); },
          "'device', 'host' or 'spill'.")
      .def("__repr__", [](const EntryMeta& e) {
        return "EntryMeta(size=" + std::to_string(e.size) + ", layout='" + e.layout + "', tier='" +
               std::string(TierName(e.tier)) + "')";
      });

  py::class_<EntryInfo>(m, "EntryInfo", "A stored key and its metadata (no bytes).")
      .def_property_readonly(
          "key", [](const EntryInfo& e) { return KeyToPy(e.key); }, "32-byte key.")
      .def_readonly("meta", &EntryInfo::meta)
      .def("__repr__", [](const EntryInfo& e) {
        return "EntryInfo(key=" + e.key.ToHex().substr(0, 16) +
               "..., size=" + std::to_string(e.meta.size) + ")";
      });

  py::class_<TierStats>(m, "TierStats", "Entries and bytes held by one tier.")
      .def_property_readonly("tier",
                             [](const TierStats& t) { return std::string(TierName(t.tier)); })
      .def_readonly("entries", &TierStats::entries)
      .def_readonly("bytes", &TierStats::bytes)
      .def_readonly("capacity_bytes", &TierStats::capacity_bytes)
      .def_readonly("used_bytes", &TierStats::used_bytes);

  py::class_<StoreStats>(m, "StoreStats", "What kvstored holds and has done.")
      .def_readonly("tiers", &StoreStats::tiers)
      .def_readonly("waiters", &StoreStats::waiters)
      .def_readonly("connections", &StoreStats::connections)
      .def_readonly("inserts", &StoreStats::inserts)
      .def_readonly("hits", &StoreStats::hits)
      .def_readonly("misses", &StoreStats::misses)
      .def_readonly("ttl_expired", &StoreStats::ttl_expired)
      .def_readonly("evictions", &StoreStats::evictions)
      .def_readonly("promotions", &StoreStats::promotions)
      .def_readonly("refused_inserts", &StoreStats::refused_inserts)
      .def_readonly("checksum_failures", &StoreStats::checksum_failures)
      .def_readonly("uptime_seconds", &StoreStats::uptime_seconds)
      .def_readonly("fragmentation", &StoreStats::fragmentation)
      .def_readonly("version", &StoreStats::version)
      .def_property_readonly(
          "entries",
          [](const StoreStats& s) {
            uint64_t n = 0;
            for (const auto& t : s.tiers) n += t.entries;
            return n;
          },
          "Entries over all tiers.");

  py::class_<ListPage>(m, "ListPage", "One page of Client.list.")
      .def_readonly("entries", &ListPage::entries)
      .def_property_readonly(
          "next_cursor", [](const ListPage& p) { return ToBytes(p.next_cursor); },
          "Pass to list(cursor=...) for the next page; b'' when there is none.");

  py::class_<PyRegion>(m, "Region",
                       "Memory registered with a Client (Client.register_region). Transfers "
                       "naming (region, offset, length) move bytes straight between the "
                       "transport and this memory. Keeps the object alive until unregister().")
      .def_property_readonly("id", [](const PyRegion& r) { return r.id().value; })
      .def_property_readonly("nbytes", &PyRegion::nbytes)
      .def_property_readonly("registered", &PyRegion::registered)
      .def_property_readonly("device", &PyRegion::device, "True for GPU memory.")
      .def_property_readonly("obj", &PyRegion::obj, "The registered object.")
      .def("unregister", &PyRegion::Unregister, "Unregisters now; idempotent.")
      .def("__enter__", [](PyRegion& r) -> PyRegion& { return r; })
      .def("__exit__", [](PyRegion& r, py::args) { r.Unregister(); })
      .def("__repr__", [](const PyRegion& r) {
        return "Region(id=" + std::to_string(r.id().value) +
               ", nbytes=" + std::to_string(r.nbytes()) + (r.registered() ? "" : ", unregistered") +
               ")";
      });

  py::class_<PyClient>(m, "Client", R"doc(
A connection pool to one kvstored. Safe to share between threads; blocking
calls release the GIL, so a drop_select waiting in one thread does not stop
other threads.

Keys are 32-byte ``bytes`` (see ``kvstore.block_keys``) or 64-character hex
strings. Values are ``bytes`` or any object with the buffer protocol
(bytearray, memoryview, NumPy arrays) or a contiguous CPU torch tensor; they
are sent straight from their memory, without a copy.

Errors raise subclasses of ``kvstore.KVStoreError`` named by what to do next:
NotFound, Timeout, ResourceExhausted, InvalidArgument, Unavailable,
PermissionDenied, DataLoss, Internal.
)doc")
      .def(py::init([](const std::string& address, std::optional<std::string> token,
                       double connect_timeout, double io_timeout, size_t max_connections,
                       const std::string& transport, const std::string& client_name) {
             ClientOptions o;
             o.address = address;
             o.token = token.value_or("");
             o.connect_timeout = TimeoutFromSeconds(connect_timeout, "connect_timeout");
             o.io_timeout = TimeoutFromSeconds(io_timeout, "io_timeout");
             o.max_connections = max_connections;
             o.transport = transport;
             o.client_name = client_name;
             return std::make_unique<PyClient>(o);
           }),
           "address"_a = "127.0.0.1:7400", "token"_a = py::none(), py::kw_only(),
           "connect_timeout"_a = 5.0, "io_timeout"_a = 60.0, "max_connections"_a = 8,
           "transport"_a = "auto", "client_name"_a = "kvstore-python",
           R"doc(Connects to kvstored at ``address`` ("HOST:PORT") and checks the token.

connect_timeout, io_timeout: seconds. max_connections: calls that run at once.
transport: "auto" (same-host one-sided copies, else rdma, else tcp), "tcp",
"local" or "rdma". Raises Unavailable when nothing listens, PermissionDenied
for a wrong token.)doc")
      .def_property_readonly("address", [](const PyClient& c) { return c.options().address; })
      .def_property_readonly("closed", &PyClient::closed)
      .def("close", &PyClient::Close, "Closes the connections; later calls raise Unavailable.")
      .def("__enter__", [](PyClient& c) -> PyClient& { return c; })
      .def("__exit__", [](PyClient& c, py::args) { c.Close(); })
      .def(
          "ping",
          [](PyClient& self) {
            auto c = self.Get();
            py::gil_scoped_release release;
            ThrowIfError(c->Ping());
          },
          "Round trip to the daemon; raises when it does not answer.")
      .def(
          "insert",
          [](PyClient& self, py::handle key, py::handle value, const std::string& layout,
             const std::string& producer, std::optional<double> ttl,
             std::optional<uint64_t> checksum) {
            auto c = self.Get();
            Key k = KeyFromPy(key);
            HeldBuffer v = HeldBuffer::Acquire(value, /*writable=*/false);
            InsertOptions o = MakeInsertOptions(layout, producer, ttl, checksum);
            Result<bool> r = false;
            {
              py::gil_scoped_release release;
              r = c->Insert(k, v.bytes(), o);
            }
            return Unwrap(std::move(r));
          },
          "key"_a, "value"_a, py::kw_only(), "layout"_a = "", "producer"_a = "",
          "ttl"_a = py::none(), "checksum"_a = py::none(),
          R"doc(Stores ``value`` under ``key``; readers see it only once every byte is in.

Returns True when stored now, False when the key was already stored (insert is
idempotent). ttl: seconds (None = the store's default). checksum: XXH3-64 of
the value if already known. Raises ResourceExhausted when the store is full.)doc")
      .def(
          "insert_many",
          [](PyClient& self, py::sequence keys, py::sequence values, const std::string& layout,
             const std::string& producer, std::optional<double> ttl, size_t threads) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            if (values.size() != ks.size()) {
              Raise(StatusCode::kInvalidArgument, "insert_many: one value per key");
            }
            std::vector<HeldBuffer> held;
            held.reserve(ks.size());
            for (py::handle v : values) held.push_back(HeldBuffer::Acquire(v, false));
            InsertOptions o = MakeInsertOptions(layout, producer, ttl, std::nullopt);
            return RunBatch(ks.size(), threads, "insert_many",
                            [&](size_t i) { return c->Insert(ks[i], held[i].bytes(), o); });
          },
          "keys"_a, "values"_a, py::kw_only(), "layout"_a = "", "producer"_a = "",
          "ttl"_a = py::none(), "threads"_a = 1,
          "insert for many keys in one call (the GIL is released once), on up to ``threads`` "
          "threads. Returns one bool per key; stops at the first error and raises it.")
      .def(
          "select",
          [](PyClient& self, py::handle keys) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            Result<std::vector<Entry>> r = std::vector<Entry>{};
            {
              py::gil_scoped_release release;
              r = c->Select(ks);
            }
            return EntriesToBytes(Unwrap(std::move(r)));
          },
          "keys"_a,
          "Reads the values of ``keys`` without removing them, as a list of bytes. Raises "
          "NotFound unless every key is stored.")
      .def(
          "select_into",
          [](PyClient& self, py::handle keys, py::handle buffers) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto held = AcquireAll(buffers, ks.size(), "select_into");
            auto spans = Spans(held);
            Result<std::vector<EntryInfo>> r = std::vector<EntryInfo>{};
            {
              py::gil_scoped_release release;
              r = c->SelectInto(ks, spans);
            }
            return MetasToPy(Unwrap(std::move(r)));
          },
          "keys"_a, "buffers"_a,
          "select straight into caller buffers (bytearray, NumPy array, CPU tensor), one per "
          "key. Returns each value's EntryMeta (meta.size = bytes written). InvalidArgument "
          "when a buffer is smaller than its value.")
      .def(
          "drop_select",
          [](PyClient& self, py::handle keys, std::optional<double> timeout) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto t = TimeoutFromSeconds(timeout, "timeout");
            Result<std::vector<Entry>> r = std::vector<Entry>{};
            {
              py::gil_scoped_release release;
              r = c->DropSelect(ks, t);
            }
            return EntriesToBytes(Unwrap(std::move(r)));
          },
          "keys"_a, "timeout"_a,
          R"doc(Waits until every key is stored, hands the values to this caller alone
and removes them from the store. ``timeout`` in seconds (None waits without
limit); raises Timeout when it passes, leaving the store unchanged.)doc")
      .def(
          "drop_select_into",
          [](PyClient& self, py::handle keys, py::handle buffers, std::optional<double> timeout) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto held = AcquireAll(buffers, ks.size(), "drop_select_into");
            auto spans = Spans(held);
            auto t = TimeoutFromSeconds(timeout, "timeout");
            Result<std::vector<EntryInfo>> r = std::vector<EntryInfo>{};
            {
              py::gil_scoped_release release;
              r = c->DropSelectInto(ks, spans, t);
            }
            return MetasToPy(Unwrap(std::move(r)));
          },
          "keys"_a, "buffers"_a, "timeout"_a,
          "drop_select straight into caller buffers, one per key. Returns each value's "
          "EntryMeta.")
      .def(
          "register_region",
          [](PyClient& self, py::handle obj) {
            auto c = self.Get();
            HeldBuffer held = HeldBuffer::Acquire(obj, /*writable=*/true, /*allow_device=*/true);
            Result<RegionId> r = RegionId{};
            {
              py::gil_scoped_release release;
              r = held.device() ? c->RegisterDeviceRegion(held.bytes())
                                : c->RegisterRegion(held.bytes());
            }
            return std::make_unique<PyRegion>(c, Unwrap(std::move(r)), std::move(held));
          },
          "obj"_a,
          R"doc(Registers the memory of ``obj`` (writable buffer, NumPy array, torch
tensor) once; insert_from / select_into_regions / drop_select_into_regions then
name (region, offset, length) and move bytes with no copy on the Python side.
CUDA tensors register as device memory, which moves only over rdma.)doc")
      .def(
          "unregister_region", [](PyClient&, PyRegion& r) { r.Unregister(); }, "region"_a)
      .def(
          "insert_from",
          [](PyClient& self, py::handle key, PyRegion& region, uint64_t offset,
             std::optional<uint64_t> length, const std::string& layout, const std::string& producer,
             std::optional<double> ttl, std::optional<uint64_t> checksum) {
            auto c = self.Get();
            Key k = KeyFromPy(key);
            if (region.client() != c) {
              Raise(StatusCode::kInvalidArgument,
                    "insert_from: region was registered with another client (or unregistered)");
            }
            RegionSlice s = region.Slice(offset, length);
            InsertOptions o = MakeInsertOptions(layout, producer, ttl, checksum);
            Result<bool> r = false;
            {
              py::gil_scoped_release release;
              r = c->InsertFromRegion(k, s, o);
            }
            return Unwrap(std::move(r));
          },
          "key"_a, "region"_a, "offset"_a = 0, "length"_a = py::none(), py::kw_only(),
          "layout"_a = "", "producer"_a = "", "ttl"_a = py::none(), "checksum"_a = py::none(),
          "insert from part of a registered region (length None = to its end).")
      .def(
          "insert_many_from",
          [](PyClient& self, py::handle keys, py::handle slices, const std::string& layout,
             const std::string& producer, std::optional<double> ttl, size_t threads) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto ss = SlicesFromPy(slices, c, ks.size(), "insert_many_from");
            InsertOptions o = MakeInsertOptions(layout, producer, ttl, std::nullopt);
            return RunBatch(ks.size(), threads, "insert_many_from",
                            [&](size_t i) { return c->InsertFromRegion(ks[i], ss[i], o); });
          },
          "keys"_a, "slices"_a, py::kw_only(), "layout"_a = "", "producer"_a = "",
          "ttl"_a = py::none(), "threads"_a = 1,
          "insert_from for many keys, slices = [(region, offset, length), ...]; the GIL is "
          "released once; up to ``threads`` inserts run at once. Returns one bool per key "
          "(False: already stored).")
      .def(
          "select_into_regions",
          [](PyClient& self, py::handle keys, py::handle slices) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto ss = SlicesFromPy(slices, c, ks.size(), "select_into_regions");
            Result<std::vector<EntryInfo>> r = std::vector<EntryInfo>{};
            {
              py::gil_scoped_release release;
              r = c->SelectIntoRegions(ks, ss);
            }
            return MetasToPy(Unwrap(std::move(r)));
          },
          "keys"_a, "slices"_a,
          "select into registered memory: slices = [(region, offset, length), ...], one per "
          "key. Returns each value's EntryMeta (meta.size = bytes written).")
      .def(
          "drop_select_into_regions",
          [](PyClient& self, py::handle keys, py::handle slices, std::optional<double> timeout) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto ss = SlicesFromPy(slices, c, ks.size(), "drop_select_into_regions");
            auto t = TimeoutFromSeconds(timeout, "timeout");
            Result<std::vector<EntryInfo>> r = std::vector<EntryInfo>{};
            {
              py::gil_scoped_release release;
              r = c->DropSelectIntoRegions(ks, ss, t);
            }
            return MetasToPy(Unwrap(std::move(r)));
          },
          "keys"_a, "slices"_a, "timeout"_a,
          "drop_select into registered memory (timeout in seconds, None = no limit).")
      .def(
          "match_prefix",
          [](PyClient& self, py::handle keys) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            Result<size_t> r = size_t{0};
            {
              py::gil_scoped_release release;
              r = c->MatchPrefix(ks);
            }
            return Unwrap(std::move(r));
          },
          "keys"_a, "Number of leading keys stored now; never blocks.")
      .def(
          "retain",
          [](PyClient& self, py::handle keys) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            Result<size_t> r = size_t{0};
            {
              py::gil_scoped_release release;
              r = c->Retain(ks);
            }
            return Unwrap(std::move(r));
          },
          "keys"_a,
          "Adds one pending taker to each leading stored key (stops at the first absent one); "
          "returns how many. A producer handing off blocks that are already stored calls this "
          "instead of inserting them again.")
      .def(
          "remove",
          [](PyClient& self, py::handle keys) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            Result<size_t> r = size_t{0};
            {
              py::gil_scoped_release release;
              r = c->Remove(ks);
            }
            return Unwrap(std::move(r));
          },
          "keys"_a, "Removes what is stored; returns how many were removed.")
      .def(
          "stats",
          [](PyClient& self) {
            auto c = self.Get();
            Result<StoreStats> r = StoreStats{};
            {
              py::gil_scoped_release release;
              r = c->Stats();
            }
            return Unwrap(std::move(r));
          },
          "The store's counters (StoreStats).")
      .def(
          "list",
          [](PyClient& self, uint32_t limit, py::bytes cursor, std::optional<std::string> tier) {
            auto c = self.Get();
            ListOptions o;
            o.limit = limit;
            std::string cur = cursor;
            o.cursor.assign(reinterpret_cast<const std::byte*>(cur.data()),
                            reinterpret_cast<const std::byte*>(cur.data() + cur.size()));
            if (tier) {
              if (*tier == "device") {
                o.tier = static_cast<int>(Tier::kDevice);
              } else if (*tier == "host") {
                o.tier = static_cast<int>(Tier::kHost);
              } else if (*tier == "spill") {
                o.tier = static_cast<int>(Tier::kSpill);
              } else {
                Raise(StatusCode::kInvalidArgument,
                      "tier must be 'device', 'host', 'spill' or None, got '" + *tier + "'");
              }
            }
            Result<ListPage> r = ListPage{};
            {
              py::gil_scoped_release release;
              r = c->List(o);
            }
            return Unwrap(std::move(r));
          },
          py::kw_only(), "limit"_a = 1000, "cursor"_a = py::bytes(), "tier"_a = py::none(),
          "One page of stored entries (ListPage: entries, next_cursor).")
      .def(
          "show",
          [](PyClient& self, py::handle key) {
            auto c = self.Get();
            Key k = KeyFromPy(key);
            Result<EntryInfo> r = EntryInfo{};
            {
              py::gil_scoped_release release;
              r = c->Show(k);
            }
            return Unwrap(std::move(r));
          },
          "key"_a, "Metadata of one entry without its bytes; NotFound when absent.")
      .def(
          "transfer_stats",
          [](PyClient& self) {
            auto s = self.Get()->TransferStats();
            py::dict d;
            d["registered_transfers"] = s.registered_transfers;
            d["unregistered_transfers"] = s.unregistered_transfers;
            d["staged_transfers"] = s.staged_transfers;
            d["one_sided_transfers"] = s.one_sided_transfers;
            d["registered_on_the_fly"] = s.registered_on_the_fly;
            d["transport"] = s.transport;
            return d;
          },
          "What this client moved, by kind of buffer and path (dict).");
}

}  // namespace kvstore::python
