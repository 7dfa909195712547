// The same-host transport gives a client no power over any memory but what it
// shared: a client naming another process's memory (its pid and addresses, as
// the removed process_vm_readv design allowed), or the daemon's own, can
// neither read nor write a byte of it; ranges outside what the peer shared
// are refused; only sealed memfds are mapped; hello happens once.
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "kvstore/transport/transport.h"
#include "security_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

// A process holding a secret page; as another uid when the test runs as root.
class Victim {
 public:
  Victim() {
    int to_child[2], from_child[2];
    if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) return;
    secret_ = RandomBytes(4096, 4242);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      if (::geteuid() == 0) {  // nobody: another user than the daemon (root) and the attacker
        if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
          ::_exit(3);
        }
      }
      auto* page = static_cast<std::byte*>(
          ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      std::memcpy(page, secret_.data(), 4096);
      uint64_t addr = reinterpret_cast<uintptr_t>(page);
      if (::write(from_child[1], &addr, sizeof(addr)) != sizeof(addr)) ::_exit(4);
      char cmd = 0;
      if (::read(to_child[0], &cmd, 1) != 1) ::_exit(5);
      char intact = std::memcmp(page, secret_.data(), 4096) == 0 ? 1 : 0;
      if (::write(from_child[1], &intact, 1) != 1) ::_exit(6);
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
    if (::read(from_, &addr_, sizeof(addr_)) != sizeof(addr_)) addr_ = 0;
  }
  ~Victim() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(to_);
    ::close(from_);
  }
  pid_t pid() const { return pid_; }
  uint64_t addr() const { return addr_; }
  const std::vector<std::byte>& secret() const { return secret_; }
  // Asks the victim whether its page still holds the secret.
  bool Intact() {
    char cmd = 1, intact = 0;
    if (::write(to_, &cmd, 1) != 1 || ::read(from_, &intact, 1) != 1) return false;
    return intact == 1;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  uint64_t addr_ = 0;
  std::vector<std::byte> secret_;
};

// The pid + nonce offer of the removed transport, naming `pid` and `addr`.
std::vector<std::byte> OldOffer(pid_t pid, uint64_t addr) {
  std::vector<std::byte> o(32);
  o[0] = std::byte{1};
  auto p = static_cast<uint32_t>(pid);
  std::memcpy(o.data() + 4, &p, 4);
  std::memcpy(o.data() + 8, &addr, 8);
  return o;
}

class LocalTransport : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    ClientOptions o;
    o.address = daemon_->address();
    o.transport = "tcp";
    auto c = Client::Connect(o);
    ASSERT_OK(c);
    tcp_ = std::move(c).value();
  }
  size_t Stored(const Key& k) {
    auto n = tcp_->MatchPrefix(std::span(&k, 1));
    return n.ok() ? *n : 99;
  }
  // Every way a request could name memory at (pid, addr) over both sockets:
  // each must be refused, nothing may be stored, and no byte may be written.
  void AttackEveryWay(pid_t pid, uint64_t addr, uint64_t len) {
    auto desc = AddressDescriptor(addr, len);
    Key stolen = TestKey(9001);
    Key planted = TestKey(9002);
    ASSERT_OK(tcp_->Insert(planted, RandomBytes(len, 7)));
    {
      SCOPED_TRACE("tcp");
      RawConn raw(daemon_->address());
      ASSERT_TRUE(raw.connected());
      auto hello = SendHello(raw, "", true, OldOffer(pid, addr));
      ASSERT_TRUE(hello.has_value());
      ASSERT_EQ(hello->code, wire::Code::OK) << hello->message;
      auto ins = InsertFrom(raw, 2, stolen, 0, 0, len, desc);
      ASSERT_TRUE(ins.has_value());
      EXPECT_NE(ins->code, wire::Code::OK);
      auto sel = SelectInto(raw, 3, planted, 0, 0, len, desc);
      ASSERT_TRUE(sel.has_value());
      EXPECT_NE(sel->code, wire::Code::OK);
      auto reg = RegisterRegion(raw, 4, 5, desc);
      ASSERT_TRUE(reg.has_value());
      EXPECT_NE(reg->code, wire::Code::OK);
    }
    {
      SCOPED_TRACE("unix");
      RawConn raw(UnixAddress(*daemon_));
      ASSERT_TRUE(raw.connected());
      auto hello = SendHello(raw, "", true, OldOffer(pid, addr));
      ASSERT_TRUE(hello.has_value());
      ASSERT_EQ(hello->code, wire::Code::OK) << hello->message;
      // A one-off region naming the address.
      auto ins = InsertFrom(raw, 2, stolen, 0, 0, len, desc);
      ASSERT_TRUE(ins.has_value());
      EXPECT_EQ(ins->code, wire::Code::INVALID_ARGUMENT) << ins->message;
      auto sel = SelectInto(raw, 3, planted, 0, 0, len, desc);
      ASSERT_TRUE(sel.has_value());
      EXPECT_EQ(sel->code, wire::Code::INVALID_ARGUMENT) << sel->message;
      // A registered region naming the address, with and without the shared flag.
      auto reg = RegisterRegion(raw, 4, 5, desc);
      ASSERT_TRUE(reg.has_value());
      EXPECT_EQ(reg->code, wire::Code::INVALID_ARGUMENT) << reg->message;
      auto reg2 = RegisterRegion(raw, 5, 6, desc, -1, true);
      ASSERT_TRUE(reg2.has_value());
      EXPECT_EQ(reg2->code, wire::Code::INVALID_ARGUMENT) << reg2->message;
      for (uint32_t region : {5u, 6u}) {
        auto i = InsertFrom(raw, 10 + region, stolen, region, addr, len);
        ASSERT_TRUE(i.has_value());
        EXPECT_EQ(i->code, wire::Code::INVALID_ARGUMENT) << i->message;
        auto s = SelectInto(raw, 20 + region, planted, region, addr, len);
        ASSERT_TRUE(s.has_value());
        EXPECT_EQ(s->code, wire::Code::INVALID_ARGUMENT) << s->message;
      }
    }
    EXPECT_EQ(Stored(stolen), 0u) << "the store read memory the client never shared";
    EXPECT_EQ(Stored(planted), 1u);
    EXPECT_TRUE(daemon_->running());
  }
  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<Client> tcp_;
};

