#include "kvstore/transport/transport.h"

namespace kvstore::transport {

std::string_view KindName(Kind k) {
  switch (k) {
    case Kind::kTcp:
      return "tcp";
    case Kind::kLocal:
      return "local";
    case Kind::kRdma:
      return "rdma";
  }
  return "unknown";
}

Result<Kind> ParseKind(std::string_view name) {
  for (Kind k : {Kind::kTcp, Kind::kLocal, Kind::kRdma}) {
    if (name == KindName(k)) return k;
  }
  return Status::InvalidArgument("unknown bulk transport '" + std::string(name) +
                                 "'; use tcp, local or rdma");
}

std::string_view PreferenceName(Preference p) {
  switch (p) {
    case Preference::kAuto:
      return "auto";
    case Preference::kTcp:
      return "tcp";
    case Preference::kLocal:
      return "local";
    case Preference::kRdma:
      return "rdma";
  }
  return "unknown";
}

Result<Preference> ParsePreference(std::string_view name) {
  for (Preference p :
       {Preference::kAuto, Preference::kTcp, Preference::kLocal, Preference::kRdma}) {
    if (name == PreferenceName(p)) return p;
  }
  return Status::InvalidArgument("unknown transport preference '" + std::string(name) +
                                 "'; use auto, tcp, local or rdma");
}

Status RegionTable::Add(uint32_t id, std::span<const std::byte> descriptor) {
  if (id == 0) return Status::InvalidArgument("region id 0 is reserved for one-off regions");
  KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteRegion region, rdma::RemoteRegion::Decode(descriptor));
  if (!regions_.contains(id) && regions_.size() >= kMaxRegions) {
    return Status::InvalidArgument("this connection already has " + std::to_string(kMaxRegions) +
                                   " regions; unregister some first");
  }
  regions_[id] = region;
  return Status::Ok();
}

Status RegionTable::Remove(uint32_t id) {
  if (regions_.erase(id) == 0) {
    return Status::NotFound("region " + std::to_string(id) +
                            " is not registered on this connection");
  }
  return Status::Ok();
}

Result<rdma::RemoteAddress> RegionTable::Resolve(const RemoteSlice& slice) const {
  if (slice.region == 0) {
    KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteRegion region,
                             rdma::RemoteRegion::Decode(slice.inline_descriptor));
    return rdma::ResolveRemote(region, slice.offset, slice.length);
  }
  auto it = regions_.find(slice.region);
  if (it == regions_.end()) {
    return Status::InvalidArgument("region " + std::to_string(slice.region) +
                                   " was not registered on this connection");
  }
  return rdma::ResolveRemote(it->second, slice.offset, slice.length);
}

}  // namespace kvstore::transport
