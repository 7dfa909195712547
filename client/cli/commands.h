// kvstore-cli subcommands. Each Run* function does one subcommand end to end: it talks to
// the daemon through kvstore::Client, prints its result (a table, or JSON with --json) to
// stdout, prints at most one error line to stderr, and returns the process exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kvstore::cli {

// Process exit codes, part of the CLI's contract with scripts.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 2,     // bad flags, bad key, unreadable input file
  kExitNotFound = 3,  // a key is not stored
  kExitTimeout = 4,   // drop-select waited past --timeout
  kExitFailed = 5,    // cannot reach the daemon, or it failed the request
};

struct GlobalOptions {
  std::string addr = "127.0.0.1:7400";
  std::string token;       // --token (discouraged: argv is public)
  std::string token_file;  // --token-file; neither: KVSTORE_TOKEN
  bool json = false;
  std::chrono::milliseconds connect_timeout{3000};
};

struct PutOptions {
  std::string key;
  std::string file;  // "-" = stdin
  std::string ttl;   // empty = the store's default
  std::string layout;
  std::string producer = "kvstore-cli";
};

struct GetOptions {
  std::string key;
  std::string output;   // empty or "-" = stdout
  std::string timeout;  // drop-select only
  bool force = false;   // write binary to a terminal anyway
};

struct ListCmdOptions {
  uint64_t limit = 100;
  std::string tier;  // empty = all
};

struct KeyCmdOptions {
  std::string ns;
  uint32_t block_size = 16;
  std::string tokens;
  std::string hash = "sha256";
};

int RunPut(const GlobalOptions& g, const PutOptions& o);
int RunGet(const GlobalOptions& g, const GetOptions& o);
int RunDropSelect(const GlobalOptions& g, const GetOptions& o);
int RunMatch(const GlobalOptions& g, const std::vector<std::string>& keys);
int RunRemove(const GlobalOptions& g, const std::vector<std::string>& keys);

int RunList(const GlobalOptions& g, const ListCmdOptions& o);
// --tier of ls: "" (all: -1), host, spill or device, as a ListOptions::tier;
// false (with the usage error printed) for anything else.
bool ParseListTier(const std::string& tier, int* out);
int RunShow(const GlobalOptions& g, const std::string& key);
int RunStats(const GlobalOptions& g);
int RunPing(const GlobalOptions& g);
int RunKey(const GlobalOptions& g, const KeyCmdOptions& o);

}  // namespace kvstore::cli
