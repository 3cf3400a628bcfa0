// flow::BlockPool: the blocks of flow records the flow writer and the flow file's write-behind
// thread hand back to their producer.
#include <gtest/gtest.h>

#include <vector>

#include "flow/block_pool.h"

using namespace tmach;

TEST(BlockPool, TakeGivesAnEmptyBlockWithRoomForAWholeBlock) {
  flow::BlockPool pool(4096, 4);
  flow::BlockPool::Block b = pool.take();
  EXPECT_TRUE(b.empty());
  EXPECT_GE(b.capacity(), 4096u);
}

TEST(BlockPool, AGivenBackBlockIsReusedEmpty) {
  flow::BlockPool pool(64, 4);
  flow::BlockPool::Block b = pool.take();
  b.resize(1000);  // grown past the block size: its own memory, recognisable
  const flow::FlowRecord* mem = b.data();
  EXPECT_TRUE(pool.give_back(b));
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(pool.kept(), 1u);
  flow::BlockPool::Block again = pool.take();
  EXPECT_EQ(pool.kept(), 0u);
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(again.data(), mem);
  EXPECT_GE(again.capacity(), 1000u);
}

TEST(BlockPool, KeepsNoMoreThanItsCap) {
  flow::BlockPool pool(16, 2);
  std::vector<flow::BlockPool::Block> out;
  for (int i = 0; i < 5; ++i) out.push_back(pool.take());
  for (auto& b : out) b.resize(3);
  const flow::FlowRecord* kept0 = out[0].data();
  const flow::FlowRecord* kept1 = out[1].data();
  EXPECT_TRUE(pool.give_back(out[0]));
  EXPECT_TRUE(pool.give_back(out[1]));
  EXPECT_FALSE(pool.give_back(out[2]));  // over the cap: left to the caller, as it was
  EXPECT_EQ(out[2].size(), 3u);
  EXPECT_EQ(pool.kept(), 2u);
  // The kept ones come back (the last given first), then new ones with a block's room.
  EXPECT_EQ(pool.take().data(), kept1);
  EXPECT_EQ(pool.take().data(), kept0);
  EXPECT_EQ(pool.kept(), 0u);
  flow::BlockPool::Block fresh = pool.take();
  EXPECT_TRUE(fresh.empty());
  EXPECT_GE(fresh.capacity(), 16u);
}
