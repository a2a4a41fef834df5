// The recycling of task blocks (src/block_cache.cpp): a wave of freed blocks
// is kept for the spawners while the process is busy, and given back once a
// pool thread retires for idleness. The shelf is process-wide, so this
// executable holds only these tests, each starting from a trimmed shelf.
#include <vector>

#include "blockpool/detail/task.hpp"
#include "test_util.hpp"

using blockpool::detail::allocate_task_block;
using blockpool::detail::free_task_block;
using blockpool::detail::task_block_cache_shelved;
using blockpool::detail::trim_task_block_cache;
using bptest::wait_until;

namespace {

constexpr std::size_t kBlockSize = 64;  // the smaller class
// What the shelf keeps once idle, as src/block_cache.cpp documents it: 64
// batches of 32 blocks in each of its two classes.
constexpr std::size_t kIdleBound = 2 * 64 * 32;
// A wave well past that: a queue 20,000 tasks deep, then drained.
constexpr std::size_t kWave = 20'000;

// Allocates kWave blocks on this thread, then frees them all: what a spawner
// and the thread that ends its tasks do to the cache when the queue fills
// and drains (one thread is enough: the shelf is what the threads share).
void wave() {
  std::vector<void*> blocks;
  blocks.reserve(kWave);
  for (std::size_t i = 0; i < kWave; ++i) blocks.push_back(allocate_task_block(kBlockSize));
  for (void* b : blocks) free_task_block(b, kBlockSize);
}

// Whether this build recycles blocks at all (not under AddressSanitizer).
// Decided once, by the first test, while the shelf is still empty.
bool cache_on() {
  static const bool on = [] {
    std::vector<void*> blocks;
    for (int i = 0; i < 256; ++i) blocks.push_back(allocate_task_block(kBlockSize));
    for (void* b : blocks) free_task_block(b, kBlockSize);
    return task_block_cache_shelved() > 0;
  }();
  return on;
}

}  // namespace

TEST(BlockCache, AWaveOfFreedBlocksIsKeptWhileBusy) {
  if (!cache_on()) GTEST_SKIP() << "task blocks are not recycled in this build";
  trim_task_block_cache();
  wave();
  // All but this thread's own list (at most 2 x 32 blocks) went to the
  // shelf, well past what it keeps when idle: the next wave's spawns reuse
  // them instead of going back to the allocator.
  EXPECT_GE(task_block_cache_shelved(), kWave - 64);
  EXPECT_GT(task_block_cache_shelved(), kIdleBound);
}

TEST(BlockCache, TrimKeepsOnlyTheIdleBoundAndTheBlocksStayUsable) {
  if (!cache_on()) GTEST_SKIP() << "task blocks are not recycled in this build";
  trim_task_block_cache();
  wave();
  ASSERT_GT(task_block_cache_shelved(), kIdleBound);
  trim_task_block_cache();
  const std::size_t kept = task_block_cache_shelved();
  EXPECT_LE(kept, kIdleBound);
  EXPECT_GT(kept, 0u);  // the warmest batches stay
  trim_task_block_cache();
  EXPECT_EQ(task_block_cache_shelved(), kept);  // nothing more to give back
  wave();  // the shelf's remaining blocks and the new ones are reused alike
  EXPECT_GE(task_block_cache_shelved(), kWave - 64);
}

TEST(BlockCache, APoolThreadRetiringForIdlenessTrimsTheShelf) {
  if (!cache_on()) GTEST_SKIP() << "task blocks are not recycled in this build";
  trim_task_block_cache();
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool =
      blockpool::Builder{}.max_threads(1).keep_alive(std::chrono::seconds(10)).clock(clock).build();
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(pool, 1));
  wave();
  ASSERT_GT(task_block_cache_shelved(), kIdleBound);
  clock->advance(std::chrono::seconds(10));
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads_retired == 1; }));
  // The thread trims before it finishes leaving (before on_thread_stop and
  // the join), so once it is counted retired the trim may still be under
  // way: wait for it.
  EXPECT_TRUE(wait_until([&] { return task_block_cache_shelved() <= kIdleBound; }))
      << "shelved: " << task_block_cache_shelved();
}
