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

// When an insert is acknowledged (--durability).
enum class Durability {
  kNone,  // once in memory: kill -9 loses what only the host tier held
  kSync,  // once written through to the spill tier and synced (group commit)
};

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
  Durability durability = Durability::kNone;    // --durability none|sync; sync needs spill
};

struct ServerOptions {
  std::string listen = "127.0.0.1:7400";   // control + TCP data plane (--listen)
  std::string metrics = "127.0.0.1:9400";  // Prometheus /metrics (--metrics); empty = off
  std::string log_level = "info";          // trace|debug|info|warn|error (--log-level)
  // Authentication (server/src/service/auth.h). With neither, no token is required.
  std::string token;        // one shared secret (--token-file): the admin of namespace "default"
  std::string tokens_file;  // tenants with namespaces, roles and quotas (--tokens-file)
  // Same-host clients (--unix-socket): a Unix-domain socket beside the TCP
  // listener, where the local transport runs (memfd sharing). Empty = none.
  // kvstored_main defaults it to <data-dir>/kvstored.sock.
  std::string unix_socket;
  uint32_t unix_socket_mode = 0666;  // the token, not the file mode, is what authenticates
  // Unix-socket peers (SO_PEERCRED) allowed to connect; empty = any uid.
  std::vector<uint32_t> unix_allow_uids;
  // TLS on the TCP listener (--tls-cert, --tls-key; --tls-ca requires client
  // certificates signed by that CA). Empty cert = plaintext TCP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  int io_threads = 2;             // threads running the network event loop
  size_t max_connections = 1024;  // authenticated connections at once; more are refused at hello
  // A connection that has not sent a valid hello within this is closed.
  std::chrono::milliseconds hello_timeout{5000};
  // Not-yet-authenticated connections, in all and per peer (IP address or
  // Unix uid); a new one beyond either takes the oldest one's place.
  size_t max_unauthenticated = 128;
  size_t max_unauthenticated_per_peer = 32;
  size_t max_waiters_per_connection = 4096;  // pending drop_selects per connection
  // Pending drop_selects across all connections (--max-waiters); 0 = no cap.
  size_t max_waiters = 65536;
  // Keys one drop_select / select / match_prefix / retain / remove may name
  // (--max-keys-per-request).
  size_t max_keys_per_request = 65536;
  // Memory held for calls not yet answered, across all connections
  // (--max-pending-bytes): value bytes of replies queued or awaiting their
  // acknowledgement plus the keys of waiting drop_selects; 0 = no cap.
  uint64_t max_pending_bytes = 4ull << 30;
  // A frame that stops arriving half-way for this long closes its connection
  // (its partial insert is discarded), and so does a reply the peer does not
  // read for this long (what it pinned is freed). Idle connections between
  // frames stay open.
  std::chrono::milliseconds stall_timeout{30000};
  // An insert of S bytes must arrive within stall_timeout + S / min_insert_rate
  // (--min-insert-rate, bytes per second), so a peer trickling bytes cannot
  // hold a large reservation; 0 = only the stall timeout applies.
  uint64_t min_insert_rate = 1ull << 20;
  // SIGTERM: connections with replies in flight or deliveries unacknowledged
  // get this long to finish (--shutdown-grace); idle connections close at once.
  std::chrono::milliseconds shutdown_grace{2000};
  // A drop_select delivery not acknowledged within this time goes back to the store.
  std::chrono::milliseconds ack_timeout{60000};
  // Serve same-host clients on the Unix socket one-sided through memory they
  // share (memfd); --no-local-transport turns it off (values then travel in
  // the frames, and TCP clients are not told the socket).
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
