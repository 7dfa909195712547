// The raw loopback TCP baseline of kvstore-bench: per client, one connected socket pair in
// this process and a peer thread that plays the server with no store logic at all.
//   put: 9-byte header + `size` bytes, peer reads them into its buffer and answers 1 byte;
//   get: 9-byte header, peer writes `size` bytes from its buffer.
// The same two transfers per op as insert + drop_select, so the ratio compares like with like.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "kvstore_bench.h"
#include "loopback.h"

namespace kvstore::bench {
namespace {

constexpr char kPut = 'P';
constexpr char kGet = 'G';
constexpr size_t kHeader = 9;  // op byte + 64-bit length

// Serves put/get on `fd` until the client shuts its side down.
void PeerLoop(int fd, size_t size) {
  std::vector<std::byte> buf(size);
  FillPattern(buf, 7);
  char header[kHeader];
  while (ReadAll(fd, header, kHeader)) {
    uint64_t len = 0;
    std::memcpy(&len, header + 1, 8);
    if (len > size) return;
    if (header[0] == kPut) {
      char ack = 'k';
      if (!ReadAll(fd, buf.data(), len) || !WriteAll(fd, &ack, 1)) return;
    } else if (header[0] == kGet) {
      if (!WriteAll(fd, buf.data(), len)) return;
    } else {
      return;
    }
  }
}

}  // namespace

BulkResult RunRawTcpBulk(size_t size, int clients, const RunLimits& limits) {
  auto fail = [&](const std::string& why) {
    BulkResult r;
    r.system = "raw-tcp";
    r.size = size;
    r.clients = clients;
    r.errors = 1;
    r.first_error = why;
    return r;
  };
  std::vector<Fd> ends;
  std::vector<Fd> peers;
  if (std::string e = ConnectLoopbackPairs(clients, &ends, &peers); !e.empty()) {
    return fail("raw tcp: " + e);
  }
  std::vector<std::thread> peer_threads;
  for (int t = 0; t < clients; ++t) peer_threads.emplace_back(PeerLoop, peers[t].get(), size);

  // Per-client source and destination buffers, touched before the clock starts.
  std::vector<std::vector<std::byte>> src(clients), dst(clients);
  for (int t = 0; t < clients; ++t) {
    src[t].resize(size);
    dst[t].resize(size);
    FillPattern(src[t], static_cast<uint64_t>(t) + 1);
    FillPattern(dst[t], 0);
  }
  BulkResult r = RunBulk(
      "raw-tcp", size, clients, limits, -1, [&](int t, uint64_t, PhaseTimes* times) -> Status {
        int fd = ends[t].get();
        char header[kHeader];
        uint64_t n = size;
        std::memcpy(header + 1, &n, 8);
        uint64_t t0 = NowNs();
        header[0] = kPut;
        char ack = 0;
        if (!WriteAll(fd, header, kHeader, MSG_MORE) || !WriteAll(fd, src[t].data(), size) ||
            !ReadAll(fd, &ack, 1)) {
          return Status::Internal("raw tcp put failed");
        }
        uint64_t t1 = NowNs();
        header[0] = kGet;
        if (!WriteAll(fd, header, kHeader) || !ReadAll(fd, dst[t].data(), size)) {
          return Status::Internal("raw tcp get failed");
        }
        uint64_t t2 = NowNs();
        times->put_ns = t1 - t0;
        times->get_ns = t2 - t1;
        return Status::Ok();
      });
  for (auto& e : ends) ::shutdown(e.get(), SHUT_WR);
  for (auto& th : peer_threads) th.join();
  return r;
}

}  // namespace kvstore::bench
