#include "client_conn.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <capnp/message.h>
#include <xxhash.h>

#include "kvstore/transport/negotiation.h"
#include "kvstore/units.h"
#include "kvstore/wire_convert.h"
#include "no_sigpipe.h"

namespace kvstore::internal {

ClientConn::~ClientConn() {
  if (fd_ >= 0) ::close(fd_);
}

Status ClientConn::Fail(const char* what, int err) {
  broken_ = true;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT) {
    return Status::Timeout(std::string(what) + " to kvstored at " + address_ + " timed out");
  }
  if (err == 0 || err == ECONNRESET || err == EPIPE) {
    return Status::Unavailable(std::string(what) + ": kvstored at " + address_ +
                               " closed the connection (restarted, shutting down, or it "
                               "rejected the request; see its log)");
  }
  return Status::Unavailable(std::string(what) + " to kvstored at " + address_ + ": " +
                             std::strerror(err));
}

Status ClientConn::SetTimeout(int option, Clock::time_point deadline, const char* what) {
  if (broken_) {
    return Status::Unavailable("connection to kvstored at " + address_ +
                               " is closed after an earlier error; reconnect");
  }
  const int64_t left =
      std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
  if (left <= 0) return Fail(what, ETIMEDOUT);
  int64_t& in_force = option == SO_RCVTIMEO ? rcv_timeout_us_ : snd_timeout_us_;
  // A timeout that ends before the deadline is kept: a call it cuts short is
  // retried (RetryBefore). Most calls thus cost no setsockopt.
  if (!ssl_ && in_force > 0 && in_force <= left) return Status::Ok();
  // Set an eighth short of the deadline, so that the next calls' deadlines
  // (each a little later) keep it. TLS: exactly (its reads are not retried).
  const int64_t t = ssl_ || left < 8000 ? left : left - left / 8;
  timeval tv{static_cast<time_t>(t / 1000000), static_cast<suseconds_t>(t % 1000000)};
  if (::setsockopt(fd_, SOL_SOCKET, option, &tv, sizeof(tv)) != 0) return Fail(what, errno);
  in_force = t;
  return Status::Ok();
}

bool ClientConn::RetryBefore(int option, Clock::time_point deadline) {
  if (ssl_ || Clock::now() >= deadline) return false;
  (option == SO_RCVTIMEO ? rcv_timeout_us_ : snd_timeout_us_) = 0;  // set again from what is left
  return true;
}

Result<std::string> ResolveToken(const ClientOptions& options) {
  if (!options.token.empty()) return options.token;
  if (!options.token_file.empty()) {
    std::ifstream in(options.token_file);
    if (!in) {
      return Status::InvalidArgument("cannot read the token file " + options.token_file +
                                     " (ClientOptions::token_file / --token-file)");
    }
    std::string token;
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty())
      return Status::InvalidArgument("the token file " + options.token_file + " is empty");
    return token;
  }
  // The one place the library reads the environment: a token kept off the
  // command line (ps shows argv) without a file.
  if (const char* env = std::getenv("KVSTORE_TOKEN"); env != nullptr) return std::string(env);
  return std::string();
}

