// kvstore-cli --cluster etcd://HOST:PORT[,...]/NAME: the operator's view of a
// cluster. `members` (address, state, capacity, used, entries), `stats` and
// `ls` across every node, `locate KEY` (its home under the current membership,
// and which nodes hold it now).
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"

namespace kvstore::cli {

class ClusterCommands {
 public:
  // Adds --cluster and the members / locate subcommands to `app`; without
  // --cluster those set `run` to a usage error.
  ClusterCommands(CLI::App& app, const GlobalOptions& g, const ListCmdOptions& ls,
                  std::function<int()>& run);
  // True when --cluster was given.
  bool active() const { return !url_.empty(); }
  // Runs the parsed subcommand against the cluster; a subcommand that works on
  // one node only is a usage error naming --addr.
  int Run(const CLI::App& app);

 private:
  const GlobalOptions& g_;
  const ListCmdOptions& ls_;
  std::string url_;
  std::string locate_key_;
};

}  // namespace kvstore::cli
