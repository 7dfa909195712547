#include "connection.h"

#include <spdlog/spdlog.h>

#include "connection_registry.h"
#include "kvstore/units.h"

namespace kvstore::server {

namespace {

// The one table from a request's kind to the metric label its reply counts under.
Op OpOf(wire::Request::Which which) {
  switch (which) {
    case wire::Request::HELLO:
      return Op::kHello;
    case wire::Request::INSERT:
      return Op::kInsert;
    case wire::Request::SELECT:
      return Op::kSelect;
    case wire::Request::DROP_SELECT:
      return Op::kDropSelect;
    case wire::Request::MATCH_PREFIX:
      return Op::kMatchPrefix;
    case wire::Request::REMOVE:
      return Op::kRemove;
    case wire::Request::STATS:
      return Op::kStats;
    case wire::Request::LIST:
      return Op::kList;
    case wire::Request::PING:
      return Op::kPing;
    case wire::Request::ACK_DELIVERY:
      return Op::kAck;
    case wire::Request::RETAIN:
      return Op::kRetain;
    case wire::Request::REGISTER_REGION:
    case wire::Request::UNREGISTER_REGION:
      return Op::kRegion;
    case wire::Request::INSERT_MANY:
      return Op::kInsertMany;
  }
  return Op::kUnknown;
}

}  // namespace

Connection::Connection(StreamSocket socket, ServiceContext* ctx, uint64_t id, PeerInfo peer)
    : socket_(std::move(socket)),
      strand_(asio::make_strand(socket_.get_executor())),
      ctx_(ctx),
      id_(id),
      peer_info_(std::move(peer)),
      hello_timer_(strand_),
      stall_timer_(strand_),
      insert_timer_(strand_),
      write_timer_(strand_),
      ack_timer_(strand_),
      grace_timer_(strand_) {
  boost::system::error_code ec;
  if (!peer_info_.is_unix && !peer_info_.tls) {
    socket_.set_option(tcp::no_delay(true), ec);
    // A fixed receive buffer (up to net.core.rmem_max): SO_RCVLOWAT on a
    // buffer the kernel autotunes clamps the TCP window to the low-water mark,
    // and a window no larger than the mark can stall both ends. With the buffer
    // fixed, the mark stays at most an eighth of it (see ReadBulk). The send
    // buffer stays under autotuning.
    socket_.set_option(asio::socket_base::receive_buffer_size(kReceiveBuffer), ec);
    asio::socket_base::receive_buffer_size actual;
    socket_.get_option(actual, ec);
    max_rcvlowat_ = ec ? 1 : std::max<size_t>(1, static_cast<size_t>(actual.value()) / 8);
  }
  if (!ctx_->credentials->required()) {
    authenticated_ = true;
    tenant_ = &ctx_->credentials->anonymous();
  }
}

Connection::~Connection() {
  for (int fd : frame_fds_) ::close(fd);
  for (auto [at, fd] : pending_fds_) ::close(fd);
}

void Connection::Start() {
  ctx_->metrics->ConnectionOpened();
  spdlog::debug("connection {} from {} opened", id_, peer_);
  asio::dispatch(strand_, [self = shared_from_this()] {
    if (!self->authenticated_) self->ArmHelloTimer();
    self->ReadHeader();
  });
}

void Connection::ArmHelloTimer() {
  hello_timer_.expires_after(ctx_->options->hello_timeout);
  hello_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_ || self->authenticated_) return;
    self->ctx_->metrics->ProtocolError("hello_timeout");
    self->ctx_->log_limit->Warn("hello_timeout",
                                "connection {} from {}: no hello within {} ms; closing it",
                                self->id_, self->peer_, self->ctx_->options->hello_timeout.count());
    self->Close("no hello in time");
  });
}

void Connection::Evict(const std::string& why) {
  asio::dispatch(strand_, [self = shared_from_this(), why] {
    if (self->closed_ || self->authenticated_) return;
    self->ctx_->metrics->ProtocolError("unauthenticated_evicted");
    self->Close(why);
  });
}

bool Connection::Allowed(uint64_t id, Op op) {
  if (RoleAllows(tenant_->role, op)) return true;
  ctx_->metrics->ProtocolError("role_refused");
  ReplyStatus(
      id, op,
      Status::PermissionDenied(std::string(OpName(op)) + " is not allowed for role " +
                               std::string(RoleName(tenant_->role)) + " (tenant '" + tenant_->name +
                               "'); use a token of an engine or admin tenant"));
  return false;
}

