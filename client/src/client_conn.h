// One blocking connection to kvstored: frames out, frames in, with deadlines.
// Over TCP, or over the daemon's Unix socket when it runs on this host (the
// local transport: memory the client shares as memfds, passed with
// SCM_RIGHTS). A client on TCP that would share memory learns the socket's
// path from the hello reply, opens its connections there from then on, and
// checks the daemon's instance id on it, so another daemon's socket at that
// path is never taken for this one.
//
// Plain POSIX sockets: a request goes out in one sendmsg; replies are read
// through a buffer, so a small reply (header, control part and value) takes
// one recv; a large value moves straight between the socket and the caller's
// buffer (MSG_WAITALL). SO_RCVTIMEO/SO_SNDTIMEO carry the deadlines, set only
// when the one in force could outlast the call's deadline (a blocking call
// that returns early at a shorter one is retried until the deadline).
//
// Thread-compatibility: one thread at a time (Client's pool hands each
// connection to one caller). After any I/O error or timeout the connection is
// broken() and must be discarded: the stream position is no longer known.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include <capnp/serialize.h>

#include "kvstore.capnp.h"
#include "kvstore/client.h"
#include "kvstore/frame.h"
#include "kvstore/status.h"
#include "kvstore/transport/rdma_transport.h"
#include "kvstore/transport/transport.h"

struct ssl_ctx_st;
struct ssl_st;

namespace kvstore::internal {

using Clock = std::chrono::steady_clock;

// A received control message; the frame's bulk part is still on the socket.
struct InFrame {
  FrameHeader header;
  kj::Array<capnp::word> words;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader;
  wire::Response::Reader response() { return reader->getRoot<wire::Response>(); }
};

// Where a Client finds the daemon's Unix socket, once a TCP hello said.
struct LocalRoute {
  std::mutex mu;
  std::string path;         // GUARDED_BY(mu): empty = not known (yet)
  std::string instance_id;  // GUARDED_BY(mu): the daemon's, from the TCP hello
  std::string failed;       // GUARDED_BY(mu): why the socket could not be used; stays on TCP
};

// What a Client's connections share for one-sided transports.
struct TransportSetup {
  transport::Preference preference = transport::Preference::kAuto;
  std::shared_ptr<rdma::RdmaDevice> rdma_device;  // null: no RDMA offered
  std::shared_ptr<LocalRoute> local_route = std::make_shared<LocalRoute>();
};

// The token a Client presents: ClientOptions::token, else the first line of
// ClientOptions::token_file, else the KVSTORE_TOKEN environment variable,
// else none. InvalidArgument when the file cannot be read or is empty.
Result<std::string> ResolveToken(const ClientOptions& options);

class ClientConn {
 public:
  // Connects, sends Hello (with the one-sided offers `setup` allows), checks
  // the reply and sets up the transport the store chose.
  static Result<std::unique_ptr<ClientConn>> Open(const ClientOptions& options,
                                                  const TransportSetup& setup);
  ~ClientConn();
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Sends `message` followed by the bulk spans, in order.
  Status Send(capnp::MessageBuilder& message, std::span<const std::span<const std::byte>> bulk,
              Clock::time_point deadline);
  // Unix socket only: sends `message` with `fd` attached (a shared region's memfd).
  Status SendWithFd(capnp::MessageBuilder& message, int fd, Clock::time_point deadline);
  // Sends `message` (whose bulk length says value + trailer) and the value in
  // pieces, hashing each piece just before it goes out, then the XXH3-64 of the
  // whole value as the 8-byte trailer (InsertRequest.checksumTrailer).
  Status SendWithChecksumTrailer(capnp::MessageBuilder& message, std::span<const std::byte> value,
                                 Clock::time_point deadline);
  Result<InFrame> Receive(Clock::time_point deadline);
  Status ReceiveBulk(std::span<std::byte> dst, Clock::time_point deadline);
  // Receives in chunks, hashing each (XXH3-64) while it is still in cache.
  Result<uint64_t> ReceiveBulkHashed(std::span<std::byte> dst, Clock::time_point deadline);
  Status DiscardBulk(uint64_t bytes, Clock::time_point deadline);

