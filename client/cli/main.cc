// kvstore-cli: operate a kvstored from the shell. Flags are parsed here; each subcommand
// lives in data_commands.cc or admin_commands.cc. Exit codes: see commands.h.
#include <CLI/CLI.hpp>

#include <functional>
#include <iostream>

#include "cluster_commands.h"
#include "commands.h"
#include "kvstore/units.h"
#include "output.h"

namespace kvstore::cli {
namespace {

constexpr const char* kFooter =
    "Keys are 64 hex characters (32 bytes); `kvstore-cli key` computes them from tokens.\n"
    "Exit codes: 0 ok, 2 usage, 3 not found, 4 timed out, 5 cannot reach the daemon or it "
    "failed.";

int Main(int argc, char** argv) {
  CLI::App app{"kvstore-cli: inspect and operate a kvstored KV-cache store", "kvstore-cli"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand

  GlobalOptions g;
  std::string timeout_text = "3s";
  app.add_option("--addr", g.addr, "kvstored control address HOST:PORT")->capture_default_str();
  app.add_flag("--json", g.json, "print JSON instead of tables");
  app.add_option("--token-file", g.token_file,
                 "file whose first line is the token, when kvstored requires one (default: the "
                 "KVSTORE_TOKEN environment variable)");
  app.add_option("--token", g.token,
                 "the token itself (visible in ps: prefer --token-file or KVSTORE_TOKEN)");
  app.add_option("--connect-timeout", timeout_text, "give up connecting after DURATION")
      ->capture_default_str();

  std::function<int()> run;

  PutOptions put;
  auto* c_put = app.add_subcommand("put", "store the bytes of FILE (or - for stdin) under KEY");
  c_put->add_option("KEY", put.key, "64 hex characters")->required();
  c_put->add_option("FILE", put.file, "file to store, - for stdin")->required();
  c_put->add_option("--ttl", put.ttl, "drop if unclaimed after DURATION (default: the store's)");
  c_put->add_option("--layout", put.layout, "free-form layout tag, e.g. llama-tiny/f32/b16");
  c_put->add_option("--producer", put.producer, "who made it")->capture_default_str();
  c_put->callback([&] { run = [&] { return RunPut(g, put); }; });

  GetOptions get;
  auto* c_get = app.add_subcommand("get", "read KEY's value without removing it");
  c_get->add_option("KEY", get.key, "64 hex characters")->required();
  c_get->add_option("-o,--output", get.output, "write to FILE (default stdout)");
  c_get->add_flag("--force", get.force, "write binary to a terminal anyway");
  c_get->callback([&] { run = [&] { return RunGet(g, get); }; });

  GetOptions drop;
  drop.timeout = "30s";
  auto* c_drop = app.add_subcommand(
      "drop-select", "wait until KEY is stored, take its value and remove it from the store");
  c_drop->add_option("KEY", drop.key, "64 hex characters")->required();
  c_drop->add_option("--timeout", drop.timeout, "give up after DURATION (exit 4)")
      ->capture_default_str();
  c_drop->add_option("-o,--output", drop.output, "write to FILE (default stdout)");
  c_drop->add_flag("--force", drop.force, "write binary to a terminal anyway");
  c_drop->callback([&] { run = [&] { return RunDropSelect(g, drop); }; });

  std::vector<std::string> match_keys;
  auto* c_match = app.add_subcommand("match", "print how many leading KEYs are stored");
  c_match->add_option("KEY", match_keys, "keys in prompt order")->required();
  c_match->callback([&] { run = [&] { return RunMatch(g, match_keys); }; });

  std::vector<std::string> rm_keys;
  auto* c_rm = app.add_subcommand("rm", "remove KEYs that are stored; print how many went");
  c_rm->add_option("KEY", rm_keys, "keys to remove")->required();
  c_rm->callback([&] { run = [&] { return RunRemove(g, rm_keys); }; });

  ListCmdOptions ls;
  auto* c_ls = app.add_subcommand("ls", "list stored entries");
  c_ls->add_option("--limit", ls.limit, "at most N entries, 0 = all")->capture_default_str();
  c_ls->add_option("--tier", ls.tier, "only this tier: host, spill or device");
  c_ls->callback([&] { run = [&] { return RunList(g, ls); }; });

  std::string show_key;
  auto* c_show = app.add_subcommand("show", "print one entry's metadata");
  c_show->add_option("KEY", show_key, "64 hex characters")->required();
  c_show->callback([&] { run = [&] { return RunShow(g, show_key); }; });

  auto* c_stats = app.add_subcommand("stats", "print the store's counters and tier usage");
  c_stats->callback([&] { run = [&] { return RunStats(g); }; });

  auto* c_ping = app.add_subcommand("ping", "check that kvstored answers");
  c_ping->callback([&] { run = [&] { return RunPing(g); }; });

  KeyCmdOptions key;
  auto* c_key = app.add_subcommand(
      "key", "print the chained keys of a token list, one per full block (no daemon needed)");
  c_key->add_option("--namespace", key.ns, "model id, KV layout and rank, e.g. llama-tiny/f32/r0")
      ->required();
  c_key->add_option("--block-size", key.block_size, "tokens per block")->capture_default_str();
  c_key->add_option("--tokens", key.tokens, "comma-separated token ids, e.g. 1,2,3")->required();
  c_key->add_option("--hash", key.hash, "sha256 (default) or xxh3 (trusted setups only)")
      ->capture_default_str();
  c_key->callback([&] { run = [&] { return RunKey(g, key); }; });

  ClusterCommands cluster(app, g, ls, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    return UsageError(what + " (see kvstore-cli --help)");
  }

  std::string host;
  uint16_t port = 0;
  if (Status s = SplitHostPort(g.addr, &host, &port); !s.ok()) {
    return UsageError("--addr: " + s.message());
  }
  auto ct = ParseDuration(timeout_text);
  if (!ct.ok()) return UsageError("--connect-timeout: " + ct.status().message());
  g.connect_timeout = *ct;
  if (cluster.active()) return cluster.Run(app);
  if (!run) return UsageError("no subcommand given (see kvstore-cli --help)");
  return run();
}

}  // namespace
}  // namespace kvstore::cli

int main(int argc, char** argv) {
  try {
    return kvstore::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    kvstore::cli::PrintError(std::string("unexpected error: ") + e.what() + " (please report it)");
    return kvstore::cli::kExitFailed;
  }
}