Status Connection::NameNamespace(const Status& s) {
  if (s.code() != StatusCode::kResourceExhausted || !ctx_->credentials->required()) return s;
  const std::string& name = ctx_->credentials->NamespaceName(ns_);
  if (s.message().find("quota") != std::string::npos) ctx_->metrics->QuotaRefused(name, "store");
  return Status(s.code(), "namespace '" + name + "': " + s.message());
}

Status Connection::CheckWaiterQuota() const {
  const NamespaceLimits& q = ctx_->credentials->quota(ns_);
  if (q.max_waiters != 0 && ctx_->usage->waiters[ns_].load() >= q.max_waiters) {
    return Status::ResourceExhausted(
        "namespace '" + ctx_->credentials->NamespaceName(ns_) + "' is at its quota of " +
        std::to_string(q.max_waiters) +
        " waiting drop_selects (quota waiters); retry once some have been served");
  }
  return Status::Ok();
}

Status Connection::CheckPendingBytes(uint64_t n, const std::string& what) {
  const uint64_t cap = ctx_->options->max_pending_bytes;
  const uint64_t held = ctx_->pending_bytes.load();
  if (cap == 0 || held + n <= cap) return Status::Ok();
  ctx_->metrics->LimitRefused("pending_bytes");
  return Status::ResourceExhausted(
      "kvstored holds " + FormatSize(held) + " for calls not yet answered and " + what + " needs " +
      FormatSize(n) + " more, over its limit of " + FormatSize(cap) +
      " (--max-pending-bytes); retry once replies are read, or raise --max-pending-bytes");
}

Status Connection::CheckKeyCount(size_t n, Op op) {
  const size_t cap = ctx_->options->max_keys_per_request;
  if (n <= cap) return Status::Ok();
  ctx_->metrics->LimitRefused("keys_per_request");
  return Status::InvalidArgument(std::string(OpName(op)) + " names " + std::to_string(n) +
                                 " keys; kvstored takes at most " + std::to_string(cap) +
                                 " per request (--max-keys-per-request): split the call, or "
                                 "raise --max-keys-per-request");
}

