#include "kvstore/rdma/transfer_plan.h"

#include <algorithm>
#include <string>

namespace kvstore::rdma {

Result<std::vector<PlannedChunk>> PlanChunks(std::span<const LocalSge> local, uint64_t remote_addr,
                                             const ChunkLimits& limits) {
  if (local.empty()) return Status::InvalidArgument("transfer: empty scatter-gather list");
  if (limits.chunk_bytes == 0 || limits.max_sge == 0) {
    return Status::InvalidArgument("transfer: chunk_bytes and max_sge must be > 0");
  }
  if (limits.chunk_bytes > (size_t{1} << 31)) {
    return Status::InvalidArgument("transfer: chunk_bytes over 2 GiB");
  }
  uint64_t total = 0;
  for (size_t i = 0; i < local.size(); ++i) {
    if (local[i].length == 0) {
      return Status::InvalidArgument("transfer: entry " + std::to_string(i) + " has length 0");
    }
    if (total + local[i].length < total || local[i].addr + local[i].length < local[i].addr) {
      return Status::InvalidArgument("transfer: lengths overflow");
    }
    total += local[i].length;
  }
  if (remote_addr + total < remote_addr) {
    return Status::InvalidArgument("transfer: remote range overflows the address space");
  }

  std::vector<PlannedChunk> chunks;
  size_t idx = 0;
  uint64_t used = 0;  // bytes of local[idx] already planned
  uint64_t remote = remote_addr;
  while (idx < local.size()) {
    PlannedChunk chunk;
    chunk.remote_addr = remote;
    while (idx < local.size() && chunk.length < limits.chunk_bytes &&
           chunk.sges.size() < limits.max_sge) {
      const LocalSge& s = local[idx];
      const uint64_t take = std::min<uint64_t>(s.length - used, limits.chunk_bytes - chunk.length);
      chunk.sges.push_back({s.addr + used, take, s.lkey});
      chunk.length += take;
      used += take;
      if (used == s.length) {
        ++idx;
        used = 0;
      }
    }
    remote += chunk.length;
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

}  // namespace kvstore::rdma
