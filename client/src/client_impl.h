// Client::Impl: the connection pool and the request plumbing behind the
// Client API. Private to the library: client.cc holds the public calls,
// client_one_sided.cc the transfers the store makes itself (local, rdma).
//
// Thread-safety: as Client (thread-safe); a Lease is one caller's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include <capnp/message.h>

#include "client_conn.h"
#include "client_regions.h"
#include "kvstore/client.h"
#include "kvstore/transport/transport.h"
#include "kvstore/wire_convert.h"

namespace kvstore {

namespace cluster {
class ClusterClient;
}

namespace internal {

inline Status ReplyStatus(wire::Response::Reader r) {
  if (r.getCode() == wire::Code::OK) return Status::Ok();
  return Status(CodeFromWire(r.getCode()), r.getMessage().cStr());
}

inline void SetKeys(capnp::List<capnp::Data>::Builder out, std::span<const Key> keys) {
  for (size_t i = 0; i < keys.size(); ++i) out.set(static_cast<unsigned>(i), KeyToWire(keys[i]));
}

}  // namespace internal

using internal::ClientConn;
using internal::Clock;
using internal::InFrame;
using internal::ReplyStatus;
using internal::SetKeys;

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
    if (targets.size() == keys.size() && CanGoOneSided(conn, targets)) {
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
                    std::vector<transport::ExportedRegion>* keep, Clock::time_point deadline);

  // A select or drop_select request with its keys and timeout set.
  static wire::SelectRequest::Builder StartSelect(capnp::MallocMessageBuilder& msg, uint64_t id,
                                                  bool drop, std::span<const Key> keys,
                                                  std::chrono::milliseconds timeout);

  // An insert request with its key, meta and TTL set.
  wire::InsertRequest::Builder StartInsert(capnp::MallocMessageBuilder& msg, uint64_t id,
                                           const Key& key, uint64_t size, uint64_t checksum,
                                           const InsertOptions& options);

  // GPU regions move only over rdma: anything else would touch them on the CPU.
  Status CheckDeviceRegion(Lease& conn, RegionId region);

  // Tells the store to forget regions this connection announced that the
  // caller has since unregistered (before announcing another), so a
  // long-lived connection's table holds only live regions.
  Status WithdrawUnregistered(Lease& conn, Clock::time_point deadline);

  // Insert by pull: the store reads the value from this process's memory.
  Result<bool> InsertOneSided(Lease& conn, const Key& key, std::span<const std::byte> value,
                              const InsertOptions& options, const OneSidedTarget& source,
                              bool device);

  // InsertMany on one kvstored (client_insert_many.cc): values in memory the
  // store can reach (shared memory over local; a registered region over rdma)
  // are named and pulled, the rest follow the request in its frame.
  Result<std::vector<Result<bool>>> InsertMany(std::span<const InsertItem> items,
                                               const InsertOptions& options);

  // Select / drop_select by push: the store writes each value into its target
  // and replies once every byte has landed (nothing to acknowledge).
  Result<std::vector<EntryInfo>> SelectOneSided(Lease& conn, bool drop, std::span<const Key> keys,
                                                std::chrono::milliseconds timeout,
                                                std::span<const OneSidedTarget> targets);

  transport::RegionExporter* Exporter(transport::Kind kind);

  // Whether every target can move one-sided on this connection (local: only
  // memory from AllocateSharedRegion; the rest goes in the frames).
  bool CanGoOneSided(Lease& conn, std::span<const OneSidedTarget> targets);
  std::optional<RegionSlice> SharedSlice(const OneSidedTarget& t) const;
  // Passes a shared region's memfd to the store on this connection, once.
  Status AnnounceShared(Lease& conn, RegionId region, Clock::time_point deadline);

  ClientOptions options_;
  std::shared_ptr<cluster::ClusterClient> cluster_;  // set for an etcd:// address: calls go there
  internal::RegionTable regions_;
  internal::TransportSetup setup_;
  std::unique_ptr<transport::RegionExporter> rdma_exporter_;  // set when a device is open
  std::atomic<uint8_t> last_kind_{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<ClientConn>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                // GUARDED_BY(mu_): idle + borrowed
};

}  // namespace kvstore
