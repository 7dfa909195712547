// libkvstore: the client engines and tools link to talk to kvstored.
//
// Thread-safety: a Client is safe to share between threads. It keeps a small
// pool of connections; each call borrows one for its duration, so a thread
// blocked in DropSelect does not hold up other threads' calls (up to
// ClientOptions::max_connections calls run at once; further calls wait).
//
// Values move without copies on the client side: Insert streams straight from
// the caller's span, and the *Into calls receive straight into the caller's
// buffers. The convenience calls returning Entry own their bytes.
//
// The value types (EntryMeta, Tier, StoreStats, ListPage, ValueChecksum) live in
// kvstore/types.h, shared with the daemon; this header adds the client API.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvstore/key.h"
#include "kvstore/status.h"
#include "kvstore/types.h"

namespace kvstore {

struct ClientOptions {
  // HOST:PORT of kvstored, or unix:PATH for its Unix socket on this host.
  std::string address = "127.0.0.1:7400";
  std::chrono::milliseconds connect_timeout{5000};  // per connection attempt
  std::chrono::milliseconds io_timeout{
      60000};  // non-blocking calls; drop_select adds its own timeout
  // The tenant's token. Empty: the first line of `token_file`, else the
  // KVSTORE_TOKEN environment variable, else none (keep tokens out of argv).
  std::string token;
  std::string token_file;
  // TLS to a kvstored started with --tls-cert: the CA (PEM) that signed its
  // certificate; empty = plaintext TCP. The certificate must name the host of
  // `address` (DNS name or IP). tls_cert/tls_key: this client's certificate
  // for a daemon that requires one (--tls-ca). The Unix socket needs no TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string client_name = "libkvstore";  // shows in the daemon's logs
  size_t max_connections = 8;              // pool bound
  // Bulk transport for the *Into / *Region calls and Insert (see
  // kvstore/transport/transport.h): "auto" connects to the store's Unix
  // socket when it runs on the same host ("local": memory from
  // AllocateSharedRegion then moves with one copy in the store, other memory
  // in the socket's frames), else uses RDMA when both ends have a device, else
  // TCP; "tcp", "local" and "rdma" restrict the choice (falling back to tcp
  // when it is not possible).
  std::string transport = "auto";
};

struct InsertOptions {
  std::string layout;
  std::string producer;
  std::chrono::milliseconds ttl{0};  // 0 = the store's default
  // XXH3-64 of the value when the caller already has it (e.g. computed while
  // packing); saves a pass over the bytes. The store verifies it either way.
  std::optional<uint64_t> checksum;
};

// One value of an InsertMany.
struct InsertItem {
  Key key;
  std::span<const std::byte> value;  // must stay valid for the call
  std::optional<uint64_t> checksum;  // XXH3-64 when the caller has it; else hashed here
};

// Per-call routing, for a client connected to a cluster (an etcd:// address;
// see kvstore/cluster/cluster_client.h).
struct CallOptions {
  // HOST:PORT of the cluster node that holds the keys (as the node advertises
  // itself). A consumer under the `local` placement is told it by its producer
  // (as vLLM passes kv_transfer_params) and the call goes to that node alone:
  // one network hop per handoff. Empty (the default): the client's placement
  // decides. A single-node client accepts only empty or its own address and
  // refuses any other node with InvalidArgument (it cannot reach it).
  std::string node;
};

struct ListOptions {
  std::vector<std::byte> cursor;  // from ListPage::next_cursor; empty = start
  uint32_t limit = 1000;
  int tier = -1;  // -1 = all, else a Tier value
};

namespace cluster {
class ClusterClient;
}

// Caller memory registered once for transfers (Client::RegisterRegion).
struct RegionId {
  uint32_t value = 0;
  bool operator==(const RegionId&) const = default;
};

// Part of a registered region: the source of an insert or the destination of a select.
struct RegionSlice {
  RegionId region;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Memory shared with a same-host kvstored (Client::AllocateSharedRegion).
struct SharedRegion {
  RegionId region;
  std::span<std::byte> memory;
};

// What this client moved, by kind of buffer and path.
struct ClientTransferStats {
  uint64_t registered_transfers = 0;    // from/into registered regions
  uint64_t unregistered_transfers = 0;  // from/into plain spans
  uint64_t staged_transfers = 0;        // went through a bounce copy (none: no path stages)
  uint64_t one_sided_transfers = 0;     // the store read/wrote this process's memory itself
  // Plain spans a one-sided transport had to register for a single call (with
  // rdma a memory registration each time: register the memory once instead).
  uint64_t registered_on_the_fly = 0;
  std::string transport;  // what the last connection negotiated: tcp, local or rdma
};

class Client {
 public:
  // Connects once to check the address and the token; further connections open on demand.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Stores `value` under `key`; visible to readers only once every byte is in.
  // Returns true when stored now, false when the key was already present (idempotent).
  // ResourceExhausted when the store is full; nothing already stored is affected.
  Result<bool> Insert(const Key& key, std::span<const std::byte> value,
                      const InsertOptions& options = {});

