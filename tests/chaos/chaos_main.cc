// kvstore-chaos: faults against a loaded kvstored, with the store's promises
// checked after every cycle.
//
// Scenarios (all by default; --scenarios picks):
//   kill9    kill -9 of the daemon under insert and read load, restart on the
//            same data dir with spill; once in the default mode and, when this
//            kvstored has --durability, once in the durable mode.
//   clients  client processes killed (SIGKILL) mid-insert and mid-delivery.
//   diskfull the spill directory on a size-limited tmpfs (needs root; skipped
//            with the reason otherwise), filled until the store refuses, then
//            a kill -9 and restart on the full disk.
// Checked after every cycle: no corrupt read (sizes, checksums and bytes match
// what was written: values are derived from their keys), nothing listed that
// was never written, in durable mode nothing acknowledged lost, and once
// everything is removed the host tier and the spill disk are back to their
// baseline and no connection, waiter or reservation is left over.
//
// Exit status 0 when every invariant held, 1 otherwise. The last line is a
// summary: cycles, inserts acknowledged, lost (default vs durable), corrupt reads.
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "chaos_child.h"
#include "kvstore/units.h"
#include "ledger.h"
#include "test_daemon.h"

namespace kvstore::chaos {
namespace {

using namespace std::chrono_literals;
using testing::TestDaemon;

struct Options {
  int cycles = 3;             // kill -9 cycles per mode
  double load_seconds = 2.0;  // longest load before a kill
  int client_rounds = 3;      // rounds of killed clients
  int writers = 3;            // insert threads in the kill9 load
  std::string scenarios = "kill9,clients,diskfull";
  std::string memory = "16MiB";  // small, so the load spills
  uint64_t seed = 0;             // 0 = from the clock
};

struct Totals {
  int cycles = 0;
  uint64_t acknowledged = 0;
  uint64_t lost_default = 0;
  uint64_t lost_durable = 0;
  uint64_t corrupt = 0;
  uint64_t phantom = 0;
  uint64_t read = 0;
  uint64_t unaccounted_takes = 0;
  uint64_t read_retried = 0;  // read-backs refused at first (ResourceExhausted)
  uint64_t read_refused = 0;  // read-backs refused even after retries
  int failures = 0;
  std::string durable_note = "not run";
  std::string diskfull_note = "not run";
};

Totals g_totals;
std::mt19937_64 g_rng;

void Fail(const std::string& what) {
  ++g_totals.failures;
  std::printf("FAIL: %s\n", what.c_str());
  std::fflush(stdout);
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The daemon's --help, to find out whether it has --durability.
std::string DaemonHelp() {
  std::string out;
  std::string cmd = testing::KvstoredPath() + " --help 2>&1";
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

std::unique_ptr<TestDaemon> Start(const std::vector<std::string>& args, const std::string& dir) {
  testing::DaemonOptions o;
  o.args = args;
  o.data_dir = dir;
  std::string error;
  auto d = TestDaemon::Start(o, &error);
  if (!d) Fail("kvstored did not start: " + error);
  return d;
}

std::unique_ptr<Client> Connect(const TestDaemon& d, const std::string& transport = "auto") {
  ClientOptions o;
  o.address = d.address();
  o.transport = transport;
  o.io_timeout = 30s;
  o.max_connections = 16;
  auto c = Client::Connect(o);
  if (!c.ok()) {
    Fail("connect to " + d.address() + ": " + c.status().ToString());
    return nullptr;
  }
  return std::move(c).value();
}

uint64_t RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// Removes every listed key, then waits for the store to be back at its
// baseline: no entries, nothing used in the host tier, spill disk no larger
// than `disk_slack` (the open segment may stay), one connection (ours), no
// waiters. Prints what stayed when it is not.
void CheckBaseline(Client& client, TestDaemon& d, const VerifyResult& v, Ledger& ledger,
                   uint64_t disk_slack, const std::string& where) {
  for (size_t i = 0; i < v.present.size(); i += 64) {
    std::span<const Key> batch(v.present.data() + i, std::min<size_t>(64, v.present.size() - i));
    auto r = client.Remove(batch);
    if (!r.ok()) Fail(where + ": remove: " + r.status().ToString());
    for (const Key& k : batch) ledger.Forget(k);
  }
  StoreStats last;
  bool back = Eventually(
      [&] {
        auto s = client.Stats();
        if (!s.ok()) return false;
        last = *s;
        for (const auto& t : s->tiers) {
          if (t.entries != 0 || t.bytes != 0) return false;
          if (t.tier == Tier::kHost && t.used_bytes != 0) return false;
          if (t.tier == Tier::kSpill && t.used_bytes > disk_slack) return false;
        }
        return s->waiters == 0 && s->connections <= 1;
      },
      15s);
  std::string tiers;
  for (const auto& t : last.tiers) {
    tiers += std::string(TierName(t.tier)) + " entries=" + std::to_string(t.entries) +
             " used=" + std::to_string(t.used_bytes) + " ";
  }
  std::printf(
      "  baseline after removing everything: %s waiters=%llu connections=%llu rss=%llu KiB\n",
      tiers.c_str(), static_cast<unsigned long long>(last.waiters),
      static_cast<unsigned long long>(last.connections),
      static_cast<unsigned long long>(RssKiB(d.pid())));
  if (!back) Fail(where + ": memory, disk or connections did not return to baseline: " + tiers);
}

void Account(const VerifyResult& v, bool durable, const std::string& where) {
  g_totals.corrupt += v.corrupt;
  g_totals.phantom += v.phantom;
  g_totals.read += v.read;
  (durable ? g_totals.lost_durable : g_totals.lost_default) += v.lost;
  g_totals.read_retried += v.retried;
  g_totals.read_refused += v.refused;
  std::printf(
      "  %s: listed=%llu read=%llu lost=%llu corrupt=%llu phantom=%llu reads_retried=%llu "
      "reads_refused=%llu%s%s\n",
      where.c_str(), static_cast<unsigned long long>(v.listed),
      static_cast<unsigned long long>(v.read), static_cast<unsigned long long>(v.lost),
      static_cast<unsigned long long>(v.corrupt), static_cast<unsigned long long>(v.phantom),
      static_cast<unsigned long long>(v.retried), static_cast<unsigned long long>(v.refused),
      v.first_refusal.empty() ? "" : " first refusal: ", v.first_refusal.substr(0, 200).c_str());
  if (v.corrupt || v.phantom) Fail(where + ": " + v.first_problem);
  if (durable && v.lost)
    Fail(where + ": durable mode lost " + std::to_string(v.lost) + " acknowledged inserts");
  std::fflush(stdout);
}

// ------------------------------------------------------------------ kill9

// Refused inserts during a load: how many, and the first reason.
class LoadErrors {
 public:
  void Add(const Status& s) {
    std::lock_guard lock(mu_);
    if (count_++ == 0) first_ = s.ToString();
  }
  uint64_t count() const {
    std::lock_guard lock(mu_);
    return count_;
  }
  std::string first() const {
    std::lock_guard lock(mu_);
    return first_;
  }

 private:
  mutable std::mutex mu_;
  uint64_t count_ = 0;
  std::string first_;
};

// Inserts (and reads back) until `stop`; acknowledged inserts go to the ledger.
void Load(Client& client, Ledger& ledger, uint64_t run, std::atomic<uint64_t>& next,
          std::atomic<bool>& stop, std::atomic<uint64_t>& corrupt, bool reader,
          LoadErrors& errors) {
  std::mt19937_64 rng(run ^ next.load());
  while (!stop.load()) {
    if (reader) {
      auto key = ledger.RandomAcked(rng());
      if (!key) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      auto got = client.Select(std::span<const Key>(&*key, 1));
      if (!got.ok()) continue;  // removed, or the daemon is gone
      auto size = ledger.SizeOf(*key);
      if (size && CheckValue(*key, *size, got->front().meta, got->front().value)) ++corrupt;
      continue;
    }
    const uint64_t i = next.fetch_add(1);
    const Key key = ChaosKey(run, i);
    const size_t size = SizeFor(key, 4 << 10, 512 << 10);
    ledger.Attempt(key, size);
    auto r = client.Insert(key, ValueFor(key, size));
    if (r.ok()) {
      ledger.Ack(key);
    } else if (!stop.load()) {
      errors.Add(r.status());
      if (r.status().code() == StatusCode::kResourceExhausted) std::this_thread::sleep_for(10ms);
    }
  }
}

void Kill9(const Options& opt, const std::string& mode, const std::vector<std::string>& mode_args) {
  const bool durable = mode == "durable";
  std::printf("kill9 (%s mode): %d cycles\n", mode.c_str(), opt.cycles);
  testing::TempDir dir("kvstore-chaos-" + mode);
  std::vector<std::string> args = {"--memory", opt.memory, "--spill",     "2GiB",
                                   "--ttl",    "0",        "--max-value", "8MiB"};
  args.insert(args.end(), mode_args.begin(), mode_args.end());
  Ledger ledger;
  const uint64_t run = g_rng();
  std::atomic<uint64_t> next{0};
  const uint64_t memory_bytes = ParseSize(opt.memory).ok() ? *ParseSize(opt.memory) : 16 << 20;
  auto daemon = Start(args, dir.path());
  if (!daemon) return;
  for (int c = 0; c < opt.cycles; ++c) {
    auto client = Connect(*daemon);
    if (!client) return;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> corrupt_during{0};
    LoadErrors load_errors;
    std::vector<std::thread> threads;
    for (int w = 0; w < opt.writers + 1; ++w) {
      threads.emplace_back(Load, std::ref(*client), std::ref(ledger), run, std::ref(next),
                           std::ref(stop), std::ref(corrupt_during), w == opt.writers,
                           std::ref(load_errors));
    }
    // Load past the host tier (so the kill finds entries in both tiers and
    // demotions in flight), then a random while longer.
    const uint64_t bytes_at_start = ledger.acknowledged_bytes();
    Eventually([&] { return ledger.acknowledged_bytes() - bytes_at_start >= 2 * memory_bytes; },
               20s);
    std::uniform_int_distribution<int> ms(0, static_cast<int>(opt.load_seconds * 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms(g_rng)));
    const uint64_t acked_before = ledger.acknowledged_total();
    uint64_t host_before = 0, spill_before = 0;
    if (auto st = client->Stats(); st.ok()) {
      for (const auto& t : st->tiers)
        (t.tier == Tier::kSpill ? spill_before : host_before) += t.entries;
    }
    daemon->StopWith(SIGKILL);
    stop = true;
    for (auto& t : threads) t.join();
    client.reset();
    g_totals.corrupt += corrupt_during;
    if (corrupt_during) Fail("kill9: corrupt reads during load");
    std::printf(
        " cycle %d: killed after %llu acknowledged inserts so far; just before: %llu entries in "
        "memory tiers, %llu in spill; inserts refused during load: %llu%s%s\n",
        c + 1, static_cast<unsigned long long>(acked_before),
        static_cast<unsigned long long>(host_before), static_cast<unsigned long long>(spill_before),
        static_cast<unsigned long long>(load_errors.count()),
        load_errors.first().empty() ? "" : ", first: ", load_errors.first().substr(0, 200).c_str());

    daemon = Start(args, dir.path());
    if (!daemon) return;
    client = Connect(*daemon);
    if (!client) return;
    VerifyResult v = ledger.Verify(*client);
    Account(v, durable, "after restart");
    if (v.listed < spill_before) {
      std::printf("  note: %llu entries were in spill before the kill, %llu listed after restart\n",
                  static_cast<unsigned long long>(spill_before),
                  static_cast<unsigned long long>(v.listed));
    }
    CheckBaseline(*client, *daemon, v, ledger, 64ull << 20, "kill9 " + mode);
    ++g_totals.cycles;
  }
  g_totals.acknowledged += ledger.acknowledged_total();
  if (durable) g_totals.durable_note = "run";
}

// ---------------------------------------------------------------- clients

void Clients(const Options& opt) {
  std::printf("clients: %d rounds of client processes killed mid-insert and mid-delivery\n",
              opt.client_rounds);
  testing::TempDir dir("kvstore-chaos-clients");
  testing::TempDir logs("kvstore-chaos-logs");
  std::vector<std::string> args = {"--memory",      "256MiB", "--spill",         "2GiB",
                                   "--ttl",         "0",      "--max-value",     "64MiB",
                                   "--ack-timeout", "3s",     "--stall-timeout", "3s"};
  auto daemon = Start(args, dir.path());
  if (!daemon) return;
  auto client = Connect(*daemon);
  if (!client) return;
  Ledger ledger;
  const uint64_t run = g_rng();
  // What the takers compete for: values large enough that a delivery takes a while.
  constexpr uint64_t kShared = 48;
  for (uint64_t i = 0; i < kShared; ++i) {
    const Key key = ChaosKey(run, i);
    const size_t size = SizeFor(key, 1 << 20, 6 << 20);
    ledger.Attempt(key, size);
    auto r = client->Insert(key, ValueFor(key, size));
    if (r.ok()) ledger.Ack(key);
  }
  uint64_t child_base = 1'000'000;
  int takers_killed = 0;
  for (int round = 0; round < opt.client_rounds; ++round) {
    std::vector<pid_t> pids;
    std::vector<std::string> taker_logs;
    for (int k = 0; k < 4; ++k) {
      const bool inserter = k % 2 == 0;
      const std::string transport = k < 2 ? "auto" : "tcp";
      const std::string log =
          logs.path() + "/child-" + std::to_string(round) + "-" + std::to_string(k) + ".log";
      if (inserter) {
        // The child inserts keys child_base.. in order; all may be listed later.
        for (uint64_t i = child_base; i < child_base + kChildKeys; ++i) {
          const Key key = ChaosKey(run, i);
          ledger.Attempt(key, ChildValueSize(key));
        }
      } else {
        taker_logs.push_back(log);
      }
      pids.push_back(testing::SpawnWithLog(
          {SelfPath(), "--child", inserter ? "insert" : "take", "--address", daemon->address(),
           "--transport", transport, "--run", std::to_string(run), "--base",
           std::to_string(inserter ? child_base : 0), "--count",
           std::to_string(inserter ? kChildKeys : kShared), "--seed", std::to_string(g_rng())},
          log));
      if (inserter) child_base += kChildKeys;
    }
    std::uniform_int_distribution<int> ms(200, 1500);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms(g_rng)));
    for (pid_t& p : pids) testing::StopProcess(&p, SIGKILL, 5s);
    takers_killed += 2;
    for (const auto& log : taker_logs) {
      std::istringstream in(testing::ReadFile(log));
      std::string word, hex;
      while (in >> word >> hex) {
        if (word != "took") continue;
        if (auto k = Key::FromHex(hex); k.ok()) ledger.Forget(*k);
      }
    }
    std::printf(" round %d: killed 2 inserters and 2 takers\n", round + 1);
  }
  // A killed taker's delivery goes back after --ack-timeout; a killed
  // inserter's reservation is freed when its connection closes.
  bool settled = Eventually(
      [&] {
        auto s = client->Stats();
        return s.ok() && s->connections <= 1 && s->waiters == 0;
      },
      20s);
  if (!settled) Fail("clients: connections or waiters of killed clients were not released");
  VerifyResult v = ledger.Verify(*client);
  // A taker killed between the store's delivery and its log line took its
  // entry without saying so: at most one per killed taker.
  g_totals.unaccounted_takes += v.lost;
  v.lost = 0;
  Account(v, false, "after killing clients");
  if (g_totals.unaccounted_takes > static_cast<uint64_t>(takers_killed)) {
    Fail("clients: " + std::to_string(g_totals.unaccounted_takes) +
         " entries vanished, more than the " + std::to_string(takers_killed) +
         " killed takers can have taken unlogged");
  }
  CheckBaseline(*client, *daemon, v, ledger, 64ull << 20, "clients");
  g_totals.acknowledged += ledger.acknowledged_total();
  ++g_totals.cycles;
}

// --------------------------------------------------------------- diskfull

uint64_t UsedBytes(const std::string& path) {
  struct statvfs s {};
  if (statvfs(path.c_str(), &s) != 0) return 0;
  return (s.f_blocks - s.f_bfree) * s.f_frsize;
}

void DiskFull(const Options& opt) {
  testing::TempDir mnt("kvstore-chaos-diskfull");
  constexpr uint64_t kFsBytes = 64ull << 20;
  if (geteuid() != 0) {
    g_totals.diskfull_note = "skipped: mounting a size-limited tmpfs needs root";
    std::printf("diskfull: SKIPPED (%s)\n", g_totals.diskfull_note.c_str());
    return;
  }
  if (mount("kvstore-chaos", mnt.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
            "size=64m,mode=0700") != 0) {
    g_totals.diskfull_note =
        std::string("skipped: mount tmpfs: ") + std::strerror(errno) + " (needs CAP_SYS_ADMIN)";
    std::printf("diskfull: SKIPPED (%s)\n", g_totals.diskfull_note.c_str());
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt.path()};
  std::printf("diskfull: spill on a %llu MiB tmpfs, inserting until it is full\n",
              static_cast<unsigned long long>(kFsBytes >> 20));
  const std::string data = mnt.path() + "/data";
  std::vector<std::string> args = {"--memory", "16MiB", "--spill", "1GiB", "--ttl", "0"};
  auto daemon = Start(args, data);
  if (!daemon) return;
  auto client = Connect(*daemon);
  if (!client) return;
  const uint64_t baseline = UsedBytes(mnt.path());
  Ledger ledger;
  const uint64_t run = g_rng();
  std::map<std::string, int> refusals;
  int consecutive = 0;
  uint64_t i = 0;
  for (; i < 2000 && consecutive < 30; ++i) {
    const Key key = ChaosKey(run, i);
    const size_t size = SizeFor(key, 64 << 10, 1 << 20);
    ledger.Attempt(key, size);
    auto r = client->Insert(key, ValueFor(key, size));
    if (r.ok()) {
      ledger.Ack(key);
      consecutive = 0;
    } else {
      ++consecutive;
      // Grouped by what they say, numbers left out.
      std::string what = r.status().message();
      std::erase_if(what, [](char ch) { return ch >= '0' && ch <= '9'; });
      ++refusals[std::string(StatusCodeName(r.status().code())) + ": " + what];
    }
  }
  std::printf("  %llu inserts tried, %llu acknowledged, disk %llu MiB used\n",
              static_cast<unsigned long long>(i),
              static_cast<unsigned long long>(ledger.acknowledged_total()),
              static_cast<unsigned long long>(UsedBytes(mnt.path()) >> 20));
  for (const auto& [what, n] : refusals) std::printf("  refused x%d: %s\n", n, what.c_str());
  if (UsedBytes(mnt.path()) < kFsBytes * 9 / 10) {
    std::printf("  note: the disk did not fill: the store refused inserts before demoting to it\n");
  }
  if (refusals.empty()) Fail("diskfull: the store never refused an insert on a full disk");
  {
    std::istringstream log(daemon->Log());
    std::vector<std::string> lines;
    for (std::string line; std::getline(log, line);) {
      if (line.find("warn") != std::string::npos || line.find("error") != std::string::npos) {
        lines.push_back(line.substr(0, 300));
      }
    }
    if (lines.size() > 8) lines.erase(lines.begin(), lines.end() - 8);
    for (const auto& l : lines) std::printf("  kvstored: %s\n", l.c_str());
  }
  if (client->Ping().ok() == false) Fail("diskfull: kvstored stopped answering on a full disk");
  // Nothing was killed: everything acknowledged must still be there.
  VerifyResult v = ledger.Verify(*client);
  Account(v, false, "on the full disk");
  if (v.lost) Fail("diskfull: acknowledged inserts vanished without a restart");
  // kill -9 on the full disk, restart on it.
  client.reset();
  daemon->StopWith(SIGKILL);
  {
    testing::DaemonOptions o;
    o.args = args;
    o.data_dir = data;
    std::string error;
    daemon = TestDaemon::Start(o, &error);
    if (!daemon) {
      // The spill tier keeps free space for its index, so the restart must work.
      std::printf("  FAIL: kvstored does not restart after kill -9 on a full spill disk: %s\n",
                  error.substr(0, 400).c_str());
      ++g_totals.failures;
      g_totals.diskfull_note = "restart on the full disk failed";
      g_totals.acknowledged += ledger.acknowledged_total();
      ++g_totals.cycles;
      return;
    }
  }
  client = Connect(*daemon);
  if (!client) return;
  VerifyResult after = ledger.Verify(*client);
  Account(after, false, "after kill -9 and restart on the full disk");
  CheckBaseline(*client, *daemon, after, ledger, 64ull << 20, "diskfull");
  const uint64_t used = UsedBytes(mnt.path());
  std::printf("  tmpfs used %llu KiB after removing everything (baseline %llu KiB)\n",
              static_cast<unsigned long long>(used >> 10),
              static_cast<unsigned long long>(baseline >> 10));
  g_totals.acknowledged += ledger.acknowledged_total();
  g_totals.diskfull_note = "run";
  ++g_totals.cycles;
  client.reset();
  daemon->StopWith(SIGTERM);
}

}  // namespace
}  // namespace kvstore::chaos