namespace {

constexpr std::string_view kUnixPrefix = "unix:";

// Waits for a non-blocking connect; 0 or the errno.
int FinishConnect(int fd, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  pollfd p{fd, POLLOUT, 0};
  int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
  if (n <= 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

// A request whose control part (keys and metadata) the daemon would refuse as
// an oversized frame, closing the connection: refused here instead, before a
// byte is sent, so the connection stays usable.
Status CheckControlSize(const OutFrame& frame) {
  const size_t n = frame.control_bytes().size();
  if (n <= kMaxControlBytes) return Status::Ok();
  return Status::InvalidArgument("request of " + std::to_string(n) +
                                 " bytes of keys and metadata exceeds the frame limit of " +
                                 std::to_string(kMaxControlBytes) +
                                 " bytes; pass fewer keys per call");
}

}  // namespace

Result<std::unique_ptr<ClientConn>> ClientConn::Open(const ClientOptions& options,
                                                     const TransportSetup& setup) {
  auto deadline = Clock::now() + options.connect_timeout;
  std::string_view address = options.address;
  if (address.substr(0, kUnixPrefix.size()) == kUnixPrefix) {
    return OpenUnix(std::string(address.substr(kUnixPrefix.size())), options, setup, "", deadline);
  }
  using transport::Preference;
  const bool want_local =
      setup.preference == Preference::kAuto || setup.preference == Preference::kLocal;
  LocalRoute& route = *setup.local_route;
  if (want_local) {
    std::string path, instance;
    {
      std::lock_guard lock(route.mu);
      if (route.failed.empty()) {
        path = route.path;
        instance = route.instance_id;
      }
    }
    if (!path.empty()) {
      auto u = OpenUnix(path, options, setup, instance, deadline);
      if (u.ok()) return u;
      // A daemon restarted with another id, or a socket gone: back to TCP,
      // which says where the socket is now.
      std::lock_guard lock(route.mu);
      route.path.clear();
    }
  }
  KVSTORE_ASSIGN_OR_RETURN(std::unique_ptr<ClientConn> c, OpenTcp(options, setup, deadline));
  if (!want_local || c->local_socket_.empty()) return c;
  {
    std::lock_guard lock(route.mu);
    if (!route.failed.empty()) return c;
  }
  auto u = OpenUnix(c->local_socket_, options, setup, c->instance_id_, deadline);
  std::lock_guard lock(route.mu);
  if (!u.ok()) {
    // Another host or container (the path is not this daemon's here): TCP it is.
    route.failed = u.status().message();
    return c;
  }
  route.path = c->local_socket_;
  route.instance_id = c->instance_id_;
  return u;
}

Result<std::unique_ptr<ClientConn>> ClientConn::OpenUnix(const std::string& path,
                                                         const ClientOptions& options,
                                                         const TransportSetup& setup,
                                                         const std::string& expect_instance,
                                                         Clock::time_point deadline) {
  std::unique_ptr<ClientConn> c(new ClientConn());
  c->address_ = "unix:" + path;
  c->is_unix_ = true;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
    return Status::InvalidArgument("Unix socket path '" + path + "' is empty or too long");
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Unavailable(std::string("socket(AF_UNIX): ") + std::strerror(errno));
  c->fd_ = fd;
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    err = errno == EINPROGRESS ? FinishConnect(fd, deadline) : errno;
  }
  if (err != 0) {
    return Status::Unavailable("cannot reach kvstored at unix:" + path + ": " + std::strerror(err) +
                               " (is the daemon running on this host?)");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  KVSTORE_RETURN_IF_ERROR(c->Hello(options, setup, deadline));
  if (!expect_instance.empty() && c->instance_id_ != expect_instance) {
    return Status::Unavailable("the Unix socket " + path +
                               " belongs to another kvstored than the one at " + options.address);
  }
  return c;
}

Result<std::unique_ptr<ClientConn>> ClientConn::OpenTcp(const ClientOptions& options,
                                                        const TransportSetup& setup,
                                                        Clock::time_point deadline) {
  std::unique_ptr<ClientConn> c(new ClientConn());
  c->address_ = options.address;
  std::string host;
  uint16_t port = 0;
  KVSTORE_RETURN_IF_ERROR(SplitHostPort(options.address, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    return Status::Unavailable("cannot resolve kvstored host '" + host + "': " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(found, ::freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno == EINPROGRESS ? FinishConnect(fd, deadline) : errno;
    }
    if (err != 0) {
      last_error = err == ETIMEDOUT ? "connect timed out" : std::strerror(err);
      ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Socket buffers stay under the kernel's autotuning: a fixed SO_RCVBUF/SO_SNDBUF
    // turns it off and is capped by net.core.[rw]mem_max (208 KiB by default).
    c->fd_ = fd;
    break;
  }
  if (c->fd_ < 0) {
    return Status::Unavailable("cannot reach kvstored at " + options.address + ": " + last_error +
                               " (is the daemon running? check the address)");
  }
  if (!options.tls_ca.empty()) KVSTORE_RETURN_IF_ERROR(c->StartTls(options, host, deadline));
  KVSTORE_RETURN_IF_ERROR(c->Hello(options, setup, deadline));
  return c;
}

Status ClientConn::TlsFail(const char* what, int ret) {
  int err = SSL_get_error(ssl_.get(), ret);
  int sys = errno;
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  if (err == SSL_ERROR_ZERO_RETURN) return Fail(what, 0);
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return Fail(what, sys == 0 ? ECONNRESET : sys);
  }
  broken_ = true;
  return Status::Unavailable(std::string(what) + " to kvstored at " + address_ + ": TLS error " +
                             (buf[0] ? buf : std::to_string(err)));
}

Status ClientConn::StartTls(const ClientOptions& options, const std::string& host,
                            Clock::time_point deadline) {
  ssl_ctx_ = {SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  if (!ssl_ctx_) return Status::Internal("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ssl_ctx_.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ssl_ctx_.get(), SSL_MODE_AUTO_RETRY);
  SSL_CTX_set_read_ahead(ssl_ctx_.get(), 1);  // whole socket reads, not one per 16 KiB record
  if (SSL_CTX_load_verify_locations(ssl_ctx_.get(), options.tls_ca.c_str(), nullptr) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("cannot load the TLS CA " + options.tls_ca +
                                   " (ClientOptions::tls_ca)");
  }
  SSL_CTX_set_verify(ssl_ctx_.get(), SSL_VERIFY_PEER, nullptr);
  if (!options.tls_cert.empty()) {
    const std::string& key = options.tls_key.empty() ? options.tls_cert : options.tls_key;
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx_.get(), options.tls_cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx_.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
      ERR_clear_error();
      return Status::InvalidArgument("cannot load the client certificate " + options.tls_cert +
                                     " / key " + key);
    }
  }
  ssl_ = {SSL_new(ssl_ctx_.get()), SSL_free};
  if (!ssl_) return Status::Internal("SSL_new failed");
  // The daemon's certificate must name the host the client dialed.
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
  in6_addr ip{};
  if (::inet_pton(AF_INET, host.c_str(), &ip) == 1 ||
      ::inet_pton(AF_INET6, host.c_str(), &ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    SSL_set_tlsext_host_name(ssl_.get(), host.c_str());
  }
  SSL_set_fd(ssl_.get(), fd_);
  KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_RCVTIMEO, deadline, "TLS handshake"));
  KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_SNDTIMEO, deadline, "TLS handshake"));
  int rc;
  {
    NoSigpipe no_sigpipe;
    rc = SSL_connect(ssl_.get());
  }
  if (rc != 1) {
    long verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) {
      broken_ = true;
      ERR_clear_error();
      return Status::Unavailable(
          "TLS to kvstored at " + address_ + ": its certificate is not trusted (" +
          X509_verify_cert_error_string(verify) + "); check ClientOptions::tls_ca");
    }
    return TlsFail("TLS handshake", rc);
  }
  return Status::Ok();
}

Status ClientConn::Hello(const ClientOptions& options, const TransportSetup& setup,
                         Clock::time_point deadline) {
  KVSTORE_ASSIGN_OR_RETURN(std::string token, ResolveToken(options));
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<wire::Request>();
  req.setId(NextId());
  auto hello = req.initHello();
  hello.setProtocolVersion(wire::PROTOCOL_VERSION);
  hello.setToken(token);
  hello.setClientName(options.client_name);
  using transport::Preference;
  const bool shares_memory =
      setup.preference == Preference::kAuto || setup.preference == Preference::kLocal;
  hello.setSharedMemory(shares_memory);
  std::vector<std::byte> rdma_params;
  if (!is_unix_ && setup.rdma_device &&
      (setup.preference == Preference::kAuto || setup.preference == Preference::kRdma)) {
    auto endpoint = transport::RdmaClientEndpoint::Create(setup.rdma_device);
    if (endpoint.ok()) {
      rdma_ = std::move(endpoint).value();
      rdma_params = rdma_->HelloParams();
      hello.setRdmaParams(
          {reinterpret_cast<const kj::byte*>(rdma_params.data()), rdma_params.size()});
    }
  }
  KVSTORE_RETURN_IF_ERROR(Send(msg, {}, deadline));
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, Receive(deadline));
  auto resp = in.response();
  if (resp.getCode() != wire::Code::OK) {
    return Status(CodeFromWire(resp.getCode()), resp.getMessage().cStr());
  }
  if (!resp.isHello()) return Status::Internal("kvstored answered hello with something else");
  auto h = resp.getHello();
  max_value_bytes_ = h.getMaxValueBytes();
  local_socket_ = h.getLocalSocket().cStr();
  instance_id_.assign(reinterpret_cast<const char*>(h.getInstanceId().begin()),
                      h.getInstanceId().size());
  std::string chosen = h.getBulkTransport().cStr();
  transport::Kind server_kind = transport::Kind::kTcp;
  if (!chosen.empty()) {
    KVSTORE_ASSIGN_OR_RETURN(server_kind, transport::ParseKind(chosen));
  }
  // The same decision the daemon made, from this end: it must agree.
  auto params = h.getRdmaParams();
  const std::span<const std::byte> server_params{reinterpret_cast<const std::byte*>(params.begin()),
                                                 params.size()};
  transport::NegotiationInput mine_in;
  mine_in.server = false;
  mine_in.unix_socket = is_unix_;
  mine_in.local_memory = shares_memory;
  mine_in.peer_memory = server_kind == transport::Kind::kLocal;
  mine_in.local_rdma = rdma_ != nullptr;
  mine_in.peer_rdma_params = server_params;
  const transport::Choice mine = transport::Negotiate(mine_in);
  if (mine.kind != server_kind) {
    return Status::Internal("kvstored chose the " + std::string(transport::KindName(server_kind)) +
                            " transport but this client's hello allows " +
                            std::string(transport::KindName(mine.kind)) + " (" + mine.reason + ")");
  }
  kind_ = server_kind;
  if (kind_ == transport::Kind::kRdma) {
    KVSTORE_RETURN_IF_ERROR(rdma_->Connect(server_params));
  } else {
    rdma_.reset();
  }
  return Status::Ok();
}