void Connection::Dispatch() {
  // Anything thrown by the Cap'n Proto reader means the message is malformed:
  // the frame boundaries are still known, so answer and go on.
  uint64_t id = 0;
  // Fds that came with this frame: a RegisterRegion takes its one; the rest
  // are closed when the dispatch is over, whatever it did.
  struct FdGuard {
    std::vector<int>& fds;
    ~FdGuard() {
      for (int fd : fds) ::close(fd);
      fds.clear();
    }
  } fd_guard{frame_fds_};
  try {
    capnp::FlatArrayMessageReader reader(
        kj::ArrayPtr<const capnp::word>(control_.begin(), control_words_), WireReaderOptions());
    auto req = reader.getRoot<wire::Request>();
    id = req.getId();
    auto which = req.which();
    if (!authenticated_ && which != wire::Request::HELLO) {
      ctx_->metrics->ProtocolError("unauthenticated");
      close_after_write_ = true;  // before the reply: it may go out (and close) at once
      stop_reading_ = true;       // whatever follows is never read
      ReplyStatus(id, OpOf(which),
                  Status::PermissionDenied("this kvstored requires a token: send hello first"));
      return;
    }
    if (shutting_down_ && which != wire::Request::ACK_DELIVERY) {
      DrainBulk(header_.bulk_len, [this, id, op = OpOf(which)] {
        ReplyStatus(id, op,
                    Status::Unavailable("kvstored is shutting down; reconnect to another store "
                                        "or retry after it restarts"));
        ReadHeader();
      });
      return;
    }
    if (which == wire::Request::INSERT) {
      if (!Allowed(id, Op::kInsert)) {
        DrainBulk(header_.bulk_len, [this] { ReadHeader(); });
        return;
      }
      HandleInsert(id, req.getInsert(), header_.bulk_len);
      return;  // continues reading when the value is in
    }
    if (which == wire::Request::INSERT_MANY) {
      if (!Allowed(id, Op::kInsertMany)) {
        DrainBulk(header_.bulk_len, [this] { ReadHeader(); });
        return;
      }
      HandleInsertMany(id, req.getInsertMany(), header_.bulk_len);
      return;  // continues reading when the values are in
    }
    if (header_.bulk_len != 0) {
      ctx_->metrics->ProtocolError("unexpected_bulk");
      uint64_t n = header_.bulk_len;
      DrainBulk(n, [this, id, op = OpOf(which)] {
        ReplyStatus(id, op,
                    Status::InvalidArgument("only insert carries value bytes; request refused"));
        ReadHeader();
      });
      return;
    }
    switch (which) {
      case wire::Request::HELLO:
        HandleHello(id, req.getHello());
        break;
      case wire::Request::SELECT:
        HandleSelect(id, req.getSelect(), false);
        break;
      case wire::Request::DROP_SELECT:
        if (Allowed(id, Op::kDropSelect)) HandleSelect(id, req.getDropSelect(), true);
        break;
      case wire::Request::MATCH_PREFIX: {
        auto keys = ParseKeys(req.getMatchPrefix().getKeys(), Op::kMatchPrefix);
        if (!keys.ok()) {
          ReplyStatus(id, Op::kMatchPrefix, keys.status());
          break;
        }
        size_t n = ctx_->store->MatchPrefix(*keys, StoreNs());
        ReplyCount(id, Op::kMatchPrefix, n);
        break;
      }
      case wire::Request::RETAIN: {
        if (!Allowed(id, Op::kRetain)) break;
        auto keys = ParseKeys(req.getRetain().getKeys(), Op::kRetain);
        if (!keys.ok()) {
          ReplyStatus(id, Op::kRetain, keys.status());
          break;
        }
        size_t n = ctx_->store->Retain(*keys, StoreNs());
        ReplyCount(id, Op::kRetain, n);
        break;
      }
      case wire::Request::REMOVE: {
        if (!Allowed(id, Op::kRemove)) break;
        auto keys = ParseKeys(req.getRemove().getKeys(), Op::kRemove);
        if (!keys.ok()) {
          ReplyStatus(id, Op::kRemove, keys.status());
          break;
        }
        size_t n = ctx_->store->Remove(*keys, StoreNs());
        ReplyCount(id, Op::kRemove, n);
        break;
      }
      case wire::Request::STATS: {
        // An admin sees the whole store; other tenants their namespace's share.
        StoreStats s = tenant_->role == Role::kAdmin || !ctx_->credentials->required()
                           ? ctx_->store->Stats()
                           : ctx_->store->Stats(StoreNs());
        s.connections = ctx_->metrics->connections();
        s.version = ctx_->version;
        Reply(id, Op::kStats, Status::Ok(),
              [&s](wire::Response::Builder r) { StatsToWire(s, r.initStats()); });
        break;
      }
      case wire::Request::LIST:
        HandleList(id, req.getList());
        break;
      case wire::Request::PING:
        Reply(id, Op::kPing, Status::Ok(), [](wire::Response::Builder r) { r.setNone(); });
        break;
      case wire::Request::ACK_DELIVERY:
        HandleAck(req.getAckDelivery());  // only deliveries of this connection's drop_selects
        break;
      case wire::Request::REGISTER_REGION:
      case wire::Request::UNREGISTER_REGION:
        HandleRegion(id, req);
        break;
      default:
        ctx_->metrics->ProtocolError("unknown_op");
        ReplyStatus(id, Op::kUnknown,
                    Status::InvalidArgument("unknown request type " +
                                            std::to_string(static_cast<int>(which)) +
                                            "; is the client newer than this kvstored?"));
    }
  } catch (const kj::Exception& e) {
    ctx_->metrics->ProtocolError("malformed_message");
    ctx_->log_limit->Warn("malformed_message", "connection {} from {}: malformed request: {}", id_,
                          peer_, e.getDescription().cStr());
    uint64_t n = header_.bulk_len;
    DrainBulk(n, [this, id, what = std::string(e.getDescription().cStr())] {
      ReplyStatus(id, Op::kMalformed, Status::InvalidArgument("malformed request: " + what));
      ReadHeader();
    });
    return;
  }
  ReadHeader();
}

// ---------------------------------------------------------------- requests

