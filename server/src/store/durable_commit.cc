// Durable mode's step of the Store's commit (--durability sync): the value is
// written through to the spill tier, with group commit (tiers::DurableWriter),
// before the entry becomes visible and the insert is acknowledged. The entry
// then starts with its disk copy (in_spill), so demoting it later writes nothing.
#include <spdlog/spdlog.h>

#include "entry.h"
#include "kvstore/server/store.h"

namespace kvstore::server {

Status Store::WriteThroughAtCommit(Entry& e, const Reservation& r) {
  if (options_.durability == Durability::kNone) return Status::Ok();
  // From the write until InstallLocked puts the entry in the index, an older
  // entry under the same key that goes away (a delivery acknowledged, a remove)
  // must not delete the disk copy this write makes: FreeEntryLocked checks.
  if (durable_ != nullptr) {
    std::lock_guard lock(mu_);
    ++durable_in_flight_[e.id()];
  }
  Status s = durable_ == nullptr
                 ? Status::InvalidArgument(
                       "durability sync needs a spill tier to write inserts through to; "
                       "start kvstored with --data-dir and --spill, or --durability none")
                 : durable_->Write(tiers::SpillKey(e.key, e.ns),
                                   EntryMeta{.size = e.size(),
                                             .checksum = e.checksum,
                                             .layout = r.meta.layout,
                                             .producer = r.meta.producer,
                                             .created_unix_ms = e.created_unix_ms(),
                                             .expires_unix_ms = ExpiresUnixMs(e.expiry)},
                                   e.bytes());
  if (s.ok()) {
    e.in_spill = true;
    return s;
  }
  counters_.spill_errors.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    if (durable_ != nullptr) EndWriteThroughLocked(e.id());
    memory_->Free(HostSlotLocked(&e));
    e.clear_place();
    ReleaseReservationLocked(e.ns, e.size());
  }
  return s.WithContext("insert of key " + e.key.ToHex() +
                       " not acknowledged (durable mode: it must reach the spill tier first)");
}

void Store::EndWriteThroughLocked(const NsKey& key) {
  auto it = durable_in_flight_.find(key);
  if (it == durable_in_flight_.end()) return;
  if (--it->second == 0) durable_in_flight_.erase(it);
}

}  // namespace kvstore::server
