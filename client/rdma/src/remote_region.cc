#include "kvstore/rdma/remote_region.h"

#include <string>

#include "byte_io.h"

namespace kvstore::rdma {

using internal::GetLe;
using internal::PutLe;

std::vector<std::byte> RemoteRegion::Encode() const {
  std::vector<std::byte> out(kRemoteRegionEncodedSize);
  std::span<std::byte> s(out);
  PutLe<uint8_t>(s, 0, kRemoteRegionVersion);
  PutLe<uint8_t>(s, 1, 0);
  PutLe<uint16_t>(s, 2, 0);
  PutLe<uint32_t>(s, 4, rkey);
  PutLe<uint64_t>(s, 8, addr);
  PutLe<uint64_t>(s, 16, length);
  return out;
}

Result<RemoteRegion> RemoteRegion::Decode(std::span<const std::byte> bytes) {
  auto bad = [](std::string what) {
    return Status::InvalidArgument("remote region: " + std::move(what));
  };
  if (bytes.size() != kRemoteRegionEncodedSize) {
    return bad("length " + std::to_string(bytes.size()) + ", want " +
               std::to_string(kRemoteRegionEncodedSize));
  }
  const auto version = GetLe<uint8_t>(bytes, 0);
  if (version != kRemoteRegionVersion) return bad("version " + std::to_string(version));
  if (GetLe<uint8_t>(bytes, 1) != 0 || GetLe<uint16_t>(bytes, 2) != 0) {
    return bad("reserved bytes set");
  }
  RemoteRegion r;
  r.rkey = GetLe<uint32_t>(bytes, 4);
  r.addr = GetLe<uint64_t>(bytes, 8);
  r.length = GetLe<uint64_t>(bytes, 16);
  if (r.length == 0) return bad("length 0");
  if (r.addr + r.length < r.addr) return bad("addr + length overflows");
  return r;
}

Result<RemoteAddress> ResolveRemote(const RemoteRegion& region, uint64_t offset, uint64_t length) {
  auto bad = [&](std::string what) {
    return Status::InvalidArgument("remote range [" + std::to_string(offset) + ", +" +
                                   std::to_string(length) + ") " + what + " (region length " +
                                   std::to_string(region.length) + ")");
  };
  if (length == 0) return bad("is empty");
  if (offset > region.length || length > region.length - offset) return bad("is out of bounds");
  if (region.addr + offset < region.addr || region.addr + offset + length < region.addr) {
    return bad("overflows the address space");
  }
  return RemoteAddress{region.addr + offset, region.rkey};
}

}  // namespace kvstore::rdma
