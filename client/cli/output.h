// Output of kvstore-cli: error lines, tables, and the JSON shapes of entries and stats.
// All functions write to stdout or stderr only; none talks to the daemon.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "kvstore/client.h"

namespace kvstore::cli {

// Prints "kvstore-cli: <message>" on stderr as one line.
void PrintError(std::string_view message);

// Prints a usage error (bad flag value, bad key) and returns kExitUsage.
int UsageError(std::string_view message);

// Explains a failed call `op` (e.g. "get 3fa2…") against the daemon at g.addr on one
// line, with what to do next, and returns the exit code for s.code().
int CallFailed(const GlobalOptions& g, std::string_view op, const Status& s);

// The exit code a Status maps to: NotFound 3, Timeout 4, everything else 5.
int ExitCodeFor(const Status& s);

// Connects, or prints why not (one line) and sets *exit_code.
std::unique_ptr<Client> ConnectOrExplain(const GlobalOptions& g, int* exit_code);

// Parses command-line keys; on the first bad one prints why and returns false.
bool ParseKeys(const std::vector<std::string>& hex, std::vector<Key>* keys);

// Human forms for tables: "42s", "3m10s", "2h5m", "never", "expired".
std::string FormatAge(uint64_t created_unix_ms, uint64_t now_unix_ms);
std::string FormatExpiresIn(uint64_t expires_unix_ms, uint64_t now_unix_ms);
uint64_t NowUnixMs();

nlohmann::json EntryInfoJson(const EntryInfo& e);
nlohmann::json StatsJson(const StoreStats& s);

// Prints rows as aligned columns; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// Prints a JSON value to stdout, indented, with a trailing newline.
void PrintJson(const nlohmann::json& j);

}  // namespace kvstore::cli
