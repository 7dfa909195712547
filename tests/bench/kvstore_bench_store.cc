// The store workload of kvstore-bench: each client thread owns a kvstore::Client and runs
// insert(key, value) then drop_select(key) into its own buffer, the disaggregated-serving
// hand-off of one KV block from a prefill engine to a decode engine.
#include <cstring>

#include "kvstore/client.h"
#include "kvstore_bench.h"

namespace kvstore::bench {
namespace {

constexpr auto kDropTimeout = std::chrono::seconds(30);

}  // namespace

BulkResult RunStoreBulk(const std::string& addr, pid_t server_pid, size_t size, int clients,
                        const RunLimits& limits, uint64_t run, uint32_t case_id) {
  std::vector<std::unique_ptr<Client>> conns;
  std::vector<std::vector<std::byte>> src(clients), dst(clients);
  for (int t = 0; t < clients; ++t) {
    ClientOptions opts;
    opts.address = addr;
    opts.client_name = "kvstore-bench";
    opts.max_connections = 2;  // calls of one thread never overlap
    auto c = Client::Connect(opts);
    if (!c.ok()) {
      BulkResult r;
      r.system = "kvstore";
      r.size = size;
      r.clients = clients;
      r.errors = 1;
      r.first_error = c.status().ToString();
      return r;
    }
    conns.push_back(std::move(*c));
    src[t].resize(size);
    dst[t].resize(size);
    FillPattern(src[t], static_cast<uint64_t>(t) + 1);
    FillPattern(dst[t], 0);
  }
  InsertOptions insert_options;
  insert_options.producer = "kvstore-bench";
  BulkResult r = RunBulk("kvstore", size, clients, limits, server_pid,
                         [&](int t, uint64_t i, PhaseTimes* times) -> Status {
                           Key k = BulkKey(run, case_id, static_cast<uint32_t>(t), i);
                           uint64_t t0 = NowNs();
                           auto ins = conns[t]->Insert(k, src[t], insert_options);
                           if (!ins.ok()) return ins.status().WithContext("insert");
                           uint64_t t1 = NowNs();
                           std::span<std::byte> out(dst[t]);
                           auto got = conns[t]->DropSelectInto(std::span(&k, 1), std::span(&out, 1),
                                                               kDropTimeout);
                           if (!got.ok()) return got.status().WithContext("drop_select");
                           times->put_ns = t1 - t0;
                           times->get_ns = NowNs() - t1;
                           if (got->size() != 1 || (*got)[0].meta.size != size) {
                             return Status::Internal("drop_select returned the wrong size");
                           }
                           // The first op of each client checks the bytes; the client library's
                           // checksum covers the rest.
                           if (i == 0 && std::memcmp(src[t].data(), dst[t].data(), size) != 0) {
                             return Status::DataLoss("drop_select returned different bytes");
                           }
                           return Status::Ok();
                         });
  return r;
}

}  // namespace kvstore::bench
