#include "etcd_process.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

namespace kvstore::testing {

namespace {

bool Answers(uint16_t port) {
  // etcd answers /health only once it has a leader; a TCP connect is too early.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    std::string req = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      std::string got;
      char buf[512];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
      ok = got.find("\"health\":\"true\"") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace

std::string EtcdProcess::BinaryPath() {
  for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

std::unique_ptr<EtcdProcess> EtcdProcess::Start(std::string* error) {
  if (BinaryPath().empty()) {
    *error = "etcd is not installed (deploy/install-deps.sh installs etcd-server)";
    return nullptr;
  }
  std::unique_ptr<EtcdProcess> e(new EtcdProcess());
  e->dir_ = std::make_unique<TempDir>("kvstore-etcd");
  for (int attempt = 0; attempt < 3; ++attempt) {
    e->client_port_ = FreePort();
    e->peer_port_ = FreePort();
    if (e->Launch(error)) return e;
  }
  return nullptr;
}

bool EtcdProcess::Launch(std::string* error) {
  const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  pid_ = SpawnWithLog({BinaryPath(), "--name", "test", "--data-dir", dir_->path() + "/data",
                       "--listen-client-urls", client, "--advertise-client-urls", client,
                       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                       "--initial-cluster", "test=" + peer, "--log-level", "warn"},
                      dir_->path() + "/etcd.log");
  for (int i = 0; i < 200; ++i) {
    if (!ProcessRunning(&pid_)) break;
    if (Answers(client_port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  *error =
      "etcd did not come up on " + client + "; its log: " + ReadFile(dir_->path() + "/etcd.log");
  StopProcess(&pid_, SIGKILL, std::chrono::seconds(5));
  return false;
}

EtcdProcess::~EtcdProcess() { Stop(); }

std::string EtcdProcess::endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

void EtcdProcess::Stop() {
  if (pid_ > 0) StopProcess(&pid_, SIGTERM, std::chrono::seconds(10));
}

bool EtcdProcess::Restart(std::string* error) {
  Stop();
  return Launch(error);
}

}  // namespace kvstore::testing
