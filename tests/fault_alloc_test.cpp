// tests/fault_alloc_test.cpp: allocation failure during spawn (label "stress").
//
// This binary replaces the global operator new with one that can be told to
// throw std::bad_alloc on the Nth allocation made by the calling thread.
// Documented outcome (pool.hpp, docs/reliability.md): spawn_blocking throws
// std::bad_alloc at the call and nothing was spawned (Metrics::spawned is
// unchanged, the callable never runs); the pool stays usable. An allocation
// the pool makes later, inside submit (a Worker record for a new thread), is
// never thrown to the caller: it is a thread-creation failure (ENOMEM).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "blockpool/testing.hpp"
#include "stress_util.hpp"

#include "failing_new.hpp"

using failing_new::t_fail_countdown;
using failing_new::t_news;

using blockpool::JoinError;

namespace {
// The allocations counted here are the pool's calls to operator new: turn
// off the recycling of task blocks, which would serve spawns without one.
const bool g_block_cache_off = (blockpool::testing::set_task_block_cache(false), true);

std::atomic<long> g_live{0};
struct Tracked {
  Tracked() { g_live.fetch_add(1); }
  Tracked(const Tracked&) { g_live.fetch_add(1); }
  ~Tracked() { g_live.fetch_sub(1); }
};
}  // namespace

TEST(FaultAlloc, FirstAllocationOfSpawnThrowsAndNothingIsSpawned) {
  blockpool::Pool pool;
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
  std::atomic<int> runs{0};
  const auto before = pool.metrics().spawned;
  t_fail_countdown = 1;
  EXPECT_THROW((void)pool.spawn_blocking([&] { return runs.fetch_add(1); }), std::bad_alloc);
  t_fail_countdown = 0;
  EXPECT_EQ(pool.metrics().spawned, before);
  EXPECT_EQ(pool.spawn_blocking([] { return 2; }).get(), 2);  // still usable
  ASSERT_TRUE(pool.shutdown());
  EXPECT_EQ(runs.load(), 0);
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, 2u);
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
}

// Fail each allocation in turn (the task block, the stop state of a
// stop-token callable, the copy of a captured string, a new thread's record):
// either the call throws bad_alloc and nothing was spawned, or the task was
// spawned and ends exactly once. Fresh pools, so the first-thread path is hit.
TEST(FaultAlloc, EveryAllocationPointOfSpawn) {
  int threw = 0, spawned_ok = 0, spawn_failures = 0;
  for (long n = 1; n <= 8; ++n) {
    for (int variant = 0; variant < 3; ++variant) {
      SCOPED_TRACE("fail allocation #" + std::to_string(n) + ", variant " + std::to_string(variant));
      blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
      std::atomic<int> runs{0};
      const std::string big(200, 'x');  // copying it allocates
      bool threw_now = false;
      std::optional<blockpool::JoinHandle<int>> h;
      t_fail_countdown = n;
      try {
        if (variant == 0)
          h = pool.spawn_blocking([&, t = Tracked{}] { return runs.fetch_add(1), 1; });
        else if (variant == 1)
          h = pool.spawn_blocking([&, t = Tracked{}](std::stop_token) { return runs.fetch_add(1), 1; });
        else
          h = pool.spawn_mandatory_blocking(
              [&, t = Tracked{}, s = big] { return runs.fetch_add(1), static_cast<int>(s.size()); });
      } catch (const std::bad_alloc&) {
        threw_now = true;
      }
      t_fail_countdown = 0;
      if (threw_now) {
        ++threw;
        EXPECT_EQ(pool.metrics().spawned, 0u);
        EXPECT_FALSE(h.has_value());
      } else {
        ASSERT_TRUE(h.has_value());
        try {
          EXPECT_GE(h->get(), 1);
          EXPECT_EQ(runs.load(), 1);
          ++spawned_ok;
        } catch (const JoinError& e) {
          // The pool's own allocation for the first thread failed: the task
          // could not run (ENOMEM), it never ran.
          EXPECT_TRUE(e.is_spawn_failure()) << e.what();
          EXPECT_EQ(e.code().value(), ENOMEM);
          EXPECT_EQ(runs.load(), 0);
          ++spawn_failures;
        }
      }
      // The pool is still usable.
      EXPECT_EQ(pool.spawn_blocking([] { return 7; }).get(), 7);
      ASSERT_TRUE(pool.shutdown());
      const auto m = pool.metrics();
      EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
      EXPECT_EQ(m.threads, 0u);
      EXPECT_EQ(g_live.load(), 0) << "a callable leaked";
    }
  }
  EXPECT_GT(threw, 0);
  EXPECT_GT(spawned_ok, 0);
  std::printf("[fault] alloc points: %d threw bad_alloc, %d spawned, %d spawn failures\n", threw,
              spawned_ok, spawn_failures);
}

// The recycling of task blocks (on by default; off in the rest of this file):
// blocks that pool threads free come back to the spawning thread, so once
// tasks have completed, spawning small tasks makes no call to operator new.
TEST(BlockCache, SpawnsReuseFreedBlocks) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "no recycling under AddressSanitizer";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "no recycling under AddressSanitizer";
#endif
#endif
  blockpool::testing::set_task_block_cache(true);
  {
    blockpool::Pool pool;
    std::vector<blockpool::JoinHandle<int>> hs;
    for (int i = 0; i < 1000; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(hs[i].get(), i);
    hs.clear();  // the blocks go back: from this thread's handles and the workers
    hs.reserve(32);
    const long before = t_news;
    for (int i = 0; i < 32; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
    EXPECT_EQ(t_news - before, 0) << "spawns called operator new despite free blocks";
    for (int i = 0; i < 32; ++i) EXPECT_EQ(hs[i].get(), i);
    ASSERT_TRUE(pool.shutdown());
  }
  blockpool::testing::set_task_block_cache(false);
}

// A lane adds no allocation per spawn: spawning into a lane (held at its cap
// or not) makes exactly the allocations a default-lane spawn makes, the task
// block (the block cache is off in this file, so that one is counted).
TEST(FaultAlloc, ALaneAddsNoAllocationPerSpawn) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).lane("io", {.max_running = 1, .max_queued = 1000}).build();
  blockpool::Handle io = pool.lane("io");
  pool.spawn_blocking([] {}).get();  // the pool's threads exist already
  io.spawn_blocking([] {}).get();
  constexpr int kN = 200;
  std::vector<blockpool::JoinHandle<int>> hs;
  hs.reserve(2 * kN);
  long t0 = t_news;
  for (int i = 0; i < kN; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  const long per_default = t_news - t0;
  t0 = t_news;
  for (int i = 0; i < kN; ++i) hs.push_back(io.spawn_blocking([i] { return i; }));  // most are held
  const long per_lane = t_news - t0;
  EXPECT_EQ(per_lane, per_default);
  EXPECT_EQ(per_lane, kN) << "one allocation (the task block) per spawn";
  for (auto& h : hs) (void)h.get();
  EXPECT_TRUE(pool.shutdown());
}
