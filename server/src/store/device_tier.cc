// The Store's device tier: copying committed values up at commit, the device
// -> host move (a demotion under pressure, chosen by tier_mover.cc's loop, or
// staging an entry into a host slot to be served), and the shutdown flush of
// device entries. Device copies run with
// the Store's mutex released; the entry being moved is pinned and marked moving
// meanwhile (see store.h for the design).
#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

#include "entry.h"
#include "entry_index.h"
#include "entry_list.h"
#include "kvstore/server/store.h"
#include "kvstore/units.h"

namespace kvstore::server {

std::optional<DeviceSlot> Store::CopyUpAtCommit(const NsKey& key,
                                                std::span<const std::byte> bytes) {
  if (device_ == nullptr) return std::nullopt;
  std::optional<DeviceSlot> slot;
  {
    std::lock_guard lock(mu_);
    // A value a drop_select is waiting for leaves at once: keep it where it can be sent.
    if (index_->Contains(key.ns, key.key) || waiters_.HasWaiter(key)) return std::nullopt;
    if (!TierQuotaAllowsLocked(key.ns, Tier::kDevice, bytes.size())) return std::nullopt;
    slot = device_->Allocate(std::max<uint64_t>(bytes.size(), 1));
  }
  if (!slot) return std::nullopt;  // device tier full: the value stays in host
  slot->size = bytes.size();
  // Nobody else knows the slot yet: no pin needed while it fills.
  Status s = device_->CopyFromHost(*slot, bytes);
  if (s.ok()) return slot;
  counters_.device_errors.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn(
      "device tier: copying key {} ({} bytes) into GPU memory failed: {}; the value stays in "
      "the host tier (check the GPU with nvidia-smi; kvstore_device_errors_total counts these)",
      key.key.ToHex(), bytes.size(), s.ToString());
  std::lock_guard lock(mu_);
  device_->Free(*slot);
  return std::nullopt;
}

bool Store::MoveDeviceToHost(Entry* e, bool for_delivery) {
  DeviceSlot dev;
  uint64_t size = 0;
  {
    std::lock_guard lock(mu_);
    dev = DeviceSlotLocked(e);  // stays allocated: the entry is pinned
    size = e->size();
  }
  std::optional<Slot> slot = AllocateHostDemoting(size);  // host -> spill when needed
  if (!slot) {
    std::lock_guard lock(mu_);
    if (for_delivery) {
      spdlog::warn(
          "device tier: no host memory free to stage key {} ({} bytes) for sending; it stays in "
          "the device tier and its readers wait (host tier full of entries in use{})",
          e->key.ToHex(), size, spill_ ? " and spill cannot take more" : ", no spill tier");
    }
    UnpinAfterMoveLocked(e);
    return false;
  }
  slot->size = size;
  Status s = device_->CopyToHost(dev, {slot->data, size});
  Callbacks cbs;
  {
    std::lock_guard lock(mu_);
    if (!s.ok()) {
      counters_.device_errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::error(
          "device tier: copying key {} ({} bytes) out of GPU memory {} failed: {}; it stays in "
          "the device tier (check the GPU with nvidia-smi and the kernel log)",
          e->key.ToHex(), size, for_delivery ? "to send it" : "to demote it", s.ToString());
      memory_->Free(*slot);
      UnpinAfterMoveLocked(e);
      return false;
    }
    if (for_delivery) {
      counters_.staged_transfers.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.device_demotions.fetch_add(1, std::memory_order_relaxed);
    }
    if (e->doomed || !e->indexed || !e->in_device()) {  // removed meanwhile
      memory_->Free(*slot);
      UnpinAfterMoveLocked(e);
      return false;
    }
    UnlinkLocked(e);
    device_->Free(DeviceSlotLocked(e));
    e->clear_place();
    e->set_host_slot(slot->data, slot->size_class);
    e->set_tier(Tier::kHost);
    LinkLocked(e);
    UnpinAfterMoveLocked(e);
    // Waiters of a device entry were waiting for exactly this.
    const NsKey key = e->id();  // a woken drop_select may claim `e`
    WakeWaitersLocked(key, &cbs);
  }
  RunCallbacks(cbs);
  return true;
}

size_t Store::FlushDeviceToSpill(size_t* written, uint64_t* bytes) {
  if (device_ == nullptr || spill_ == nullptr) return 0;
  std::vector<std::pair<Entry*, EntryMeta>> todo;
  {
    std::lock_guard lock(mu_);
    index_->ForEach([&](Entry* e) {
      if (e->in_device() && !e->in_spill) todo.emplace_back(e, MetaLocked(e));
    });
  }
  size_t failed = 0;
  std::vector<std::byte> buffer;
  for (auto& [e, meta] : todo) {
    buffer.resize(e->size());
    Status s = device_->CopyToHost(DeviceSlotLocked(e), buffer);
    if (s.ok()) s = spill_->Put(tiers::SpillKey(e->key, e->ns), meta, buffer);
    if (s.ok()) {
      e->in_spill = true;
      ++*written;
      *bytes += e->size();
    } else {
      ++failed;
      spdlog::error("shutdown flush: device-tier key {} ({} bytes) not written to spill: {}",
                    e->key.ToHex(), e->size(), s.ToString());
    }
  }
  return failed;
}

}  // namespace kvstore::server
