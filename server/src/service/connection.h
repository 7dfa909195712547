// One client connection of kvstored (TCP, or the Unix socket for a client on
// the same host): reads frames, dispatches requests to the Store, writes
// replies with value bytes straight from slot memory.
//
// A connection starts unauthenticated: until its one hello names a tenant's
// token it may send nothing else, carry no value bytes, and is closed when
// the hello deadline passes (or when newer unauthenticated connections need
// its place: ConnectionRegistry). After hello it acts for that tenant only:
// its role (auth.h) and its namespace's quotas bound what it may do.
//
// Threading: every handler runs on the connection's strand; the Store's
// callbacks (which may fire on any thread) post back onto it. Replies may go
// out of order: a blocked drop_select does not hold up later requests.
#pragma once

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <sys/uio.h>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <boost/asio.hpp>

#include <xxhash.h>

#include "kvstore.capnp.h"
#include "kvstore/frame.h"
#include "kvstore/server/metrics.h"
#include "kvstore/server/server_options.h"
#include "kvstore/server/store.h"
#include "kvstore/transport/negotiation.h"
#include "kvstore/transport/rdma_transport.h"
#include "kvstore/transport/transport.h"
#include "kvstore/wire_convert.h"

#include "auth.h"
#include "connection_log.h"

namespace kvstore::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using StreamSocket = asio::generic::stream_protocol::socket;
using SteadyClock = std::chrono::steady_clock;

class ConnectionRegistry;

inline double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// The bytes of a Cap'n Proto Data field.
inline std::span<const std::byte> Bytes(capnp::Data::Reader d) {
  return {reinterpret_cast<const std::byte*>(d.begin()), d.size()};
}

// Completion condition for composed reads and writes of bulk bytes: all of
// them, in steps as large as the kernel takes. Asio's transfer_all() caps every
// read/write call at 64 KiB, which costs a 4 MiB value 64 system calls and
// event-loop turns each way.
struct TransferAllLarge {
  size_t operator()(const boost::system::error_code& ec, size_t /*so_far*/) const {
    return ec ? 0 : (size_t{64} << 20);
  }
};

// Per-namespace use that quotas bound; indexed by NamespaceId.
struct NamespaceCounters {
  explicit NamespaceCounters(size_t n)
      : connections(new std::atomic<uint64_t>[n]()), waiters(new std::atomic<uint64_t>[n]()) {}
  std::unique_ptr<std::atomic<uint64_t>[]> connections;
  std::unique_ptr<std::atomic<uint64_t>[]> waiters;
};

// Who is on the other end, as the kernel says (never as the peer says).
struct PeerInfo {
  std::string display;  // "127.0.0.1:5312" or "unix uid 1000 pid 4242"
  std::string key;      // what per-peer limits group by: the IP address, or "uid:N"
  bool is_unix = false;
  bool tls = false;  // TCP with TLS: the socket is the plaintext end of a TlsRelay
  uint32_t uid = 0;  // Unix socket: SO_PEERCRED at accept
};

// What every connection shares; outlives all connections.
struct ServiceContext {
  const ServerOptions* options;
  Store* store;
  Metrics* metrics;
  ConnectionRegistry* registry;
  std::string version;
  bool rdma_available = false;              // this daemon opened an RDMA device
  std::string rdma_unavailable;             // why not, for the negotiation log line
  rdma::RdmaDevice* rdma_device = nullptr;  // set when RDMA transfers can be served
  transport::LocalKeyFn rdma_local_lkey;    // store memory -> its registration's lkey
  bool local_transport = true;              // serve same-host clients one-sided
  const Credentials* credentials = nullptr;
  NamespaceCounters* usage = nullptr;
  std::string unix_socket;  // the daemon's Unix socket, told to same-host TCP clients; "" = none
  std::string instance_id;  // random per process: lets a client tell this daemon's socket
  RateLimitedLog* log_limit = nullptr;
  transport::ChoiceLog* transport_log = nullptr;  // this daemon's "bulk transport: ..." lines
  // Across all connections, for the global caps (--max-waiters, --max-pending-bytes).
  std::atomic<uint64_t> waiters{0};
  std::atomic<uint64_t> pending_bytes{0};
};

// A share of a global counter held by one pending call; given back when the
// call's record is destroyed, however it ends.
class PendingCharge {
 public:
  PendingCharge() = default;
  PendingCharge(std::atomic<uint64_t>* counter, uint64_t n) : counter_(counter), n_(n) {
    counter_->fetch_add(n_);
  }
  PendingCharge(PendingCharge&& o) noexcept
      : counter_(std::exchange(o.counter_, nullptr)), n_(o.n_) {}
  PendingCharge& operator=(PendingCharge&& o) noexcept {
    if (this != &o) {
      Release();
      counter_ = std::exchange(o.counter_, nullptr);
      n_ = o.n_;
    }
    return *this;
  }
  ~PendingCharge() { Release(); }