void Connection::HandleHello(uint64_t id, wire::Hello::Reader r) {
  if (hello_seen_) {
    Fail("second_hello",
         "a second hello on one connection (a connection authenticates once; open another "
         "connection to act as another tenant)");
    return;
  }
  hello_seen_ = true;
  auto refuse = [this, id](std::string_view reason, const Status& s) {
    ctx_->metrics->ProtocolError(reason);
    close_after_write_ = true;  // before the reply: it may go out (and close) at once
    stop_reading_ = true;       // nothing after a refused hello is read
    ReplyStatus(id, Op::kHello, s);
  };
  if (r.getProtocolVersion() != wire::PROTOCOL_VERSION) {
    refuse("bad_version",
           Status::InvalidArgument("protocol version " + std::to_string(r.getProtocolVersion()) +
                                   " is not supported; this kvstored speaks version " +
                                   std::to_string(wire::PROTOCOL_VERSION)));
    return;
  }
  const Credentials& creds = *ctx_->credentials;
  const Tenant* tenant =
      creds.required() ? creds.Authenticate(r.getToken().cStr()) : &creds.anonymous();
  if (tenant == nullptr) {
    ctx_->log_limit->Warn("bad_token", "connection {} from {} ({}): wrong token; closing", id_,
                          peer_, r.getClientName().cStr());
    refuse("bad_token", Status::PermissionDenied(
                            "wrong token: check the client's token (KVSTORE_TOKEN or its token "
                            "file) against kvstored's --tokens-file / --token-file"));
    return;
  }
  const NamespaceLimits& quota = creds.quota(tenant->ns);
  const std::string& ns_name = creds.NamespaceName(tenant->ns);
  if (!authenticated_ && ctx_->registry->authenticated() >= ctx_->options->max_connections) {
    refuse("too_many_connections",
           Status::ResourceExhausted("kvstored already serves " +
                                     std::to_string(ctx_->options->max_connections) +
                                     " connections (--max-connections); retry later"));
    return;
  }
  if (quota.max_connections != 0 &&
      ctx_->usage->connections[tenant->ns].fetch_add(1) >= quota.max_connections) {
    ctx_->usage->connections[tenant->ns].fetch_sub(1);
    ctx_->metrics->QuotaRefused(ns_name, "connections");
    refuse("quota", Status::ResourceExhausted(
                        "namespace '" + ns_name + "' is at its quota of " +
                        std::to_string(quota.max_connections) +
                        " connections (quota connections); close some or raise the quota"));
    return;
  }
  if (quota.max_connections == 0) ctx_->usage->connections[tenant->ns].fetch_add(1);
  counted_in_namespace_ = true;
  tenant_ = tenant;
  ns_ = tenant->ns;
  if (!authenticated_) {
    authenticated_ = true;
    hello_timer_.cancel();
    ctx_->registry->MarkAuthenticated(id_);
  }
  spdlog::debug("connection {} from {} is {} (tenant '{}', namespace '{}', role {})", id_, peer_,
                r.getClientName().cStr(), tenant->name, ns_name, RoleName(tenant->role));
  NegotiateTransport(r);
  ctx_->metrics->TransportChosen(
      transport::KindName(remote_ ? remote_->kind() : transport::Kind::kTcp));
  uint64_t max_value = ctx_->options->store.max_value_bytes;
  std::string version = ctx_->version;
  transport::Kind kind = remote_ ? remote_->kind() : transport::Kind::kTcp;
  std::vector<std::byte> params = remote_ ? remote_->HelloReplyParams() : std::vector<std::byte>{};
  // A same-host client on TCP that would share memory learns where the Unix socket is.
  std::string local_socket = !peer_info_.is_unix && r.getSharedMemory() && ctx_->local_transport
                                 ? ctx_->unix_socket
                                 : std::string();
  Reply(id, Op::kHello, Status::Ok(), [&](wire::Response::Builder resp) {
    auto h = resp.initHello();
    h.setProtocolVersion(wire::PROTOCOL_VERSION);
    h.setServerVersion(version);
    h.setMaxValueBytes(max_value);
    h.setBulkTransport(std::string(transport::KindName(kind)));
    if (!params.empty()) {
      h.setRdmaParams({reinterpret_cast<const kj::byte*>(params.data()), params.size()});
    }
    h.setLocalSocket(local_socket);
    h.setInstanceId(
        {reinterpret_cast<const kj::byte*>(ctx_->instance_id.data()), ctx_->instance_id.size()});
    h.setTenant(tenant_->name);
    h.setNamespace(ns_name);
    h.setRole(std::string(RoleName(tenant_->role)));
  });
}

void Connection::MaybeFinishShutdown() {
  // Idle: nothing being received, waited for, pushed, written or awaiting its ack.
  if (shutting_down_ && !closed_ && !reservation_ && !batch_ && waits_.empty() &&
      push_targets_.empty() && !writing_ && write_queue_.empty() && unacked_.empty()) {
    Close("kvstored is shutting down");
  }
}

void Connection::HandleList(uint64_t id, wire::ListRequest::Reader r) {
  auto bytes = [](capnp::Data::Reader d) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(d.begin()), d.size());
  };
  // Only an admin lists every namespace (its cursor carries the namespace).
  NamespaceId ns =
      tenant_->role == Role::kAdmin && ctx_->credentials->required() ? kAllNamespaces : StoreNs();
  ListPage page = ctx_->store->List(bytes(r.getCursor()), std::min<uint32_t>(r.getLimit(), 100000),
                                    r.getTierFilter(), bytes(r.getPrefix()), ns);
  Reply(id, Op::kList, Status::Ok(), [&page](wire::Response::Builder resp) {
    auto l = resp.initList();
    auto entries = l.initEntries(static_cast<unsigned>(page.entries.size()));
    for (size_t i = 0; i < page.entries.size(); ++i) {
      entries[i].setKey(KeyToWire(page.entries[i].key));
      MetaToWire(page.entries[i].meta, entries[i].initMeta());
    }
    l.setNextCursor(
        {reinterpret_cast<const kj::byte*>(page.next_cursor.data()), page.next_cursor.size()});
  });
}

