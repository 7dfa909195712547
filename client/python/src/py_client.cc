#include "py_client.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>

#include "kvstore/cluster/cluster_client.h"
#include "py_calls.h"
#include "py_errors.h"
#include "py_keys.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kvstore::python {
namespace {

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
  client_ = std::shared_ptr<Client>(Released([&] { return Client::Connect(options_); }));
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

  py::class_<PyClient> client(m, "Client", R"doc(
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
)doc");
  client
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
      .def_property_readonly(
          "store_node",
          [](const PyClient& self) -> std::optional<std::string> {
            auto c = self.Get();
            const cluster::ClusterClient* cc = c->cluster();
            if (cc == nullptr || cc->options().placement != cluster::PlacementKind::kLocal) {
              return std::nullopt;
            }
            return cc->options().local_node;
          },
          "HOST:PORT of the cluster node this client inserts into under the ``local`` "
          "placement (hand it to the consumer as kv_transfer_params.remote_store_node; "
          "it reads with node=); None for a single kvstored or another placement.")
      .def("close", &PyClient::Close, "Closes the connections; later calls raise Unavailable.")
      .def("__enter__", [](PyClient& c) -> PyClient& { return c; })
      .def("__exit__", [](PyClient& c, py::args) { c.Close(); })
      .def(
          "ping",
          [](PyClient& self) {
            auto c = self.Get();
            Released([&] { return c->Ping(); });
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
            return Released([&] { return c->Insert(k, v.bytes(), o); });
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
            std::vector<InsertItem> items;
            items.reserve(ks.size());
            for (size_t i = 0; i < ks.size(); ++i) items.push_back({ks[i], held[i].bytes(), {}});
            // Up to `threads` contiguous chunks, each one batched request (insert_many
            // on the wire: one round trip for all its keys).
            const size_t chunks = std::max<size_t>(1, std::min(threads, items.size()));
            const size_t per = (items.size() + chunks - 1) / std::max<size_t>(chunks, 1);
            std::vector<Result<std::vector<Result<bool>>>> got(
                chunks, Status::Internal("insert_many: chunk not run"));
            RunBatch(chunks, threads, "insert_many", [&](size_t k) -> Result<bool> {
              const size_t begin = std::min(items.size(), k * per);
              const size_t end = std::min(items.size(), begin + per);
              got[k] = c->InsertMany(std::span(items).subspan(begin, end - begin), o);
              return got[k].ok() ? Result<bool>(true) : Result<bool>(got[k].status());
            });
            std::vector<bool> stored;
            stored.reserve(items.size());
            for (auto& chunk : got) {
              for (auto& one : *chunk) {
                if (!one.ok()) {
                  ThrowIfError(one.status().WithContext("insert_many item " +
                                                        std::to_string(stored.size())));
                }
                stored.push_back(*one);
              }
            }
            return stored;
          },
          "keys"_a, "values"_a, py::kw_only(), "layout"_a = "", "producer"_a = "",
          "ttl"_a = py::none(), "threads"_a = 1,
          "insert for many keys in one call: batched requests (one round trip for many keys), "
          "split into up to ``threads`` parts sent at once; the GIL is released once. Returns "
          "one bool per key (False: already stored); raises the first key's error.")
      .def(
          "register_region",
          [](PyClient& self, py::handle obj) {
            auto c = self.Get();
            HeldBuffer held = HeldBuffer::Acquire(obj, /*writable=*/true, /*allow_device=*/true);
            RegionId id = Released([&] {
              return held.device() ? c->RegisterDeviceRegion(held.bytes())
                                   : c->RegisterRegion(held.bytes());
            });
            return std::make_unique<PyRegion>(c, id, std::move(held));
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
            return Released([&] { return c->InsertFromRegion(k, s, o); });
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
          "remove",
          [](PyClient& self, py::handle keys) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            return Released([&] { return c->Remove(ks); });
          },
          "keys"_a, "Removes what is stored; returns how many were removed.")
      .def(
          "stats",
          [](PyClient& self) {
            auto c = self.Get();
            return Released([&] { return c->Stats(); });
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
            return Released([&] { return c->List(o); });
          },
          py::kw_only(), "limit"_a = 1000, "cursor"_a = py::bytes(), "tier"_a = py::none(),
          "One page of stored entries (ListPage: entries, next_cursor).")
      .def(
          "show",
          [](PyClient& self, py::handle key) {
            auto c = self.Get();
            Key k = KeyFromPy(key);
            return Released([&] { return c->Show(k); });
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
  BindClientReads(client);
}

}  // namespace kvstore::python
