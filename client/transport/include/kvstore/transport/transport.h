// Bulk transports: how value bytes move between an engine's memory and the
// store's slots. Control messages always travel on the connection's stream
// (TCP, or the daemon's Unix-domain socket for a client on the same host); the
// value bytes of each request move one of three ways:
//
//   tcp    in the frame stream, right after the control message (the store
//          reads an insert's bytes off the socket into the slot and writes a
//          select's bytes from the slot onto the socket; no staging copy).
//          Over the Unix socket too, for memory the client did not share.
//   local  one-sided, same host: the client shares memory it allocated from a
//          sealed memfd (SharedMemory) by passing the fd over the Unix socket
//          (SCM_RIGHTS); the store maps it and memcpy's between that mapping
//          and the slot. The store never reaches any other memory of the
//          client: there is no address, no pid and no power over the process,
//          only offsets into a mapping the client handed over, each checked
//          against the mapping's size before every copy.
//   rdma   one-sided across hosts: the store posts RDMA READ (insert) and RDMA
//          WRITE (select) on an RC queue pair against the client's registered
//          memory (libibverbs); the NIC checks every access against the rkey.
//
// In every case the store initiates the transfer, so it knows when the bytes
// have landed: an insert commits only after the store has every byte and its
// checksum matched; a drop_select removes its entries only once the pushes
// completed, and a failed push leaves them for the next taker. Clients never
// hold a key to the store's memory.
//
// The one-sided transports share this interface. Each side of a connection
// has its half: the client's RegionExporter makes caller memory reachable and
// describes it (rdma: an encoded rdma::RemoteRegion; local: the memfd sent
// with the announcement); the store's RegionTable resolves what a request
// names to a RemoteRange and its RemoteAccess reads and writes it. Which
// transport a connection uses is settled in Hello: local on the Unix socket
// when the client asks for it, else rdma when both ends have a device, else
// tcp; the choice is logged once per process.
//
// Thread-safety: an exporter is thread-safe; a RemoteAccess and a RegionTable
// belong to one connection and are used from its strand only. A
// SharedMapping is immutable once made and may be shared between threads.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kvstore/rdma/remote_region.h"
#include "kvstore/status.h"

namespace kvstore::transport {

enum class Kind : uint8_t { kTcp = 0, kLocal = 1, kRdma = 2 };

std::string_view KindName(Kind k);  // "tcp", "local", "rdma"
// Accepts "tcp", "local", "rdma"; InvalidArgument otherwise.
Result<Kind> ParseKind(std::string_view name);

// What a client allows for one-sided transfers (ClientOptions::transport).
enum class Preference : uint8_t {
  kAuto = 0,   // local if the store is on this host (its Unix socket), else rdma if both have
               // devices, else tcp
  kTcp = 1,    // never one-sided
  kLocal = 2,  // local or tcp
  kRdma = 3,   // rdma or tcp
};
Result<Preference> ParsePreference(std::string_view name);  // "auto", "tcp", "local", "rdma"
std::string_view PreferenceName(Preference p);

// A range of a client's memory as a request names it: a region announced on
// the connection (region != 0), or a one-off region whose descriptor rides in
// the request (region == 0; rdma only: an unregistered span registered for
// this call, which the NIC checks against its rkey).
struct RemoteSlice {
  uint32_t region = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::span<const std::byte> inline_descriptor;  // used when region == 0
};

// Memory a same-host client shared with the store, mapped into the daemon: a
// memfd the client passed over the Unix socket. Only memfds sealed against
// shrinking are taken (a file that shrinks under a mapping turns a copy into
// SIGBUS); hugetlb memfds are refused (a fault with no free huge page is
// SIGBUS too).
class SharedMapping {
 public:
  // Maps `fd` read-write (the mapping keeps the file; `fd` is closed here in
  // every case). InvalidArgument, naming what is wrong, for anything other
  // than a sealed, non-empty memfd of at most `max_bytes`.
  static Result<std::shared_ptr<SharedMapping>> Map(int fd, uint64_t max_bytes);
  ~SharedMapping();
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  uint64_t size() const { return size_; }
  // [offset, offset + length) of the mapping; InvalidArgument when it is not
  // inside (checked without overflow). Every local copy goes through this.
  Result<std::span<std::byte>> Slice(uint64_t offset, uint64_t length) const;

 private:
  SharedMapping(std::byte* base, uint64_t size) : base_(base), size_(size) {}
  std::byte* base_;
  uint64_t size_;
};

// What a transfer needs to reach a resolved range of the client's memory.
struct RemoteRange {
  rdma::RemoteAddress addr;  // rdma: the client's address and rkey; local: offset in `shared`
  std::shared_ptr<const SharedMapping> shared;  // local: the mapping; kept alive by the holder
  RemoteRange Advance(uint64_t n) const {
    RemoteRange r = *this;
    r.addr.addr += n;
    return r;
  }
};

// The store-side table of one connection's announced regions, and the bounds
// check every wire offset goes through before a transfer may touch it.
class RegionTable {
 public:
  // rdma tables take encoded RemoteRegions and one-off regions; local tables
  // take only shared mappings (an address from the client means nothing to
  // them) and refuse region 0.
  explicit RegionTable(Kind kind = Kind::kTcp) : kind_(kind) {}
  void set_kind(Kind kind) { kind_ = kind; }
  Kind kind() const { return kind_; }