int main(int argc, char** argv) {
  using namespace kvstore::chaos;
  if (argc > 1 && std::string(argv[1]) == "--child") return ChildMain(argc, argv);
  Options opt;
  CLI::App app{"kvstore-chaos: faults against a loaded kvstored, invariants checked per cycle"};
  app.add_option("--cycles", opt.cycles, "kill -9 cycles per mode")->capture_default_str();
  app.add_option("--load-seconds", opt.load_seconds, "Longest load before a kill")
      ->capture_default_str();
  app.add_option("--client-rounds", opt.client_rounds, "Rounds of killed clients")
      ->capture_default_str();
  app.add_option("--writers", opt.writers, "Insert threads during kill9 load")
      ->capture_default_str();
  app.add_option("--scenarios", opt.scenarios, "Comma list of kill9, clients, diskfull")
      ->capture_default_str();
  app.add_option("--memory", opt.memory, "kvstored --memory for kill9")->capture_default_str();
  app.add_option("--seed", opt.seed, "Random seed (0 = from the clock)");
  CLI11_PARSE(app, argc, argv);
  if (opt.seed == 0) opt.seed = std::random_device{}();
  g_rng.seed(opt.seed);
  std::printf("kvstore-chaos: seed %llu, kvstored %s\n", static_cast<unsigned long long>(opt.seed),
              kvstore::testing::KvstoredPath().c_str());
  signal(SIGPIPE, SIG_IGN);

  auto wants = [&](const std::string& s) { return opt.scenarios.find(s) != std::string::npos; };
  if (wants("kill9")) {
    Kill9(opt, "default", {});
    const std::string help = DaemonHelp();
    if (help.find("--durability") != std::string::npos) {
      Kill9(opt, "durable", DurableArgs(help));
    } else {
      g_totals.durable_note = "skipped: this kvstored has no --durability flag yet";
      std::printf("kill9 (durable mode): SKIPPED (%s)\n", g_totals.durable_note.c_str());
    }
  }
  if (wants("clients")) Clients(opt);
  if (wants("diskfull")) DiskFull(opt);

  std::printf(
      "chaos summary: cycles=%d inserts_acknowledged=%llu lost_default=%llu "
      "lost_durable=%llu (durable: %s) corrupt_reads=%llu phantom_keys=%llu values_verified=%llu "
      "reads_retried=%llu reads_refused=%llu unlogged_takes=%llu diskfull=%s failures=%d\n",
      g_totals.cycles, static_cast<unsigned long long>(g_totals.acknowledged),
      static_cast<unsigned long long>(g_totals.lost_default),
      static_cast<unsigned long long>(g_totals.lost_durable), g_totals.durable_note.c_str(),
      static_cast<unsigned long long>(g_totals.corrupt),
      static_cast<unsigned long long>(g_totals.phantom),
      static_cast<unsigned long long>(g_totals.read),
      static_cast<unsigned long long>(g_totals.read_retried),
      static_cast<unsigned long long>(g_totals.read_refused),
      static_cast<unsigned long long>(g_totals.unaccounted_takes), g_totals.diskfull_note.c_str(),
      g_totals.failures);
  return g_totals.failures == 0 ? 0 : 1;
}
