// kvstore-scale-bench: the index at scale. Fills a fresh kvstored to 1 M, 3 M and
// 10 M small-value keys and prints, per size: daemon memory per key beside its
// value, insert rate, match_prefix rate with p50/p99/max latency while the store
// holds them, and the longest stall any call saw; beside it the same fill into
// Redis (redis-server started here on a free port) for memory per key and GET
// rate at the same concurrency, in interleaved rounds.
//
//   kvstore-scale-bench                              # 1M,3M,10M keys of 64 B
//   kvstore-scale-bench --sizes 1000000 --rounds 3 --threads 4 --seconds 3
//   kvstore-scale-bench --fill-batch 1     # fill with one insert per key
//
// A size is skipped (with the reason) when the machine's available memory
// cannot hold both fills with a margin. Asserts nothing: a program that prints.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "kvstore/client.h"

extern char** environ;

namespace kvstore::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes of resident memory of `pid` (VmRSS), 0 when unreadable.
uint64_t RssBytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

uint64_t MemAvailableBytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoull(line.substr(13)) * 1024;
  }
  return 0;
}

// Key i of this run: 32 bytes of a mixed counter (keys look like the hashes clients send).
Key KeyOf(uint64_t run, uint64_t i) {
  Key k;
  uint64_t x = i ^ run;
  for (int w = 0; w < 4; ++w) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(k.bytes.data() + 8 * w, &z, 8);
  }
  return k;
}

