// Uses only the installed client API: connect, keys, insert, select, drop_select.
// Usage: consumer HOST:PORT; exits 0 and prints "installed libkvstore OK" on success.
#include <kvstore/client.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

namespace {
int Fail(const char* what, const kvstore::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
    return 2;
  }
  // The fixed key vector of tests/client/key_test.cc: the installed key function is the same.
  std::vector<uint32_t> tokens(40);
  std::iota(tokens.begin(), tokens.end(), 1u);
  auto keys =
      kvstore::PrefixKeys(tokens, {.ns = "llama-tiny/f32/L4/kv2/d32/b16/v1", .block_size = 16});
  if (keys.size() != 2 ||
      keys[0].ToHex() != "f424427033f8d83728791034b512b534f0823fa681f996515e4d00c96248f55e") {
    std::fprintf(stderr, "key function differs from the fixed vectors\n");
    return 1;
  }
  kvstore::ClientOptions options;
  options.address = argv[1];
  options.client_name = "install-test";
  auto client = kvstore::Client::Connect(options);
  if (!client.ok()) return Fail("connect", client.status());
  std::vector<std::byte> value(100000);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::byte>(i * 7 + 3);
  auto stored = (*client)->Insert(keys[0], value, {.layout = "install-test"});
  if (!stored.ok()) return Fail("insert", stored.status());
  auto sel = (*client)->Select(std::span(keys).first(1));
  if (!sel.ok()) return Fail("select", sel.status());
  if ((*sel)[0].value != value || (*sel)[0].meta.checksum != kvstore::ValueChecksum(value)) {
    std::fprintf(stderr, "select returned other bytes\n");
    return 1;
  }
  std::vector<std::byte> out(value.size());
  std::span<std::byte> dst[] = {out};
  auto took = (*client)->DropSelectInto(std::span(keys).first(1), dst, std::chrono::seconds(5));
  if (!took.ok()) return Fail("drop_select", took.status());
  if (out != value) {
    std::fprintf(stderr, "drop_select returned other bytes\n");
    return 1;
  }
  auto left = (*client)->MatchPrefix(keys);
  if (!left.ok()) return Fail("match_prefix", left.status());
  if (*left != 0) {
    std::fprintf(stderr, "the entry is still stored after drop_select\n");
    return 1;
  }
  std::printf("installed libkvstore OK\n");
  return 0;
}
