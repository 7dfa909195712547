// TLS on kvstored's TCP listener (OpenSSL through Asio's ssl stream).
//
// A TLS connection is terminated by a TlsRelay: it runs the handshake (within
// a deadline), then relays plaintext to one end of a socketpair whose other
// end an ordinary Connection serves, so the request path is the same for
// every transport. With a client CA configured the daemon requires and
// verifies client certificates (mutual TLS).
//
// Thread-safety: a relay lives on the strand of its socket's executor.
#pragma once

#include <utility>  // before asio: Boost 1.74 Asio under C++20 needs std::exchange

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "kvstore/status.h"

namespace kvstore::server {

struct TlsOptions {
  std::string cert;  // PEM certificate chain of the daemon (--tls-cert)
  std::string key;   // PEM private key (--tls-key)
  std::string
      client_ca;  // PEM CA bundle; set: clients must present a certificate it signed (--tls-ca)
  bool enabled() const { return !cert.empty(); }
};

// InvalidArgument naming the file that cannot be loaded.
Result<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const TlsOptions& options);

// Runs the handshake on `socket` (closing it when it fails or takes longer
// than `deadline`), then calls `ready` with the plaintext end of the relay.
// `failed` gets a reason for the log when the handshake fails.
void StartTlsRelay(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& ctx,
                   std::chrono::milliseconds deadline,
                   std::function<void(boost::asio::generic::stream_protocol::socket)> ready,
                   std::function<void(const std::string&)> failed);

}  // namespace kvstore::server
