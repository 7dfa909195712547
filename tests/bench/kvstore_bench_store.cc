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

BulkResult RunStoreBulk(const std::string& addr, const std::string& transport, pid_t server_pid,
                        size_t size, int clients, const RunLimits& limits, uint64_t run,
                        uint32_t case_id, const std::string& tls_ca) {
  std::vector<std::unique_ptr<Client>> conns;
  std::vector<std::vector<std::byte>> src(clients), dst(clients);
  std::vector<std::span<std::byte>> src_view(clients), dst_view(clients);
  std::vector<RegionSlice> src_region(clients), dst_region(clients);
  auto failed = [&](const Status& s) { return FailedCase("kvstore", size, clients, s); };
  for (int t = 0; t < clients; ++t) {
    ClientOptions opts;
    opts.address = addr;
    opts.client_name = "kvstore-bench";
    opts.max_connections = 2;  // calls of one thread never overlap
    opts.transport = transport;
    opts.tls_ca = tls_ca;
    auto c = Client::Connect(opts);
    if (!c.ok()) return failed(c.status());
    if (transport != "auto" && (*c)->TransferStats().transport != transport) {
      return failed(Status::Unavailable("asked for transport " + transport +
                                        " but kvstored chose " + (*c)->TransferStats().transport +
                                        " (see its log)"));
    }
    // As an engine does: its buffers are registered once. On the local
    // transport they are memory shared with the store (memfd), the only
    // memory it can reach; elsewhere plain registered buffers.
    if ((*c)->TransferStats().transport == "local") {
      auto rs = (*c)->AllocateSharedRegion(size);
      auto rd = (*c)->AllocateSharedRegion(size);
      if (!rs.ok() || !rd.ok()) return failed(rs.ok() ? rd.status() : rs.status());
      src_view[t] = rs->memory;
      dst_view[t] = rd->memory;
      src_region[t] = {rs->region, 0, size};
      dst_region[t] = {rd->region, 0, size};
    } else {
      src[t].resize(size);
      dst[t].resize(size);
      src_view[t] = src[t];
      dst_view[t] = dst[t];
      auto rs = (*c)->RegisterRegion(src[t]);
      auto rd = (*c)->RegisterRegion(dst[t]);
      if (!rs.ok() || !rd.ok()) return failed(rs.ok() ? rd.status() : rs.status());
      src_region[t] = {*rs, 0, size};
      dst_region[t] = {*rd, 0, size};
    }
    FillPattern(src_view[t], static_cast<uint64_t>(t) + 1);
    FillPattern(dst_view[t], 0);
    conns.push_back(std::move(*c));
  }
  InsertOptions insert_options;
  insert_options.producer = "kvstore-bench";
  BulkResult r =
      RunBulk("kvstore", size, clients, limits, server_pid,
              [&](int t, uint64_t i, PhaseTimes* times) -> Status {
                Key k = BulkKey(run, case_id, static_cast<uint32_t>(t), i);
                uint64_t t0 = NowNs();
                auto ins = conns[t]->InsertFromRegion(k, src_region[t], insert_options);
                if (!ins.ok()) return ins.status().WithContext("insert");
                uint64_t t1 = NowNs();
                auto got = conns[t]->DropSelectIntoRegions(
                    std::span(&k, 1), std::span(&dst_region[t], 1), kDropTimeout);
                if (!got.ok()) return got.status().WithContext("drop_select");
                times->put_ns = t1 - t0;
                times->get_ns = NowNs() - t1;
                if (got->size() != 1 || (*got)[0].meta.size != size) {
                  return Status::Internal("drop_select returned the wrong size");
                }
                // The first op of each client checks the bytes; checksums cover the
                // rest (client side over tcp, the store's own at insert otherwise).
                if (i == 0 && std::memcmp(src_view[t].data(), dst_view[t].data(), size) != 0) {
                  return Status::DataLoss("drop_select returned different bytes");
                }
                return Status::Ok();
              });
  return r;
}

}  // namespace kvstore::bench