 private:
  void Release() {
    if (counter_ != nullptr) counter_->fetch_sub(n_);
    counter_ = nullptr;
  }
  std::atomic<uint64_t>* counter_ = nullptr;
  uint64_t n_ = 0;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(StreamSocket socket, ServiceContext* ctx, uint64_t id, PeerInfo peer);
  ~Connection();
  void Start();
  // Closes the connection from any thread (an unauthenticated one whose place
  // is needed, or one past its hello deadline).
  void Evict(const std::string& why);
  // Stops taking requests and closes once idle: at once when nothing is in
  // flight, else when the last request in flight is done, at most after `grace`.
  void Shutdown(std::chrono::milliseconds grace);
  uint64_t id() const { return id_; }

 private:
  struct Outgoing {
    OutFrame frame;
    std::unique_ptr<Delivery> delivery;  // value bytes to send after the frame
    uint64_t request_id = 0;
    PendingCharge bytes;  // the values' share of --max-pending-bytes
  };
  struct PendingWait {
    uint64_t waiter_id = 0;
    std::unique_ptr<asio::steady_timer> timer;
    SteadyClock::time_point started;
    PendingCharge waiter;  // one of --max-waiters
    PendingCharge bytes;   // its keys' share of --max-pending-bytes
  };
  struct Unacked {
    std::unique_ptr<Delivery> delivery;
    SteadyClock::time_point started;  // ack_timer_ closes the connection at started + ack_timeout
    PendingCharge bytes;              // the values stay pinned until acknowledged
  };

  // Read path. ReadHeader: this connection is ready for its next frame (called
  // when a request no longer needs the stream); frames already in the buffer
  // are dispatched in order, and the socket is read when one is incomplete.
  void ReadHeader();
  void ReadLoop();
  void WaitReadable();
  void ReadMore();                  // TCP: one read into the buffer's free room
  std::span<std::byte> ReadRoom();  // the buffer's free room, after what is left of a frame
  // Unix socket: one non-blocking read into the buffer (fds that came with the
  // bytes wait for their frame): bytes, 0 at EOF, or -errno.
  ssize_t ReceiveUnix(size_t* room, bool* fds_came);
  // Takes a whole frame's header and control part from the buffer into
  // header_/control_ (false: more bytes are needed, or the connection closed).
  bool TakeFrame();
  void TakeFrameFds(uint64_t control_end);  // fds received up to that stream offset
  void ReadLargeControl();                  // a control part larger than the buffer
  void DispatchThenRead();
  void Dispatch();
  // Value bytes: what the buffer holds first, then straight from the socket.
  void ReadBulk(std::span<std::byte> dst, std::function<void()> done);
  size_t TakeBuffered(std::span<std::byte> dst);
  // Runs `next` now, or posts it when a chain of inline completions is deep.
  void ContinueInline(std::function<void()> next);
  void SetReceiveLowWater(size_t bytes);  // SO_RCVLOWAT, when it changes
  // The 8-byte XXH3-64 that follows a value sent with InsertRequest.checksumTrailer.
  void ReadTrailer(std::function<void(uint64_t)> done);
  void DrainBulk(uint64_t bytes, std::function<void()> done);
  // A frame under way must keep arriving: its stage (header, control, each
  // piece of its value) began or last moved at `since`.
  void WatchStall(SteadyClock::time_point since);
  void UnwatchStall() { stall_watching_ = false; }
  void ArmStallTimer(SteadyClock::time_point at);
  // An insert whose value is arriving must be in by stall_timeout + size /
  // min_insert_rate, however steadily its bytes trickle in.
  void ArmInsertDeadline(uint64_t id, uint64_t size, Op op = Op::kInsert);
  void DisarmInsertDeadline();
  void ArmInsertTimer(SteadyClock::time_point at);
  // A reply being written closes the connection when the peer takes none of
  // its bytes for stall_timeout; checked again at `at`.
  void ArmWriteDeadline(SteadyClock::time_point at);

