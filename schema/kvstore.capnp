# kvstore control protocol.
#
# Framing (client/include/kvstore/frame.h): every message on a connection is
#   FrameHeader (16 bytes, little-endian): magic "KVS1", u32 control length,
#                                          u64 bulk length
#   control: a Cap'n Proto message in flat-array form (Request or Response)
#   bulk:    raw value bytes, `bulk length` of them, following the control part
#
# Bulk bytes never ride inside a Cap'n Proto message: values stream straight
# between the socket and the store's slot memory. The same framing runs over
# TCP and over the daemon's Unix-domain socket (same-host clients). Over TCP the bulk part of an
# insert request is the store's "pull" of the client's source buffer; the bulk
# part of a select reply is the store's "push" into the client's destination.
# With a one-sided transport (local, rdma: client/transport/include/kvstore/
# transport/transport.h) the same requests name the client's memory instead
# (InsertRequest.source, SelectRequest.destinations), the bulk part is empty,
# and the store reads or writes that memory itself before it replies.
#
# A client may pipeline requests on one connection; replies carry the request
# id and may come back out of order (a blocked drop_select does not hold up a
# later match_prefix). Closing the connection cancels its pending calls.

@0xd5c0a5e1b2f3c4a7;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kvstore::wire");

const protocolVersion :UInt32 = 1;

# What the caller should do; mirrors kvstore::StatusCode.
enum Code {
  ok @0;
  notFound @1;
  timeout @2;
  resourceExhausted @3;
  invalidArgument @4;
  unavailable @5;
  dataLoss @6;
  permissionDenied @7;
  internal @8;
}

enum Tier {
  device @0;   # GPU memory registered with the NIC
  host @1;     # pinned host arena
  spill @2;    # RocksDB on local disk
}

# Describes one stored value. Keys are 32 bytes (see client/include/kvstore/key.h).
struct EntryMeta {
  size @0 :UInt64;           # value length in bytes
  checksum @1 :UInt64;       # XXH3-64 of the value bytes
  layout @2 :Text;           # free-form layout tag, e.g. "llama-tiny/f32/L4/kv2/d32/b16/v1"
  producer @3 :Text;         # who inserted it (engine id, host)
  createdUnixMs @4 :UInt64;  # set by the store on commit
  expiresUnixMs @5 :UInt64;  # 0 = never
  tier @6 :Tier;             # where it lives now (replies only)
}

# Where bulk bytes live on the client, for one-sided transfers.
struct RemoteBuffer {
  region @0 :UInt32;   # id announced with registerRegion; 0 = the region in `descriptor`
  offset @1 :UInt64;
  length @2 :UInt64;
  descriptor @3 :Data; # region 0: a one-off region (memory registered for this call)
}

# A client region made reachable for one-sided transfers on this connection.
struct RegionAnnouncement {
  id @0 :UInt32;          # nonzero, chosen by the client
  descriptor @1 :Data;    # rdma: encoded RemoteRegion (client/rdma/include/kvstore/rdma/remote_region.h)
  # local (Unix socket only): the frame carries one fd (SCM_RIGHTS), a memfd
  # sealed against shrinking; the region is that whole file, offsets are from
  # its start, and `descriptor` is unused. The store maps it; nothing else of
  # the client is reachable.
  sharedFd @2 :Bool;
}

# The first request on a connection, and only once: a second hello is a
# protocol error that closes the connection.
struct Hello {
  protocolVersion @0 :UInt32;
  token @1 :Text;        # a tenant's token (--tokens-file) or the shared secret; empty when none is required
  clientName @2 :Text;
  # RDMA negotiation: serialized QpParams (client/include/kvstore/rdma/qp_params.h);
  # empty when the client has no RDMA device.
  rdmaParams @3 :Data;
  # Obsolete (pid + nonce of the removed process_vm_readv transport): ignored.
  obsoleteLocalOffer @4 :Data;
  # The client would share memfd memory (local transport): on the Unix socket
  # the store then answers bulkTransport "local"; over TCP it answers with
  # the Unix socket's path (localSocket) when it has one.
  sharedMemory @5 :Bool;
}

struct InsertRequest {
  key @0 :Data;              # 32 bytes
  meta @1 :EntryMeta;        # size and checksum required; the rest optional
  ttlMs @2 :UInt64;          # 0 = the store's default TTL
  source @3 :RemoteBuffer;   # one-sided: the store reads the value from here (no bulk part)
  # true: meta.checksum is not set here; the value's XXH3-64 follows the value
  # as 8 little-endian bytes in the bulk part (bulk length = size + 8), so the
  # sender hashes each piece as it sends it instead of reading the value twice.
  checksumTrailer @4 :Bool;
  # One-sided only: the client cannot read its own value (GPU memory), so
  # meta.checksum is not set; the store records the XXH3-64 of what it pulled.
  checksumByStore @5 :Bool;
}

# Many values in one request (a prefill engine publishing a whole request's
# blocks, or one layer of many blocks, in one round trip). The bulk part holds
# the values back to back in `items` order, nothing between them: its length
# must equal the sum of items[i].meta.size over the items without a `source`,
# else the whole request is refused (InvalidArgument, nothing stored). Each meta
# needs size and checksum (no trailer). With a one-sided transport (local,
# rdma) an item may name a `source` instead: the store pulls that value from
# the client's memory itself, like InsertRequest.source; every source is
# resolved against the regions announced on this connection before anything is
# reserved, and one that does not resolve (unknown region, outside it, length
# not meta.size) refuses the whole request (InvalidArgument, nothing stored).
# The values' total size (in the bulk part or pulled), like any frame's bulk
# part, is at most --max-value bytes (libkvstore splits larger batches into
# several requests). The number of
# items counts against --max-keys-per-request and the insert deadline is
# --stall-timeout + total size / --min-insert-rate; over either, nothing is
# stored. Otherwise the reply's code is ok and `insertResults` has one result
# per item, in order (per-key status, not all-or-nothing): stored, already
# present (not an error: a prefix cache keeps the first copy; a key repeated
# within the batch is stored once, its later copies answer stored = false),
# or that key's own error (resourceExhausted when full or over its namespace's
# quota, dataLoss when the checksum does not match, invalidArgument when over
# the value size limit). A failed key never affects the others.
struct InsertManyRequest {
  items @0 :List(InsertItem);
  ttlMs @1 :UInt64;          # 0 = the store's default TTL; applies to every item
}

