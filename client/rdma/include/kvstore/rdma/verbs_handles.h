// Owning handles for libibverbs objects: each is a std::unique_ptr whose deleter
// calls the matching ibv_destroy/ibv_free function, so member order in the owning
// class gives the teardown order (MR and QP before CQ before PD before context).
//
// Thread-safety: like std::unique_ptr; the verbs objects themselves may be used
// from several threads as libibverbs allows, but ownership is single-threaded.
#pragma once

#include <infiniband/verbs.h>

#include <memory>

namespace kvstore::rdma {

struct DeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};
struct ContextDeleter {
  void operator()(ibv_context* ctx) const;
};
struct PdDeleter {
  void operator()(ibv_pd* pd) const;
};
struct CqDeleter {
  void operator()(ibv_cq* cq) const;
};
struct MrDeleter {
  void operator()(ibv_mr* mr) const;
};
struct QpDeleter {
  void operator()(ibv_qp* qp) const;
};

using DeviceListPtr = std::unique_ptr<ibv_device*, DeviceListDeleter>;
using ContextPtr = std::unique_ptr<ibv_context, ContextDeleter>;
using PdPtr = std::unique_ptr<ibv_pd, PdDeleter>;
using CqPtr = std::unique_ptr<ibv_cq, CqDeleter>;
using MrPtr = std::unique_ptr<ibv_mr, MrDeleter>;
using QpPtr = std::unique_ptr<ibv_qp, QpDeleter>;

}  // namespace kvstore::rdma