// ---------------------------------------------------------------- teardown

void Connection::Fail(std::string_view reason, const std::string& detail) {
  ctx_->metrics->ProtocolError(reason);
  ctx_->log_limit->Warn(std::string(reason),
                        "connection {} from {}: {}; closing it (other clients are unaffected)", id_,
                        peer_, detail);
  close_after_write_ = true;  // before the reply: it may go out (and close) at once
  stop_reading_ = true;       // the stream position is lost
  // Best effort: tell the client why before closing.
  ReplyStatus(0, reason == "second_hello" ? Op::kHello : Op::kMalformed,
              Status::InvalidArgument(detail + "; connection closed"));
}

void Connection::Shutdown(std::chrono::milliseconds grace) {
  asio::dispatch(strand_, [self = shared_from_this(), grace] {
    if (self->closed_) return;
    self->shutting_down_ = true;
    self->MaybeFinishShutdown();
    if (self->closed_) return;
    // Requests in flight get `grace` to finish (an insert's value to arrive,
    // replies to go out, acknowledgements to come in); the timer goes with
    // the connection, so it holds the daemon no longer than they take.
    self->grace_timer_.expires_after(grace);
    self->grace_timer_.async_wait([self](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      spdlog::info("connection {} from {}: still busy after the shutdown grace; closing it",
                   self->id_, self->peer_);
      self->Close("kvstored is shutting down");
    });
  });
}

void Connection::Close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  spdlog::debug("connection {} from {} closed: {}", id_, peer_, why);
  boost::system::error_code ignored;
  socket_.shutdown(StreamSocket::shutdown_both, ignored);
  socket_.close(ignored);
  stall_watching_ = false;
  stall_timer_.cancel();
  DisarmInsertDeadline();
  insert_timer_.cancel();
  write_timer_.cancel();
  ack_timer_.cancel();
  if (remote_) {
    // Destroyed later, off this call stack (a transfer's completion may be what
    // closes the connection); the transport goes before the slot its pull may
    // still target is freed.
    auto remote = std::make_shared<std::unique_ptr<transport::RemoteAccess>>(std::move(remote_));
    auto pending = std::make_shared<std::optional<Reservation>>(std::move(reservation_));
    reservation_.reset();
    auto batch = std::make_shared<std::optional<InsertBatch>>(std::move(batch_));
    batch_.reset();
    asio::post(strand_, [remote, pending, batch, store = ctx_->store] {
      remote->reset();
      if (*pending) store->Abort(std::move(**pending));
      if (!*batch) return;
      for (auto& r : (*batch)->reserved) {
        if (r.ok() && !r->exists) store->Abort(std::move(*r));
      }
    });
  }
  if (reservation_) {
    ctx_->store->Abort(std::move(*reservation_));  // a half-received insert leaves nothing behind
    reservation_.reset();
  }
  if (batch_) {
    for (auto& r : batch_->reserved) {
      if (r.ok() && !r->exists) ctx_->store->Abort(std::move(*r));
    }
    batch_.reset();
  }
  push_targets_.clear();
  for (auto& [rid, w] : waits_) {
    if (w.timer) w.timer->cancel();
    if (w.waiter_id != 0) ctx_->store->CancelWaiter(w.waiter_id);
  }
  ctx_->usage->waiters[ns_].fetch_sub(waits_.size());
  waits_.clear();  // their charges against the global caps go with them
  if (counted_in_namespace_) {
    ctx_->usage->connections[ns_].fetch_sub(1);
    counted_in_namespace_ = false;
  }
  hello_timer_.cancel();
  grace_timer_.cancel();
  for (auto& [rid, u] : unacked_) {
    u.delivery->Finish(false);  // the client never confirmed: the next taker gets them
  }
  unacked_.clear();
  // Queued replies' deliveries finish (undelivered) when the queue is destroyed; the
  // in-flight write's handler will still pop its element.
  if (!writing_) write_queue_.clear();
  ctx_->metrics->ConnectionClosed();
  ctx_->registry->Remove(id_);
}

}  // namespace kvstore::server