  // Requests.
  void HandleHello(uint64_t id, wire::Hello::Reader r);
  void HandleInsert(uint64_t id, wire::InsertRequest::Reader r, uint64_t bulk_len);
  void FinishInsert(uint64_t id);  // every byte is in: verify, commit, reply
  // insertMany (connection_insert.cc): reserves every key, reads each value
  // into its slot (draining those refused or already present), then commits
  // them together and replies with one result per key.
  void HandleInsertMany(uint64_t id, wire::InsertManyRequest::Reader r, uint64_t bulk_len);
  void ReadBatchNext();
  void FinishInsertMany();
  // Pulls batch item `i` from `done_bytes` on (connection_one_sided.cc): true
  // when it finished inline (its result recorded), false when a completion
  // will carry on with ReadBatchNext.
  bool PullBatchItem(size_t i, transport::RemoteRange src, uint64_t done_bytes);
  // An insert's (or batch item's) source: its length must be the
  // value's size and it lies inside a region announced on this connection.
  Result<transport::RemoteRange> ResolvePullSource(wire::RemoteBuffer::Reader b,
                                                   uint64_t size) const;
  // One pulled piece of batch item `i`: hashed, or on failure the item's
  // reservation freed and its error recorded (false).
  bool OnBatchPiece(size_t i, std::span<const std::byte> piece, const Status& s);
  void HandleSelect(uint64_t id, wire::SelectRequest::Reader r, bool drop);
  void HandleAck(uint64_t request_id);
  void HandleList(uint64_t id, wire::ListRequest::Reader r);
  void OnDelivery(uint64_t id, Op op, Result<std::unique_ptr<Delivery>> result);
  // One-sided transports (transport.h).
  void NegotiateTransport(wire::Hello::Reader r);
  void HandleRegion(uint64_t id, const wire::Request::Reader& req);
  Result<transport::RemoteRange> ResolveRemote(wire::RemoteBuffer::Reader b) const;
  void InsertByPull(uint64_t id, const Key& key, const EntryMeta& meta,
                    std::chrono::milliseconds ttl, wire::RemoteBuffer::Reader source);
  // Reads the rest of a pulled value from `done_bytes` on, hashing as it goes.
  void PullNext(uint64_t id, transport::RemoteRange src, uint64_t done_bytes);
  // Writes each entry into its destination, then replies; a failed write hands
  // the entries back (drop_select) and replies with the error.
  void PushDelivery(uint64_t id, Op op, std::unique_ptr<Delivery> d);
  void PushNext(uint64_t id, Op op, std::shared_ptr<Delivery> d, size_t i);
  void OnWaitTimeout(uint64_t id);

  // Write path.
  using FillReply = std::function<void(wire::Response::Builder)>;
  void Reply(uint64_t id, Op op, const Status& status, const FillReply& fill,
             std::unique_ptr<Delivery> delivery = nullptr);
  void ReplyStatus(uint64_t id, Op op, const Status& status);
  void ReplyCount(uint64_t id, Op op, uint64_t n);
  // Entry metadata of `d`, followed by the values of `values` (null: none on
  // the socket, a one-sided push already delivered them).
  void ReplyEntries(uint64_t id, Op op, const Delivery& d, std::unique_ptr<Delivery> values);
  void WriteNext();
  // One non-blocking sendmsg of `iov` (`total` bytes): how much went out. A
  // failure pops the front reply and closes the connection.
  size_t SendNow(std::vector<iovec>& iov, size_t total);
  void FinishWrite();                  // the front reply is out
  void HoldUntilAcked(Outgoing& out);  // a drop_select's values, until the client acks them
  void ArmAckTimer(SteadyClock::time_point at);

  void Fail(std::string_view reason,
            const std::string& detail);  // protocol error: log, count, close
  // Refuses a request the caller's role or namespace quota does not allow.
  bool Allowed(uint64_t id, Op op);
  // The store's id of this connection's namespace (auth.h).
  NamespaceId StoreNs() const { return ctx_->credentials->StoreId(ns_); }
  Status CheckWaiterQuota() const;
  // Refuses (and counts) `n` more bytes held for pending calls beyond --max-pending-bytes.
  Status CheckPendingBytes(uint64_t n, const std::string& what);
  // Refuses (and counts) a request naming more keys than --max-keys-per-request.
  Status CheckKeyCount(size_t n, Op op);
  // A store refusal, with the tenant's namespace named (its quotas are per namespace).
  Status NameNamespace(const Status& s);
  void ArmHelloTimer();
  void Close(const std::string& why);
  // Tells the peer `status` as the reply to `id` if the socket takes it now
  // (best effort, never waiting), then closes.
  void CloseWithReply(uint64_t id, Op op, const Status& status, const std::string& why);
  Result<std::vector<Key>> ParseKeys(capnp::List<capnp::Data>::Reader keys, Op op);
  bool ReadingStopped() const { return closed_ || stop_reading_; }
  // Shutting down: closes once replies are out and deliveries are acknowledged.
  void MaybeFinishShutdown();

