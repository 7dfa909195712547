#include "kvstore/wire_convert.h"

#include <cstring>

namespace kvstore {

OutFrame EncodeFrame(capnp::MessageBuilder& message, uint64_t bulk_len) {
  OutFrame f;
  f.control = capnp::messageToFlatArray(message);
  FrameHeader h;
  h.control_len = static_cast<uint32_t>(f.control.size() * sizeof(capnp::word));
  h.bulk_len = bulk_len;
  h.Encode(f.header.data());
  return f;
}

wire::Code CodeToWire(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return wire::Code::OK;
    case StatusCode::kNotFound:
      return wire::Code::NOT_FOUND;
    case StatusCode::kTimeout:
      return wire::Code::TIMEOUT;
    case StatusCode::kResourceExhausted:
      return wire::Code::RESOURCE_EXHAUSTED;
    case StatusCode::kInvalidArgument:
      return wire::Code::INVALID_ARGUMENT;
    case StatusCode::kUnavailable:
      return wire::Code::UNAVAILABLE;
    case StatusCode::kDataLoss:
      return wire::Code::DATA_LOSS;
    case StatusCode::kPermissionDenied:
      return wire::Code::PERMISSION_DENIED;
    case StatusCode::kInternal:
      return wire::Code::INTERNAL;
  }
  return wire::Code::INTERNAL;
}

StatusCode CodeFromWire(wire::Code code) {
  switch (code) {
    case wire::Code::OK:
      return StatusCode::kOk;
    case wire::Code::NOT_FOUND:
      return StatusCode::kNotFound;
    case wire::Code::TIMEOUT:
      return StatusCode::kTimeout;
    case wire::Code::RESOURCE_EXHAUSTED:
      return StatusCode::kResourceExhausted;
    case wire::Code::INVALID_ARGUMENT:
      return StatusCode::kInvalidArgument;
    case wire::Code::UNAVAILABLE:
      return StatusCode::kUnavailable;
    case wire::Code::DATA_LOSS:
      return StatusCode::kDataLoss;
    case wire::Code::PERMISSION_DENIED:
      return StatusCode::kPermissionDenied;
    case wire::Code::INTERNAL:
      return StatusCode::kInternal;
  }
  return StatusCode::kInternal;  // a newer peer's code we do not know
}

wire::Tier TierToWire(Tier t) {
  switch (t) {
    case Tier::kDevice:
      return wire::Tier::DEVICE;
    case Tier::kHost:
      return wire::Tier::HOST;
    case Tier::kSpill:
      return wire::Tier::SPILL;
  }
  return wire::Tier::HOST;
}

Tier TierFromWire(wire::Tier t) {
  switch (t) {
    case wire::Tier::DEVICE:
      return Tier::kDevice;
    case wire::Tier::HOST:
      return Tier::kHost;
    case wire::Tier::SPILL:
      return Tier::kSpill;
  }
  return Tier::kHost;
}

void MetaToWire(const EntryMeta& meta, wire::EntryMeta::Builder out) {
  out.setSize(meta.size);
  out.setChecksum(meta.checksum);
  out.setLayout(meta.layout);
  out.setProducer(meta.producer);
  out.setCreatedUnixMs(meta.created_unix_ms);
  out.setExpiresUnixMs(meta.expires_unix_ms);
  out.setTier(TierToWire(meta.tier));
}

EntryMeta MetaFromWire(wire::EntryMeta::Reader in) {
  EntryMeta m;
  m.size = in.getSize();
  m.checksum = in.getChecksum();
  m.layout = in.getLayout().cStr();
  m.producer = in.getProducer().cStr();
  m.created_unix_ms = in.getCreatedUnixMs();
  m.expires_unix_ms = in.getExpiresUnixMs();
  m.tier = TierFromWire(in.getTier());
  return m;
}

void StatsToWire(const StoreStats& s, wire::StoreStats::Builder out) {
  auto tiers = out.initTiers(static_cast<unsigned>(s.tiers.size()));
  for (size_t i = 0; i < s.tiers.size(); ++i) {
    auto t = tiers[i];
    t.setTier(TierToWire(s.tiers[i].tier));
    t.setEntries(s.tiers[i].entries);
    t.setBytes(s.tiers[i].bytes);
    t.setCapacityBytes(s.tiers[i].capacity_bytes);
    t.setUsedBytes(s.tiers[i].used_bytes);
  }
  out.setWaiters(s.waiters);
  out.setConnections(s.connections);
  out.setInserts(s.inserts);
  out.setHits(s.hits);
  out.setMisses(s.misses);
  out.setTtlExpired(s.ttl_expired);
  out.setEvictions(s.evictions);
  out.setPromotions(s.promotions);
  out.setRefusedInserts(s.refused_inserts);
  out.setChecksumFailures(s.checksum_failures);
  out.setUptimeSeconds(s.uptime_seconds);
  out.setVersion(s.version);
  out.setFragmentation(s.fragmentation);
  out.setStagedTransfers(s.staged_transfers);
}

StoreStats StatsFromWire(wire::StoreStats::Reader in) {
  StoreStats s;
  for (auto t : in.getTiers()) {
    s.tiers.push_back({TierFromWire(t.getTier()), t.getEntries(), t.getBytes(),
                       t.getCapacityBytes(), t.getUsedBytes()});
  }
  s.waiters = in.getWaiters();
  s.connections = in.getConnections();
  s.inserts = in.getInserts();
  s.hits = in.getHits();
  s.misses = in.getMisses();
  s.ttl_expired = in.getTtlExpired();
  s.evictions = in.getEvictions();
  s.promotions = in.getPromotions();
  s.refused_inserts = in.getRefusedInserts();
  s.checksum_failures = in.getChecksumFailures();
  s.uptime_seconds = in.getUptimeSeconds();
  s.version = in.getVersion().cStr();
  s.fragmentation = in.getFragmentation();
  s.staged_transfers = in.getStagedTransfers();
  return s;
}

Result<Key> KeyFromWire(capnp::Data::Reader data) {
  if (data.size() != Key::kSize) {
    return Status::InvalidArgument("key must be " + std::to_string(Key::kSize) + " bytes, got " +
                                   std::to_string(data.size()));
  }
  Key k;
  std::memcpy(k.bytes.data(), data.begin(), Key::kSize);
  return k;
}

}  // namespace kvstore
