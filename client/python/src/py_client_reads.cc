// kvstore.Client's reading calls. Each takes node=: None lets the client's
// placement pick the node (a single kvstored: that one); "HOST:PORT" reads from
// that cluster node, as a consumer told by its producer where the KV went
// (kv_transfer_params.remote_store_node) does. A single-node client refuses a
// node other than its own with InvalidArgument.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "py_calls.h"
#include "py_keys.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace kvstore::python {

void BindClientReads(py::class_<PyClient>& client) {
  client
      .def(
          "select",
          [](PyClient& self, py::handle keys, std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            return EntriesToBytes(Released([&] { return c->Select(ks, CallFromPy(node)); }));
          },
          "keys"_a, py::kw_only(), "node"_a = py::none(),
          "Reads the values of ``keys`` without removing them, as a list of bytes. Raises "
          "NotFound unless every key is stored.")
      .def(
          "select_into",
          [](PyClient& self, py::handle keys, py::handle buffers, std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto held = AcquireAll(buffers, ks.size(), "select_into");
            auto spans = Spans(held);
            return MetasToPy(Released([&] { return c->SelectInto(ks, spans, CallFromPy(node)); }));
          },
          "keys"_a, "buffers"_a, py::kw_only(), "node"_a = py::none(),
          "select straight into caller buffers (bytearray, NumPy array, CPU tensor), one per "
          "key. Returns each value's EntryMeta (meta.size = bytes written). InvalidArgument "
          "when a buffer is smaller than its value.")
      .def(
          "drop_select",
          [](PyClient& self, py::handle keys, std::optional<double> timeout,
             std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto t = TimeoutFromSeconds(timeout, "timeout");
            return EntriesToBytes(Released([&] { return c->DropSelect(ks, t, CallFromPy(node)); }));
          },
          "keys"_a, "timeout"_a, py::kw_only(), "node"_a = py::none(),
          R"doc(Waits until every key is stored, hands the values to this caller alone
and removes them from the store. ``timeout`` in seconds (None waits without
limit); raises Timeout when it passes, leaving the store unchanged.)doc")
      .def(
          "drop_select_into",
          [](PyClient& self, py::handle keys, py::handle buffers, std::optional<double> timeout,
             std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto held = AcquireAll(buffers, ks.size(), "drop_select_into");
            auto spans = Spans(held);
            auto t = TimeoutFromSeconds(timeout, "timeout");
            return MetasToPy(
                Released([&] { return c->DropSelectInto(ks, spans, t, CallFromPy(node)); }));
          },
          "keys"_a, "buffers"_a, "timeout"_a, py::kw_only(), "node"_a = py::none(),
          "drop_select straight into caller buffers, one per key. Returns each value's "
          "EntryMeta.")
      .def(
          "select_into_regions",
          [](PyClient& self, py::handle keys, py::handle slices, std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto ss = SlicesFromPy(slices, c, ks.size(), "select_into_regions");
            return MetasToPy(
                Released([&] { return c->SelectIntoRegions(ks, ss, CallFromPy(node)); }));
          },
          "keys"_a, "slices"_a, py::kw_only(), "node"_a = py::none(),
          "select into registered memory: slices = [(region, offset, length), ...], one per "
          "key. Returns each value's EntryMeta (meta.size = bytes written).")
      .def(
          "drop_select_into_regions",
          [](PyClient& self, py::handle keys, py::handle slices, std::optional<double> timeout,
             std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            auto ss = SlicesFromPy(slices, c, ks.size(), "drop_select_into_regions");
            auto t = TimeoutFromSeconds(timeout, "timeout");
            return MetasToPy(
                Released([&] { return c->DropSelectIntoRegions(ks, ss, t, CallFromPy(node)); }));
          },
          "keys"_a, "slices"_a, "timeout"_a, py::kw_only(), "node"_a = py::none(),
          "drop_select into registered memory (timeout in seconds, None = no limit).")
      .def(
          "match_prefix",
          [](PyClient& self, py::handle keys, std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            return Released([&] { return c->MatchPrefix(ks, CallFromPy(node)); });
          },
          "keys"_a, py::kw_only(), "node"_a = py::none(),
          "Number of leading keys stored now; never blocks.")
      .def(
          "retain",
          [](PyClient& self, py::handle keys, std::optional<std::string> node) {
            auto c = self.Get();
            std::vector<Key> ks = KeysFromPy(keys);
            return Released([&] { return c->Retain(ks, CallFromPy(node)); });
          },
          "keys"_a, py::kw_only(), "node"_a = py::none(),
          "Adds one pending taker to each leading stored key (stops at the first absent one); "
          "returns how many. A producer handing off blocks that are already stored calls this "
          "instead of inserting them again.");
}

}  // namespace kvstore::python
