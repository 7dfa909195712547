// PagedKvCache bookkeeping (allocation, copy-on-write, LRU of published
// blocks) and the pack/unpack round trip.
#include "kvstore/engine/paged_kv_cache.h"

#include <gtest/gtest.h>

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
  ASSERT_TRUE(c.PrepareAppend(s, 9).ok());
  EXPECT_EQ(c.BlockTable(s).size(), 3u);
  EXPECT_EQ(c.NumTokens(s), 0);
  ASSERT_TRUE(c.SetNumTokens(s, 9).ok());
  EXPECT_EQ(c.NumAvailableBlocks(), 5);
  ASSERT_TRUE(c.SetNumTokens(s, 4).ok());  // truncation releases blocks past the end
  EXPECT_EQ(c.BlockTable(s).size(), 1u);
  EXPECT_EQ(c.NumAvailableBlocks(), 7);
  ASSERT_TRUE(c.FreeSequence(s).ok());
  EXPECT_EQ(c.NumAvailableBlocks(), 8);
  EXPECT_EQ(c.FreeSequence(s).code(), StatusCode::kNotFound);
}

TEST(PagedKvCache, ExhaustionLeavesTheSequenceUnchanged) {
  PagedKvCache c(Shape(2));
  const SequenceId s = c.CreateSequence();
  ASSERT_TRUE(c.PrepareAppend(s, 4).ok());
  EXPECT_EQ(c.PrepareAppend(s, 20).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(c.BlockTable(s).size(), 1u);
  EXPECT_EQ(c.NumAvailableBlocks(), 1);
}

TEST(PagedKvCache, SharedBlockIsCopiedBeforeWrite) {
  PagedKvCache c(Shape());
  const SequenceId a = c.CreateSequence();
  ASSERT_TRUE(c.PrepareAppend(a, 8).ok());
  Fill(c, a, 0, 8);
  ASSERT_TRUE(c.SetNumTokens(a, 8).ok());
  ASSERT_TRUE(c.PublishBlock(a, 1, "p1").ok());
  ASSERT_TRUE(c.PublishBlock(a, 0, "p0").ok());
  const std::vector<BlockKey> keys = {"p0", "p1"};
  const SequenceId b = c.CreateSequence();
  ASSERT_TRUE(c.AttachPrefix(b, keys).ok());
  EXPECT_EQ(c.BlockTable(b), c.BlockTable(a));
  // b rewrites its last position: block 1 must be copied, a's stays put.
  ASSERT_TRUE(c.SetNumTokens(b, 7).ok());
  ASSERT_TRUE(c.PrepareAppend(b, 8).ok());
  EXPECT_EQ(c.BlockTable(b)[0], c.BlockTable(a)[0]);
  EXPECT_NE(c.BlockTable(b)[1], c.BlockTable(a)[1]);
  auto pa = c.PackBlock(a, 1), pb = c.PackBlock(b, 1);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(*pa, *pb);  // the copy carries the data
}

TEST(PagedKvCache, PublishedBlocksAreEvictedLeastRecentlyReleasedFirst) {
  PagedKvCache c(Shape(3));
  std::vector<SequenceId> seqs;
  for (int i = 0; i < 3; ++i) {
    const SequenceId s = c.CreateSequence();
    ASSERT_TRUE(c.PrepareAppend(s, 4).ok());
    ASSERT_TRUE(c.SetNumTokens(s, 4).ok());
    ASSERT_TRUE(c.PublishBlock(s, 0, "key" + std::to_string(i)).ok());
    seqs.push_back(s);
  }
  ASSERT_TRUE(c.FreeSequence(seqs[1]).ok());
  ASSERT_TRUE(c.FreeSequence(seqs[0]).ok());
  EXPECT_EQ(c.NumAvailableBlocks(), 2);
  const SequenceId n = c.CreateSequence();
  ASSERT_TRUE(c.PrepareAppend(n, 4).ok());  // evicts key1, released first
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
  ASSERT_TRUE(dst.PrepareAppend(other, 5).ok());
  const SequenceId s = src.CreateSequence();
  ASSERT_TRUE(src.PrepareAppend(s, n).ok());
  Fill(src, s, 0, n);
  ASSERT_TRUE(src.SetNumTokens(s, n).ok());
  const int blocks = (n + 3) / 4;
  std::vector<std::byte> payload(blocks * src.PackedBlockBytes());
  ASSERT_TRUE(src.PackBlocks(s, 0, blocks, payload).ok());
  // Block by block must equal the batch.
  for (int b = 0; b < blocks; ++b) {
    auto one = src.PackBlock(s, b);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(0, std::memcmp(one->data(), payload.data() + b * src.PackedBlockBytes(),
                             src.PackedBlockBytes()));
  }
  const SequenceId d = dst.CreateSequence();
  ASSERT_TRUE(dst.UnpackBlocks(d, payload, n).ok());
  EXPECT_EQ(dst.NumTokens(d), n);
  EXPECT_NE(dst.BlockTable(d), src.BlockTable(s));
  std::vector<std::byte> again(payload.size());
  ASSERT_TRUE(dst.PackBlocks(d, 0, blocks, again).ok());
  EXPECT_EQ(again, payload) << "n=" << n;
}

TEST(PagedKvCache, PackUnpackRoundTripIsByteExact) {
  for (int n : {1, 3, 4, 8, 13, 16}) RoundTrip(n);
}

TEST(PagedKvCache, UnpackInTwoSteps) {
  PagedKvCache src(Shape()), dst(Shape());
  const SequenceId s = src.CreateSequence();
  ASSERT_TRUE(src.PrepareAppend(s, 10).ok());
  Fill(src, s, 0, 10, 0.5f);
  ASSERT_TRUE(src.SetNumTokens(s, 10).ok());
  auto b0 = src.PackBlock(s, 0), b1 = src.PackBlock(s, 1), b2 = src.PackBlock(s, 2);
  const SequenceId d = dst.CreateSequence();
  ASSERT_TRUE(dst.UnpackBlocks(d, *b0, 4).ok());
  ASSERT_TRUE(dst.UnpackBlocks(d, *b1, 4).ok());
  ASSERT_TRUE(dst.UnpackBlocks(d, *b2, 2).ok());
  EXPECT_EQ(dst.NumTokens(d), 10);
  EXPECT_EQ(*dst.PackBlock(d, 2), *b2);
  // The sequence now ends inside a block: no more unpacking.
  EXPECT_EQ(dst.UnpackBlocks(d, *b0, 4).code(), StatusCode::kInvalidArgument);
}

TEST(PagedKvCache, PackAndUnpackRejectBadArguments) {
  PagedKvCache c(Shape());
  const SequenceId s = c.CreateSequence();
  ASSERT_TRUE(c.PrepareAppend(s, 6).ok());
  ASSERT_TRUE(c.SetNumTokens(s, 6).ok());
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
    ASSERT_TRUE(a.ok() && b.ok());
    std::vector<int32_t> prompt;
    for (int i = 0; i < n; ++i) prompt.push_back((i * 7) % 256);
    const SequenceId sa = (*a)->kv_cache().CreateSequence();
    ASSERT_TRUE((*a)->Prefill(sa, prompt).ok());
    const int blocks = (n + 15) / 16;
    std::vector<std::byte> payload(blocks * (*a)->kv_cache().PackedBlockBytes());
    ASSERT_TRUE((*a)->kv_cache().PackBlocks(sa, 0, blocks, payload).ok());
    const SequenceId sb = (*b)->kv_cache().CreateSequence();
    ASSERT_TRUE((*b)->kv_cache().UnpackBlocks(sb, payload, n).ok());
    std::vector<std::byte> again(payload.size());
    ASSERT_TRUE((*b)->kv_cache().PackBlocks(sb, 0, blocks, again).ok());
    EXPECT_EQ(again, payload);
    GenerateOptions g;
    g.max_new_tokens = 8;
    g.stop_at_eos = false;
    ASSERT_TRUE((*a)->kv_cache().SetNumTokens(sa, n).ok());
    auto ta = Generate(**a, sa, prompt, g), tb = Generate(**b, sb, prompt, g);
    ASSERT_TRUE(ta.ok() && tb.ok());
    EXPECT_EQ(*ta, *tb) << "n=" << n;
  }
}

}  // namespace
}  // namespace kvstore::engine
