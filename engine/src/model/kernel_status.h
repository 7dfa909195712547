// FromKernelStatus: the one conversion from a kernels::Status (the kernels
// library carries its own small status, knowing nothing of the store) to the
// engine's Status. Codes keep their meaning: InvalidArgument (fix the call),
// Unavailable (no GPU / no CUDA build), Internal (a CUDA or cuBLAS failure).
// Private to the engine's model library.
#pragma once

#include <string>
#include <string_view>

#include "kvstore/kernels/status.h"
#include "kvstore/status.h"

namespace kvstore::engine {

inline Status FromKernelStatus(const kernels::Status& st, std::string_view where) {
  if (st.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  switch (st.code()) {
    case kernels::Code::kInvalidArgument:
      code = StatusCode::kInvalidArgument;
      break;
    case kernels::Code::kUnavailable:
      code = StatusCode::kUnavailable;
      break;
    case kernels::Code::kOk:
    case kernels::Code::kInternal:
      break;
  }
  return Status(code, std::string(where) + ": " + st.message());
}

}  // namespace kvstore::engine
