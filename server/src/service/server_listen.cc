// Accepting connections: the TCP listener (TLS when configured), the Unix
// socket for same-host clients (peer identity from SO_PEERCRED), and admission
// within --max-connections and the unauthenticated budget.
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "server_impl.h"
#include "tls.h"

namespace kvstore::server {

Status Server::Impl::ListenUnix() {
  if (options_.unix_socket.empty()) return Status::Ok();
  const std::string& path = options_.unix_socket;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::InvalidArgument("--unix-socket: '" + path + "' is longer than " +
                                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                   " bytes; pick a shorter path");
  }
  std::error_code fec;
  // The data dir is the daemon's own: the default socket inside it needs no
  // spill tier to have created it first.
  const auto parent = std::filesystem::path(path).parent_path();
  if (!options_.store.data_dir.empty() &&
      parent == std::filesystem::path(options_.store.data_dir)) {
    std::filesystem::create_directories(parent, fec);
  }
  boost::system::error_code ec;
  asio::local::stream_protocol::endpoint ep(path);
  // A socket file left by a daemon that died is replaced; a live daemon's
  // socket and anything that is not a socket are not touched.
  auto st = std::filesystem::symlink_status(path, fec);
  if (!fec && std::filesystem::exists(st)) {
    if (!std::filesystem::is_socket(st)) {
      return Status::InvalidArgument("--unix-socket: " + path +
                                     " exists and is not a socket; remove it or pick another "
                                     "path");
    }
    asio::local::stream_protocol::socket probe(io_);
    probe.connect(ep, ec);
    if (!ec) {
      return Status::Unavailable("--unix-socket: another kvstored is serving " + path +
                                 "; stop it or give this daemon another --unix-socket or "
                                 "--data-dir");
    }
    ec.clear();
    std::filesystem::remove(path, fec);
  }
  unix_acceptor_.open(ep.protocol(), ec);
  if (!ec) unix_acceptor_.bind(ep, ec);
  if (!ec) unix_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on the Unix socket " + path + ": " + ec.message() +
                               " (check the directory exists and is writable, or pass "
                               "--unix-socket '' to run without it)");
  }
  ::chmod(path.c_str(), options_.unix_socket_mode);
  ctx_.unix_socket = std::filesystem::absolute(path, fec).string();
  if (fec) ctx_.unix_socket = path;
  return Status::Ok();
}

void Server::Impl::Accept() {
  asio::io_context& home = *contexts_[next_context_++ % contexts_.size()];
  acceptor_.async_accept(asio::make_strand(home), [this](boost::system::error_code ec,
                                                         tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      log_limit_.Warn("accept", "accept on {} failed: {}", listen_address_, ec.message());
    } else {
      boost::system::error_code pec;
      auto ep = socket.remote_endpoint(pec);
      PeerInfo peer;
      peer.key = pec ? "unknown" : ep.address().to_string();
      peer.display = pec ? "unknown peer" : peer.key + ":" + std::to_string(ep.port());
      if (tls_context_) {
        peer.tls = true;
        peer.display += " (tls)";
        std::string who = peer.display;
        StartTlsRelay(
            std::move(socket), *tls_context_, options_.hello_timeout,
            [this, peer](StreamSocket plain) mutable { Admit(std::move(plain), std::move(peer)); },
            [this, who](const std::string& why) {
              metrics_.ProtocolError("tls_handshake");
              log_limit_.Warn("tls_handshake", "connection from {}: {}; closed", who, why);
            });
      } else {
        auto exec = socket.get_executor();
        StreamSocket s(exec, asio::generic::stream_protocol(ep.protocol().family(), IPPROTO_TCP),
                       socket.release());
        Admit(std::move(s), std::move(peer));
      }
    }
    if (!stopping_) Accept();
  });
}

void Server::Impl::AcceptUnix() {
  asio::io_context& home = *contexts_[next_context_++ % contexts_.size()];
  unix_acceptor_.async_accept(
      asio::make_strand(home),
      [this](boost::system::error_code ec, asio::local::stream_protocol::socket socket) {
        if (ec) {
          if (ec == asio::error::operation_aborted || stopping_) return;
          log_limit_.Warn("accept", "accept on {} failed: {}", ctx_.unix_socket, ec.message());
        } else {
          ucred cred{};
          socklen_t len = sizeof(cred);
          PeerInfo peer;
          peer.is_unix = true;
          if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            log_limit_.Warn("peercred", "unix connection without peer credentials; closed");
          } else {
            peer.uid = cred.uid;
            peer.key = "uid:" + std::to_string(cred.uid);
            peer.display =
                "unix uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid);
            const auto& allow = options_.unix_allow_uids;
            if (!allow.empty() && std::find(allow.begin(), allow.end(), cred.uid) == allow.end()) {
              metrics_.ProtocolError("uid_refused");
              log_limit_.Warn("uid_refused", "refusing {}: uid {} is not in --unix-allow-uid",
                              peer.display, cred.uid);
            } else {
              auto exec = socket.get_executor();
              StreamSocket s(exec, asio::generic::stream_protocol(AF_UNIX, 0), socket.release());
              Admit(std::move(s), std::move(peer));
            }
          }
        }
        if (!stopping_) AcceptUnix();
      });
}

void Server::Impl::Admit(StreamSocket socket, PeerInfo peer) {
  if (!credentials_.required() && registry_.size() >= options_.max_connections) {
    metrics_.ProtocolError("too_many_connections");
    log_limit_.Warn("too_many_connections",
                    "refusing connection from {}: {} connections open (limit "
                    "--max-connections {})",
                    peer.display, registry_.size(), options_.max_connections);
    return;
  }
  std::string key = peer.key;
  auto c = std::make_shared<Connection>(std::move(socket), &ctx_, ++next_connection_id_,
                                        std::move(peer));
  if (credentials_.required()) {
    for (auto& old : registry_.AddUnauthenticated(c->id(), c, key)) {
      old->Evict("its place was needed by a newer connection before it sent hello");
    }
  } else {
    registry_.Add(c->id(), c);
  }
  c->Start();
}

}  // namespace kvstore::server
