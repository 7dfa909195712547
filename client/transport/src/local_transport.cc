// The local transport: the store reads and writes a same-host client's memory
// with process_vm_readv/writev (cross-memory attach): one copy between the
// client's buffer and the slot, no socket, no registration.
#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "kvstore/transport/transport.h"

namespace kvstore::transport {

namespace {

constexpr uint8_t kOfferVersion = 1;
constexpr size_t kOfferSize = 32;  // version, 3 reserved, u32 pid, u64 nonce address, 16-byte nonce

template <typename T>
void Put(std::span<std::byte> out, size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof(T));  // little-endian hosts only
}
template <typename T>
T Get(std::span<const std::byte> in, size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  return v;
}

Status ProcessMemoryError(const char* op, pid_t pid, uint64_t addr, size_t len, int err) {
  std::string where =
      std::string(op) + " of [0x" +
      [&] {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(addr));
        return std::string(buf);
      }() +
      ", +" + std::to_string(len) + ") in process " + std::to_string(pid);
  switch (err) {
    case EPERM:
      return Status::PermissionDenied(
          where +
          " is not permitted: run kvstored as the same user as the engine, or give it "
          "CAP_SYS_PTRACE (kernel.yama.ptrace_scope may also forbid it)");
    case ESRCH:
      return Status::Unavailable(where + " failed: the process is gone");
    case EFAULT:
      return Status::InvalidArgument(where +
                                     " failed: the range is not mapped there (the client freed "
                                     "or unmapped a buffer it named)");
    case ENOSYS:
      return Status::Unavailable(where + " failed: the kernel has no cross-memory attach");
    default:
      return Status::Unavailable(where + " failed: " + std::strerror(err));
  }
}

// Holds a pidfd of the verified client, so a pid reused after the client
// exited is never read or written: every transfer first checks that the
// process behind the pidfd is still alive.
class LocalRemoteAccess final : public RemoteAccess {
 public:
  LocalRemoteAccess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  ~LocalRemoteAccess() override { ::close(pidfd_); }
  Kind kind() const override { return Kind::kLocal; }
  void Read(rdma::RemoteAddress src, std::span<std::byte> dst, Done done) override {
    Status alive = CheckAlive();
    done(alive.ok() ? ReadProcessMemory(pid_, src.addr, dst) : alive);
  }
  void Write(std::span<const std::byte> src, rdma::RemoteAddress dst, Done done) override {
    Status alive = CheckAlive();
    done(alive.ok() ? WriteProcessMemory(pid_, dst.addr, src) : alive);
  }

  Status CheckAlive() const {
    pollfd p{pidfd_, POLLIN, 0};
    if (::poll(&p, 1, 0) != 0) {
      return Status::Unavailable("client process " + std::to_string(pid_) + " has exited");
    }
    return Status::Ok();
  }

 private:
  pid_t pid_;
  int pidfd_;
};

class LocalExporter final : public RegionExporter {
 public:
  Kind kind() const override { return Kind::kLocal; }
  Result<ExportedRegion> Export(std::span<std::byte> memory) override {
    if (memory.empty()) return Status::InvalidArgument("cannot export an empty region");
    rdma::RemoteRegion r{reinterpret_cast<uintptr_t>(memory.data()), 0, memory.size()};
    return ExportedRegion{r.Encode(), nullptr};
  }
};

}  // namespace

namespace {

// process_vm_readv or process_vm_writev until every byte has moved.
template <typename Syscall>
Status MoveProcessMemory(const char* op, Syscall syscall, pid_t pid, uint64_t addr,
                         std::byte* local_bytes, size_t len) {
  size_t moved = 0;
  while (moved < len) {
    iovec local{local_bytes + moved, len - moved};
    iovec remote{reinterpret_cast<void*>(addr + moved), len - moved};
    ssize_t n = syscall(pid, &local, 1, &remote, 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ProcessMemoryError(op, pid, addr, len, errno);
    }
    if (n == 0) return ProcessMemoryError(op, pid, addr, len, EFAULT);
    moved += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Status ReadProcessMemory(pid_t pid, uint64_t addr, std::span<std::byte> dst) {
  return MoveProcessMemory("reading", ::process_vm_readv, pid, addr, dst.data(), dst.size());
}

Status WriteProcessMemory(pid_t pid, uint64_t addr, std::span<const std::byte> src) {
  return MoveProcessMemory("writing", ::process_vm_writev, pid, addr,
                           const_cast<std::byte*>(src.data()), src.size());
}

LocalOffer::LocalOffer() {
  std::random_device rd;
  for (size_t i = 0; i < nonce_.size(); i += 4) {
    uint32_t v = rd();
    std::memcpy(nonce_.data() + i, &v, 4);
  }
}

std::vector<std::byte> LocalOffer::Encode() const {
  std::vector<std::byte> out(kOfferSize);
  std::span<std::byte> s(out);
  Put<uint8_t>(s, 0, kOfferVersion);
  Put<uint32_t>(s, 4, static_cast<uint32_t>(::getpid()));
  Put<uint64_t>(s, 8, reinterpret_cast<uintptr_t>(nonce_.data()));
  std::memcpy(out.data() + 16, nonce_.data(), nonce_.size());
  return out;
}

Result<std::unique_ptr<RemoteAccess>> AcceptLocalOffer(std::span<const std::byte> offer) {
  if (offer.size() != kOfferSize || Get<uint8_t>(offer, 0) != kOfferVersion) {
    return Status::InvalidArgument("local transport offer of " + std::to_string(offer.size()) +
                                   " bytes is malformed (want " + std::to_string(kOfferSize) +
                                   " bytes, version " + std::to_string(kOfferVersion) + ")");
  }
  auto pid = static_cast<pid_t>(Get<uint32_t>(offer, 4));
  uint64_t addr = Get<uint64_t>(offer, 8);
  if (pid <= 0) return Status::InvalidArgument("local transport offer names pid 0");
  // The pidfd first: the process proven by the nonce is then the one it watches.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    return Status::Unavailable("the client is not reachable for local transfers (pidfd_open of " +
                               std::to_string(pid) + ": " + std::strerror(errno) + ")");
  }
  auto access = std::make_unique<LocalRemoteAccess>(pid, pidfd);
  std::array<std::byte, 16> seen{};
  Status read = access->CheckAlive();
  if (read.ok()) read = ReadProcessMemory(pid, addr, seen);
  if (!read.ok()) {
    return Status::Unavailable("the client is not reachable for local transfers (" +
                               read.message() + ")");
  }
  if (std::memcmp(seen.data(), offer.data() + 16, seen.size()) != 0) {
    return Status::Unavailable("the client's local transport offer did not check out (process " +
                               std::to_string(pid) +
                               " holds other bytes there: another host or pid namespace)");
  }
  return std::unique_ptr<RemoteAccess>(std::move(access));
}

std::unique_ptr<RegionExporter> MakeLocalExporter() { return std::make_unique<LocalExporter>(); }

}  // namespace kvstore::transport