struct InsertItem {
  key @0 :Data;              # 32 bytes
  meta @1 :EntryMeta;        # size and checksum required; layout/producer optional
  # One-sided (length > 0): the store reads the value from here; it takes no
  # bytes of the bulk part. Unset (older clients): the value is in the bulk part.
  source @2 :RemoteBuffer;
}

struct InsertResult {
  code @0 :Code;             # ok: see `stored`
  message @1 :Text;          # why, when code is not ok
  stored @2 :Bool;           # true = stored now, false = already present
}

struct SelectRequest {
  keys @0 :List(Data);
  timeoutMs @1 :UInt64;      # drop_select only; 0 = return Timeout at once if absent
  # One-sided: one per key; the store writes each value there and replies
  # with no bulk part once every byte has landed (no ackDelivery needed).
  destinations @2 :List(RemoteBuffer);
}

struct KeysRequest {
  keys @0 :List(Data);
}

struct ListRequest {
  cursor @0 :Data;          # empty = from the start; else the last key of the previous page
  limit @1 :UInt32;         # 0 = server default (1000)
  tierFilter @2 :Int8 = -1; # -1 = all, else a Tier ordinal
  prefix @3 :Data;          # only keys starting with these bytes
}

struct Request {
  id @0 :UInt64;
  union {
    hello @1 :Hello;
    insert @2 :InsertRequest;
    select @3 :SelectRequest;
    dropSelect @4 :SelectRequest;
    matchPrefix @5 :KeysRequest;
    remove @6 :KeysRequest;
    stats @7 :Void;
    list @8 :ListRequest;
    ping @9 :Void;
    # Confirms that the bulk part of the dropSelect reply with this request id was
    # received in full. Until it arrives the entries are held, invisible to others;
    # if the connection closes first they go back into the store for the next taker.
    # No reply is sent.
    ackDelivery @10 :UInt64;
    # Adds one pending taker to each leading key that is stored, stopping at the
    # first absent one; the reply's count says how many were retained. An entry
    # with N takers survives N-1 drop_selects (each gets the bytes) and leaves
    # with the Nth: prefix blocks shared by in-flight requests are not lost to
    # the first consumer.
    retain @11 :KeysRequest;
    # One-sided transports: announce / withdraw a client region on this connection.
    registerRegion @12 :RegionAnnouncement;
    unregisterRegion @13 :UInt32;
    insertMany @14 :InsertManyRequest;
  }
}

struct EntryInfo {
  key @0 :Data;
  meta @1 :EntryMeta;
}

struct TierStats {
  tier @0 :Tier;
  entries @1 :UInt64;
  bytes @2 :UInt64;          # value bytes held
  capacityBytes @3 :UInt64;  # 0 = tier disabled
  usedBytes @4 :UInt64;      # bytes taken including allocator rounding
}

struct StoreStats {
  tiers @0 :List(TierStats);
  waiters @1 :UInt64;
  connections @2 :UInt64;
  inserts @3 :UInt64;
  hits @4 :UInt64;
  misses @5 :UInt64;
  ttlExpired @6 :UInt64;
  evictions @7 :UInt64;       # demotions host -> spill
  promotions @8 :UInt64;      # spill -> host
  refusedInserts @9 :UInt64;
  checksumFailures @10 :UInt64;
  uptimeSeconds @11 :UInt64;
  version @12 :Text;
  fragmentation @13 :Float64;  # 1 - value bytes / allocated bytes in the host arena
  stagedTransfers @14 :UInt64; # device-tier entries copied into host memory to be sent
}

struct Response {
  id @0 :UInt64;
  code @1 :Code;
  message @2 :Text;           # for a person: what happened and what to do
  union {
    none @3 :Void;
    hello @4 :HelloReply;
    entries @5 :List(EntryInfo);  # select / dropSelect: bulk part = values in this order
    count @6 :UInt64;             # matchPrefix, remove, insert (1 = stored now, 0 = already present)
    stats @7 :StoreStats;
    list @8 :ListReply;
    insertResults @9 :List(InsertResult);  # insertMany: one per item, in order
  }
}

struct HelloReply {
  protocolVersion @0 :UInt32;
  serverVersion @1 :Text;
  rdmaParams @2 :Data;       # the store's queue pair when bulkTransport is "rdma"
  maxValueBytes @3 :UInt64;
  bulkTransport @4 :Text;    # "tcp", "local" or "rdma": what one-sided requests may use
  # Over TCP to a client that asked for sharedMemory: the store's Unix socket
  # (empty when it has none). A client on the same host connects there and
  # checks that instanceId matches, so it never mistakes another daemon's
  # socket for this one.
  localSocket @5 :Text;
  instanceId @6 :Data;       # random per daemon process
  tenant @7 :Text;           # who the token says this is ("" without tenants)
  namespace @8 :Text;        # the tenant's namespace
  role @9 :Text;             # "engine", "reader" or "admin"
}

struct ListReply {
  entries @0 :List(EntryInfo);
  nextCursor @1 :Data;        # empty = no more
}