// A child process in its own temp dir; SIGTERM on destruction.
class Child {
 public:
  ~Child() { Stop(); }
  Status Spawn(std::vector<std::string> args, const std::filesystem::path& log) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pid_, args[0].c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return Status::Unavailable("cannot start " + args[0] + ": " + std::strerror(rc));
    }
    return Status::Ok();
  }
  bool Exited() {
    if (pid_ <= 0) return true;
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 400 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A blocking RESP connection: pipelined SETs for the fill, one GET per call for the rate.
class Resp {
 public:
  ~Resp() {
    if (fd_ >= 0) close(fd_);
  }
  Status Connect(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return Status::Unavailable(std::string("redis connect: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return Status::Ok();
  }
  static void AppendBulk(std::string* out, const void* p, size_t n) {
    *out += "$" + std::to_string(n) + "\r\n";
    out->append(static_cast<const char*>(p), n);
    *out += "\r\n";
  }
  bool Send(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t w = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    return true;
  }
  // Reads one reply line (and a bulk body when it is one); false on a closed socket.
  bool ReadReply(std::string* line) {
    if (!ReadLine(line)) return false;
    if (!line->empty() && (*line)[0] == '$') {
      long n = std::stol(line->substr(1));
      if (n >= 0) {
        std::string body;
        if (!ReadN(static_cast<size_t>(n) + 2, &body)) return false;
      }
    }
    return true;
  }

 private:
  bool Fill() {
    ssize_t r = ::recv(fd_, buf_, sizeof(buf_), 0);
    if (r <= 0) return false;
    pos_ = 0;
    len_ = static_cast<size_t>(r);
    return true;
  }
  bool ReadLine(std::string* line) {
    line->clear();
    for (;;) {
      if (pos_ == len_ && !Fill()) return false;
      char c = buf_[pos_++];
      if (c == '\n' && !line->empty() && line->back() == '\r') {
        line->pop_back();
        return true;
      }
      line->push_back(c);
    }
  }
  bool ReadN(size_t n, std::string* out) {
    while (out->size() < n) {
      if (pos_ == len_ && !Fill()) return false;
      size_t take = std::min(n - out->size(), len_ - pos_);
      out->append(buf_ + pos_, take);
      pos_ += take;
    }
    return true;
  }
  int fd_ = -1;
  char buf_[16384];
  size_t pos_ = 0, len_ = 0;
};

struct Timed {
  double ops_per_sec = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;
  uint64_t errors = 0;
  std::string first_error;
};

// `op(thread, i)` on `threads` threads for `seconds`; every call timed.
Timed RunFor(int threads, double seconds, const std::function<Status(int, uint64_t)>& op) {
  std::vector<std::vector<uint32_t>> lat(threads);  // microseconds
  std::atomic<uint64_t> errors{0};
  std::string first_error;
  std::mutex mu;
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        auto t0 = Clock::now();
        if (t0 >= end) break;
        Status s = op(t, i);
        auto t1 = Clock::now();
        lat[t].push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()));
        if (!s.ok() && errors.fetch_add(1) == 0) {
          std::lock_guard lock(mu);
          first_error = s.ToString();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  Timed r;
  r.errors = errors.load();
  r.first_error = first_error;
  if (all.empty()) return r;
  std::sort(all.begin(), all.end());
  r.ops_per_sec = static_cast<double>(all.size()) / secs;
  r.p50_us = all[all.size() / 2];
  r.p99_us = all[all.size() * 99 / 100];
  r.max_us = all.back();
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string Fix(double v, int d) {
  char b[64];
  std::snprintf(b, sizeof(b), "%.*f", d, v);
  return b;
}

std::string Spread(const std::vector<double>& v, int d) {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return Fix(Median(v), d) + " (" + Fix(*lo, d) + "-" + Fix(*hi, d) + ")";
}

struct Options {
  std::string kvstored = DefaultKvstored();
  std::string redis = "/usr/bin/redis-server";
  std::vector<uint64_t> sizes = {1000000, 3000000, 10000000};
  size_t value = 64;
  int threads = 4;
  int fill_threads = 4;
  uint64_t fill_batch = 256;
  std::vector<std::string> daemon_args;
  uint64_t arena_mib = 0;  // 0: sized from the fill
  double seconds = 3;
  int rounds = 3;
};

// Estimated peak memory of both fills of `n` keys (kvstored arena + index,
// Redis), for the skip decision; deliberately generous.
uint64_t NeededBytes(uint64_t n, size_t value) {
  return n * (value + 64 + 450) + n * (value + 200) + (512ull << 20);
}

int RunSize(const Options& o, uint64_t n) {
  const uint64_t run = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  char tmpl[] = "/tmp/kvstore-scale-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 5;
  const std::filesystem::path dir = tmpl;
  std::vector<std::byte> value(o.value);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::byte>(i * 131 + 7);

  // ---- kvstored ----
  // The arena holds every value in its slot class with room to spare; it is
  // pre-faulted at start, so the RSS growth of the fill is the index alone.
  const uint64_t arena =
      o.arena_mib != 0 ? o.arena_mib : ((n * std::max<uint64_t>(o.value, 64) * 5 / 4) >> 20) + 256;
  const uint16_t port = FreeLoopbackPort();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  Child daemon;
  std::vector<std::string> args = {o.kvstored,
                                   "--listen",
                                   addr,
                                   "--metrics",
                                   "",
                                   "--memory",
                                   std::to_string(arena) + "MiB",
                                   "--ttl",
                                   "0",
                                   "--log-level",
                                   "info"};
  args.insert(args.end(), o.daemon_args.begin(), o.daemon_args.end());
  if (Status s = daemon.Spawn(args, dir / "kvstored.log"); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 5;
  }
  ClientOptions copts;
  copts.address = addr;
  copts.client_name = "kvstore-scale-bench";
  copts.max_connections = static_cast<size_t>(std::max(o.threads, o.fill_threads)) + 1;
  std::unique_ptr<Client> client;
  const auto start_deadline = Clock::now() + std::chrono::minutes(3);
  const auto t_spawn = Clock::now();
  while (Clock::now() < start_deadline && !daemon.Exited()) {
    auto c = Client::Connect(copts);
    if (c.ok()) {
      client = std::move(c).value();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (client == nullptr) {
    std::cerr << "kvstored did not come up; see " << (dir / "kvstored.log") << "\n";
    return 5;
  }
  const double start_s = std::chrono::duration<double>(Clock::now() - t_spawn).count();
  const uint64_t rss0 = RssBytes(daemon.pid());

  // The fill: batches of --fill-batch keys in one insert_many each (1: one key
  // per insert), from --fill-threads threads; every call timed.
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> fill_errors{0};
  std::atomic<uint64_t> longest_fill_us{0};
  const uint64_t batch = std::max<uint64_t>(o.fill_batch, 1);
  const auto f0 = Clock::now();
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < o.fill_threads; ++t) {
      ts.emplace_back([&] {
        std::vector<InsertItem> items;
        for (uint64_t i; (i = next.fetch_add(batch)) < n;) {
          const uint64_t m = std::min(batch, n - i);
          items.clear();
          for (uint64_t j = 0; j < m; ++j) items.push_back({KeyOf(run, i + j), value, {}});
          auto a = Clock::now();
          Status failed;
          if (m == 1) {
            auto r = client->Insert(items[0].key, value);
            if (!r.ok()) failed = r.status();
          } else {
            auto r = client->InsertMany(items);
            if (!r.ok()) {
              failed = r.status();
            } else {
              for (auto& one : *r) {
                if (!one.ok()) failed = one.status();
              }
            }
          }
          auto us = static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - a).count());
          uint64_t cur = longest_fill_us.load();
          while (us > cur && !longest_fill_us.compare_exchange_weak(cur, us)) {
          }
          if (!failed.ok() && fill_errors.fetch_add(1) == 0) {
            std::cerr << "insert failed: " << failed.ToString() << "\n";
          }
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  const double fill_s = std::chrono::duration<double>(Clock::now() - f0).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t rss1 = RssBytes(daemon.pid());
  auto stats = client->Stats();

  // ---- Redis ----
  Child redis;
  const uint16_t rport = FreeLoopbackPort();
  bool have_redis = access(o.redis.c_str(), X_OK) == 0;
  uint64_t redis_rss0 = 0, redis_rss1 = 0;
  double redis_fill_s = 0;
  if (have_redis) {
    have_redis = redis
                     .Spawn({o.redis, "--port", std::to_string(rport), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir",
                             dir.string(), "--loglevel", "warning"},
                            dir / "redis.log")
                     .ok();
    Resp probe;
    for (int i = 0; i < 100 && have_redis; ++i) {
      Resp c;
      if (c.Connect(rport).ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (have_redis) {
    redis_rss0 = RssBytes(redis.pid());
    const auto r0 = Clock::now();
    Resp c;
    if (!c.Connect(rport).ok()) have_redis = false;
    for (uint64_t i = 0; have_redis && i < n; i += 1000) {
      std::string batch;
      const uint64_t m = std::min<uint64_t>(1000, n - i);
      for (uint64_t j = 0; j < m; ++j) {
        Key k = KeyOf(run, i + j);
        batch += "*3\r\n$3\r\nSET\r\n";
        Resp::AppendBulk(&batch, k.bytes.data(), k.bytes.size());
        Resp::AppendBulk(&batch, value.data(), value.size());
      }
      if (!c.Send(batch)) have_redis = false;
      std::string line;
      for (uint64_t j = 0; have_redis && j < m; ++j) {
        if (!c.ReadReply(&line) || line != "+OK") have_redis = false;
      }
    }
    redis_fill_s = std::chrono::duration<double>(Clock::now() - r0).count();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    redis_rss1 = RssBytes(redis.pid());
  }

  // ---- Interleaved rounds: match_prefix (1 stored key) vs Redis GET, same threads ----
  std::vector<double> mp_rate, get_rate, mp_p50, mp_p99, mp_max, get_p50, get_p99, get_max;
  double mp_max_all = 0;
  std::vector<std::unique_ptr<Resp>> conns;
  for (int t = 0; have_redis && t < o.threads; ++t) {
    conns.push_back(std::make_unique<Resp>());
    if (!conns.back()->Connect(rport).ok()) have_redis = false;
  }
  for (int round = 0; round < o.rounds; ++round) {
    Timed mp = RunFor(o.threads, o.seconds, [&](int t, uint64_t i) -> Status {
      Key k = KeyOf(run, (i * 7919 + static_cast<uint64_t>(t) * 104729) % n);
      auto m = client->MatchPrefix(std::span(&k, 1));
      if (!m.ok()) return m.status();
      return *m == 1 ? Status::Ok() : Status::Internal("match_prefix missed a stored key");
    });
    mp_rate.push_back(mp.ops_per_sec);
    mp_p50.push_back(mp.p50_us);
    mp_p99.push_back(mp.p99_us);
    mp_max.push_back(mp.max_us);
    mp_max_all = std::max(mp_max_all, mp.max_us);
    if (mp.errors > 0) std::cerr << "match_prefix errors: " << mp.first_error << "\n";
    if (!have_redis) continue;
    Timed get = RunFor(o.threads, o.seconds, [&](int t, uint64_t i) -> Status {
      Key k = KeyOf(run, (i * 7919 + static_cast<uint64_t>(t) * 104729) % n);
      std::string cmd = "*2\r\n$3\r\nGET\r\n";
      Resp::AppendBulk(&cmd, k.bytes.data(), k.bytes.size());
      std::string line;
      if (!conns[t]->Send(cmd) || !conns[t]->ReadReply(&line)) {
        return Status::Unavailable("redis connection lost");
      }
      return line == "$" + std::to_string(value.size()) ? Status::Ok()
                                                        : Status::Internal("GET: " + line);
    });
    get_rate.push_back(get.ops_per_sec);
    get_p50.push_back(get.p50_us);
    get_p99.push_back(get.p99_us);
    get_max.push_back(get.max_us);
  }
  const uint64_t rss2 = RssBytes(daemon.pid());

  // ---- Report ----
  const double per_key = (static_cast<double>(rss1) - static_cast<double>(rss0)) / n;
  std::cout << "\n== " << n << " keys of " << o.value << " B values ==\n";
  std::cout << "kvstored: arena " << arena << " MiB pre-faulted; up in " << Fix(start_s, 1)
            << " s; RSS " << (rss0 >> 20) << " MiB empty -> " << (rss1 >> 20) << " MiB full -> "
            << (rss2 >> 20) << " MiB after the rounds\n";
  std::cout << "kvstored memory per key beside its value (RSS delta / keys; value slots are in "
               "the pre-faulted arena): "
            << Fix(per_key, 1) << " B\n";
  if (stats.ok() && !stats->tiers.empty()) {
    std::cout << "kvstored host tier: " << stats->tiers[0].entries << " entries, "
              << stats->tiers[0].bytes << " value bytes in " << stats->tiers[0].used_bytes
              << " slot bytes (" << Fix(static_cast<double>(stats->tiers[0].used_bytes) / n, 1)
              << " B/key), fragmentation " << Fix(stats->fragmentation, 3) << "\n";
  }
  std::cout << "kvstored insert: " << Fix(n / fill_s, 0) << " keys/s (" << o.fill_threads
            << " threads, "
            << (batch == 1 ? std::string("one key per insert")
                           : std::to_string(batch) + " keys per insert_many")
            << ", " << Fix(fill_s, 1) << " s, " << fill_errors.load() << " failed calls), longest "
            << (batch == 1 ? "insert " : "insert_many ") << Fix(longest_fill_us.load() / 1000.0, 2)
            << " ms\n";
  std::cout << "kvstored match_prefix (1 key, " << o.threads << " threads), median (min-max) of "
            << o.rounds << " rounds: " << Spread(mp_rate, 0) << " ops/s; p50 " << Spread(mp_p50, 0)
            << " us, p99 " << Spread(mp_p99, 0) << " us, max " << Spread(mp_max, 0) << " us\n";
  std::cout << "longest stall seen (any kvstored call while full or filling): "
            << Fix(std::max<double>(mp_max_all, longest_fill_us.load()) / 1000.0, 2) << " ms"
            << (batch > 1 ? " (a fill call carries " + std::to_string(batch) + " keys)" : "")
            << "\n";
  if (have_redis) {
    const double rpk = (static_cast<double>(redis_rss1) - static_cast<double>(redis_rss0)) / n;
    std::cout << "redis: memory per key " << Fix(rpk, 1) << " B (RSS delta / keys, value "
              << o.value << " B included; " << Fix(rpk - o.value, 1)
              << " B beside it); pipelined SET fill " << Fix(n / redis_fill_s, 0) << " keys/s\n";
    std::cout << "redis GET (" << o.threads
              << " connections, one GET per round trip): " << Spread(get_rate, 0) << " ops/s; p50 "
              << Spread(get_p50, 0) << " us, p99 " << Spread(get_p99, 0) << " us, max "
              << Spread(get_max, 0) << " us\n";
    std::vector<double> ratio;
    for (size_t i = 0; i < std::min(mp_rate.size(), get_rate.size()); ++i) {
      ratio.push_back(mp_rate[i] / get_rate[i]);
    }
    std::cout << "ratio match_prefix / redis GET per round: " << Spread(ratio, 2)
              << "; per-key memory kvstored (beside value) / redis (beside value): "
              << Fix(per_key / (rpk - o.value), 2) << "\n";
  } else {
    std::cout << "redis: not measured (" << o.redis << " missing or did not start)\n";
  }
  std::cout << std::flush;
  client.reset();
  daemon.Stop();
  redis.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"kvstore-scale-bench: the index at 1M/3M/10M keys beside Redis"};
  app.add_option("--kvstored", o.kvstored)->capture_default_str();
  app.add_option("--redis-server", o.redis)->capture_default_str();
  app.add_option("--sizes", o.sizes, "key counts")->delimiter(',')->capture_default_str();
  app.add_option("--value", o.value, "value bytes")->capture_default_str();
  app.add_option("--threads", o.threads, "threads for match_prefix and GET")->capture_default_str();
  app.add_option("--fill-threads", o.fill_threads, "threads inserting")->capture_default_str();
  app.add_option("--arena-mib", o.arena_mib,
                 "kvstored --memory in MiB (0: what the fill needs in 64 B slots plus room); "
                 "a daemon with larger small slots needs more")
      ->capture_default_str();
  app.add_option("--kvstored-arg", o.daemon_args,
                 "one more kvstored argument (repeat: --kvstored-arg=--io-threads "
                 "--kvstored-arg=1)");
  app.add_option("--fill-batch", o.fill_batch,
                 "keys per insert_many while filling (1: one insert per key)")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "per measured round")->capture_default_str();
  app.add_option("--rounds", o.rounds, "interleaved rounds (>= 3 for a median)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  int rc = 0;
  for (uint64_t n : o.sizes) {
    const uint64_t need = NeededBytes(n, o.value);
    const uint64_t avail = MemAvailableBytes();
    if (need > avail) {
      std::cout << "\n== " << n << " keys: skipped: needs about " << (need >> 20)
                << " MiB (kvstored arena and index plus Redis), the machine has " << (avail >> 20)
                << " MiB available ==\n"
                << std::flush;
      continue;
    }
    rc = std::max(rc, RunSize(o, n));
  }
  return rc;
}

}  // namespace
}  // namespace kvstore::bench

int main(int argc, char** argv) { return kvstore::bench::Main(argc, argv); }