Status ClientConn::SendWithFd(capnp::MessageBuilder& message, int fd, Clock::time_point deadline) {
  if (!is_unix_) return Status::Internal("a shared region can only be passed on the Unix socket");
  KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_SNDTIMEO, deadline, "send"));
  OutFrame frame = EncodeFrame(message, 0);
  KVSTORE_RETURN_IF_ERROR(CheckControlSize(frame));
  auto control = frame.control_bytes();
  std::vector<iovec> iov{{frame.header.data(), frame.header.size()},
                         {const_cast<std::byte*>(control.data()), control.size()}};
  ssize_t n = transport::SendWithFd(fd_, iov.data(), iov.size(), fd);
  if (n < 0) return Fail("send", static_cast<int>(-n));
  // The fd went with the first byte; whatever is left goes as plain bytes.
  size_t sent = static_cast<size_t>(n);
  size_t first = 0;
  while (first < iov.size() && sent >= iov[first].iov_len) sent -= iov[first++].iov_len;
  if (first == iov.size()) return Status::Ok();
  iov.erase(iov.begin(), iov.begin() + static_cast<ptrdiff_t>(first));
  iov[0].iov_base = static_cast<char*>(iov[0].iov_base) + sent;
  iov[0].iov_len -= sent;
  return SendIov(iov, deadline);
}

