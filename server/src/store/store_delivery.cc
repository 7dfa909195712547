// The Store's deliveries: select pins entries while their bytes go out,
// drop_select claims them (waiting for them when they are not all committed
// yet) and the Delivery's Finish frees them or puts them back (see store.h).
#include "kvstore/server/store.h"

#include <algorithm>

#include "entry.h"
#include "entry_index.h"
#include "entry_pool.h"
#include "store_tier.h"

namespace kvstore::server {

namespace {

std::string FirstMissing(const Key& k) { return "key " + k.ToHex() + " is not stored"; }

}  // namespace

Delivery::~Delivery() {
  if (!finished_) Finish(false);
}

uint64_t Delivery::total_bytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.bytes.size();
  return n;
}

void Delivery::Finish(bool delivered) {
  if (finished_) return;
  finished_ = true;
  store_->FinishDelivery(this, delivered);
}

std::unique_ptr<Delivery> Store::TryClaimLocked(NamespaceId ns, std::span<const Key> keys) {
  std::vector<Key> spilled;
  for (const Key& k : keys) {
    Entry* e = index_->Find(ns, k);
    if (e == nullptr) return nullptr;
    if (!e->in_host()) spilled.push_back(k);
  }
  if (!spilled.empty()) {
    // Every key is committed but some are on disk or in the device tier: bring
    // them into host slots, then the promotion wakes the waiters again.
    QueuePromotionLocked(ns, std::move(spilled), nullptr);
    return nullptr;
  }
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/true));
  for (const Key& k : keys) {
    Entry* e = index_->Find(ns, k);
    if (e == nullptr) continue;  // the same key listed twice: claimed already
    if (e->retained) {
      // Another taker is still due: this one gets the bytes, the entry stays.
      counts_->DropTaker(e);
      counts_->Pin(e);
      d->shared_.push_back(e);
      continue;
    }
    index_->Erase(e);
    UnlinkLocked(e);
    ++held_entries_;
    d->held_.push_back(e);
  }
  for (const Key& k : keys) {
    auto match = [&](Entry* e) { return e->key == k; };
    auto held = std::find_if(d->held_.begin(), d->held_.end(), match);
    Entry* e =
        held != d->held_.end() ? *held : *std::find_if(d->shared_.begin(), d->shared_.end(), match);
    d->entries_.push_back({k, MetaLocked(e), e->bytes()});
  }
  return d;
}

void Store::WakeWaitersLocked(const NsKey& key, Callbacks* out) {
  for (uint64_t id : waiters_.WaitingOn(key)) {
    const Waiter* w = waiters_.Find(id);
    if (w == nullptr) continue;
    auto d = TryClaimLocked(w->ns, w->keys);
    if (d == nullptr) continue;  // still missing other keys
    auto waiter = waiters_.Remove(id);
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    ++NsLocked(key.ns).hits;
    out->emplace_back(std::move(waiter->callback), std::move(d));
    return;  // the key is claimed now: nobody else can take it
  }
}

void Store::RunCallbacks(Callbacks& cbs) {
  for (auto& [cb, d] : cbs) cb(std::move(d));
}

void Store::Select(std::span<const Key> keys, const DeliveryCallback& callback, NamespaceId ns) {
  SelectImpl(ns, keys, callback, /*may_promote=*/true);
}

void Store::SelectImpl(NamespaceId ns, std::span<const Key> keys, const DeliveryCallback& callback,
                       bool may_promote) {
  std::unique_ptr<Delivery> d(new Delivery(this, /*drop=*/false));
  {
    std::lock_guard lock(mu_);
    std::vector<Key> spilled;
    for (const Key& k : keys) {
      Entry* e = index_->Find(ns, k);
      if (e == nullptr) {
        counters_.misses.fetch_add(1, std::memory_order_relaxed);
        ++NsLocked(ns).misses;
        d->finished_ = true;  // nothing pinned yet
        callback(Status::NotFound(FirstMissing(k)));
        return;
      }
      if (!e->in_host()) spilled.push_back(k);
    }
    if (!spilled.empty()) {
      d->finished_ = true;
      if (may_promote) {
        QueuePromotionLocked(ns, std::move(spilled), callback, {keys.begin(), keys.end()});
        return;
      }
      callback(Status::ResourceExhausted(
          "could not bring " + std::to_string(spilled.size()) +
          " spilled or device-tier entries into host memory (it is full of entries being "
          "read); retry"));
      return;
    }
    for (const Key& k : keys) {
      Entry* e = index_->Find(ns, k);
      counts_->Pin(e);
      host_tier().Touch(e);
      d->held_.push_back(e);
      d->entries_.push_back({k, MetaLocked(e), e->bytes()});
    }
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    ++NsLocked(ns).hits;
  }
  callback(std::move(d));
}

uint64_t Store::DropSelect(std::span<const Key> keys, DeliveryCallback callback, NamespaceId ns) {
  std::unique_ptr<Delivery> d;
  uint64_t id = 0;
  Status refused;
  {
    std::lock_guard lock(mu_);
    d = TryClaimLocked(ns, keys);
    if (d != nullptr) {
      counters_.hits.fetch_add(1, std::memory_order_relaxed);
      ++NsLocked(ns).hits;
    } else if (const uint64_t limit = NsLocked(ns).quota.waiters;
               limit != 0 && waiters_.CountIn(ns) >= limit) {
      refused = Status::ResourceExhausted(
          "namespace " + std::to_string(ns) + " is at its quota of " + std::to_string(limit) +
          " pending drop_selects; wait for some to resolve, or raise the namespace's waiters "
          "quota");
    } else {
      id = waiters_.Add(ns, {keys.begin(), keys.end()}, std::move(callback));
    }
  }
  if (d != nullptr) callback(std::move(d));
  if (!refused.ok()) callback(refused);
  return id;
}

bool Store::CancelWaiter(uint64_t id) {
  std::lock_guard lock(mu_);
  std::optional<Waiter> removed = waiters_.Remove(id);
  if (!removed) return false;
  counters_.misses.fetch_add(1, std::memory_order_relaxed);
  ++NsLocked(removed->ns).misses;
  return true;
}

void Store::FinishDelivery(Delivery* d, bool delivered) {
  Callbacks cbs;
  {
    std::lock_guard lock(mu_);
    for (Entry* e : d->shared_) {
      if (!delivered) counts_->AddTaker(e);  // this taker is still due
      UnpinLocked(e);
    }
    d->shared_.clear();
    for (Entry* e : d->held_) {
      if (!d->drop_) {
        UnpinLocked(e);
        continue;
      }
      --held_entries_;
      if (delivered) {
        FreeOrDoomLocked(e);
        continue;
      }
      // Delivery failed: the entry goes back for the next taker.
      counters_.redeliveries.fetch_add(1, std::memory_order_relaxed);
      if (index_->Contains(e->ns, e->key)) {  // re-inserted meanwhile; keep the newer copy
        e->in_spill = false;  // the disk copy, if any, belongs to the newer entry now
        FreeOrDoomLocked(e);
        continue;
      }
      const NsKey key = e->id();
      IndexLocked(e);
      WakeWaitersLocked(key, &cbs);
    }
    d->held_.clear();
  }
  RunCallbacks(cbs);
}

void Store::FailAllWaiters(const std::string& why) {
  std::vector<Waiter> all;
  {
    std::lock_guard lock(mu_);
    all = waiters_.TakeAll();
  }
  for (auto& w : all) w.callback(Status::Unavailable(why));
}

}  // namespace kvstore::server
