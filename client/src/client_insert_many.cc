// InsertMany on one kvstored: many values in one request (schema/
// kvstore.capnp, InsertManyRequest). Over a one-sided transport a value the
// store can reach itself is named by region and offset and pulled by the
// store, as a single insert's is; the rest travel back to back in the frame.
#include <capnp/message.h>

#include <xxhash.h>
#include <algorithm>

#include "client_impl.h"
#include "kvstore/frame.h"

namespace kvstore {

namespace {

Status OverLimit(uint64_t size, uint64_t limit) {
  return Status::InvalidArgument("value of " + std::to_string(size) +
                                 " bytes exceeds kvstored's limit of " + std::to_string(limit) +
                                 " bytes");
}

// Keys per request: a request's control part (every item's key, meta and
// source) stays far below the frame's kMaxControlBytes, and one request never
// holds the store for long. 4,096 keys already make the per-request cost small.
constexpr size_t kMaxItemsPerRequest = 4096;

// Items per request that keep the control part under half of kMaxControlBytes:
// an item costs its key, meta and source words (under 256 bytes) plus its
// layout and producer text.
size_t MaxItems(const EntryMeta& meta) {
  const size_t per_item = 256 + meta.layout.size() + meta.producer.size();
  return std::clamp<size_t>(kMaxControlBytes / 2 / per_item, 1, kMaxItemsPerRequest);
}

// Items [begin, end) whose values total at most `limit` bytes (0: no limit),
// at most `max_items` of them, starting at `begin` (whose value is at most
// `limit` alone).
size_t ChunkEnd(std::span<const InsertItem> items, size_t begin, uint64_t limit, size_t max_items) {
  size_t end = begin;
  uint64_t total = 0;
  while (end < items.size() && end - begin < max_items &&
         (limit == 0 || items[end].value.size() <= limit - total)) {
    total += items[end++].value.size();
  }
  return end;
}

}  // namespace

Result<std::vector<Result<bool>>> Client::Impl::InsertMany(std::span<const InsertItem> items,
                                                           const InsertOptions& options) {
  std::vector<Result<bool>> results;
  results.reserve(items.size());
  if (items.empty()) return results;
  KVSTORE_ASSIGN_OR_RETURN(auto conn, Borrow());
  // A request's values (in its frame or pulled) total at most the daemon's
  // value limit and its keys fit a frame's control part: larger batches go as
  // several requests, and a value over the limit alone fails its key here.
  const uint64_t limit = conn->max_value_bytes();
  // Local reaches only shared memory; rdma any registered host region.
  const transport::Kind kind = conn->kind();
  const bool pull = kind != transport::Kind::kTcp;
  EntryMeta meta;
  meta.layout = options.layout;
  meta.producer = options.producer.empty() ? options_.client_name : options.producer;
  size_t begin = 0;
  while (begin < items.size()) {
    if (limit != 0 && items[begin].value.size() > limit) {
      results.push_back(OverLimit(items[begin].value.size(), limit));
      ++begin;
      continue;
    }
    const size_t end = ChunkEnd(items, begin, limit, MaxItems(meta));
    const size_t n = end - begin;
    auto deadline = Deadline();
    capnp::MallocMessageBuilder msg;
    auto req = msg.initRoot<wire::Request>();
    const uint64_t id = conn->NextId();
    req.setId(id);
    auto many = req.initInsertMany();
    many.setTtlMs(static_cast<uint64_t>(options.ttl.count()));
    auto list = many.initItems(static_cast<unsigned>(n));
    std::vector<std::span<const std::byte>> bulk;
    bulk.reserve(n);
    std::vector<transport::ExportedRegion> keep;
    uint64_t pulled = 0;
    for (size_t i = 0; i < n; ++i) {
      const InsertItem& item = items[begin + i];
      auto out = list[static_cast<unsigned>(i)];
      out.setKey(KeyToWire(item.key));
      meta.size = item.value.size();
      // The store checks what it pulls against this too: a buffer changed mid-insert is refused.
      meta.checksum = item.checksum.value_or(XXH3_64bits(item.value.data(), item.value.size()));
      MetaToWire(meta, out.initMeta());
      std::optional<RegionSlice> slice;
      if (pull && !item.value.empty()) {
        slice = regions_.Find(item.value, /*shared_only=*/kind == transport::Kind::kLocal);
      }
      if (slice) {
        KVSTORE_RETURN_IF_ERROR(
            FillRemote(conn, OneSidedTarget{slice, {}}, out.initSource(), &keep, deadline));
        ++pulled;
      } else {
        bulk.push_back(item.value);
      }
    }
    KVSTORE_ASSIGN_OR_RETURN(InFrame in, Call(conn, msg, bulk, deadline));
    auto resp = in.response();
    if (resp.getId() != id) return Status::Internal("kvstored replied to a different request");
    KVSTORE_RETURN_IF_ERROR(ReplyStatus(resp));
    if (!resp.isInsertResults() || resp.getInsertResults().size() != n) {
      return Status::Internal("kvstored answered insert_many of " + std::to_string(n) +
                              " items without one result per item; is it older than this client?");
    }
    regions_.one_sided.fetch_add(pulled, std::memory_order_relaxed);
    for (auto r : resp.getInsertResults()) {
      if (r.getCode() == wire::Code::OK) {
        results.push_back(r.getStored());
      } else {
        results.push_back(Status(CodeFromWire(r.getCode()), r.getMessage().cStr()));
      }
    }
    begin = end;
  }
  return results;
}

}  // namespace kvstore