  StreamSocket socket_;
  asio::strand<asio::any_io_executor> strand_;
  ServiceContext* ctx_;
  const uint64_t id_;
  PeerInfo peer_info_;
  const std::string& peer_ = peer_info_.display;
  // The tenant this connection acts for (set by hello; the anonymous admin of
  // "default" when the daemon requires no token).
  const Tenant* tenant_ = nullptr;
  NamespaceIndex ns_ = 0;
  bool counted_in_namespace_ = false;  // holds one of its namespace's connections
  bool hello_seen_ = false;
  asio::steady_timer hello_timer_;
  // Fds received with the frame being dispatched (Unix socket); what its
  // dispatch does not take is closed.
  std::vector<int> frame_fds_;

  // Bytes read and not yet parsed: [rbuf_begin_, rbuf_end_) of rbuf_.
  static constexpr size_t kReadBuffer = 16 << 10;
  std::unique_ptr<std::byte[]> rbuf_;  // allocated at the first read
  size_t rbuf_begin_ = 0;
  size_t rbuf_end_ = 0;
  uint64_t stream_in_ = 0;  // bytes received on this connection so far
  // Unix socket: fds received, each with the stream offset it came at.
  std::vector<std::pair<uint64_t, int>> pending_fds_;
  bool in_read_loop_ = false;  // ReadLoop is on the stack: ReadHeader sets next_frame_
  bool next_frame_ = false;
  bool large_control_ = false;    // a control part is being read outside the buffer
  bool header_complete_ = false;  // of the frame under way
  int inline_depth_ = 0;
  FrameHeader header_;
  SteadyClock::time_point frame_started_;
  kj::Array<capnp::word> control_;  // the frame's control part: its first control_words_
  size_t control_words_ = 0;
  std::optional<Reservation> reservation_;  // an insert whose bytes are arriving
  struct InsertBatch {                      // an insertMany whose values are arriving
    uint64_t id = 0;
    std::vector<uint64_t> sizes;
    std::vector<Result<Reservation>> reserved;      // per item, from Store::ReserveMany
    std::vector<std::optional<uint64_t>> computed;  // XXH3-64 of each value read
    // Per item: where the store pulls it from (one-sided), or empty: in the frame.
    std::vector<std::optional<transport::RemoteRange>> sources;
    size_t next = 0;  // the item whose bytes come next
  };
  std::optional<InsertBatch> batch_;
  // Hash of the arriving value, updated per chunk while the chunk is still in cache.
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hash_{XXH3_createState(),
                                                                 &XXH3_freeState};
  std::array<std::byte, kChecksumTrailerBytes> trailer_buf_{};
  bool pull_checksum_by_store_ = false;  // the insert being pulled came without a checksum
  size_t rcvlowat_ = 1;                  // the socket's SO_RCVLOWAT now
  size_t max_rcvlowat_ = 1;              // an eighth of the receive buffer the kernel granted
  static constexpr int kReceiveBuffer = 4 << 20;
  std::vector<std::byte> drain_buf_;

  asio::steady_timer stall_timer_;
  SteadyClock::time_point stall_since_;
  bool stall_watching_ = false;
  bool stall_timer_armed_ = false;
  asio::steady_timer insert_timer_;
  bool insert_timer_armed_ = false;
  struct InsertDeadline {  // of the insert whose value is arriving
    uint64_t id = 0;
    uint64_t size = 0;
    std::chrono::milliseconds limit{0};
    Op op = Op::kInsert;
    SteadyClock::time_point at;
    bool active = false;
  } insert_deadline_;
  asio::steady_timer write_timer_;
  bool write_timer_armed_ = false;
  asio::steady_timer ack_timer_;  // the oldest of unacked_ past --ack-timeout closes
  bool ack_timer_armed_ = false;
  std::vector<iovec> write_iov_;            // the reply being sent
  SteadyClock::time_point write_progress_;  // when the reply being written last moved
  asio::steady_timer grace_timer_;          // shutting down: the bound on requests in flight

  std::deque<Outgoing> write_queue_;
  bool writing_ = false;

  std::unordered_map<uint64_t, PendingWait> waits_;  // by request id
  std::unordered_map<uint64_t, Unacked> unacked_;    // by request id
  struct PushTarget {
    transport::RemoteRange range;  // holds a local mapping alive while the push may come
    uint64_t length = 0;
  };
  // One-sided: the transport (null = tcp), the client's announced regions,
  // and where each pending select's values go (by request id).
  std::unique_ptr<transport::RemoteAccess> remote_;
  transport::RegionTable regions_;
  std::unordered_map<uint64_t, std::vector<PushTarget>> push_targets_;
  bool authenticated_ = false;
  bool closed_ = false;
  bool shutting_down_ = false;  // replies go out, acks are taken, new requests are refused
  bool stop_reading_ = false;   // the stream position is lost (bad frame)
  bool close_after_write_ = false;
};

}  // namespace kvstore::server
