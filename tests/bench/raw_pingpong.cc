#include "raw_pingpong.h"

#include "loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace kvstore::bench {
namespace {

constexpr size_t kMessage = 64;

}  // namespace

CaseResult RunRawPingPong(int threads, double seconds) {
  auto fail = [&](const std::string& why) {
    CaseResult r;
    r.name = "raw tcp 64B ping-pong";
    r.threads = threads;
    r.errors = 1;
    r.first_error = why;
    return r;
  };
  std::vector<Fd> clients;
  std::vector<Fd> servers;
  if (std::string e = ConnectLoopbackPairs(threads, &clients, &servers); !e.empty()) {
    return fail("raw ping-pong: " + e);
  }
  // Echo threads run until their client shuts its side down.
  std::vector<std::thread> echo;
  for (int t = 0; t < threads; ++t) {
    echo.emplace_back([fd = servers[t].get()] {
      char buf[kMessage];
      while (ReadAll(fd, buf, kMessage) && WriteAll(fd, buf, kMessage)) {
      }
    });
  }
  CaseResult r =
      RunTimed("raw tcp 64B ping-pong", threads, seconds, 100, [&](int t, uint64_t) -> Status {
        char buf[kMessage] = {};
        int fd = clients[t].get();
        if (!WriteAll(fd, buf, kMessage) || !ReadAll(fd, buf, kMessage)) {
          return Status::Internal("loopback ping-pong failed");
        }
        return Status::Ok();
      });
  for (auto& c : clients) ::shutdown(c.get(), SHUT_WR);
  for (auto& th : echo) th.join();
  return r;
}

}  // namespace kvstore::bench