TEST_F(LocalTransport, ClientNamingAnotherProcessCanNeitherReadNorWriteIt) {
  Victim victim;
  ASSERT_GT(victim.pid(), 0);
  ASSERT_NE(victim.addr(), 0u);
  AttackEveryWay(victim.pid(), victim.addr(), 4096);
  EXPECT_TRUE(victim.Intact()) << "the victim's page was written";
}

TEST_F(LocalTransport, ClientNamingTheDaemonsOwnMemoryIsRefused) {
  // A writable mapping of the daemon (its heap or arena), as a scan would find.
  std::ifstream maps("/proc/" + std::to_string(daemon_->pid()) + "/maps");
  uint64_t addr = 0x10000;
  for (std::string line; std::getline(maps, line);) {
    unsigned long long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %4s", &lo, &hi, perms) == 3 && perms[1] == 'w' &&
        hi - lo >= 4096) {
      addr = lo;
      break;
    }
  }
  AttackEveryWay(daemon_->pid(), addr, 4096);
}

TEST_F(LocalTransport, OnlyWhatThePeerSharedIsReachableAndExactlySo) {
  auto shm = transport::SharedMemory::Allocate(64 << 10, "test");
  ASSERT_OK(shm);
  auto mem = (*shm)->bytes();
  auto value = RandomBytes(8 << 10, 11);
  std::memcpy(mem.data() + 4096, value.data(), value.size());
  RawConn raw(UnixAddress(*daemon_));
  ASSERT_TRUE(raw.connected());
  auto hello = SendHello(raw);
  ASSERT_TRUE(hello.has_value());
  ASSERT_EQ(hello->code, wire::Code::OK) << hello->message;
  auto reg = RegisterRegion(raw, 2, 1, {}, (*shm)->fd(), true);
  ASSERT_TRUE(reg.has_value());
  ASSERT_EQ(reg->code, wire::Code::OK) << reg->message;
  Key k = TestKey(1);
  // Outside the 64 KiB: past the end, straddling it, and offsets that overflow.
  struct Range {
    uint64_t offset, length;
  };
  for (Range r : {Range{64 << 10, 1}, Range{(64 << 10) - 100, 200}, Range{UINT64_MAX - 10, 20},
                  Range{8, UINT64_MAX - 4}, Range{1ull << 40, 4096}}) {
    SCOPED_TRACE(std::to_string(r.offset) + "+" + std::to_string(r.length));
    auto ins = InsertFrom(raw, 3, k, 1, r.offset, r.length);
    ASSERT_TRUE(ins.has_value());
    EXPECT_NE(ins->code, wire::Code::OK);
    EXPECT_EQ(Stored(k), 0u);
  }
  // Inside: the store pulls exactly those bytes.
  auto ins = InsertFrom(raw, 4, k, 1, 4096, value.size());
  ASSERT_TRUE(ins.has_value());
  ASSERT_EQ(ins->code, wire::Code::OK) << ins->message;
  auto got = tcp_->Select(std::span(&k, 1));
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  // A push outside is refused and writes nothing; inside lands exactly there.
  std::memset(mem.data(), 0, mem.size());
  auto out = SelectInto(raw, 5, k, 1, (64 << 10) - 10, value.size());
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->code, wire::Code::INVALID_ARGUMENT) << out->message;
  auto in = SelectInto(raw, 6, k, 1, 100, value.size());
  ASSERT_TRUE(in.has_value());
  ASSERT_EQ(in->code, wire::Code::OK) << in->message;
  EXPECT_EQ(std::memcmp(mem.data() + 100, value.data(), value.size()), 0);
  for (size_t i : {size_t{0}, size_t{99}, 100 + value.size(), mem.size() - 1}) {
    EXPECT_EQ(mem[i], std::byte{0}) << "byte " << i << " outside the destination was written";
  }
}

