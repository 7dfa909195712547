// kvstored: the kvstore daemon. Flags (and an optional --config file) are parsed
// here once and passed down.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "kvstore/server/server.h"
#include "kvstore/server/server_flags.h"
#include "node_membership.h"

namespace {

using kvstore::server::ServerOptions;

int Fail(const std::string& what) {
  std::fprintf(stderr, "kvstored: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer gone mid-write is an error on that connection, never the daemon's death.
  std::signal(SIGPIPE, SIG_IGN);
  ServerOptions o;
  CLI::App app{
      "kvstored: a KV-cache store for disaggregated LLM serving.\n"
      "Serves insert / drop_select / select / match_prefix over TCP, Prometheus metrics over "
      "HTTP."};
  app.set_config("--config", "", "Read options from a TOML/INI file (flags override it)");
  kvstore::server::AddServerOptions(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; every usage error 2, as Fail's
  }
  if (kvstore::Status s = kvstore::server::FinishServerOptions(app, o); !s.ok()) {
    return Fail(s.message());
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
