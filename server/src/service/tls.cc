#include "tls.h"

#include <sys/socket.h>

#include <array>
#include <vector>

namespace kvstore::server {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

Result<std::unique_ptr<ssl::context>> MakeServerTlsContext(const TlsOptions& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(o.cert, ec);
  if (ec) return Status::InvalidArgument("--tls-cert " + o.cert + ": " + ec.message());
  ctx->use_private_key_file(o.key.empty() ? o.cert : o.key, ssl::context::pem, ec);
  if (ec) return Status::InvalidArgument("--tls-key " + o.key + ": " + ec.message());
  if (!o.client_ca.empty()) {
    ctx->load_verify_file(o.client_ca, ec);
    if (ec) return Status::InvalidArgument("--tls-ca " + o.client_ca + ": " + ec.message());
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

namespace {

class TlsRelay : public std::enable_shared_from_this<TlsRelay> {
 public:
  TlsRelay(tcp::socket socket, ssl::context& ctx)
      : tls_(std::move(socket), ctx),
        plain_(tls_.get_executor()),
        timer_(tls_.get_executor()),
        up_(kBuffer),
        down_(kBuffer) {}

  void Handshake(std::chrono::milliseconds deadline,
                 std::function<void(asio::generic::stream_protocol::socket)> ready,
                 std::function<void(const std::string&)> failed) {
    timer_.expires_after(deadline);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Stop();  // too slow: the handshake fails with operation_aborted
    });
    tls_.async_handshake(
        ssl::stream_base::server, [self = shared_from_this(), ready = std::move(ready),
                                   failed = std::move(failed)](boost::system::error_code ec) {
          self->timer_.cancel();
          if (ec) {
            failed("TLS handshake failed: " + ec.message());
            self->Stop();
            return;
          }
          int sv[2];
          if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            failed("socketpair for the TLS relay failed");
            self->Stop();
            return;
          }
          boost::system::error_code aec;
          self->plain_.assign(asio::local::stream_protocol(), sv[0], aec);
          asio::generic::stream_protocol::socket other(
              self->tls_.get_executor(), asio::generic::stream_protocol(AF_UNIX, 0), sv[1]);
          self->PumpUp();
          self->PumpDown();
          ready(std::move(other));
        });
  }

 private:
  static constexpr size_t kBuffer = 256 << 10;

  // Client -> daemon: decrypt, hand over.
  void PumpUp() {
    tls_.async_read_some(asio::buffer(up_),
                         [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                           if (ec) return self->Stop();
                           asio::async_write(self->plain_, asio::buffer(self->up_.data(), n),
                                             [self](boost::system::error_code ec2, size_t) {
                                               if (ec2) return self->Stop();
                                               self->PumpUp();
                                             });
                         });
  }
  // Daemon -> client: encrypt, send.
  void PumpDown() {
    plain_.async_read_some(asio::buffer(down_),
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                             if (ec) return self->Stop();
                             asio::async_write(self->tls_, asio::buffer(self->down_.data(), n),
                                               [self](boost::system::error_code ec2, size_t) {
                                                 if (ec2) return self->Stop();
                                                 self->PumpDown();
                                               });
                           });
  }
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    tls_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    tls_.lowest_layer().close(ignored);
    plain_.shutdown(asio::local::stream_protocol::socket::shutdown_both, ignored);
    plain_.close(ignored);
  }

  ssl::stream<tcp::socket> tls_;
  asio::local::stream_protocol::socket plain_;
  asio::steady_timer timer_;
  std::vector<char> up_, down_;
  bool stopped_ = false;
};

}  // namespace

void StartTlsRelay(tcp::socket socket, ssl::context& ctx, std::chrono::milliseconds deadline,
                   std::function<void(asio::generic::stream_protocol::socket)> ready,
                   std::function<void(const std::string&)> failed) {
  auto relay = std::make_shared<TlsRelay>(std::move(socket), ctx);
  relay->Handshake(deadline, std::move(ready), std::move(failed));
}

}  // namespace kvstore::server
