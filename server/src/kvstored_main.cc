// kvstored: the kvstore daemon. Flags (and an optional --config file) are parsed
// here once and passed down.
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "kvstore/server/server.h"
#include "kvstore/units.h"
#include "node_membership.h"

namespace {

using kvstore::server::Durability;
using kvstore::server::ServerOptions;

int Fail(const std::string& what) {
  std::fprintf(stderr, "kvstored: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  ServerOptions o;
  std::string memory = "512MiB", max_value = "256MiB", spill = "0", ttl = "10m";
  std::string device_memory = "0";
  std::string stall = "30s", ack = "60s", hello = "5s", token_file, lease_ttl = "10s";
  std::string unix_socket = "(default)";
  std::string durability = "none";
  bool no_flush = false;
  bool no_local = false;
  bool no_mlock = false;

  CLI::App app{
      "kvstored: a KV-cache store for disaggregated LLM serving.\n"
      "Serves insert / drop_select / select / match_prefix over TCP, Prometheus metrics over "
      "HTTP."};
  app.set_config("--config", "", "Read options from a TOML/INI file (flags override it)");
  app.add_option("--listen", o.listen, "HOST:PORT for clients (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--metrics", o.metrics, "HOST:PORT for Prometheus /metrics; empty disables")
      ->capture_default_str();
  app.add_option("--memory", memory, "Host tier size, e.g. 512MiB, 4GiB")->capture_default_str();
  app.add_option("--device-memory", device_memory,
                 "Device (GPU) tier above the host tier, e.g. 8GiB; 0 disables. Without a GPU "
                 "the tier is absent (logged at start) and values live in the host tier")
      ->capture_default_str();
  app.add_option("--max-value", max_value, "Largest single value accepted")->capture_default_str();
  app.add_option("--data-dir", o.store.data_dir, "Directory for the spill tier and state");
  app.add_option("--spill", spill, "Spill tier capacity on --data-dir, e.g. 100GiB; 0 disables")
      ->capture_default_str();
  app.add_option("--ttl", ttl,
                 "Unclaimed entries expire after this long (e.g. 10m, 30s); 0 = never")
      ->capture_default_str();
  app.add_option("--durability", durability,
                 "When an insert is acknowledged: none (in memory; kill -9 loses the host tier) "
                 "or sync (written through to the spill tier and synced first, group commit; "
                 "needs --spill)")
      ->check(CLI::IsMember({"none", "sync"}))
      ->capture_default_str();
  app.add_flag("--no-flush-on-shutdown", no_flush,
               "On SIGTERM, do not write the host tier to spill first");
  app.add_flag("--no-mlock", no_mlock, "Do not try to pin the host arena with mlock");
  app.add_option("--token-file", token_file,
                 "File holding one shared secret every client must present (the admin of "
                 "namespace 'default'); see --tokens-file for tenants");
  app.add_option("--tokens-file", o.tokens_file,
                 "Tenants: lines 'name namespace role token' (role engine, reader or admin; "
                 "token plain or sha256:HEX) and 'quota namespace connections=N waiters=N "
                 "bytes=SIZE entries=N'");
  app.add_option("--unix-socket", unix_socket,
                 "Unix-domain socket for same-host clients (local transport: memory shared as "
                 "memfd); default <data-dir>/kvstored.sock when --data-dir is set, '' disables");
  app.add_option("--unix-allow-uid", o.unix_allow_uids,
                 "Only these uids may use the Unix socket (SO_PEERCRED); repeatable; default any");
  app.add_option("--tls-cert", o.tls_cert,
                 "PEM certificate (chain) of this daemon: TCP clients then speak TLS");
  app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert (default: in that file)");
  app.add_option("--tls-ca", o.tls_ca,
                 "PEM CA bundle: require TCP clients to present a certificate it signed "
                 "(mutual TLS)");
  app.add_option("--hello-timeout", hello,
                 "Close a connection that has not authenticated (sent hello) within this long")
      ->capture_default_str();
  app.add_option("--max-unauthenticated", o.max_unauthenticated,
                 "Connections still to send hello, in all; a newer one takes the oldest's place")
      ->capture_default_str();
  app.add_option("--max-unauthenticated-per-peer", o.max_unauthenticated_per_peer,
                 "The same per peer (IP address, or uid on the Unix socket)")
      ->capture_default_str();
  app.add_option("--io-threads", o.io_threads, "Threads running the network event loop")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max-connections", o.max_connections,
                 "Authenticated client connections allowed at once")
      ->capture_default_str();
  app.add_option("--stall-timeout", stall,
                 "Close a connection whose frame stops arriving half-way for this long")
      ->capture_default_str();
  app.add_option("--ack-timeout", ack,
                 "Put a drop_select delivery back if the client does not confirm it in this long")
      ->capture_default_str();
  app.add_flag("--no-local-transport", no_local,
               "Do not move values through memory same-host clients share (memfd); their "
               "values then travel in the frames");
  app.add_option("--cluster", o.cluster,
                 "Join a cluster: etcd://HOST:PORT[,HOST:PORT...]/NAME (membership in etcd)");
  app.add_option("--advertise", o.advertise,
                 "HOST:PORT clients reach this node at (default: the bound --listen address)");
  app.add_option("--cluster-lease-ttl", lease_ttl,
                 "A crashed node leaves the cluster after this long (etcd lease TTL)")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  auto size = [](const std::string& flag, const std::string& text, uint64_t* out) {
    auto v = kvstore::ParseSize(text);
    if (!v.ok()) return Fail(flag + ": " + v.status().message());
    *out = *v;
    return 0;
  };
  auto duration = [](const std::string& flag, const std::string& text,
                     std::chrono::milliseconds* out) {
    auto v = kvstore::ParseDuration(text);
    if (!v.ok()) return Fail(flag + ": " + v.status().message());
    *out = *v;
    return 0;
  };
  if (int rc = size("--memory", memory, &o.store.memory_bytes)) return rc;
  if (int rc = size("--device-memory", device_memory, &o.store.device_memory_bytes)) return rc;
  if (int rc = size("--max-value", max_value, &o.store.max_value_bytes)) return rc;
  if (int rc = size("--spill", spill, &o.store.spill_bytes)) return rc;
  if (int rc = duration("--ttl", ttl, &o.store.default_ttl)) return rc;
  if (int rc = duration("--stall-timeout", stall, &o.stall_timeout)) return rc;
  if (int rc = duration("--ack-timeout", ack, &o.ack_timeout)) return rc;
  if (int rc = duration("--hello-timeout", hello, &o.hello_timeout)) return rc;
  if (o.hello_timeout.count() <= 0) return Fail("--hello-timeout must be positive");
  if (unix_socket == "(default)") {
    o.unix_socket = o.store.data_dir.empty() ? "" : o.store.data_dir + "/kvstored.sock";
  } else {
    o.unix_socket = unix_socket;
  }
  o.store.flush_on_shutdown = !no_flush;
  o.local_transport = !no_local;
  o.store.lock_memory = !no_mlock;
  if (o.store.memory_bytes == 0) return Fail("--memory must be larger than 0");
  if (o.store.spill_bytes > 0 && o.store.data_dir.empty()) {
    return Fail("--spill needs --data-dir: the spill tier lives on disk");
  }
  o.store.durability = durability == "sync" ? Durability::kSync : Durability::kNone;
  if (o.store.durability == Durability::kSync && o.store.spill_bytes == 0) {
    return Fail(
        "--durability sync needs a spill tier (--data-dir and --spill): acknowledged "
        "inserts are written through to it");
  }
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) return Fail("--token-file: cannot read " + token_file);
    std::getline(in, o.token);
    while (!o.token.empty() && (o.token.back() == '\r' || o.token.back() == ' ')) {
      o.token.pop_back();
    }
    if (o.token.empty()) return Fail("--token-file: " + token_file + " is empty");
  }
  // Connections (authenticated, unauthenticated, metrics) each take a
  // descriptor: the soft limit goes up to the hard one so the budgets, not
  // EMFILE, decide who is refused.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ kvstored: %v");

  std::unique_ptr<kvstore::server::NodeMembership> membership;
  if (!o.cluster.empty()) {
    std::chrono::milliseconds ttl{};
    if (int rc = duration("--cluster-lease-ttl", lease_ttl, &ttl)) return rc;
    o.cluster_lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
    auto m = kvstore::server::NodeMembership::Create(kvstore::server::MembershipOptionsFor(o));
    if (!m.ok()) return Fail(m.status().ToString());
    membership = std::move(m).value();
    o.extra_metrics.push_back(membership->registry());
    // Leave as soon as shutdown begins, so clients stop placing keys here while it drains.
    o.on_shutdown = [m = membership.get()] { m->Leave(); };
  }
  auto server = kvstore::server::Server::Create(o);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  if (membership) membership->Start((*server)->listen_address(), (*server)->metrics_address());
  kvstore::Status s = (*server)->Run();
  if (membership) membership->Stop();  // the lease is revoked by now (or expires)
  if (!s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  return 0;
}
