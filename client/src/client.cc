#include "kvstore/client.h"

#include <capnp/message.h>

#include "client_impl.h"
#include "kvstore/cluster/cluster_client.h"
#include "kvstore/rdma/device.h"
#include "kvstore/transport/rdma_transport.h"
#include "kvstore/wire_convert.h"

namespace kvstore {

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const ClientOptions& Client::options() const { return impl_->options_; }

cluster::ClusterClient* Client::cluster() const { return impl_->cluster_.get(); }

namespace {
// A single kvstored can serve only calls meant for itself.
Status CheckNode(const ClientOptions& options, const CallOptions& call) {
  if (call.node.empty() || call.node == options.address) return Status::Ok();
  return Status::InvalidArgument("the call names cluster node " + call.node +
                                 " but this client is connected to the single kvstored at " +
                                 options.address + "; connect with an etcd:// address");
}
}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.max_connections == 0) {
    return Status::InvalidArgument("ClientOptions::max_connections must be at least 1");
  }
  KVSTORE_ASSIGN_OR_RETURN(transport::Preference preference,
                           transport::ParsePreference(options.transport));
  std::unique_ptr<Client> c(new Client(std::make_unique<Impl>(options)));
  if (cluster::IsClusterUrl(options.address)) {  // etcd://...: placed over the members
    KVSTORE_ASSIGN_OR_RETURN(c->impl_->cluster_, cluster::ConnectClusterAddress(options));
    return c;
  }
  c->impl_->setup_.preference = preference;
  if (preference == transport::Preference::kAuto || preference == transport::Preference::kRdma) {
    std::string why;
    if (rdma::RdmaDevicesPresent(&why)) {
      auto device = rdma::RdmaDevice::Open();
      if (device.ok()) {
        c->impl_->setup_.rdma_device = std::shared_ptr<rdma::RdmaDevice>(std::move(device).value());
        c->impl_->rdma_exporter_ = transport::MakeRdmaExporter(c->impl_->setup_.rdma_device);
      }
    }
  }
  KVSTORE_ASSIGN_OR_RETURN(auto lease, c->impl_->Borrow());  // checks address and token now
  (void)lease;
  return c;
}

Result<bool> Client::Insert(const Key& key, std::span<const std::byte> value,
                            const InsertOptions& options) {
  return InsertSpan(key, value, options, nullptr);
}

Result<bool> Client::InsertSpan(const Key& key, std::span<const std::byte> value,
                                const InsertOptions& options, const RegionSlice* region) {
  if (impl_->cluster_ && (region == nullptr || !impl_->regions_.IsDevice(region->region)))
    return impl_->cluster_->Insert(key, value, options);
  (region != nullptr ? impl_->regions_.registered : impl_->regions_.unregistered)
      .fetch_add(1, std::memory_order_relaxed);
  KVSTORE_ASSIGN_OR_RETURN(auto conn, impl_->Borrow());
  if (conn->max_value_bytes() != 0 && value.size() > conn->max_value_bytes()) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds kvstored's limit of " +
                                   std::to_string(conn->max_value_bytes()) + " bytes");
  }
  if (region != nullptr) KVSTORE_RETURN_IF_ERROR(impl_->CheckDeviceRegion(conn, region->region));
  // The store only reads the source; the exporter's span type is shared with destinations.
  Impl::OneSidedTarget source{
      region != nullptr ? std::optional<RegionSlice>(*region) : std::nullopt,
      {const_cast<std::byte*>(value.data()), value.size()}};
  if (!value.empty() && impl_->CanGoOneSided(conn, std::span(&source, 1))) {
    return impl_->InsertOneSided(conn, key, value, options, source,
                                 region != nullptr && impl_->regions_.IsDevice(region->region));
  }
  capnp::MallocMessageBuilder msg;
  uint64_t id = conn->NextId();
  auto ins = impl_->StartInsert(msg, id, key, value.size(), options.checksum.value_or(0), options);
  auto deadline = impl_->Deadline();
  if (options.checksum) {
    std::span<const std::byte> bulk[] = {value};
    KVSTORE_RETURN_IF_ERROR(conn->Send(msg, bulk, deadline));
  } else {
    // Hash while sending: the checksum follows the value.
    ins.setChecksumTrailer(true);
    KVSTORE_RETURN_IF_ERROR(conn->SendWithChecksumTrailer(msg, value, deadline));
  }
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, conn->Receive(deadline));
  auto resp = in.response();
  KVSTORE_RETURN_IF_ERROR(ReplyStatus(resp));
  return resp.isCount() && resp.getCount() == 1;
}

