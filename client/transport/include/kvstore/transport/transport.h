// Bulk transports: how value bytes move between an engine's memory and the
// store's slots. Control messages always travel on the connection's TCP
// stream; the value bytes of each request move one of three ways:
//
//   tcp    in the frame stream, right after the control message (the store
//          reads an insert's bytes off the socket into the slot and writes a
//          select's bytes from the slot onto the socket; no staging copy).
//   local  one-sided, same host: the store reads the client's registered
//          memory into the slot (insert) and writes slots into the client's
//          memory (select) with process_vm_readv/writev: one copy, no socket.
//   rdma   one-sided across hosts: the store posts RDMA READ (insert) and RDMA
//          WRITE (select) on an RC queue pair against the client's registered
//          memory (libibverbs).
//
// In every case the store initiates the transfer, so it knows when the bytes
// have landed: an insert commits only after the store has every byte and its
// checksum matched; a drop_select removes its entries only once the pushes
// completed, and a failed push leaves them for the next taker. Clients never
// hold a key to the store's memory.
//
// The one-sided transports share this interface. Each side of a connection
// has its half: the client's RegionExporter makes caller memory reachable and
// describes it (an encoded rdma::RemoteRegion: address, rkey, length); the
// store's RemoteAccess reads and writes ranges of what was described. Which
// transport a connection uses is settled in Hello: local when the store can
// prove it reaches the client's memory, else rdma when both ends have a
// device, else tcp; the choice is logged once per process.
//
// Thread-safety: an exporter is thread-safe; a RemoteAccess belongs to one
// connection and is called from its strand only.
#pragma once

#include <sys/types.h>

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
  kAuto = 0,  // local if the store can reach this process, else rdma if both have devices, else tcp
  kTcp = 1,   // never one-sided
  kLocal = 2,  // local or tcp
  kRdma = 3,   // rdma or tcp
};
Result<Preference> ParsePreference(std::string_view name);  // "auto", "tcp", "local", "rdma"
std::string_view PreferenceName(Preference p);

// A range of a client's memory as a request names it: a region announced on
// the connection (region != 0), or a one-off region whose descriptor rides in
// the request (region == 0; an unregistered span registered for this call).
struct RemoteSlice {
  uint32_t region = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::span<const std::byte> inline_descriptor;  // used when region == 0
};

// The store-side table of one connection's announced regions, and the bounds
// check every wire offset goes through before a transfer may touch it.
class RegionTable {
 public:
  // InvalidArgument for id 0, a malformed descriptor, or more than kMaxRegions.
  Status Add(uint32_t id, std::span<const std::byte> descriptor);
  // NotFound when the id is unknown.
  Status Remove(uint32_t id);
  // The peer address of [offset, offset + length) of the slice's region.
  // InvalidArgument when the region is unknown or the range leaves it.
  Result<rdma::RemoteAddress> Resolve(const RemoteSlice& slice) const;
  size_t size() const { return regions_.size(); }

  static constexpr size_t kMaxRegions = 4096;

 private:
  std::unordered_map<uint32_t, rdma::RemoteRegion> regions_;
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
  // Copies the peer's bytes at `src` into `dst` (pull), or `src` into the
  // peer's memory at `dst` (push); `dst.size()` / `src.size()` bytes. `done`
  // runs exactly once, on the caller's strand or inline, with OK when every
  // byte has landed, or an error naming the transport, the peer and what to do.
  virtual void Read(rdma::RemoteAddress src, std::span<std::byte> dst, Done done) = 0;
  virtual void Write(std::span<const std::byte> src, rdma::RemoteAddress dst, Done done) = 0;
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

// Hello offer of the local transport: this process's pid and a fresh random
// nonce at an address in its memory. The store proves it can reach this
// process (same host, same pid namespace, permission to read it) by reading
// the nonce back from that address. The object keeps the nonce alive; keep it
// until the Hello reply has arrived.
class LocalOffer {
 public:
  LocalOffer();
  std::vector<std::byte> Encode() const;  // for Hello.localOffer

 private:
  alignas(16) std::array<std::byte, 16> nonce_;
};

// The store's side: decodes the offer and reads the nonce back from the
// client's memory. Unavailable (with the reason: permission, other host or pid
// namespace, process gone) when it cannot; the connection then uses tcp.
Result<std::unique_ptr<RemoteAccess>> AcceptLocalOffer(std::span<const std::byte> offer);

// The client's side of local: describes memory by its address (nothing to register).
std::unique_ptr<RegionExporter> MakeLocalExporter();

// Reads/writes another process's memory (process_vm_readv/writev), for the
// tests and the store: the whole range or an error.
Status ReadProcessMemory(pid_t pid, uint64_t addr, std::span<std::byte> dst);
Status WriteProcessMemory(pid_t pid, uint64_t addr, std::span<const std::byte> src);

}  // namespace kvstore::transport
