// PagedKvCache bookkeeping (allocation, copy-on-write, LRU of published
// blocks) and the pack/unpack round trip.
#include "kvstore/engine/paged_kv_cache.h"

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <cstring>

#include "kvstore/engine/model.h"

namespace kvstore::engine {
namespace {

kernels::KvCacheShape Shape(int blocks = 8) { return {2, blocks, 4, 2, 8}; }

// Fills the sequence's positions [from, to) with values derived from
// (position, layer, kv, element), as the model's KV write would.
void Fill(PagedKvCache& c, SequenceId s, int from, int to, float salt = 0) {
  const auto& sh = c.shape();
  const int row = sh.kv_heads * sh.head_dim;
  for (int p = from; p < to; ++p) {
    const int64_t slot = kernels::PositionSlot(c.BlockTable(s).data(), p, sh.block_size);
    for (int l = 0; l < sh.num_layers; ++l)
      for (int kv = 0; kv < 2; ++kv)
        for (int e = 0; e < row; ++e)
          c.data()[kernels::LayerCacheOffset(sh, l, kv) + slot * row + e] =
              salt + p * 1000 + l * 100 + kv * 10 + e * 0.01f;
  }
}

TEST(PagedKvCache, AllocatesPerBlockAndFrees) {
  PagedKvCache c(Shape());
  const SequenceId s = c.CreateSequence();
  ASSERT_OK(c.PrepareAppend(s, 9));
  EXPECT_EQ(c.BlockTable(s).size(), 3u);
  EXPECT_EQ(c.NumTokens(s), 0);
  ASSERT_OK(c.SetNumTokens(s, 9));
  EXPECT_EQ(c.NumAvailableBlocks(), 5);
  ASSERT_OK(c.SetNumTokens(s, 4));  // truncation releases blocks past the end
  EXPECT_EQ(c.BlockTable(s).size(), 1u);
  EXPECT_EQ(c.NumAvailableBlocks(), 7);
  ASSERT_OK(c.FreeSequence(s));
  EXPECT_EQ(c.NumAvailableBlocks(), 8);
  EXPECT_EQ(c.FreeSequence(s).code(), StatusCode::kNotFound);
}

TEST(PagedKvCache, ExhaustionLeavesTheSequenceUnchanged) {
  PagedKvCache c(Shape(2));
  const SequenceId s = c.CreateSequence();
  ASSERT_OK(c.PrepareAppend(s, 4));
  EXPECT_EQ(c.PrepareAppend(s, 20).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(c.BlockTable(s).size(), 1u);
  EXPECT_EQ(c.NumAvailableBlocks(), 1);
}

TEST(PagedKvCache, SharedBlockIsCopiedBeforeWrite) {
  PagedKvCache c(Shape());
  const SequenceId a = c.CreateSequence();
  ASSERT_OK(c.PrepareAppend(a, 8));
  Fill(c, a, 0, 8);
  ASSERT_OK(c.SetNumTokens(a, 8));
  ASSERT_OK(c.PublishBlock(a, 1, "p1"));
  ASSERT_OK(c.PublishBlock(a, 0, "p0"));
  const std::vector<BlockKey> keys = {"p0", "p1"};
  const SequenceId b = c.CreateSequence();
  ASSERT_OK(c.AttachPrefix(b, keys));
  EXPECT_EQ(c.BlockTable(b), c.BlockTable(a));
  // b rewrites its last position: block 1 must be copied, a's stays put.
  ASSERT_OK(c.SetNumTokens(b, 7));
  ASSERT_OK(c.PrepareAppend(b, 8));
  EXPECT_EQ(c.BlockTable(b)[0], c.BlockTable(a)[0]);
  EXPECT_NE(c.BlockTable(b)[1], c.BlockTable(a)[1]);
  auto pa = c.PackBlock(a, 1), pb = c.PackBlock(b, 1);
  ASSERT_OK(pa);
  ASSERT_OK(pb);
  EXPECT_EQ(*pa, *pb);  // the copy carries the data
}

TEST(PagedKvCache, PublishedBlocksAreEvictedLeastRecentlyReleasedFirst) {
  PagedKvCache c(Shape(3));
  std::vector<SequenceId> seqs;
  for (int i = 0; i < 3; ++i) {
    const SequenceId s = c.CreateSequence();
    ASSERT_OK(c.PrepareAppend(s, 4));
    ASSERT_OK(c.SetNumTokens(s, 4));
    ASSERT_OK(c.PublishBlock(s, 0, "key" + std::to_string(i)));
    seqs.push_back(s);
  }
  ASSERT_OK(c.FreeSequence(seqs[1]));
  ASSERT_OK(c.FreeSequence(seqs[0]));
  EXPECT_EQ(c.NumAvailableBlocks(), 2);
  const SequenceId n = c.CreateSequence();
  ASSERT_OK(c.PrepareAppend(n, 4));  // evicts key1, released first
  const std::vector<BlockKey> k0 = {"key0"}, k1 = {"key1"}, k2 = {"key2"};
  EXPECT_EQ(c.MatchPrefix(k1), 0);
  EXPECT_EQ(c.MatchPrefix(k0), 1);
  EXPECT_EQ(c.MatchPrefix(k2), 1);  // still referenced by seqs[2]
  EXPECT_EQ(c.AttachPrefix(c.CreateSequence(), k1).code(), StatusCode::kNotFound);
}

// Packs every block of a sequence of length n, unpacks into another cache at
// different block ids, packs again: the bytes must be identical.
void RoundTrip(int n) {
  PagedKvCache src(Shape()), dst(Shape());
  const SequenceId other = dst.CreateSequence();  // shifts dst's block ids
  ASSERT_OK(dst.PrepareAppend(other, 5));
  const SequenceId s = src.CreateSequence();
  ASSERT_OK(src.PrepareAppend(s, n));
  Fill(src, s, 0, n);
  ASSERT_OK(src.SetNumTokens(s, n));
  const int blocks = (n + 3) / 4;
  std::vector<std::byte> payload(blocks * src.PackedBlockBytes());
  ASSERT_OK(src.PackBlocks(s, 0, blocks, payload));
  // Block by block must equal the batch.
  for (int b = 0; b < blocks; ++b) {
    auto one = src.PackBlock(s, b);
    ASSERT_OK(one);
    EXPECT_EQ(0, std::memcmp(one->data(), payload.data() + b * src.PackedBlockBytes(),
                             src.PackedBlockBytes()));
  }
  const SequenceId d = dst.CreateSequence();
  ASSERT_OK(dst.UnpackBlocks(d, payload, n));
  EXPECT_EQ(dst.NumTokens(d), n);
  EXPECT_NE(dst.BlockTable(d), src.BlockTable(s));
  std::vector<std::byte> again(payload.size());
  ASSERT_OK(dst.PackBlocks(d, 0, blocks, again));
  EXPECT_EQ(again, payload) << "n=" << n;
}

TEST(PagedKvCache, PackUnpackRoundTripIsByteExact) {
  for (int n : {1, 3, 4, 8, 13, 16}) RoundTrip(n);
}

TEST(PagedKvCache, UnpackInTwoSteps) {
  PagedKvCache src(Shape()), dst(Shape());
  const SequenceId s = src.CreateSequence();
  ASSERT_OK(src.PrepareAppend(s, 10));
  Fill(src, s, 0, 10, 0.5f);
  ASSERT_OK(src.SetNumTokens(s, 10));
  auto b0 = src.PackBlock(s, 0), b1 = src.PackBlock(s, 1), b2 = src.PackBlock(s, 2);
  const SequenceId d = dst.CreateSequence();
  ASSERT_OK(dst.UnpackBlocks(d, *b0, 4));
  ASSERT_OK(dst.UnpackBlocks(d, *b1, 4));
  ASSERT_OK(dst.UnpackBlocks(d, *b2, 2));
  EXPECT_EQ(dst.NumTokens(d), 10);
  EXPECT_EQ(*dst.PackBlock(d, 2), *b2);
  // The sequence now ends inside a block: no more unpacking.
  EXPECT_EQ(dst.UnpackBlocks(d, *b0, 4).code(), StatusCode::kInvalidArgument);
}

TEST(PagedKvCache, PackAndUnpackRejectBadArguments) {
  PagedKvCache c(Shape());
  const SequenceId s = c.CreateSequence();
  ASSERT_OK(c.PrepareAppend(s, 6));
  ASSERT_OK(c.SetNumTokens(s, 6));
  std::vector<std::byte> one(c.PackedBlockBytes());
  std::vector<std::byte> two(2 * c.PackedBlockBytes());
  EXPECT_EQ(c.PackBlocks(s, 1, 2, two).code(),
            StatusCode::kInvalidArgument);                                     // past the sequence
  EXPECT_EQ(c.PackBlocks(s, 0, 2, one).code(), StatusCode::kInvalidArgument);  // small buffer
  EXPECT_EQ(c.PackBlock(99, 0).status().code(), StatusCode::kNotFound);
  const SequenceId d = c.CreateSequence();
  EXPECT_EQ(c.UnpackBlocks(d, std::span(one).first(10), 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.UnpackBlocks(d, one, 5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.UnpackBlocks(d, one, 0).code(), StatusCode::kInvalidArgument);
}

// With the real model: a packed prompt decodes the same tokens on the other
// side, for prompt lengths that are and are not multiples of the block size.
TEST(PagedKvCache, ModelKvSurvivesTransfer) {
  for (int n : {32, 45}) {
    ModelOptions o;
    o.kv_cache_blocks = 32;
    auto a = Model::CreateBuiltin(21, o), b = Model::CreateBuiltin(21, o);
    ASSERT_OK(a);
    ASSERT_OK(b);
    std::vector<int32_t> prompt;
    for (int i = 0; i < n; ++i) prompt.push_back((i * 7) % 256);
    const SequenceId sa = (*a)->kv_cache().CreateSequence();
    ASSERT_OK((*a)->Prefill(sa, prompt));
    const int blocks = (n + 15) / 16;
    std::vector<std::byte> payload(blocks * (*a)->kv_cache().PackedBlockBytes());
    ASSERT_OK((*a)->kv_cache().PackBlocks(sa, 0, blocks, payload));
    const SequenceId sb = (*b)->kv_cache().CreateSequence();
    ASSERT_OK((*b)->kv_cache().UnpackBlocks(sb, payload, n));
    std::vector<std::byte> again(payload.size());
    ASSERT_OK((*b)->kv_cache().PackBlocks(sb, 0, blocks, again));
    EXPECT_EQ(again, payload);
    GenerateOptions g;
    g.max_new_tokens = 8;
    g.stop_at_eos = false;
    ASSERT_OK((*a)->kv_cache().SetNumTokens(sa, n));
    auto ta = Generate(**a, sa, prompt, g), tb = Generate(**b, sb, prompt, g);
    ASSERT_OK(ta);
    ASSERT_OK(tb);
    EXPECT_EQ(*ta, *tb) << "n=" << n;
  }
}

}  // namespace
}  // namespace kvstore::engine