Status ClientConn::SendIov(std::vector<iovec>& iov, Clock::time_point deadline) {
  if (ssl_) {
    NoSigpipe no_sigpipe;
    for (const iovec& v : iov) {
      size_t off = 0;
      while (off < v.iov_len) {
        int chunk = static_cast<int>(std::min<size_t>(v.iov_len - off, 1 << 30));
        int n = SSL_write(ssl_.get(), static_cast<const char*>(v.iov_base) + off, chunk);
        if (n <= 0) return TlsFail("send", n);
        off += static_cast<size_t>(n);
      }
    }
    return Status::Ok();
  }
  size_t first = 0;
  while (first < iov.size()) {
    KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_SNDTIMEO, deadline, "send"));
    msghdr mh{};
    mh.msg_iov = iov.data() + first;
    mh.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    ssize_t n = ::sendmsg(fd_, &mh, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && RetryBefore(SO_SNDTIMEO, deadline)) {
        continue;
      }
      return Fail("send", errno);
    }
    size_t sent = static_cast<size_t>(n);
    while (first < iov.size() && sent >= iov[first].iov_len) sent -= iov[first++].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + sent;
      iov[first].iov_len -= sent;
    }
  }
  return Status::Ok();
}

Status ClientConn::Send(capnp::MessageBuilder& message,
                        std::span<const std::span<const std::byte>> bulk,
                        Clock::time_point deadline) {
  KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_SNDTIMEO, deadline, "send"));
  uint64_t bulk_len = 0;
  for (auto b : bulk) bulk_len += b.size();
  OutFrame frame = EncodeFrame(message, bulk_len);
  KVSTORE_RETURN_IF_ERROR(CheckControlSize(frame));
  std::vector<iovec> iov;
  iov.reserve(2 + bulk.size());
  auto control = frame.control_bytes();
  iov.push_back({frame.header.data(), frame.header.size()});
  iov.push_back({const_cast<std::byte*>(control.data()), control.size()});
  for (auto b : bulk) {
    if (!b.empty()) iov.push_back({const_cast<std::byte*>(b.data()), b.size()});
  }
  return SendIov(iov, deadline);
}

