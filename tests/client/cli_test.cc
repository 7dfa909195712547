// kvstore-cli end to end: starts the real kvstored on a free loopback port with a temp data
// dir, runs the real kvstore-cli binary, and checks stdout, stderr and exit codes.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "eventually.h"
#include "kvstore/client.h"
#include "kvstore/key.h"
#include "status_matchers.h"
#include "test_daemon.h"

extern char** environ;

namespace kvstore {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out << data;
}

// Spawns argv with stdin/stdout/stderr redirected to files; returns the pid.
pid_t Spawn(const std::vector<std::string>& args, const fs::path& in, const fs::path& out,
            const fs::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// Waits for pid; a child still running after `limit` is killed (a hang fails the test
// instead of eating the CTest timeout) and reported as -1.
int WaitExit(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "kvstore-cli did not finish within " << limit.count() << " s; killed";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/kvstore-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    WriteFile(dir_ / "empty", "");
    // The shared harness: free ports, a temp data dir, and the daemon dies
    // with this test process (parent-death signal) if it crashes.
    testing::DaemonOptions o;
    o.args = {"--memory", "64MiB"};
    std::string error;
    daemon_ = testing::TestDaemon::Start(o, &error);
    ASSERT_NE(daemon_, nullptr) << error;
    addr_ = daemon_->address();
  }

  static void TearDownTestSuite() {
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs kvstore-cli --addr <daemon> args...; stdin from `input`.
  CliResult Cli(std::vector<std::string> args, const std::string& input = "",
                bool with_addr = true) {
    std::vector<std::string> argv = {KVSTORE_CLI_PATH};
    if (with_addr) {
      argv.push_back("--addr");
      argv.push_back(addr_);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    WriteFile(dir_ / "stdin", input);
    pid_t pid = Spawn(argv, dir_ / "stdin", dir_ / "stdout", dir_ / "stderr");
    CliResult r;
    if (pid <= 0) return r;
    r.code = WaitExit(pid);
    r.out = ReadFile(dir_ / "stdout");
    r.err = ReadFile(dir_ / "stderr");
    return r;
  }

  // A fresh key per test and tag, so tests do not see each other's entries.
  static std::string TestKey(const std::string& tag = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return NamespaceSeed(std::string(info->name()) + "/" + tag).ToHex();
  }

  static std::string RandomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  }

  static inline fs::path dir_;
  static inline std::string addr_;
  static inline std::unique_ptr<testing::TestDaemon> daemon_;
};

// One line on stderr, prefixed with the program name.
void ExpectOneErrorLine(const CliResult& r) {
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("kvstore-cli: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliTest, PutGetRoundTripIsByteExact) {
  std::string key = TestKey();
  std::string value = RandomBytes(100 * 1024 + 7, 1);
  WriteFile(dir_ / "value.bin", value);
  auto put = Cli({"put", key, (dir_ / "value.bin").string(), "--layout", "test/b16"});
  ASSERT_EQ(put.code, 0) << put.err;
  EXPECT_NE(put.out.find("stored " + key), std::string::npos) << put.out;

  auto get = Cli({"get", key, "-o", (dir_ / "out.bin").string()});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(ReadFile(dir_ / "out.bin"), value);

  auto to_stdout = Cli({"get", key});  // stdout is a file here, not a terminal
  ASSERT_EQ(to_stdout.code, 0) << to_stdout.err;
  EXPECT_EQ(to_stdout.out, value);

  auto again = Cli({"put", key, (dir_ / "value.bin").string()});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("already stored"), std::string::npos) << again.out;
}

TEST_F(CliTest, PutFromStdinAndShow) {
  std::string key = TestKey();
  std::string value = RandomBytes(4096, 2);
  auto put = Cli({"put", key, "-", "--ttl", "5m", "--layout", "llama-tiny/f32"}, value);
  ASSERT_EQ(put.code, 0) << put.err;
  auto show = Cli({"--json", "show", key});
  ASSERT_EQ(show.code, 0) << show.err;
  auto j = nlohmann::json::parse(show.out);
  EXPECT_EQ(j["key"], key);
  EXPECT_EQ(j["size"], 4096);
  EXPECT_EQ(j["layout"], "llama-tiny/f32");
  EXPECT_GT(j["expires_unix_ms"].get<uint64_t>(), 0u);
  auto human = Cli({"show", key});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("4 KiB"), std::string::npos) << human.out;
}

