// Conversions between the Cap'n Proto wire types (schema/kvstore.capnp) and the
// library's C++ types, plus frame encoding. Shared by the daemon and the client.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "kvstore.capnp.h"
#include "kvstore/types.h"
#include "kvstore/frame.h"
#include "kvstore/key.h"
#include "kvstore/status.h"

namespace kvstore {

// A control message ready to send: header plus the Cap'n Proto words.
struct OutFrame {
  std::array<std::byte, kFrameHeaderSize> header{};
  kj::Array<capnp::word> control;

  std::span<const std::byte> control_bytes() const {
    return {reinterpret_cast<const std::byte*>(control.begin()),
            control.size() * sizeof(capnp::word)};
  }
};

// Serializes `message`; `bulk_len` bytes of raw value data are to follow it.
OutFrame EncodeFrame(capnp::MessageBuilder& message, uint64_t bulk_len);

// Limits applied when reading a control message from the wire.
inline capnp::ReaderOptions WireReaderOptions() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = kMaxControlBytes / sizeof(capnp::word) * 4;
  o.nestingLimit = 16;
  return o;
}

wire::Code CodeToWire(StatusCode code);
StatusCode CodeFromWire(wire::Code code);
wire::Tier TierToWire(Tier t);
Tier TierFromWire(wire::Tier t);

void MetaToWire(const EntryMeta& meta, wire::EntryMeta::Builder out);
EntryMeta MetaFromWire(wire::EntryMeta::Reader in);

void StatsToWire(const StoreStats& stats, wire::StoreStats::Builder out);
StoreStats StatsFromWire(wire::StoreStats::Reader in);

// InvalidArgument unless exactly 32 bytes.
Result<Key> KeyFromWire(capnp::Data::Reader data);
inline capnp::Data::Reader KeyToWire(const Key& key) {
  return {reinterpret_cast<const kj::byte*>(key.bytes.data()), Key::kSize};
}

}  // namespace kvstore
