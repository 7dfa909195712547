// The local transport: memory a same-host client shares with the store as a
// sealed memfd passed over the Unix socket. The store maps it and copies
// between that mapping and its slots; every copy is bounds-checked against
// the mapping. Nothing here can name another process or an address.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kvstore/transport/transport.h"

namespace kvstore::transport {

namespace {

Status Errno(const std::string& what, int err) {
  return Status::Unavailable(what + ": " + std::strerror(err));
}

class LocalAccess final : public RemoteAccess {
 public:
  Kind kind() const override { return Kind::kLocal; }
  void Read(const RemoteRange& src, std::span<std::byte> dst, Done done) override {
    auto s = Reach(src, dst.size());
    if (!s.ok()) {
      done(s.status());
      return;
    }
    std::memcpy(dst.data(), s->data(), dst.size());
    done(Status::Ok());
  }
  void Write(std::span<const std::byte> src, const RemoteRange& dst, Done done) override {
    auto s = Reach(dst, src.size());
    if (!s.ok()) {
      done(s.status());
      return;
    }
    std::memcpy(s->data(), src.data(), src.size());
    done(Status::Ok());
  }

 private:
  static Result<std::span<std::byte>> Reach(const RemoteRange& r, size_t n) {
    if (!r.shared) {
      return Status::InvalidArgument(
          "the local transport reaches only memory the client shared (a memfd region); "
          "this range names none");
    }
    return r.shared->Slice(r.addr.addr, n);
  }
};

}  // namespace

// ---------------------------------------------------------------- daemon side

Result<std::shared_ptr<SharedMapping>> SharedMapping::Map(int fd, uint64_t max_bytes) {
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Errno("shared region: fstat of the received fd", errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("shared region: the received fd is not a memfd");
  }
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    return Status::InvalidArgument(
        "shared region: the received fd is not a (non-hugetlb) memfd; allocate shared memory "
        "with Client::AllocateSharedRegion");
  }
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return Status::InvalidArgument(
        "shared region: the memfd is not sealed against shrinking (F_SEAL_SHRINK); the store "
        "maps only memory that cannot be cut from under it");
  }
  if (st.st_size <= 0 || static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status::InvalidArgument("shared region of " + std::to_string(st.st_size) +
                                   " bytes refused: it must hold 1 to " +
                                   std::to_string(max_bytes) + " bytes");
  }
  auto size = static_cast<uint64_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    if (err == EACCES || err == EPERM) {
      return Status::InvalidArgument(
          "shared region: the memfd cannot be mapped read-write (opened read-only or sealed "
          "against writes); share writable memory");
    }
    return Errno("shared region: mmap of " + std::to_string(size) + " bytes", err);
  }
  return std::shared_ptr<SharedMapping>(new SharedMapping(static_cast<std::byte*>(p), size));
}

SharedMapping::~SharedMapping() { ::munmap(base_, size_); }

Result<std::span<std::byte>> SharedMapping::Slice(uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return Status::InvalidArgument("range [" + std::to_string(offset) + ", +" +
                                   std::to_string(length) + ") is outside the shared region of " +
                                   std::to_string(size_) + " bytes");
  }
  return std::span<std::byte>(base_ + offset, length);
}

std::unique_ptr<RemoteAccess> MakeLocalAccess() { return std::make_unique<LocalAccess>(); }

// ---------------------------------------------------------------- client side

Result<std::unique_ptr<SharedMemory>> SharedMemory::Allocate(size_t bytes,
                                                             const std::string& name) {
  if (bytes == 0) return Status::InvalidArgument("cannot allocate an empty shared region");
  int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Errno("memfd_create for a shared region", errno);
  auto fail = [fd](const std::string& what) {
    int err = errno;
    ::close(fd);
    return Errno(what, err);
  };
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    return fail("sizing a shared region of " + std::to_string(bytes) + " bytes");
  }
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail("sealing a shared region");
  }
  // Populated here so the pages are this process's (charged to its memory
  // budget) before the store ever touches them.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED)
    return fail("mapping a shared region of " + std::to_string(bytes) + " bytes");
  return std::unique_ptr<SharedMemory>(new SharedMemory(fd, static_cast<std::byte*>(p), bytes));
}

SharedMemory::~SharedMemory() {
  ::munmap(base_, size_);
  ::close(fd_);
}

// ---------------------------------------------------------------- fd passing

ssize_t SendWithFd(int sock, const iovec* iov, size_t iovcnt, int fd) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = iovcnt;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  for (;;) {
    ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t ReceiveWithFds(int sock, void* buf, size_t len, std::vector<int>* fds, bool* truncated) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
  iovec iov{buf, len};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  *truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->push_back(fd);
    }
  }
  return n;
}

}  // namespace kvstore::transport
