// The floor for any request/reply over loopback TCP: 64-byte ping-pong between two
// sockets of this process, one echo thread per client thread, TCP_NODELAY on both ends.
#pragma once

#include "bench_util.h"

namespace kvstore::bench {

// REQUIRES: threads > 0. Errors (no loopback, socket limits) land in the result.
CaseResult RunRawPingPong(int threads, double seconds);

}  // namespace kvstore::bench