  // rdma: InvalidArgument for id 0, a malformed descriptor, or more than kMaxRegions.
  Status Add(uint32_t id, std::span<const std::byte> descriptor);
  // local: the same checks, plus at most kMaxSharedBytes mapped in all.
  Status AddShared(uint32_t id, std::shared_ptr<const SharedMapping> mapping);
  // NotFound when the id is unknown.
  Status Remove(uint32_t id);
  // Where [offset, offset + length) of the slice's region is. InvalidArgument
  // when the region is unknown, the range leaves it, or (local) the slice
  // names region 0.
  Result<RemoteRange> Resolve(const RemoteSlice& slice) const;
  size_t size() const { return regions_.size(); }

  static constexpr size_t kMaxRegions = 4096;
  // Address space one connection may have the daemon map (virtual: the pages
  // are the client's memfd).
  static constexpr uint64_t kMaxSharedBytes = uint64_t{1} << 40;

 private:
  struct Entry {
    rdma::RemoteRegion region;                    // rdma
    std::shared_ptr<const SharedMapping> shared;  // local
  };
  Kind kind_;
  std::unordered_map<uint32_t, Entry> regions_;
  uint64_t shared_bytes_ = 0;
};

using Done = std::function<void(Status)>;

// The store's half of a one-sided transport on one connection.
class RemoteAccess {
 public:
  virtual ~RemoteAccess() = default;
  virtual Kind kind() const = 0;
  // What the client should be told in the Hello reply (rdma: the store's
  // queue-pair parameters; local: nothing).
  virtual std::vector<std::byte> HelloReplyParams() const { return {}; }
  // Copies the client's bytes at `src` into `dst` (pull), or `src` into the
  // client's memory at `dst` (push); `dst.size()` / `src.size()` bytes. `done`
  // runs exactly once, on the caller's strand or inline, with OK when every
  // byte has landed, or an error naming the transport, the peer and what to do.
  virtual void Read(const RemoteRange& src, std::span<std::byte> dst, Done done) = 0;
  virtual void Write(std::span<const std::byte> src, const RemoteRange& dst, Done done) = 0;
};

// A client's memory made reachable by the store, for as long as this lives.
struct ExportedRegion {
  std::vector<std::byte> descriptor;  // encoded rdma::RemoteRegion
  std::shared_ptr<void> keepalive;    // rdma: the memory registration
};

// The client's half: makes memory reachable and describes it.
class RegionExporter {
 public:
  virtual ~RegionExporter() = default;
  virtual Kind kind() const = 0;
  // REQUIRES: memory stays valid while the ExportedRegion lives.
  virtual Result<ExportedRegion> Export(std::span<std::byte> memory) = 0;
};

// ---------------------------------------------------------------- local

// The client's side: memory from a memfd, sealed so it can neither shrink nor
// grow, mapped (and populated) in this process. Its fd goes to the store with
// the region's announcement; the store maps the same pages.
class SharedMemory {
 public:
  // InvalidArgument for 0 bytes; Unavailable (with errno) when the memfd or
  // its mapping cannot be made.
  static Result<std::unique_ptr<SharedMemory>> Allocate(size_t bytes, const std::string& name);
  ~SharedMemory();
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  std::span<std::byte> bytes() const { return {base_, size_}; }
  int fd() const { return fd_; }
  bool Contains(std::span<const std::byte> s) const {
    auto* p = s.data();
    return p >= base_ && s.size() <= size_ && static_cast<size_t>(p - base_) <= size_ - s.size();
  }

 private:
  SharedMemory(int fd, std::byte* base, size_t size) : fd_(fd), base_(base), size_(size) {}
  int fd_;
  std::byte* base_;
  size_t size_;
};

// The store's side of local: memcpy between slots and shared mappings.
std::unique_ptr<RemoteAccess> MakeLocalAccess();

// Unix-socket helpers for passing a memfd with a frame (SCM_RIGHTS).
// Sends `iov` on `sock` with `fd` attached to its first byte; returns bytes sent or -errno.
ssize_t SendWithFd(int sock, const struct iovec* iov, size_t iovcnt, int fd);
// Receives up to `len` bytes (MSG_DONTWAIT), appending any fds that came with
// them to `fds` (close-on-exec; at most kMaxFdsPerRead, the kernel closes
// more). Returns bytes read, 0 at end of stream, or -errno.
inline constexpr size_t kMaxFdsPerRead = 4;
ssize_t ReceiveWithFds(int sock, void* buf, size_t len, std::vector<int>* fds, bool* truncated);

}  // namespace kvstore::transport