Result<std::vector<Result<bool>>> Client::InsertMany(std::span<const InsertItem> items,
                                                     const InsertOptions& options) {
  if (impl_->cluster_) return impl_->cluster_->InsertMany(items, options);
  return impl_->InsertMany(items, options);
}

Result<std::vector<Entry>> Client::Select(std::span<const Key> keys, const CallOptions& call) {
  if (impl_->cluster_) return impl_->cluster_->Select(keys, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->SelectOwned(false, keys, {});
}

Result<std::vector<Entry>> Client::DropSelect(std::span<const Key> keys,
                                              std::chrono::milliseconds timeout,
                                              const CallOptions& call) {
  if (impl_->cluster_) return impl_->cluster_->DropSelect(keys, timeout, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->SelectOwned(true, keys, timeout);
}

namespace {
auto IntoBuffers(std::span<const std::span<std::byte>> destinations) {
  return [destinations](size_t i, uint64_t size) -> Result<std::span<std::byte>> {
    if (destinations[i].size() < size) {
      return Status::InvalidArgument("destination buffer " + std::to_string(i) + " holds " +
                                     std::to_string(destinations[i].size()) +
                                     " bytes but the value has " + std::to_string(size));
    }
    return destinations[i];
  };
}
// One-sided targets: plain spans (exported per call) or registered slices.
std::vector<Client::Impl::OneSidedTarget> SpanTargets(
    std::span<const std::span<std::byte>> destinations) {
  std::vector<Client::Impl::OneSidedTarget> out;
  for (auto d : destinations) out.push_back({std::nullopt, d});
  return out;
}
std::vector<Client::Impl::OneSidedTarget> RegionTargets(std::span<const RegionSlice> slices) {
  std::vector<Client::Impl::OneSidedTarget> out;
  for (const auto& s : slices) out.push_back({s, {}});
  return out;
}
}  // namespace

Result<std::vector<EntryInfo>> Client::SelectInto(
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations,
    const CallOptions& call) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("SelectInto needs one destination buffer per key");
  }
  if (impl_->cluster_) return impl_->cluster_->SelectInto(keys, destinations, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  auto targets = SpanTargets(destinations);
  return impl_->SelectImpl(false, keys, {}, IntoBuffers(destinations), false, targets);
}

Result<std::vector<EntryInfo>> Client::DropSelectInto(
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations,
    std::chrono::milliseconds timeout, const CallOptions& call) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("DropSelectInto needs one destination buffer per key");
  }
  if (impl_->cluster_)
    return impl_->cluster_->DropSelectInto(keys, destinations, timeout, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  auto targets = SpanTargets(destinations);
  return impl_->SelectImpl(true, keys, timeout, IntoBuffers(destinations), false, targets);
}

Result<RegionId> Client::RegisterRegion(std::span<std::byte> memory) {
  return impl_->regions_.Add(memory);
}

Result<RegionId> Client::RegisterDeviceRegion(std::span<std::byte> gpu_memory) {
  return impl_->regions_.Add(gpu_memory, /*device=*/true);
}

Status Client::UnregisterRegion(RegionId region) { return impl_->regions_.Remove(region); }

Result<bool> Client::InsertFromRegion(const Key& key, const RegionSlice& source,
                                      const InsertOptions& options) {
  KVSTORE_ASSIGN_OR_RETURN(std::span<std::byte> bytes, impl_->regions_.Resolve(source));
  return InsertSpan(key, bytes, options, &source);
}

namespace {
Result<std::vector<std::span<std::byte>>> ResolveAll(const internal::RegionTable& regions,
                                                     std::span<const RegionSlice> slices) {
  std::vector<std::span<std::byte>> out;
  out.reserve(slices.size());
  for (const auto& s : slices) {
    KVSTORE_ASSIGN_OR_RETURN(std::span<std::byte> b, regions.Resolve(s));
    out.push_back(b);
  }
  return out;
}
}  // namespace

