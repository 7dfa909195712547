// The client processes the chaos suite kills: `kvstore-chaos --child insert|take ...`.
// An inserter inserts keys base.. base+count-1 (values derived from the keys);
// a taker drop_selects and selects random keys among 0..count-1 and prints
// "took <hex>" for each drop_select that returned its entry.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kvstore/key.h"

namespace kvstore::chaos {

inline constexpr uint64_t kChildKeys = 400;
// Sizes of the values inserters write: large, so a kill lands mid-transfer.
size_t ChildValueSize(const Key& key);
int ChildMain(int argc, char** argv);
// The kvstored flags of the durable mode, read from its --help text.
std::vector<std::string> DurableArgs(const std::string& help);

}  // namespace kvstore::chaos