TEST_F(LocalTransport, OnlySealedMemfdsAreMapped) {
  RawConn raw(UnixAddress(*daemon_));
  ASSERT_TRUE(raw.connected());
  auto hello = SendHello(raw);
  ASSERT_TRUE(hello.has_value());
  ASSERT_EQ(hello->code, wire::Code::OK);
  // A memfd that could shrink under the mapping (a copy would then be SIGBUS),
  // and a regular file.
  std::string path = daemon_->data_dir() + "/plain-file";
  struct Case {
    int fd;
    const char* says;
  } cases[] = {{::memfd_create("unsealed", MFD_CLOEXEC), "seal"},
               {::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600), "memfd"}};
  uint32_t region = 1;
  for (const Case& c : cases) {
    ASSERT_GE(c.fd, 0);
    ASSERT_EQ(::ftruncate(c.fd, 65536), 0);
    auto r = RegisterRegion(raw, 1 + region, region, {}, c.fd, true);
    ::close(c.fd);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code, wire::Code::INVALID_ARGUMENT);
    EXPECT_NE(r->message.find(c.says), std::string::npos) << r->message;
    ++region;
  }
  // The connection goes on, and neither became a region.
  auto ins = InsertFrom(raw, 4, TestKey(3), 1, 0, 4096);
  ASSERT_TRUE(ins.has_value());
  EXPECT_EQ(ins->code, wire::Code::INVALID_ARGUMENT);
}

TEST_F(LocalTransport, SecondHelloIsAProtocolErrorOnEitherSocket) {
  for (const std::string& addr : {daemon_->address(), UnixAddress(*daemon_)}) {
    SCOPED_TRACE(addr);
    RawConn raw(addr);
    ASSERT_TRUE(raw.connected());
    auto first = SendHello(raw);
    ASSERT_TRUE(first.has_value());
    ASSERT_EQ(first->code, wire::Code::OK);
    auto second = SendHello(raw);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->code, wire::Code::INVALID_ARGUMENT);
    EXPECT_NE(second->message.find("second hello"), std::string::npos) << second->message;
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  EXPECT_GE(
      daemon_->Metric("kvstore_protocol_errors_total", {{"reason", "second_hello"}}).value_or(0),
      2.0);
}

TEST_F(LocalTransport, ClientLibrarySharesMemfdMemoryOverTheUnixSocket) {
  ClientOptions o;
  o.address = daemon_->address();  // TCP first: the hello says where the Unix socket is
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  EXPECT_EQ((*c)->TransferStats().transport, "local");
  auto src = (*c)->AllocateSharedRegion(1 << 20);
  auto dst = (*c)->AllocateSharedRegion(1 << 20);
  ASSERT_OK(src);
  ASSERT_OK(dst);
  auto value = RandomBytes(1 << 20, 5);
  std::memcpy(src->memory.data(), value.data(), value.size());
  Key k = TestKey(5);
  ASSERT_OK((*c)->InsertFromRegion(k, {src->region, 0, value.size()}));
  auto got = (*c)->DropSelectIntoRegions(
      std::span(&k, 1), std::vector<RegionSlice>{{dst->region, 0, value.size()}}, 5s);
  ASSERT_OK(got);
  EXPECT_EQ(std::memcmp(dst->memory.data(), value.data(), value.size()), 0);
  EXPECT_EQ((*c)->TransferStats().one_sided_transfers, 2u);
  // Memory that is not shared still works: its bytes go in the socket's frames.
  std::vector<std::byte> plain(value.size());
  Key k2 = TestKey(6);
  ASSERT_OK((*c)->Insert(k2, value));
  std::span<std::byte> plain_span(plain);
  ASSERT_OK((*c)->SelectInto(std::span(&k2, 1), std::span(&plain_span, 1)));
  EXPECT_EQ(plain, value);
  EXPECT_EQ((*c)->TransferStats().one_sided_transfers, 2u);
}

}  // namespace
}  // namespace kvstore::testing
