#include "kvstore/server/server_flags.h"

#include <fstream>

#include "kvstore/units.h"

namespace kvstore::server {

namespace {

// An option whose text `parse` turns into the value stored in `out` (a size,
// a duration); its default in --help is `shown`.
template <typename T, typename Parse>
CLI::Option* AddParsed(CLI::App& app, const std::string& name, T& out, const std::string& help,
                       Parse parse, std::string shown) {
  return app
      .add_option_function<std::string>(
          name,
          [&out, name, parse](const std::string& text) {
            auto v = parse(text);
            if (!v.ok()) throw CLI::ValidationError(name, v.status().message());
            out = T(*v);
          },
          help)
      ->default_str(std::move(shown));
}

// A size option ("512MiB", "4GiB") written into `out`; its default is what `out` holds now.
CLI::Option* AddSize(CLI::App& app, const std::string& name, uint64_t& out,
                     const std::string& help) {
  return AddParsed(app, name, out, help, ParseSize, out == 0 ? "0" : FormatSize(out));
}

// A duration option ("250ms", "30s", "10m") written into `out`.
template <typename Duration>
CLI::Option* AddDuration(CLI::App& app, const std::string& name, Duration& out,
                         const std::string& help) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(out);
  auto parse = [](const std::string& text) -> Result<Duration> {
    KVSTORE_ASSIGN_OR_RETURN(std::chrono::milliseconds v, ParseDuration(text));
    return std::chrono::duration_cast<Duration>(v);
  };
  return AddParsed(app, name, out, help, parse, ms.count() == 0 ? "0" : FormatDuration(ms));
}

}  // namespace

