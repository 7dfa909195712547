// Options of kvstored, parsed once in main() from flags and an optional config file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace prometheus {
class Collectable;
}

namespace kvstore::server {

struct StoreOptions {
  uint64_t memory_bytes = 512ull << 20;  // host tier capacity (--memory)
  // Device (GPU) tier above host (--device-memory); 0 = off. Absent without a GPU.
  uint64_t device_memory_bytes = 0;
  uint64_t max_value_bytes = 256ull << 20;  // largest single value (--max-value)
  std::chrono::milliseconds default_ttl{10 * 60 *
                                        1000};  // unclaimed entries expire (--ttl); 0 = never
  std::string data_dir;                         // spill tier and state (--data-dir); empty = none
  uint64_t spill_bytes = 0;                     // spill tier capacity (--spill); 0 = disabled
  double high_watermark = 0.90;                 // demotion starts above this host (and device) fill
  double low_watermark = 0.75;                  // and stops below this
  bool flush_on_shutdown = true;                // SIGTERM writes the host tier to spill first
  bool lock_memory = true;                      // mlock the host arena when allowed
};

struct ServerOptions {
  std::string listen = "127.0.0.1:7400";     // control + TCP data plane (--listen)
  std::string metrics = "127.0.0.1:9400";    // Prometheus /metrics (--metrics); empty = off
  std::string log_level = "info";            // trace|debug|info|warn|error (--log-level)
  std::string token;                         // shared secret clients must present; empty = none
  int io_threads = 2;                        // threads running the network event loop
  size_t max_connections = 1024;             // further connections are closed at accept
  size_t max_waiters_per_connection = 4096;  // pending drop_selects per connection
  size_t max_keys_per_request = 65536;
  // A frame that stops arriving half-way for this long closes its connection
  // (its partial insert is discarded). Idle connections between frames stay open.
  std::chrono::milliseconds stall_timeout{30000};
  // A drop_select delivery not acknowledged within this time goes back to the store.
  std::chrono::milliseconds ack_timeout{60000};
  // Serve same-host clients one-sided (the store reads and writes their memory
  // with process_vm_readv/writev); --no-local-transport turns it off.
  bool local_transport = true;
  // Cluster membership (--cluster etcd://HOST:PORT[,...]/NAME, server/src/cluster); empty = alone.
  std::string cluster;
  std::string advertise;  // HOST:PORT for clients (--advertise); empty = bound --listen
  std::chrono::seconds cluster_lease_ttl{10};  // a crashed node leaves the cluster after this
  // More collectables for /metrics (the cluster membership's), served beside the store's.
  std::vector<std::shared_ptr<prometheus::Collectable>> extra_metrics;
  // Called once when shutdown begins, on the event loop: must not block.
  std::function<void()> on_shutdown;
  StoreOptions store;
};

}  // namespace kvstore::server
