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
  if (kind_ != Kind::kRdma) {
    return Status::InvalidArgument(
        "this connection's regions must be shared memory: announce a region with its memfd "
        "attached (sharedFd), not an address");
  }
  if (id == 0) return Status::InvalidArgument("region id 0 is reserved for one-off regions");
  KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteRegion region, rdma::RemoteRegion::Decode(descriptor));
  if (!regions_.contains(id) && regions_.size() >= kMaxRegions) {
    return Status::InvalidArgument("this connection already has " + std::to_string(kMaxRegions) +
                                   " regions; unregister some first");
  }
  regions_[id] = Entry{region, nullptr};
  return Status::Ok();
}

Status RegionTable::AddShared(uint32_t id, std::shared_ptr<const SharedMapping> mapping) {
  if (kind_ != Kind::kLocal) {
    return Status::InvalidArgument(
        "shared-memory regions need the local transport (the daemon's Unix socket)");
  }
  if (id == 0) return Status::InvalidArgument("region id 0 cannot name a shared region");
  auto it = regions_.find(id);
  uint64_t replaced = it != regions_.end() && it->second.shared ? it->second.shared->size() : 0;
  if (it == regions_.end() && regions_.size() >= kMaxRegions) {
    return Status::InvalidArgument("this connection already has " + std::to_string(kMaxRegions) +
                                   " regions; unregister some first");
  }
  if (shared_bytes_ - replaced + mapping->size() > kMaxSharedBytes) {
    return Status::ResourceExhausted(
        "this connection already shares " + std::to_string(shared_bytes_) +
        " bytes with kvstored (limit " + std::to_string(kMaxSharedBytes) +
        "); unregister regions first");
  }
  shared_bytes_ = shared_bytes_ - replaced + mapping->size();
  regions_[id] = Entry{{}, std::move(mapping)};
  return Status::Ok();
}

Status RegionTable::Remove(uint32_t id) {
  auto it = regions_.find(id);
  if (it == regions_.end()) {
    return Status::NotFound("region " + std::to_string(id) +
                            " is not registered on this connection");
  }
  if (it->second.shared) shared_bytes_ -= it->second.shared->size();
  regions_.erase(it);
  return Status::Ok();
}

Result<RemoteRange> RegionTable::Resolve(const RemoteSlice& slice) const {
  if (kind_ == Kind::kTcp) {
    return Status::InvalidArgument(
        "this connection moves values over tcp (no one-sided transport was negotiated); "
        "send the value in the frame");
  }
  if (slice.region == 0) {
    if (kind_ != Kind::kRdma) {
      return Status::InvalidArgument(
          "the local transport takes no one-off regions: name a shared region announced on "
          "this connection");
    }
    KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteRegion region,
                             rdma::RemoteRegion::Decode(slice.inline_descriptor));
    KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteAddress a,
                             rdma::ResolveRemote(region, slice.offset, slice.length));
    return RemoteRange{a, nullptr};
  }
  auto it = regions_.find(slice.region);
  if (it == regions_.end()) {
    return Status::InvalidArgument("region " + std::to_string(slice.region) +
                                   " was not registered on this connection");
  }
  if (it->second.shared) {
    if (slice.length == 0) return Status::InvalidArgument("a transfer of 0 bytes names nothing");
    // Checked here for a clear error, and again at every copy.
    KVSTORE_RETURN_IF_ERROR(it->second.shared->Slice(slice.offset, slice.length).status());
    return RemoteRange{{slice.offset, 0}, it->second.shared};
  }
  KVSTORE_ASSIGN_OR_RETURN(rdma::RemoteAddress a,
                           rdma::ResolveRemote(it->second.region, slice.offset, slice.length));
  return RemoteRange{a, nullptr};
}

}  // namespace kvstore::transport