Result<std::vector<EntryInfo>> Client::SelectIntoRegions(std::span<const Key> keys,
                                                         std::span<const RegionSlice> destinations,
                                                         const CallOptions& call) {
  KVSTORE_ASSIGN_OR_RETURN(auto spans, ResolveAll(impl_->regions_, destinations));
  if (spans.size() != keys.size()) {
    return Status::InvalidArgument("SelectIntoRegions needs one destination per key");
  }
  if (impl_->cluster_ &&
      std::none_of(destinations.begin(), destinations.end(),
                   [&](const RegionSlice& d) { return impl_->regions_.IsDevice(d.region); }))
    return impl_->cluster_->SelectInto(keys, spans, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->SelectImpl(false, keys, {}, IntoBuffers(spans), /*registered=*/true,
                           RegionTargets(destinations));
}

Result<std::vector<EntryInfo>> Client::DropSelectIntoRegions(
    std::span<const Key> keys, std::span<const RegionSlice> destinations,
    std::chrono::milliseconds timeout, const CallOptions& call) {
  KVSTORE_ASSIGN_OR_RETURN(auto spans, ResolveAll(impl_->regions_, destinations));
  if (spans.size() != keys.size()) {
    return Status::InvalidArgument("DropSelectIntoRegions needs one destination per key");
  }
  if (impl_->cluster_ &&
      std::none_of(destinations.begin(), destinations.end(),
                   [&](const RegionSlice& d) { return impl_->regions_.IsDevice(d.region); }))
    return impl_->cluster_->DropSelectInto(keys, spans, timeout, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->SelectImpl(true, keys, timeout, IntoBuffers(spans), /*registered=*/true,
                           RegionTargets(destinations));
}

ClientTransferStats Client::TransferStats() const {
  ClientTransferStats s;
  s.registered_transfers = impl_->regions_.registered.load();
  s.unregistered_transfers = impl_->regions_.unregistered.load();
  s.one_sided_transfers = impl_->regions_.one_sided.load();
  s.registered_on_the_fly = impl_->regions_.on_the_fly.load();
  s.transport =
      std::string(transport::KindName(static_cast<transport::Kind>(impl_->last_kind_.load())));
  return s;
}

Result<size_t> Client::MatchPrefix(std::span<const Key> keys, const CallOptions& call) {
  if (impl_->cluster_) return impl_->cluster_->MatchPrefix(keys, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initMatchPrefix(); });
}

Result<size_t> Client::Retain(std::span<const Key> keys, const CallOptions& call) {
  if (impl_->cluster_) return impl_->cluster_->Retain(keys, call.node);
  KVSTORE_RETURN_IF_ERROR(CheckNode(impl_->options_, call));
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initRetain(); });
}

Result<size_t> Client::Remove(std::span<const Key> keys) {
  if (impl_->cluster_) return impl_->cluster_->Remove(keys);
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initRemove(); });
}

Result<StoreStats> Client::Stats() {
  if (impl_->cluster_) return impl_->cluster_->TotalStats();
  KVSTORE_ASSIGN_OR_RETURN(InFrame in,
                           impl_->SimpleCall([](wire::Request::Builder r) { r.setStats(); }));
  if (!in.response().isStats()) {
    return Status::Internal("kvstored answered stats with something else");
  }
  return StatsFromWire(in.response().getStats());
}

Result<ListPage> Client::List(const ListOptions& options) {
  if (impl_->cluster_) {
    KVSTORE_ASSIGN_OR_RETURN(auto page, impl_->cluster_->List(options));
    return ListPage{std::move(page.entries), std::move(page.next_cursor)};
  }
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, impl_->SimpleCall([&](wire::Request::Builder r) {
    auto l = r.initList();
    l.setCursor({reinterpret_cast<const kj::byte*>(options.cursor.data()), options.cursor.size()});
    l.setLimit(options.limit);
    l.setTierFilter(static_cast<int8_t>(options.tier));
  }));
  if (!in.response().isList()) {
    return Status::Internal("kvstored answered list with something else");
  }
  ListPage page;
  auto lr = in.response().getList();
  for (auto e : lr.getEntries()) {
    KVSTORE_ASSIGN_OR_RETURN(Key k, KeyFromWire(e.getKey()));
    page.entries.push_back({k, MetaFromWire(e.getMeta())});
  }
  auto cur = lr.getNextCursor();
  page.next_cursor.assign(reinterpret_cast<const std::byte*>(cur.begin()),
                          reinterpret_cast<const std::byte*>(cur.end()));
  return page;
}

Result<EntryInfo> Client::Show(const Key& key) {
  if (impl_->cluster_) return impl_->cluster_->Show(key);
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, impl_->SimpleCall([&](wire::Request::Builder r) {
    auto l = r.initList();
    l.setPrefix(KeyToWire(key));
    l.setLimit(1);
  }));
  if (!in.response().isList() || in.response().getList().getEntries().size() == 0) {
    return Status::NotFound("key " + key.ToHex() + " is not stored");
  }
  auto e = in.response().getList().getEntries()[0];
  return EntryInfo{key, MetaFromWire(e.getMeta())};
}

Status Client::Ping() {
  if (impl_->cluster_) return impl_->cluster_->Ping();
  return impl_->SimpleCall([](wire::Request::Builder r) { r.setPing(); }).status();
}

}  // namespace kvstore