  // Stores many values in one request and one round trip (a prefill engine
  // publishing a request's blocks). Per-key results, in `items` order: true
  // stored now, false already present (also a key repeated in `items`, after
  // its first copy), or that key's error (ResourceExhausted when full or over
  // quota; others are unaffected). The call itself fails, with nothing
  // stored, when the request is refused as a whole: more items than the
  // daemon's --max-keys-per-request (split the batch), or an I/O error.
  // options.layout/producer/ttl apply to every item (options.checksum is
  // unused: see InsertItem). With the local transport a value inside memory
  // from AllocateSharedRegion is pulled by the store (as Insert's is; rdma: any
  // registered host region), the rest travel in the request's frame. A batch
  // larger than the daemon's value limit, or of more than 4,096 keys, goes as
  // several requests (earlier ones stay stored if a later one fails). A
  // cluster client sends one request
  // per node (the nodes in parallel) with the keys placement puts there; a
  // node that fails fails only its keys, each with an error naming the node.
  Result<std::vector<Result<bool>>> InsertMany(std::span<const InsertItem> items,
                                               const InsertOptions& options = {});

  // The reading calls (select, drop_select, match_prefix, retain) take
  // CallOptions: which cluster node holds the keys, when the caller was told.
  // Reads without removing. NotFound unless every key is stored.
  Result<std::vector<Entry>> Select(std::span<const Key> keys, const CallOptions& call = {});
  // Reads into caller buffers, one per key; InvalidArgument if a buffer is smaller than
  // its value. Returns each value's meta (meta.size = bytes written).
  Result<std::vector<EntryInfo>> SelectInto(std::span<const Key> keys,
                                            std::span<const std::span<std::byte>> destinations,
                                            const CallOptions& call = {});

  // Blocks until every key is stored (or `timeout` passes: Timeout), hands the
  // entries to this caller alone and removes them from the store.
  Result<std::vector<Entry>> DropSelect(std::span<const Key> keys,
                                        std::chrono::milliseconds timeout,
                                        const CallOptions& call = {});
  Result<std::vector<EntryInfo>> DropSelectInto(std::span<const Key> keys,
                                                std::span<const std::span<std::byte>> destinations,
                                                std::chrono::milliseconds timeout,
                                                const CallOptions& call = {});

  // Registers caller memory once; transfers then name (region, offset, length) and
  // move bytes straight between the transport and this memory. Over TCP that is
  // the socket; with a one-sided transport the store reads and writes the region
  // itself (rdma: the NIC registration happens once, at first use, instead of
  // per transfer). The caller keeps the memory alive until UnregisterRegion.
  // InvalidArgument for an empty span.
  Result<RegionId> RegisterRegion(std::span<std::byte> memory);
  // GPU memory (an engine's KV cache): the library never reads or writes it on
  // the CPU, so it moves only over the rdma transport (GPUDirect: the NIC
  // registration needs nvidia-peermem or dmabuf support); transfers naming it
  // on a tcp or local connection fail with InvalidArgument. Inserts from it are
  // hashed by the store as it pulls them (an InsertOptions::checksum is still
  // verified). InvalidArgument for an empty span.
  Result<RegionId> RegisterDeviceRegion(std::span<std::byte> gpu_memory);
  // Allocates `bytes` of memory this process shares with a kvstored on the
  // same host (a sealed memfd): values inserted from it or selected into it
  // move with one memcpy in the store over the local transport, with no
  // socket copy. It is a registered region: name it in the *Region calls, or
  // pass spans inside `memory` to Insert / SelectInto. The store maps only
  // this memory, never anything else of the process. It stays mapped until
  // UnregisterRegion(region) or the Client is destroyed. Over tcp or rdma it
  // is ordinary registered memory. InvalidArgument for 0 bytes.
  Result<SharedRegion> AllocateSharedRegion(size_t bytes);
  // NotFound when the id is unknown.
  Status UnregisterRegion(RegionId region);
  // Insert / select with registered memory. InvalidArgument when a slice is not
  // inside its region (offset + length checked without overflow).
  Result<bool> InsertFromRegion(const Key& key, const RegionSlice& source,
                                const InsertOptions& options = {});
  Result<std::vector<EntryInfo>> SelectIntoRegions(std::span<const Key> keys,
                                                   std::span<const RegionSlice> destinations,
                                                   const CallOptions& call = {});
  Result<std::vector<EntryInfo>> DropSelectIntoRegions(std::span<const Key> keys,
                                                       std::span<const RegionSlice> destinations,
                                                       std::chrono::milliseconds timeout,
                                                       const CallOptions& call = {});
  ClientTransferStats TransferStats() const;

  // Number of leading keys stored now; never blocks.
  Result<size_t> MatchPrefix(std::span<const Key> keys, const CallOptions& call = {});
  // Adds one pending taker to each leading stored key (stops at the first absent
  // key) and returns how many were retained. A producer that reuses blocks
  // another request already stored calls this instead of inserting them again,
  // so each consumer's drop_select finds them (the last taker removes them).
  Result<size_t> Retain(std::span<const Key> keys, const CallOptions& call = {});
  // Removes what is present; returns how many were removed.
  Result<size_t> Remove(std::span<const Key> keys);
  Result<StoreStats> Stats();
  // Over a cluster address: every live node's entries, node after node; the
  // cursor resumes where the previous page stopped (node and position).
  Result<ListPage> List(const ListOptions& options);
  // Metadata of one entry without its bytes; NotFound when absent.
  Result<EntryInfo> Show(const Key& key);
  Status Ping();

  const ClientOptions& options() const;
  // The cluster behind an etcd:// address (membership, placement, per-node
  // traffic); null for a single kvstored. Owned by this Client.
  cluster::ClusterClient* cluster() const;

 public:
  class Impl;  // private to the library (client.cc)

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  // `region`: the registered slice `value` is, or null for a plain span.
  Result<bool> InsertSpan(const Key& key, std::span<const std::byte> value,
                          const InsertOptions& options, const RegionSlice* region);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvstore
