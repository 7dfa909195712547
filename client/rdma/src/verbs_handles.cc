#include "kvstore/rdma/verbs_handles.h"

#include <spdlog/spdlog.h>

#include "byte_io.h"

namespace kvstore::rdma {

// Teardown failures cannot be returned from a destructor; they are logged
// because they mean a leak (usually a child object still alive).
#define KVSTORE_RDMA_DESTROY_(call, what)                                                  \
  do {                                                                                     \
    if (int rc = (call); rc != 0) {                                                        \
      spdlog::warn("rdma: {} failed: {}", what, internal::ErrnoText(rc > 0 ? rc : errno)); \
    }                                                                                      \
  } while (0)

void ContextDeleter::operator()(ibv_context* ctx) const {
  KVSTORE_RDMA_DESTROY_(ibv_close_device(ctx), "ibv_close_device");
}
void PdDeleter::operator()(ibv_pd* pd) const {
  KVSTORE_RDMA_DESTROY_(ibv_dealloc_pd(pd), "ibv_dealloc_pd");
}
void CqDeleter::operator()(ibv_cq* cq) const {
  KVSTORE_RDMA_DESTROY_(ibv_destroy_cq(cq), "ibv_destroy_cq");
}
void MrDeleter::operator()(ibv_mr* mr) const {
  KVSTORE_RDMA_DESTROY_(ibv_dereg_mr(mr), "ibv_dereg_mr");
}
void QpDeleter::operator()(ibv_qp* qp) const {
  KVSTORE_RDMA_DESTROY_(ibv_destroy_qp(qp), "ibv_destroy_qp");
}

#undef KVSTORE_RDMA_DESTROY_

}  // namespace kvstore::rdma
