// The transfers the store makes itself (local, rdma): regions announced per
// connection, inserts it pulls, selects it pushes (transport.h).
#include <capnp/message.h>

#include "client_impl.h"
#include "kvstore/transport/rdma_transport.h"

namespace kvstore {

Result<SharedRegion> Client::AllocateSharedRegion(size_t bytes) {
  KVSTORE_ASSIGN_OR_RETURN(std::unique_ptr<transport::SharedMemory> shm,
                           transport::SharedMemory::Allocate(bytes, "kvstore-shared"));
  std::shared_ptr<transport::SharedMemory> shared(std::move(shm));
  RegionId id = impl_->regions_.AddShared(shared);
  return SharedRegion{id, shared->bytes()};
}

std::optional<RegionSlice> Client::Impl::SharedSlice(const OneSidedTarget& t) const {
  if (t.region) {
    if (!regions_.SharedOf(t.region->region)) return std::nullopt;
    return t.region;
  }
  return regions_.FindShared(t.span);
}

bool Client::Impl::CanGoOneSided(Lease& conn, std::span<const OneSidedTarget> targets) {
  switch (conn->kind()) {
    case transport::Kind::kTcp:
      return false;
    case transport::Kind::kRdma:
      return true;
    case transport::Kind::kLocal:
      // Only memory the client shared is reachable; anything else goes in the frames.
      for (const auto& t : targets) {
        if (!SharedSlice(t)) return false;
      }
      return !targets.empty();
  }
  return false;
}

Status Client::Impl::AnnounceShared(Lease& conn, RegionId region, Clock::time_point deadline) {
  if (conn->announced(region.value)) return Status::Ok();
  KVSTORE_RETURN_IF_ERROR(WithdrawUnregistered(conn, deadline));
  auto shared = regions_.SharedOf(region);
  if (!shared) {
    return Status::InvalidArgument("region " + std::to_string(region.value) +
                                   " is not shared memory (or was unregistered)");
  }
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<wire::Request>();
  req.setId(conn->NextId());
  auto a = req.initRegisterRegion();
  a.setId(region.value);
  a.setSharedFd(true);
  KVSTORE_RETURN_IF_ERROR(conn->SendWithFd(msg, shared->fd(), deadline));
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, conn->Receive(deadline));
  KVSTORE_RETURN_IF_ERROR(ReplyStatus(in.response()));
  conn->set_announced(region.value);
  return Status::Ok();
}

Status Client::Impl::FillRemote(Lease& conn, const OneSidedTarget& t, wire::RemoteBuffer::Builder b,
                                std::vector<transport::ExportedRegion>* keep,
                                Clock::time_point deadline) {
  if (conn->kind() == transport::Kind::kLocal) {
    std::optional<RegionSlice> slice = SharedSlice(t);
    if (!slice) return Status::Internal("local transfer of memory that is not shared");
    KVSTORE_RETURN_IF_ERROR(AnnounceShared(conn, slice->region, deadline));
    b.setRegion(slice->region.value);
    b.setOffset(slice->offset);
    b.setLength(slice->length);
    return Status::Ok();
  }
  transport::RegionExporter* exporter = Exporter(conn->kind());
  if (exporter == nullptr) return Status::Internal("no exporter for this transport");
  if (t.region) {
    uint32_t id = t.region->region.value;
    if (!conn->announced(id)) {
      KVSTORE_RETURN_IF_ERROR(WithdrawUnregistered(conn, deadline));
      KVSTORE_ASSIGN_OR_RETURN(std::vector<std::byte> d,
                               regions_.Descriptor(t.region->region, *exporter));
      capnp::MallocMessageBuilder msg;
      auto req = msg.initRoot<wire::Request>();
      req.setId(conn->NextId());
      auto a = req.initRegisterRegion();
      a.setId(id);
      a.setDescriptor({reinterpret_cast<const kj::byte*>(d.data()), d.size()});
      KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, deadline));
      KVSTORE_RETURN_IF_ERROR(ReplyStatus(in.response()));
      conn->set_announced(id);
    }
    b.setRegion(id);
    b.setOffset(t.region->offset);
    b.setLength(t.region->length);
    return Status::Ok();
  }
  KVSTORE_ASSIGN_OR_RETURN(transport::ExportedRegion e, exporter->Export(t.span));
  regions_.on_the_fly.fetch_add(1, std::memory_order_relaxed);
  b.setRegion(0);
  b.setOffset(0);
  b.setLength(t.span.size());
  b.setDescriptor({reinterpret_cast<const kj::byte*>(e.descriptor.data()), e.descriptor.size()});
  keep->push_back(std::move(e));
  return Status::Ok();
}

wire::SelectRequest::Builder Client::Impl::StartSelect(capnp::MallocMessageBuilder& msg,
                                                       uint64_t id, bool drop,
                                                       std::span<const Key> keys,
                                                       std::chrono::milliseconds timeout) {
  auto req = msg.initRoot<wire::Request>();
  req.setId(id);
  auto sel = drop ? req.initDropSelect() : req.initSelect();
  SetKeys(sel.initKeys(static_cast<unsigned>(keys.size())), keys);
  sel.setTimeoutMs(static_cast<uint64_t>(timeout.count()));
  return sel;
}

