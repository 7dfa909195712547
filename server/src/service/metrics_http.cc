#include "metrics_http.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include "tcp_listener.h"

namespace kvstore::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class MetricsHttpServer::Client : public std::enable_shared_from_this<Client> {
 public:
  Client(tcp::socket socket, MetricsHttpServer* server)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}

  void Start() {
    timer_.expires_after(server_->deadline_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Close();  // too slow to ask or to read the answer
    });
    asio::async_read_until(socket_, asio::dynamic_buffer(request_, kMaxRequestBytes), "\r\n\r\n",
                           [self = shared_from_this()](boost::system::error_code ec, size_t) {
                             if (ec) {
                               // Over kMaxRequestBytes, closed early or timed out: nothing to
                               // answer.
                               self->Close();
                               return;
                             }
                             self->Respond();
                           });
  }

  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void Respond() {
    std::string_view req(request_);
    std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
    bool head = req.rfind("HEAD ", 0) == 0;
    if (req.rfind("GET /metrics ", 0) == 0 || req.rfind("HEAD /metrics ", 0) == 0 ||
        req.rfind("GET /metrics?", 0) == 0) {
      body = server_->Render();
    } else if (req.rfind("GET /healthz ", 0) == 0) {
      body = "ok\n";
      type = "text/plain";
    } else if (req.rfind("GET ", 0) == 0 || head) {
      status = "404 Not Found";
      body = "kvstored serves /metrics and /healthz\n";
      type = "text/plain";
    } else {
      status = "405 Method Not Allowed";
      type = "text/plain";
    }
    response_ = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                "\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\nConnection: close\r\n\r\n";
    if (!head) response_ += body;
    asio::async_write(
        socket_, asio::buffer(response_),
        [self = shared_from_this()](boost::system::error_code, size_t) { self->Close(); });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  MetricsHttpServer* server_;
  std::string request_;
  std::string response_;
};

MetricsHttpServer::MetricsHttpServer(asio::io_context& io, Collectables collectables,
                                     std::chrono::milliseconds deadline)
    : io_(io), acceptor_(io), collectables_(std::move(collectables)), deadline_(deadline) {}

MetricsHttpServer::~MetricsHttpServer() = default;

Status MetricsHttpServer::Listen(const std::string& host_port) {
  return ListenTcp(acceptor_, host_port, "--metrics",
                   " (pick another --metrics address, or '' to disable)", &address_);
}

void MetricsHttpServer::Start() { Accept(); }

void MetricsHttpServer::Stop() {
  asio::post(io_, [this] {
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& w : clients_) {
      if (auto c = w.lock()) c->Close();
    }
    clients_.clear();
  });
}

void MetricsHttpServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      clients_.remove_if([](const std::weak_ptr<Client>& w) { return w.expired(); });
      if (clients_.size() >= kMaxClients) {
        // The oldest open request is the one most likely stuck: it gives way.
        if (auto oldest = clients_.front().lock()) oldest->Close();
        clients_.pop_front();
      }
      auto c = std::make_shared<Client>(std::move(socket), this);
      clients_.push_back(c);
      c->Start();
    }
    Accept();
  });
}

std::string MetricsHttpServer::Render() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : collectables_) {
    auto f = c->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()),
                    std::make_move_iterator(f.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace kvstore::server
