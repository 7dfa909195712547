// kvstored's command line and --config file: one table of options whose
// defaults and --help text come from ServerOptions (server_options.h), so a
// default is written once. kvstored_main and the config-file fuzz target both
// use it.
//
// Thread-compatibility: call from one thread, before the daemon starts.
#pragma once

#include <CLI/CLI.hpp>

#include "kvstore/server/server_options.h"
#include "kvstore/status.h"

namespace kvstore::server {

// Adds every option of kvstored to `app`, each writing into `o` (which must
// outlive the parse) and showing `o`'s current value as its default in --help.
// Sizes and durations are checked as they are parsed (CLI::ValidationError).
void AddServerOptions(CLI::App& app, ServerOptions& o);

// After a successful parse: fills in what depends on other options (the Unix
// socket's default place under --data-dir) and refuses combinations that
// cannot work (--spill without --data-dir, --memory 0).
Status FinishServerOptions(const CLI::App& app, ServerOptions& o);

}  // namespace kvstore::server