  uint64_t NextId() { return ++last_id_; }
  bool broken() const { return broken_; }
  const std::string& address() const { return address_; }
  uint64_t max_value_bytes() const { return max_value_bytes_; }
  // The bulk transport of one-sided requests on this connection (tcp: none).
  transport::Kind kind() const { return kind_; }
  bool one_sided() const { return kind_ != transport::Kind::kTcp; }
  bool is_unix() const { return is_unix_; }
  // Regions announced to the store on this connection.
  bool announced(uint32_t region) const { return announced_.contains(region); }
  void set_announced(uint32_t region) { announced_.insert(region); }
  void set_withdrawn(uint32_t region) { announced_.erase(region); }
  const std::unordered_set<uint32_t>& announced_regions() const { return announced_; }

 private:
  ClientConn() = default;
  static Result<std::unique_ptr<ClientConn>> OpenTcp(const ClientOptions& options,
                                                     const TransportSetup& setup,
                                                     Clock::time_point deadline);
  // `expect_instance`: the daemon's id from a TCP hello; empty when the
  // address itself named the socket (unix:PATH).
  static Result<std::unique_ptr<ClientConn>> OpenUnix(const std::string& path,
                                                      const ClientOptions& options,
                                                      const TransportSetup& setup,
                                                      const std::string& expect_instance,
                                                      Clock::time_point deadline);
  Status Hello(const ClientOptions& options, const TransportSetup& setup,
               Clock::time_point deadline);
  Status Fail(const char* what, int err);
  Status SetTimeout(int option, Clock::time_point deadline, const char* what);
  // After a blocking call timed out at the socket's timeout: true (and the
  // timeout moved to the rest of the time) when `deadline` is not reached yet.
  bool RetryBefore(int option, Clock::time_point deadline);
  // Straight into `dst` (MSG_WAITALL), past the buffer: it must be empty.
  Status ReadExact(void* dst, size_t n, Clock::time_point deadline, const char* what);
  // Reads once into the buffer's free room (at least one byte).
  Status ReadSome(Clock::time_point deadline, const char* what);
  // Until the buffer holds `n` bytes (n <= kReadBuffer).
  Status Fill(size_t n, Clock::time_point deadline, const char* what);
  size_t TakeBuffered(std::span<std::byte> dst);  // what the buffer holds, first
  size_t buffered() const { return rbuf_end_ - rbuf_begin_; }
  // All of it, in as few sendmsg calls as possible.
  Status SendIov(std::vector<iovec>& iov, Clock::time_point deadline);
  Status StartTls(const ClientOptions& options, const std::string& host,
                  Clock::time_point deadline);
  Status TlsFail(const char* what, int ret);

  int fd_ = -1;
  // Socket timeouts in force (microseconds; 0 = none): SO_RCVTIMEO, SO_SNDTIMEO.
  int64_t rcv_timeout_us_ = 0;
  int64_t snd_timeout_us_ = 0;
  // Bytes received and not yet taken: [rbuf_begin_, rbuf_end_).
  static constexpr size_t kReadBuffer = 64 << 10;
  std::unique_ptr<std::byte[]> rbuf_;
  size_t rbuf_begin_ = 0;
  size_t rbuf_end_ = 0;
  // TLS (ClientOptions::tls_ca): the session over fd_; null = plaintext.
  std::unique_ptr<ssl_ctx_st, void (*)(ssl_ctx_st*)> ssl_ctx_{nullptr, nullptr};
  std::unique_ptr<ssl_st, void (*)(ssl_st*)> ssl_{nullptr, nullptr};
  std::string address_;
  uint64_t last_id_ = 0;
  uint64_t max_value_bytes_ = 0;
  bool broken_ = false;
  bool is_unix_ = false;
  std::string local_socket_;  // from the hello reply over TCP
  std::string instance_id_;   // the daemon's, from the hello reply
  transport::Kind kind_ = transport::Kind::kTcp;
  std::unique_ptr<transport::RdmaClientEndpoint> rdma_;  // the queue pair the store drives
  std::unordered_set<uint32_t> announced_;
};

}  // namespace kvstore::internal