Status ClientConn::SendWithChecksumTrailer(capnp::MessageBuilder& message,
                                           std::span<const std::byte> value,
                                           Clock::time_point deadline) {
  // Pieces small enough to stay in cache between the hash and the send's copy.
  constexpr size_t kPiece = 1 << 20;
  KVSTORE_RETURN_IF_ERROR(SetTimeout(SO_SNDTIMEO, deadline, "send"));
  OutFrame frame = EncodeFrame(message, value.size() + kChecksumTrailerBytes);
  KVSTORE_RETURN_IF_ERROR(CheckControlSize(frame));
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  auto control = frame.control_bytes();
  std::vector<iovec> iov;
  iov.push_back({frame.header.data(), frame.header.size()});
  iov.push_back({const_cast<std::byte*>(control.data()), control.size()});
  std::array<std::byte, kChecksumTrailerBytes> trailer;
  size_t off = 0;
  do {
    size_t n = std::min(kPiece, value.size() - off);
    if (n > 0) {
      XXH3_64bits_update(state.get(), value.data() + off, n);
      iov.push_back({const_cast<std::byte*>(value.data() + off), n});
      off += n;
    }
    if (off == value.size()) {
      uint64_t digest = XXH3_64bits_digest(state.get());
      std::memcpy(trailer.data(), &digest, sizeof(digest));  // little-endian hosts only
      iov.push_back({trailer.data(), trailer.size()});
    }
    KVSTORE_RETURN_IF_ERROR(SendIov(iov, deadline));
    iov.clear();
  } while (off < value.size());
  return Status::Ok();
}

}  // namespace kvstore::internal
