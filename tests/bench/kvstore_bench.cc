// kvstore-bench: bulk insert + drop_select throughput and latency against kvstored, with a
// raw loopback TCP stream and Redis SET + GETDEL of the same payloads measured in the same
// run, interleaved case by case, so the ratios compare figures taken minutes apart at most.
//
//   kvstore-bench                                  # starts its own kvstored and redis-server
//   kvstore-bench --sizes 4MiB --clients 1,8 --seconds 3 --json
//   kvstore-bench --addr 127.0.0.1:7400            # a running daemon
//
// What is measured and how throughput is defined: see kvstore_bench.h.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

#include "bench_util.h"
#include "kvstore/rdma/device.h"
#include "kvstore/units.h"
#include "kvstore_bench.h"

namespace kvstore::bench {
namespace {

// redis-server on PATH, or empty.
std::string FindRedisServer() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/usr/local/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/redis-server";
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Result<std::vector<size_t>> ParseSizes(const std::string& text) {
  std::vector<size_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    KVSTORE_ASSIGN_OR_RETURN(uint64_t n, ParseSize(item));
    if (n == 0) return Status::InvalidArgument("--sizes: a size must be positive");
    out.push_back(n);
  }
  if (out.empty()) return Status::InvalidArgument("--sizes: give at least one size");
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "kvstore-bench: insert + drop_select of large values against kvstored, beside raw "
      "loopback TCP and Redis"};
  std::string addr;
  std::string kvstored = DefaultKvstored();
  std::string memory = "2GiB";
  std::string transport = "tcp";
  std::string sizes_text = "256KiB,4MiB,32MiB";
  std::vector<int> client_counts = {1, 2, 8};
  std::string redis_binary = FindRedisServer();
  bool no_redis = false;
  bool json = false;
  RunLimits limits;
  int rounds = 2;
  app.add_option("--addr", addr, "benchmark a running kvstored at HOST:PORT");
  app.add_option("--kvstored", kvstored, "daemon to start when --addr is not given")
      ->capture_default_str();
  app.add_option("--memory", memory, "--memory for the daemon this program starts")
      ->capture_default_str();
  app.add_option("--transport", transport,
                 "data plane: tcp; local (the store reads/writes this process's memory); "
                 "rdma (needs an RDMA device); auto (what libkvstore negotiates)")
      ->check(CLI::IsMember({"tcp", "local", "rdma", "auto"}))
      ->capture_default_str();
  app.add_option("--sizes", sizes_text, "value sizes, comma-separated")->capture_default_str();
  app.add_option("--clients", client_counts, "concurrent clients, comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--seconds", limits.seconds, "measured time per case")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--ops", limits.max_ops, "at most this many ops per case (0 = no bound)")
      ->capture_default_str();
  app.add_option("--warmup", limits.warmup_ops, "unmeasured ops per client before each case")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--rounds", rounds,
                 "interleaved rounds; the table shows each case's median round and the min-max")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--redis-server", redis_binary, "redis-server to start for the baseline")
      ->capture_default_str();
  app.add_flag("--no-redis", no_redis, "skip the Redis baseline");
  app.add_flag("--json", json, "print JSON instead of a table");
  bool tls = false;
  app.add_flag("--tls", tls,
               "kvstore over TLS (the daemon this program starts gets a fresh certificate; "
               "needs the openssl tool; implies --transport tcp); raw-tcp stays plaintext");
  CLI11_PARSE(app, argc, argv);

  auto sizes = ParseSizes(sizes_text);
  if (!sizes.ok()) {
    std::cerr << "kvstore-bench: " << sizes.status().message() << std::endl;
    return 2;
  }

  if (transport == "rdma") {
    std::string reason;
    if (!rdma::RdmaDevicesPresent(&reason)) {
      std::cerr << "kvstore-bench: --transport rdma is unavailable on this machine: " << reason
                << ". Nothing was measured; run with --transport tcp (the default)." << std::endl;
      return 3;
    }
  }

  std::vector<std::string> daemon_args;
  std::string tls_ca;
  if (tls) {
    if (!addr.empty()) {
      std::cerr << "kvstore-bench: --tls starts its own daemon; drop --addr" << std::endl;
      return 2;
    }
    char tmpl[] = "/tmp/kvstore-bench-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 5;
    std::string d = tmpl;
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = "cd " + d + " && set -e; exec >openssl.log 2>&1; openssl req -x509" + key +
                         " -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca; openssl req" +
                         key + " -keyout server.key -out server.csr -subj /CN=127.0.0.1;" +
                         " printf 'subjectAltName=IP:127.0.0.1' > ext; openssl x509 -req -in " +
                         "server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem " +
                         "-days 2 -extfile ext";
    if (std::system(script.c_str()) != 0) {
      std::cerr << "kvstore-bench: --tls: openssl could not make a certificate (log in " << d
                << "/openssl.log)" << std::endl;
      return 5;
    }
    daemon_args = {"--tls-cert", d + "/server.pem", "--tls-key", d + "/server.key"};
    tls_ca = d + "/ca.pem";
    transport = "tcp";
  }
  DaemonProcess daemon;
  if (addr.empty()) {
    if (Status s = daemon.Start(kvstored, memory, daemon_args, tls_ca); !s.ok()) {
      std::cerr << "kvstore-bench: cannot start kvstored: " << s.ToString() << std::endl;
      return 5;
    }
    addr = daemon.address();
  }
  pid_t daemon_pid = daemon.pid();

  BenchReport report;
  report.addr = addr;
  report.transport = tls ? "tcp+tls" : transport;
  report.seconds_per_case = limits.seconds;
  report.max_ops = limits.max_ops;
  report.rounds = rounds;
  report.load_before = LoadAverage();

  RedisProcess redis;
  bool have_redis = false;
  if (no_redis) {
    report.redis_note = "skipped (--no-redis)";
  } else if (redis_binary.empty()) {
    report.redis_note = "redis-server is not installed (apt-get install redis-server); skipped";
  } else if (Status s = redis.Start(redis_binary); !s.ok()) {
    report.redis_note = "could not start " + redis_binary + ": " + s.ToString() + "; skipped";
  } else {
    have_redis = true;
  }

  uint64_t run = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  uint32_t case_id = 0;
  for (int round = 0; round < rounds; ++round) {
    for (size_t size : *sizes) {
      for (int clients : client_counts) {
        if (!json) {
          std::cerr << "round " << round + 1 << "/" << rounds << ": " << FormatSize(size) << " x "
                    << clients << " clients" << std::endl;
        }
        // Alternate the order between rounds so no system always runs first.
        std::vector<int> order = {0, 1, 2};
        if (round % 2 == 1) order = {2, 1, 0};
        for (int which : order) {
          BulkResult r;
          ++case_id;
          if (which == 0) {
            r = RunRawTcpBulk(size, clients, limits);
          } else if (which == 1) {
            r = RunStoreBulk(addr, transport, daemon_pid, size, clients, limits, run, case_id,
                             tls_ca);
          } else if (have_redis) {
            r = RunRedisBulk(redis.port(), redis.pid(), size, clients, limits, run, case_id);
          } else {
            continue;
          }
          r.round = round;
          report.all.push_back(std::move(r));
        }
      }
    }
  }
  redis.Stop();
  report.load_after = LoadAverage();
  MeasurePerByteCosts(4 << 20, &report.xxh3_gbps, &report.memcpy_gbps);

  if (json) {
    PrintJson(report);
  } else {
    PrintTable(report);
  }
  int errors = 0;
  for (const BulkResult& r : report.all) errors += r.errors > 0;
  int daemon_exit = daemon.Stop();  // reports on stderr if it died or exited badly
  if (daemon_pid > 0 && daemon_exit != 0) return 5;
  return errors > 0 ? 5 : 0;
}

}  // namespace
}  // namespace kvstore::bench

int main(int argc, char** argv) { return kvstore::bench::Main(argc, argv); }
