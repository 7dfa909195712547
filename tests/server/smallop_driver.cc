// kvstore-smallop-driver: a fixed number of small requests over one TCP
// connection, for counting what each costs in system calls (run it, or the
// daemon, under `strace -f -c`). Not a benchmark: it prints only the count.
//
//   kvstore-smallop-driver HOST:PORT match N   N match_prefix of 32 keys
//   kvstore-smallop-driver HOST:PORT match1 N  N match_prefix of 1 key
//   kvstore-smallop-driver HOST:PORT insert N  N 4 KiB insert + drop_select
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvstore/client.h"

namespace {

kvstore::Key MakeKey(uint32_t kind, uint64_t i) {
  kvstore::Key k;
  const uint64_t pid = static_cast<uint64_t>(::getpid());
  std::memcpy(k.bytes.data(), &pid, 8);
  std::memcpy(k.bytes.data() + 8, &kind, 4);
  std::memcpy(k.bytes.data() + 16, &i, 8);
  return k;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s HOST:PORT match|match1|insert N\n", argv[0]);
    return 2;
  }
  kvstore::ClientOptions options;
  options.address = argv[1];
  options.transport = "tcp";
  options.max_connections = 1;
  const std::string mode = argv[2];
  const uint64_t n = std::strtoull(argv[3], nullptr, 10);
  auto client = kvstore::Client::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  std::vector<std::byte> value(4096, std::byte{7});
  std::vector<kvstore::Key> prefix;
  for (uint64_t i = 0; i < 32; ++i) {
    prefix.push_back(MakeKey(1, i));
    if (mode != "insert" && !(*client)->Insert(prefix.back(), value).ok()) return 1;
  }
  for (uint64_t i = 0; i < n; ++i) {
    if (mode != "insert") {
      const size_t keys = mode == "match1" ? 1 : prefix.size();
      auto m = (*client)->MatchPrefix(std::span(prefix).first(keys));
      if (!m.ok() || *m != keys) {
        std::fprintf(stderr, "match_prefix failed\n");
        return 1;
      }
    } else {
      kvstore::Key k = MakeKey(2, i);
      auto ins = (*client)->Insert(k, value);
      auto got = (*client)->DropSelect(std::span(&k, 1), std::chrono::seconds(5));
      if (!ins.ok() || !got.ok() || got->size() != 1) {
        std::fprintf(stderr, "insert+drop_select failed\n");
        return 1;
      }
    }
  }
  std::printf("%llu %s requests done\n", static_cast<unsigned long long>(n), mode.c_str());
  return 0;
}