void AddServerOptions(CLI::App& app, ServerOptions& o) {
  StoreOptions& s = o.store;
  app.add_option("--listen", o.listen, "HOST:PORT for clients (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--metrics", o.metrics, "HOST:PORT for Prometheus /metrics; empty disables")
      ->capture_default_str();
  AddSize(app, "--memory", s.memory_bytes, "Host tier size, e.g. 512MiB, 4GiB");
  AddSize(app, "--device-memory", s.device_memory_bytes,
          "Device (GPU) tier above the host tier, e.g. 8GiB; 0 disables. Without a GPU "
          "the tier is absent (logged at start) and values live in the host tier");
  AddSize(app, "--max-value", s.max_value_bytes, "Largest single value accepted");
  app.add_option("--data-dir", s.data_dir, "Directory for the spill tier and state");
  AddSize(app, "--spill", s.spill_bytes,
          "Spill tier capacity on --data-dir, e.g. 100GiB; 0 disables");
  AddDuration(app, "--ttl", s.default_ttl,
              "Unclaimed entries expire after this long (e.g. 10m, 30s); 0 = never");
  app.add_option_function<std::string>(
         "--durability",
         [&s](const std::string& v) {
           s.durability = v == "sync" ? Durability::kSync : Durability::kNone;
         },
         "When an insert is acknowledged: none (in memory; kill -9 loses the host tier) or "
         "sync (written through to the spill tier and synced first, group commit; needs --spill)")
      ->check(CLI::IsMember({"none", "sync"}))
      ->default_str(s.durability == Durability::kSync ? "sync" : "none");
  app.add_flag_callback(
      "--no-flush-on-shutdown", [&s] { s.flush_on_shutdown = false; },
      "On SIGTERM, do not write the host tier to spill first");
  app.add_flag_callback(
      "--no-mlock", [&s] { s.lock_memory = false; }, "Do not try to pin the host arena with mlock");
  app.add_option_function<std::string>(
      "--token-file",
      [&o](const std::string& path) {
        std::ifstream in(path);
        if (!in) throw CLI::ValidationError("--token-file", "cannot read " + path);
        // A token is one short line; never read more than that (a device, a huge file).
        std::string head(4096, '\0');
        in.read(head.data(), static_cast<std::streamsize>(head.size()));
        head.resize(static_cast<size_t>(in.gcount()));
        o.token = head.substr(0, head.find('\n'));
        while (!o.token.empty() && (o.token.back() == '\r' || o.token.back() == ' ')) {
          o.token.pop_back();
        }
        if (o.token.empty()) throw CLI::ValidationError("--token-file", path + " is empty");
      },
      "File holding one shared secret every client must present (the admin of "
      "namespace 'default'); see --tokens-file for tenants");
  app.add_option("--tokens-file", o.tokens_file,
                 "Tenants: lines 'name namespace role token' (role engine, reader or admin; "
                 "token plain or sha256:HEX) and 'quota namespace connections=N waiters=N "
                 "bytes=SIZE entries=N'");
  app.add_option("--unix-socket", o.unix_socket,
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
  AddDuration(app, "--hello-timeout", o.hello_timeout,
              "Close a connection that has not authenticated (sent hello) within this long");
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
  app.add_option("--max-waiters", o.max_waiters,
                 "drop_select calls waiting at once across all connections; 0 = no cap")
      ->capture_default_str();
  app.add_option("--max-keys-per-request", o.max_keys_per_request,
                 "Keys one drop_select, select, match_prefix, retain or remove may name")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  AddSize(app, "--max-pending-bytes", o.max_pending_bytes,
          "Memory held for calls not yet answered, across all connections: values of replies "
          "queued or awaiting acknowledgement, and the keys of waiting drop_selects; 0 = no cap");
  AddDuration(app, "--stall-timeout", o.stall_timeout,
              "Close a connection whose frame stops arriving half-way, or whose reply the peer "
              "does not read, for this long (what it pinned is freed)");
  AddSize(app, "--min-insert-rate", o.min_insert_rate,
          "Bytes per second an insert must at least arrive at: an insert of S bytes is cut "
          "after --stall-timeout + S / this; 0 = only --stall-timeout");
  AddDuration(app, "--ack-timeout", o.ack_timeout,
              "Put a drop_select delivery back if the client does not confirm it in this long");
  AddDuration(app, "--shutdown-grace", o.shutdown_grace,
              "On SIGTERM, how long connections with replies in flight get to finish (idle "
              "connections close at once)");
  app.add_flag_callback(
      "--no-local-transport", [&o] { o.local_transport = false; },
      "Do not move values through memory same-host clients share (memfd); their "
      "values then travel in the frames");
  app.add_option("--cluster", o.cluster,
                 "Join a cluster: etcd://HOST:PORT[,HOST:PORT...]/NAME (membership in etcd)");
  app.add_option("--advertise", o.advertise,
                 "HOST:PORT clients reach this node at (default: the bound --listen address)");
  AddDuration(app, "--cluster-lease-ttl", o.cluster_lease_ttl,
              "A crashed node leaves the cluster after this long (etcd lease TTL)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
}

Status FinishServerOptions(const CLI::App& app, ServerOptions& o) {
  if (app.count("--unix-socket") == 0 && !o.store.data_dir.empty()) {
    o.unix_socket = o.store.data_dir + "/kvstored.sock";
  }
  if (o.hello_timeout.count() <= 0) {
    return Status::InvalidArgument("--hello-timeout must be positive");
  }
  if (o.stall_timeout.count() <= 0) {
    return Status::InvalidArgument("--stall-timeout must be positive");
  }
  if (o.store.memory_bytes == 0) return Status::InvalidArgument("--memory must be larger than 0");
  if (o.store.spill_bytes > 0 && o.store.data_dir.empty()) {
    return Status::InvalidArgument("--spill needs --data-dir: the spill tier lives on disk");
  }
  if (o.store.durability == Durability::kSync && o.store.spill_bytes == 0) {
    return Status::InvalidArgument(
        "--durability sync needs a spill tier (--data-dir and --spill): acknowledged inserts "
        "are written through to it");
  }
  return Status::Ok();
}

}  // namespace kvstore::server
