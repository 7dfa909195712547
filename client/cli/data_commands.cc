// put, get, drop-select, match, rm: the commands that move or test values.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "commands.h"
#include "kvstore/units.h"
#include "output.h"

namespace kvstore::cli {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr && f != stdout && f != stdin) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

bool ReadAll(std::FILE* f, std::vector<std::byte>* out) {
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    auto* p = reinterpret_cast<const std::byte*>(buf);
    out->insert(out->end(), p, p + n);
  }
  return std::ferror(f) == 0;
}

// Where get/drop-select write the value. Opened before the call so that drop-select never
// takes an entry it then has nowhere to put.
struct Destination {
  FilePtr file;
  std::string name;  // "stdout" or the path
  bool to_stdout = false;
};

bool OpenDestination(const GetOptions& o, std::string_view op, Destination* d) {
  if (o.output.empty() || o.output == "-") {
    if (isatty(STDOUT_FILENO) && !o.force) {
      UsageError(std::string(op) +
                 ": refusing to write a binary value to the terminal (use -o FILE, pipe it, "
                 "e.g. `| xxd`, or add --force)");
      return false;
    }
    d->file.reset(stdout);
    d->name = "stdout";
    d->to_stdout = true;
    return true;
  }
  d->file.reset(std::fopen(o.output.c_str(), "wb"));
  if (d->file == nullptr) {
    UsageError(std::string(op) + ": cannot open " + o.output +
               " for writing: " + std::strerror(errno) + " (check the path and permissions)");
    return false;
  }
  d->name = o.output;
  return true;
}

// Writes the value and, unless it went to stdout, a summary. Returns the exit code.
int WriteValue(const GlobalOptions& g, std::string_view op, const Entry& e, Destination* d,
               bool taken) {
  bool ok = std::fwrite(e.value.data(), 1, e.value.size(), d->file.get()) == e.value.size();
  ok = std::fflush(d->file.get()) == 0 && ok;
  if (!d->to_stdout) {
    ok = std::fclose(d->file.release()) == 0 && ok;
  }
  if (!ok) {
    std::string lost = taken ? " (the entry was already removed from the store)" : "";
    PrintError(std::string(op) + ": writing " + FormatSize(e.value.size()) + " to " + d->name +
               " failed: " + std::strerror(errno) + lost);
    return kExitFailed;
  }
  if (!d->to_stdout) {
    if (g.json) {
      nlohmann::json j = EntryInfoJson({e.key, e.meta});
      j["output"] = d->name;
      PrintJson(j);
    } else {
      std::cout << e.key.ToHex() << "  " << FormatSize(e.value.size()) << " -> " << d->name
                << std::endl;
    }
  }
  return kExitOk;
}

}  // namespace

int RunPut(const GlobalOptions& g, const PutOptions& o) {
  std::vector<Key> keys;
  if (!ParseKeys({o.key}, &keys)) return kExitUsage;
  InsertOptions io;
  io.layout = o.layout;
  io.producer = o.producer;
  if (!o.ttl.empty()) {
    auto ttl = ParseDuration(o.ttl);
    if (!ttl.ok()) return UsageError("put: --ttl: " + ttl.status().message());
    io.ttl = *ttl;
  }
  std::vector<std::byte> value;
  if (o.file == "-") {
    if (!ReadAll(stdin, &value)) {
      return UsageError(std::string("put: reading stdin failed: ") + std::strerror(errno));
    }
  } else {
    FilePtr f(std::fopen(o.file.c_str(), "rb"));
    if (f == nullptr || !ReadAll(f.get(), &value)) {
      return UsageError("put: cannot read " + o.file + ": " + std::strerror(errno) +
                        " (give a readable file, or - for stdin)");
    }
  }
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto stored = client->Insert(keys[0], value, io);
  if (!stored.ok()) return CallFailed(g, "put " + keys[0].ToHex(), stored.status());
  if (g.json) {
    PrintJson({{"key", keys[0].ToHex()}, {"size", value.size()}, {"stored", *stored}});
  } else if (*stored) {
    std::cout << "stored " << keys[0].ToHex() << " (" << FormatSize(value.size()) << ")"
              << std::endl;
  } else {
    std::cout << "already stored " << keys[0].ToHex() << " (left unchanged)" << std::endl;
  }
  return kExitOk;
}

int RunGet(const GlobalOptions& g, const GetOptions& o) {
  std::vector<Key> keys;
  if (!ParseKeys({o.key}, &keys)) return kExitUsage;
  Destination d;
  if (!OpenDestination(o, "get", &d)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto entries = client->Select(keys);
  if (!entries.ok()) return CallFailed(g, "get " + keys[0].ToHex(), entries.status());
  if (entries->size() != 1) {
    PrintError("get: kvstored at " + g.addr + " returned " + std::to_string(entries->size()) +
               " entries for one key (a daemon bug; see its log)");
    return kExitFailed;
  }
  return WriteValue(g, "get", (*entries)[0], &d, /*taken=*/false);
}

int RunDropSelect(const GlobalOptions& g, const GetOptions& o) {
  std::vector<Key> keys;
  if (!ParseKeys({o.key}, &keys)) return kExitUsage;
  auto timeout = ParseDuration(o.timeout);
  if (!timeout.ok()) return UsageError("drop-select: --timeout: " + timeout.status().message());
  Destination d;
  if (!OpenDestination(o, "drop-select", &d)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto entries = client->DropSelect(keys, *timeout);
  if (entries.status().code() == StatusCode::kTimeout) {
    PrintError("drop-select " + keys[0].ToHex() + ": not inserted within " +
               FormatDuration(*timeout) +
               "; nothing was taken (raise --timeout, or check that the producer is running)");
    return kExitTimeout;
  }
  if (!entries.ok()) return CallFailed(g, "drop-select " + keys[0].ToHex(), entries.status());
  if (entries->size() != 1) {
    PrintError("drop-select: kvstored at " + g.addr + " returned " +
               std::to_string(entries->size()) + " entries for one key (a daemon bug)");
    return kExitFailed;
  }
  return WriteValue(g, "drop-select", (*entries)[0], &d, /*taken=*/true);
}

int RunMatch(const GlobalOptions& g, const std::vector<std::string>& hex) {
  std::vector<Key> keys;
  if (!ParseKeys(hex, &keys)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto n = client->MatchPrefix(keys);
  if (!n.ok()) return CallFailed(g, "match", n.status());
  if (g.json) {
    PrintJson({{"matched", *n}, {"keys", keys.size()}});
  } else {
    std::cout << *n << std::endl;
  }
  return kExitOk;
}

int RunRemove(const GlobalOptions& g, const std::vector<std::string>& hex) {
  std::vector<Key> keys;
  if (!ParseKeys(hex, &keys)) return kExitUsage;
  int code = kExitOk;
  auto client = ConnectOrExplain(g, &code);
  if (!client) return code;
  auto n = client->Remove(keys);
  if (!n.ok()) return CallFailed(g, "rm", n.status());
  if (g.json) {
    PrintJson({{"removed", *n}, {"requested", keys.size()}});
  } else {
    std::cout << "removed " << *n << " of " << keys.size() << std::endl;
  }
  return kExitOk;
}

}  // namespace kvstore::cli
