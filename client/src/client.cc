#include "kvstore/client.h"

#include <condition_variable>
#include <mutex>

#include <capnp/message.h>
#include <xxhash.h>

#include "client_conn.h"
#include "client_regions.h"
#include "kvstore/rdma/device.h"
#include "kvstore/transport/rdma_transport.h"
#include "kvstore/wire_convert.h"

namespace kvstore {

using internal::ClientConn;
using internal::Clock;
using internal::InFrame;

std::string_view TierName(Tier t) {
  switch (t) {
    case Tier::kDevice:
      return "device";
    case Tier::kHost:
      return "host";
    case Tier::kSpill:
      return "spill";
  }
  return "unknown";
}

uint64_t ValueChecksum(std::span<const std::byte> value) {
  return XXH3_64bits(value.data(), value.size());
}

namespace {

Status ReplyStatus(wire::Response::Reader r) {
  if (r.getCode() == wire::Code::OK) return Status::Ok();
  return Status(CodeFromWire(r.getCode()), r.getMessage().cStr());
}

void SetKeys(capnp::List<capnp::Data>::Builder out, std::span<const Key> keys) {
  for (size_t i = 0; i < keys.size(); ++i) out.set(static_cast<unsigned>(i), KeyToWire(keys[i]));
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions options) : options_(std::move(options)) {}

  // A value's place in this process for a one-sided transfer: a registered
  // region's slice, or a plain span exported for this call only.
  struct OneSidedTarget {
    std::optional<RegionSlice> region;
    std::span<std::byte> span;  // used when region is empty
  };


  // A pooled connection, returned to the pool (or dropped when broken) on scope exit.
  class Lease {
   public:
    Lease(Impl* impl, std::unique_ptr<ClientConn> conn) : impl_(impl), conn_(std::move(conn)) {}
    Lease(Lease&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (impl_ != nullptr) impl_->Return(std::move(conn_));
    }
    ClientConn* operator->() { return conn_.get(); }

   private:
    Impl* impl_;
    std::unique_ptr<ClientConn> conn_;
  };