wire::InsertRequest::Builder Client::Impl::StartInsert(capnp::MallocMessageBuilder& msg,
                                                       uint64_t id, const Key& key, uint64_t size,
                                                       uint64_t checksum,
                                                       const InsertOptions& options) {
  auto req = msg.initRoot<wire::Request>();
  req.setId(id);
  auto ins = req.initInsert();
  ins.setKey(KeyToWire(key));
  EntryMeta meta;
  meta.size = size;
  meta.checksum = checksum;
  meta.layout = options.layout;
  meta.producer = options.producer.empty() ? options_.client_name : options.producer;
  MetaToWire(meta, ins.initMeta());
  ins.setTtlMs(static_cast<uint64_t>(options.ttl.count()));
  return ins;
}

Status Client::Impl::CheckDeviceRegion(Lease& conn, RegionId region) {
  if (!regions_.IsDevice(region) || conn->kind() == transport::Kind::kRdma) return Status::Ok();
  return Status::InvalidArgument(
      "region " + std::to_string(region.value) +
      " is GPU memory and moves only over the rdma transport; this connection to kvstored "
      "uses " +
      std::string(transport::KindName(conn->kind())) +
      " (no RDMA device on one end?): copy the bytes to host memory, or run with RDMA");
}

Status Client::Impl::WithdrawUnregistered(Lease& conn, Clock::time_point deadline) {
  std::vector<uint32_t> gone;
  for (uint32_t id : conn->announced_regions()) {
    if (!regions_.Contains(id)) gone.push_back(id);
  }
  for (uint32_t id : gone) {
    capnp::MallocMessageBuilder msg;
    auto req = msg.initRoot<wire::Request>();
    req.setId(conn->NextId());
    req.setUnregisterRegion(id);
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, deadline));
    KVSTORE_RETURN_IF_ERROR(ReplyStatus(in.response()));
    conn->set_withdrawn(id);
  }
  return Status::Ok();
}

Result<bool> Client::Impl::InsertOneSided(Lease& conn, const Key& key,
                                          std::span<const std::byte> value,
                                          const InsertOptions& options,
                                          const OneSidedTarget& source, bool device) {
  auto deadline = Deadline();
  std::vector<transport::ExportedRegion> keep;
  capnp::MallocMessageBuilder msg;
  uint64_t id = conn->NextId();
  // The store checks what it read against this: a buffer changed mid-insert is
  // refused. GPU memory cannot be hashed here: the store hashes what it pulled.
  bool by_store = device && !options.checksum;
  uint64_t checksum = options.checksum ? *options.checksum : by_store ? 0 : ValueChecksum(value);
  auto ins = StartInsert(msg, id, key, value.size(), checksum, options);
  ins.setChecksumByStore(by_store);
  KVSTORE_RETURN_IF_ERROR(FillRemote(conn, source, ins.initSource(), &keep, deadline));
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, deadline));
  auto resp = in.response();
  if (resp.getId() != id) return Status::Internal("kvstored replied to a different request");
  KVSTORE_RETURN_IF_ERROR(ReplyStatus(resp));
  regions_.one_sided.fetch_add(1, std::memory_order_relaxed);
  return resp.isCount() && resp.getCount() == 1;
}

Result<std::vector<EntryInfo>> Client::Impl::SelectOneSided(
    Lease& conn, bool drop, std::span<const Key> keys, std::chrono::milliseconds timeout,
    std::span<const OneSidedTarget> targets) {
  auto deadline = Deadline(drop ? timeout : std::chrono::milliseconds{0});
  std::vector<transport::ExportedRegion> keep;
  capnp::MallocMessageBuilder msg;
  uint64_t id = conn->NextId();
  auto sel = StartSelect(msg, id, drop, keys, timeout);
  auto dsts = sel.initDestinations(static_cast<unsigned>(targets.size()));
  for (size_t i = 0; i < targets.size(); ++i) {
    KVSTORE_RETURN_IF_ERROR(
        FillRemote(conn, targets[i], dsts[static_cast<unsigned>(i)], &keep, deadline));
  }
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, deadline));
  auto resp = in.response();
  if (resp.getId() != id) return Status::Internal("kvstored replied to a different request");
  KVSTORE_RETURN_IF_ERROR(ReplyStatus(resp));
  if (!resp.isEntries() || resp.getEntries().size() != keys.size() || in.header.bulk_len != 0) {
    return Status::Internal("kvstored sent a malformed reply to a one-sided select");
  }
  std::vector<EntryInfo> infos;
  infos.reserve(keys.size());
  for (auto e : resp.getEntries()) infos.push_back({keys[infos.size()], MetaFromWire(e.getMeta())});
  regions_.one_sided.fetch_add(1, std::memory_order_relaxed);
  return infos;
}

transport::RegionExporter* Client::Impl::Exporter(transport::Kind kind) {
  switch (kind) {
    case transport::Kind::kRdma:
      return rdma_exporter_.get();
    case transport::Kind::kLocal:  // shared memory is announced with its fd, not exported
    case transport::Kind::kTcp:
      break;
  }
  return nullptr;
}

}  // namespace kvstore