TEST_F(CliTest, MatchCountsLeadingStoredKeys) {
  auto keys =
      Cli({"key", "--namespace", TestKey(), "--block-size", "2", "--tokens", "1,2,3,4,5,6,7"});
  ASSERT_EQ(keys.code, 0) << keys.err;
  std::vector<std::string> k;
  std::istringstream lines(keys.out);
  for (std::string line; std::getline(lines, line);) k.push_back(line);
  ASSERT_EQ(k.size(), 3u);
  ASSERT_EQ(Cli({"put", k[0], "-"}, "a").code, 0);
  ASSERT_EQ(Cli({"put", k[1], "-"}, "b").code, 0);
  auto m = Cli({"match", k[0], k[1], k[2]});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(m.out, "2\n");
  auto m2 = Cli({"match", k[2], k[0]});
  EXPECT_EQ(m2.out, "0\n");
  auto mj = Cli({"--json", "match", k[0], k[1], k[2]});
  EXPECT_EQ(nlohmann::json::parse(mj.out)["matched"], 2);
}

TEST_F(CliTest, RemoveThenNotFound) {
  std::string key = TestKey("a");
  std::string absent = TestKey("absent");
  ASSERT_EQ(Cli({"put", key, "-"}, "value").code, 0);
  auto rm = Cli({"rm", key, absent});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_EQ(rm.out, "removed 1 of 2\n");
  auto get = Cli({"get", key});
  EXPECT_EQ(get.code, 3);
  ExpectOneErrorLine(get);
  auto show = Cli({"show", key});
  EXPECT_EQ(show.code, 3);
}

TEST_F(CliTest, ListShowsEntries) {
  std::string key = TestKey();
  ASSERT_EQ(Cli({"put", key, "-", "--layout", "list-test"}, std::string(3000, 'x')).code, 0);
  auto ls = Cli({"ls", "--limit", "0"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("KEY", 0), 0u) << ls.out;
  EXPECT_NE(ls.out.find(key), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("list-test"), std::string::npos);
  auto lj = Cli({"--json", "ls", "--limit", "0", "--tier", "host"});
  ASSERT_EQ(lj.code, 0) << lj.err;
  auto j = nlohmann::json::parse(lj.out);
  bool found = false;
  for (const auto& e : j["entries"]) found = found || e["key"] == key;
  EXPECT_TRUE(found) << lj.out;
  auto one = Cli({"--json", "ls", "--limit", "1"});
  EXPECT_LE(nlohmann::json::parse(one.out)["entries"].size(), 1u);
  EXPECT_EQ(Cli({"ls", "--tier", "moon"}).code, 2);
}

TEST_F(CliTest, ListPaginatesPastOnePage) {
  // More entries than one List page (1000), stored through the library to keep it quick.
  ClientOptions opts;
  opts.address = addr_;
  auto client = Client::Connect(opts);
  ASSERT_OK(client);
  std::vector<Key> keys;
  std::vector<std::byte> one = {std::byte{1}};
  for (int i = 0; i < 1100; ++i) {
    keys.push_back(NamespaceSeed(TestKey() + std::to_string(i)));
    ASSERT_OK((*client)->Insert(keys.back(), one));
  }
  auto all = Cli({"--json", "ls", "--limit", "0"});
  ASSERT_EQ(all.code, 0) << all.err;
  auto j = nlohmann::json::parse(all.out);
  EXPECT_GE(j["entries"].size(), 1100u);
  EXPECT_EQ(j["more"], false);
  std::set<std::string> seen;
  for (const auto& e : j["entries"]) seen.insert(e["key"].get<std::string>());
  EXPECT_EQ(seen.size(), j["entries"].size()) << "a key was listed twice";
  for (const Key& k : keys) EXPECT_TRUE(seen.count(k.ToHex())) << k.ToHex();
  auto some = Cli({"--json", "ls", "--limit", "1050"});
  ASSERT_EQ(some.code, 0) << some.err;
  auto js = nlohmann::json::parse(some.out);
  EXPECT_EQ(js["entries"].size(), 1050u);
  EXPECT_EQ(js["more"], true);
  auto removed = (*client)->Remove(keys);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, keys.size());
}