  Result<Lease> Borrow() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < options_.max_connections; });
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c));
      }
      ++open_;
    }
    auto c = ClientConn::Open(options_, setup_);
    if (!c.ok()) {
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_one();
      return c.status();
    }
    return Lease(this, std::move(c).value());
  }

  void Return(std::unique_ptr<ClientConn> c) {
    std::lock_guard lock(mu_);
    if (c == nullptr || c->broken()) {
      --open_;
    } else {
      last_kind_.store(static_cast<uint8_t>(c->kind()), std::memory_order_relaxed);
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  // Sends a request with no bulk and reads its reply control message.
  Result<InFrame> Call(Lease& conn, capnp::MallocMessageBuilder& msg,
                       std::span<const std::span<const std::byte>> bulk,
                       Clock::time_point deadline) {
    KVSTORE_RETURN_IF_ERROR(conn->Send(msg, bulk, deadline));
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, conn->Receive(deadline));
    return in;
  }

  Clock::time_point Deadline(std::chrono::milliseconds extra = {}) const {
    return Clock::now() + options_.io_timeout + extra;
  }

  // Shared by Select/DropSelect (+Into): receives entries into buffers chosen by `dst_for`.
  template <typename DstFor>
  Result<std::vector<EntryInfo>> SelectImpl(bool drop, std::span<const Key> keys,
                                            std::chrono::milliseconds timeout, DstFor dst_for,
                                            bool registered = false,
                                            std::span<const OneSidedTarget> targets = {}) {
    if (keys.empty()) return std::vector<EntryInfo>{};
    (registered ? regions_.registered : regions_.unregistered)
        .fetch_add(1, std::memory_order_relaxed);
    KVSTORE_ASSIGN_OR_RETURN(Lease conn, Borrow());
    for (const auto& t : targets) {
      if (t.region) KVSTORE_RETURN_IF_ERROR(CheckDeviceRegion(conn, t.region->region));
    }
    if (conn->one_sided() && targets.size() == keys.size()) {
      return SelectOneSided(conn, drop, keys, timeout, targets);
    }
    auto deadline = Deadline(drop ? timeout : std::chrono::milliseconds{0});
    capnp::MallocMessageBuilder msg;
    uint64_t id = conn->NextId();
    StartSelect(msg, id, drop, keys, timeout);
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, deadline));
    auto resp = in.response();
    if (resp.getId() != id) return Status::Internal("kvstored replied to a different request");
    Status s = ReplyStatus(resp);
    if (!s.ok()) {
      KVSTORE_RETURN_IF_ERROR(conn->DiscardBulk(in.header.bulk_len, deadline));
      return s;
    }
    if (!resp.isEntries() || resp.getEntries().size() != keys.size()) {
      return Status::Internal("kvstored sent a select reply with the wrong number of entries");
    }
    std::vector<EntryInfo> infos;
    infos.reserve(keys.size());
    uint64_t total = 0;
    for (auto e : resp.getEntries()) {
      EntryInfo info{keys[infos.size()], MetaFromWire(e.getMeta())};
      total += info.meta.size;
      infos.push_back(std::move(info));
    }
    if (total != in.header.bulk_len) {
      return Status::Internal("kvstored sent a select reply whose sizes disagree with its frame");
    }
    Status dst_error;
    for (size_t i = 0; i < infos.size(); ++i) {
      auto dst = dst_for(i, infos[i].meta.size);
      if (!dst.ok()) {  // caller's buffer too small: keep the stream in sync, report after
        KVSTORE_RETURN_IF_ERROR(conn->DiscardBulk(infos[i].meta.size, deadline));
        if (dst_error.ok()) dst_error = dst.status();
        continue;
      }
      std::span<std::byte> out = dst->subspan(0, infos[i].meta.size);
      KVSTORE_ASSIGN_OR_RETURN(uint64_t checksum, conn->ReceiveBulkHashed(out, deadline));
      if (checksum != infos[i].meta.checksum && dst_error.ok()) {
        dst_error = Status::DataLoss("value of key " + infos[i].key.ToHex() +
                                     " failed its checksum in transit");
      }
    }
    if (drop) {
      if (!dst_error.ok()) {
        // Not acknowledged: closing the connection hands the entries back to the store.
        return dst_error;
      }
      capnp::MallocMessageBuilder ack;
      auto a = ack.initRoot<wire::Request>();
      a.setId(conn->NextId());
      a.setAckDelivery(id);
      KVSTORE_RETURN_IF_ERROR(conn->Send(ack, {}, deadline));
    }
    if (!dst_error.ok()) return dst_error;
    return infos;
  }

  // Select / DropSelect into vectors the returned entries own.
  Result<std::vector<Entry>> SelectOwned(bool drop, std::span<const Key> keys,
                                         std::chrono::milliseconds timeout) {
    std::vector<Entry> out(keys.size());
    auto infos = SelectImpl(drop, keys, timeout, [&](size_t i, uint64_t size) {
      out[i].value.resize(size);
      return Result<std::span<std::byte>>(std::span<std::byte>(out[i].value));
    });
    if (!infos.ok()) return infos.status();
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].key = (*infos)[i].key;
      out[i].meta = std::move((*infos)[i].meta);
    }
    return out;
  }

  // match_prefix, retain and remove: a list of keys in, a count out.
  template <typename Init>
  Result<size_t> KeysCall(std::span<const Key> keys, Init init) {
    if (keys.empty()) return size_t{0};
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, SimpleCall([&](wire::Request::Builder req) {
                               SetKeys(init(req).initKeys(static_cast<unsigned>(keys.size())),
                                       keys);
                             }));
    return static_cast<size_t>(in.response().getCount());
  }

  // A request with no value bytes either way: `fill` sets the request's union
  // member; returns the reply when its code is OK.
  template <typename Fill>
  Result<InFrame> SimpleCall(Fill fill) {
    KVSTORE_ASSIGN_OR_RETURN(auto conn, Borrow());
    capnp::MallocMessageBuilder msg;
    auto req = msg.initRoot<wire::Request>();
    req.setId(conn->NextId());
    fill(req);
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, {}, Deadline()));
    KVSTORE_RETURN_IF_ERROR(ReplyStatus(in.response()));
    return in;
  }

  // Names `t` in `b`, announcing its region on this connection first if needed.
  // An on-the-fly export is kept in `keep` until the call's reply has arrived.
  Status FillRemote(Lease& conn, const OneSidedTarget& t, wire::RemoteBuffer::Builder b,
                    std::vector<transport::ExportedRegion>* keep, Clock::time_point deadline) {
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

  // A select or drop_select request with its keys and timeout set.
  static wire::SelectRequest::Builder StartSelect(capnp::MallocMessageBuilder& msg, uint64_t id,
                                                  bool drop, std::span<const Key> keys,
                                                  std::chrono::milliseconds timeout) {
    auto req = msg.initRoot<wire::Request>();
    req.setId(id);
    auto sel = drop ? req.initDropSelect() : req.initSelect();
    SetKeys(sel.initKeys(static_cast<unsigned>(keys.size())), keys);
    sel.setTimeoutMs(static_cast<uint64_t>(timeout.count()));
    return sel;
  }

  // An insert request with its key, meta and TTL set.
  wire::InsertRequest::Builder StartInsert(capnp::MallocMessageBuilder& msg, uint64_t id,
                                           const Key& key, uint64_t size, uint64_t checksum,
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

  // GPU regions move only over rdma: anything else would touch them on the CPU.
  Status CheckDeviceRegion(Lease& conn, RegionId region) {
    if (!regions_.IsDevice(region) || conn->kind() == transport::Kind::kRdma) return Status::Ok();
    return Status::InvalidArgument(
        "region " + std::to_string(region.value) +
        " is GPU memory and moves only over the rdma transport; this connection to kvstored "
        "uses " + std::string(transport::KindName(conn->kind())) +
        " (no RDMA device on one end?): copy the bytes to host memory, or run with RDMA");
  }

  // Tells the store to forget regions this connection announced that the
  // caller has since unregistered (before announcing another), so a
  // long-lived connection's table holds only live regions.
  Status WithdrawUnregistered(Lease& conn, Clock::time_point deadline) {
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

  // Insert by pull: the store reads the value from this process's memory.
  Result<bool> InsertOneSided(Lease& conn, const Key& key, std::span<const std::byte> value,
                              const InsertOptions& options, const OneSidedTarget& source,
                              bool device) {
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

  // Select / drop_select by push: the store writes each value into its target
  // and replies once every byte has landed (nothing to acknowledge).
  Result<std::vector<EntryInfo>> SelectOneSided(Lease& conn, bool drop, std::span<const Key> keys,
                                                std::chrono::milliseconds timeout,
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

  transport::RegionExporter* Exporter(transport::Kind kind) {
    switch (kind) {
      case transport::Kind::kLocal:
        return local_exporter_.get();
      case transport::Kind::kRdma:
        return rdma_exporter_.get();
      case transport::Kind::kTcp:
        break;
    }
    return nullptr;
  }

  ClientOptions options_;
  internal::RegionTable regions_;
  internal::TransportSetup setup_;
  std::unique_ptr<transport::RegionExporter> local_exporter_ = transport::MakeLocalExporter();
  std::unique_ptr<transport::RegionExporter> rdma_exporter_;  // set when a device is open
  std::atomic<uint8_t> last_kind_{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<ClientConn>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                // GUARDED_BY(mu_): idle + borrowed
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const ClientOptions& Client::options() const { return impl_->options_; }

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.max_connections == 0) {
    return Status::InvalidArgument("ClientOptions::max_connections must be at least 1");
  }
  KVSTORE_ASSIGN_OR_RETURN(transport::Preference preference,
                           transport::ParsePreference(options.transport));
  std::unique_ptr<Client> c(new Client(std::make_unique<Impl>(options)));
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
  (region != nullptr ? impl_->regions_.registered : impl_->regions_.unregistered)
      .fetch_add(1, std::memory_order_relaxed);
  KVSTORE_ASSIGN_OR_RETURN(auto conn, impl_->Borrow());
  if (conn->max_value_bytes() != 0 && value.size() > conn->max_value_bytes()) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds kvstored's limit of " +
                                   std::to_string(conn->max_value_bytes()) + " bytes");
  }
  if (region != nullptr) KVSTORE_RETURN_IF_ERROR(impl_->CheckDeviceRegion(conn, region->region));
  if (conn->one_sided() && !value.empty()) {
    // The store only reads the source; the exporter's span type is shared with destinations.
    Impl::OneSidedTarget source{
        region != nullptr ? std::optional<RegionSlice>(*region) : std::nullopt,
        {const_cast<std::byte*>(value.data()), value.size()}};
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

Result<std::vector<Entry>> Client::Select(std::span<const Key> keys) {
  return impl_->SelectOwned(false, keys, {});
}

Result<std::vector<Entry>> Client::DropSelect(std::span<const Key> keys,
                                              std::chrono::milliseconds timeout) {
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
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("SelectInto needs one destination buffer per key");
  }
  auto targets = SpanTargets(destinations);
  return impl_->SelectImpl(false, keys, {}, IntoBuffers(destinations), false, targets);
}

Result<std::vector<EntryInfo>> Client::DropSelectInto(
    std::span<const Key> keys, std::span<const std::span<std::byte>> destinations,
    std::chrono::milliseconds timeout) {
  if (destinations.size() != keys.size()) {
    return Status::InvalidArgument("DropSelectInto needs one destination buffer per key");
  }
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

Result<std::vector<EntryInfo>> Client::SelectIntoRegions(
    std::span<const Key> keys, std::span<const RegionSlice> destinations) {
  KVSTORE_ASSIGN_OR_RETURN(auto spans, ResolveAll(impl_->regions_, destinations));
  if (spans.size() != keys.size()) {
    return Status::InvalidArgument("SelectIntoRegions needs one destination per key");
  }
  return impl_->SelectImpl(false, keys, {}, IntoBuffers(spans), /*registered=*/true,
                           RegionTargets(destinations));
}

Result<std::vector<EntryInfo>> Client::DropSelectIntoRegions(
    std::span<const Key> keys, std::span<const RegionSlice> destinations,
    std::chrono::milliseconds timeout) {
  KVSTORE_ASSIGN_OR_RETURN(auto spans, ResolveAll(impl_->regions_, destinations));
  if (spans.size() != keys.size()) {
    return Status::InvalidArgument("DropSelectIntoRegions needs one destination per key");
  }
  return impl_->SelectImpl(true, keys, timeout, IntoBuffers(spans), /*registered=*/true,
                           RegionTargets(destinations));
}

ClientTransferStats Client::TransferStats() const {
  ClientTransferStats s;
  s.registered_transfers = impl_->regions_.registered.load();
  s.unregistered_transfers = impl_->regions_.unregistered.load();
  s.one_sided_transfers = impl_->regions_.one_sided.load();
  s.registered_on_the_fly = impl_->regions_.on_the_fly.load();
  s.transport = std::string(
      transport::KindName(static_cast<transport::Kind>(impl_->last_kind_.load())));
  return s;
}

Result<size_t> Client::MatchPrefix(std::span<const Key> keys) {
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initMatchPrefix(); });
}

Result<size_t> Client::Retain(std::span<const Key> keys) {
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initRetain(); });
}

Result<size_t> Client::Remove(std::span<const Key> keys) {
  return impl_->KeysCall(keys, [](wire::Request::Builder r) { return r.initRemove(); });
}

Result<StoreStats> Client::Stats() {
  KVSTORE_ASSIGN_OR_RETURN(InFrame in,
                           impl_->SimpleCall([](wire::Request::Builder r) { r.setStats(); }));
  if (!in.response().isStats()) {
    return Status::Internal("kvstored answered stats with something else");
  }
  return StatsFromWire(in.response().getStats());
}

Result<ListPage> Client::List(const ListOptions& options) {
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
  return impl_->SimpleCall([](wire::Request::Builder r) { r.setPing(); }).status();
}

}  // namespace kvstore