TEST_F(CliTest, StatsJsonParses) {
  auto s = Cli({"--json", "stats"});
  ASSERT_EQ(s.code, 0) << s.err;
  auto j = nlohmann::json::parse(s.out);
  for (const char* field : {"tiers", "waiters", "connections", "hits", "misses", "ttl_expired",
                            "evictions", "refused_inserts", "fragmentation"}) {
    EXPECT_TRUE(j.contains(field)) << field;
  }
  auto human = Cli({"stats"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("waiters"), std::string::npos);
  EXPECT_NE(human.out.find("TIER"), std::string::npos);
}

TEST_F(CliTest, DropSelectTimesOutWithExit4) {
  auto start = std::chrono::steady_clock::now();
  auto r = Cli({"drop-select", TestKey(), "--timeout", "300ms"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.code, 4) << r.err;
  ExpectOneErrorLine(r);
  EXPECT_GE(elapsed, 250ms);
}

TEST_F(CliTest, DropSelectTakesTheEntry) {
  std::string key = TestKey();
  std::string value = RandomBytes(4096, 3);
  ASSERT_EQ(Cli({"put", key, "-"}, value).code, 0);
  auto r = Cli({"drop-select", key, "-o", (dir_ / "taken.bin").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_ / "taken.bin"), value);
  EXPECT_EQ(Cli({"get", key}).code, 3);
}

TEST_F(CliTest, DropSelectWaitsForALaterPut) {
  std::string key = TestKey();
  std::string value = RandomBytes(8192, 4);
  fs::path out = dir_ / "waited.bin";
  pid_t waiter = Spawn({KVSTORE_CLI_PATH, "--addr", addr_, "drop-select", key, "--timeout", "20s",
                        "-o", out.string()},
                       dir_ / "empty", dir_ / "waiter.out", dir_ / "waiter.err");
  ASSERT_GT(waiter, 0);
  // Put only once the waiter is registered, so the test covers waking a
  // waiter and not a put that happened to come first.
  ClientOptions opts;
  opts.address = addr_;
  auto client = Client::Connect(opts);
  ASSERT_OK(client);
  ASSERT_TRUE(testing::Eventually([&] {
    auto s = (*client)->Stats();
    return s.ok() && s->waiters >= 1;
  })) << "the drop-select never registered a waiter; its stderr: "
      << ReadFile(dir_ / "waiter.err");
  ASSERT_EQ(Cli({"put", key, "-"}, value).code, 0);
  EXPECT_EQ(WaitExit(waiter), 0) << ReadFile(dir_ / "waiter.err");
  EXPECT_EQ(ReadFile(out), value);
}

TEST_F(CliTest, UnreachableDaemonExits5) {
  std::string dead = "127.0.0.1:" + std::to_string(testing::FreePort());
  auto r = Cli({"--addr", dead, "stats"}, "", /*with_addr=*/false);
  EXPECT_EQ(r.code, 5);
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("cannot reach kvstored at " + dead), std::string::npos) << r.err;
}

TEST_F(CliTest, UsageErrorsExit2) {
  auto bad_key = Cli({"get", "nothex"});
  EXPECT_EQ(bad_key.code, 2);
  ExpectOneErrorLine(bad_key);
  EXPECT_NE(bad_key.err.find("64 hex"), std::string::npos) << bad_key.err;
  EXPECT_EQ(Cli({"match", TestKey(), std::string(64, 'z')}).code, 2);
  EXPECT_EQ(Cli({"frobnicate"}).code, 2);
  EXPECT_EQ(Cli({"get"}).code, 2);
  EXPECT_EQ(Cli({"drop-select", TestKey(), "--timeout", "soon"}).code, 2);
  EXPECT_EQ(Cli({"put", TestKey(), (dir_ / "no-such-file").string()}).code, 2);
  auto bad_addr = Cli({"--addr", "nowhere", "stats"}, "", /*with_addr=*/false);
  EXPECT_EQ(bad_addr.code, 2);
  ExpectOneErrorLine(bad_addr);
  EXPECT_EQ(Cli({"key", "--namespace", "n", "--tokens", "1,x"}).code, 2);
  EXPECT_EQ(Cli({"--help"}).code, 0);
}

TEST_F(CliTest, KeyCommandMatchesTheLibrary) {
  auto r = Cli({"key", "--namespace", "llama-tiny/f32/L4/kv2/d32/b16/v1", "--block-size", "16",
                "--tokens", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18"},
               "", /*with_addr=*/false);
  ASSERT_EQ(r.code, 0) << r.err;
  // The checked-in SHA-256 vector (see key_test.cc).
  EXPECT_EQ(r.out, "f424427033f8d83728791034b512b534f0823fa681f996515e4d00c96248f55e\n");
  auto x = Cli({"--json", "key", "--namespace", "ns", "--block-size", "2", "--tokens", "1,2,3,4",
                "--hash", "xxh3"},
               "", false);
  ASSERT_EQ(x.code, 0) << x.err;
  auto j = nlohmann::json::parse(x.out);
  std::vector<uint32_t> tokens = {1, 2, 3, 4};
  auto lib = PrefixKeys(tokens, {.ns = "ns", .block_size = 2, .hash = HashKind::kXxh3});
  ASSERT_EQ(j["keys"].size(), 2u);
  EXPECT_EQ(j["keys"][0], lib[0].ToHex());
  EXPECT_EQ(j["keys"][1], lib[1].ToHex());
}

}  // namespace
}  // namespace kvstore
