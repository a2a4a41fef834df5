// Unit test of the pure growth policy in src/growth.hpp.
#include "growth.hpp"

#include <gtest/gtest.h>

using namespace blockpool::detail::growth;
using std::chrono::microseconds;

namespace {
Snapshot snap(std::size_t queued, std::size_t threads, std::size_t starting, std::size_t idle,
              std::size_t max_threads) {
  Snapshot s;
  s.queued = queued;
  s.threads = threads;
  s.starting = starting;
  s.idle = idle;
  s.max_threads = max_threads;
  return s;
}
}  // namespace

TEST(GrowthPolicy, SpawnStartsThreadOnlyInEmptyPool) {
  EXPECT_TRUE(spawn_must_start_thread(snap(1, 0, 0, 0, 4)));
  EXPECT_FALSE(spawn_must_start_thread(snap(1, 1, 0, 0, 4)));
  EXPECT_FALSE(spawn_must_start_thread(snap(100, 3, 0, 0, 4)));
  EXPECT_FALSE(spawn_must_start_thread(snap(1, 0, 0, 0, 0)));
}

TEST(GrowthPolicy, WatchOnlyWhenQueuedNobodyIdleAndRoomToGrow) {
  EXPECT_TRUE(should_watch(snap(1, 1, 0, 0, 4)));
  EXPECT_FALSE(should_watch(snap(0, 1, 0, 0, 4)));  // nothing queued
  EXPECT_FALSE(should_watch(snap(1, 1, 0, 1, 4)));  // someone idle
  EXPECT_FALSE(should_watch(snap(1, 4, 0, 0, 4)));  // at the cap
  EXPECT_FALSE(should_watch(snap(5, 5, 0, 0, 4)));  // above the cap
  EXPECT_FALSE(should_watch(snap(2, 3, 2, 0, 8)));  // threads still starting will take it
  EXPECT_TRUE(should_watch(snap(3, 3, 2, 0, 8)));   // one task more than they cover
}

TEST(GrowthPolicy, StallDoublesRunningThreadsWithinNeedAndCap) {
  // Adds as many threads as are running (doubling)...
  EXPECT_EQ(threads_to_add_on_stall(snap(10, 1, 0, 0, 64)), 1u);
  EXPECT_EQ(threads_to_add_on_stall(snap(10, 4, 0, 0, 64)), 4u);
  // ...but no more than the queued tasks need...
  EXPECT_EQ(threads_to_add_on_stall(snap(3, 8, 0, 0, 64)), 3u);
  // ...minus threads still starting (they will take queued work)...
  EXPECT_EQ(threads_to_add_on_stall(snap(3, 4, 2, 0, 64)), 1u);
  EXPECT_EQ(threads_to_add_on_stall(snap(2, 3, 2, 0, 64)), 0u);
  // ...and never past the cap.
  EXPECT_EQ(threads_to_add_on_stall(snap(100, 6, 0, 0, 8)), 2u);
  EXPECT_EQ(threads_to_add_on_stall(snap(100, 8, 0, 0, 8)), 0u);
  EXPECT_EQ(threads_to_add_on_stall(snap(0, 1, 0, 0, 8)), 0u);
  // An empty pool with queued work adds at least one.
  EXPECT_EQ(threads_to_add_on_stall(snap(5, 0, 0, 0, 8)), 1u);
}

TEST(GrowthPolicy, RepeatedStallsReachTheCapQuickly) {
  // 256 blocked tasks, one thread: doubling reaches 256 threads in 8 stalls.
  Snapshot s = snap(255, 1, 0, 0, 512);
  int stalls = 0;
  while (s.queued > 0 && stalls < 100) {
    const std::size_t n = threads_to_add_on_stall(s);
    ASSERT_GT(n, 0u);
    s.threads += n;
    s.queued -= n;  // the new threads each take a blocked task
    ++stalls;
  }
  EXPECT_EQ(s.threads, 256u);
  EXPECT_LE(stalls, 9);
}

TEST(GrowthPolicy, WokeOnTime) {
  using std::chrono::nanoseconds;
  EXPECT_TRUE(woke_on_time(nanoseconds(kGrace), kGrace));
  EXPECT_TRUE(woke_on_time(nanoseconds(0), kGrace));
  EXPECT_FALSE(woke_on_time(std::chrono::milliseconds(50), kGrace));
}

// A stall is believed at once only when the controller woke on time and the
// process left CPU time unused (its workers were blocked, not preempted);
// otherwise only after kLateStallChecks stalls in a row.
TEST(GrowthPolicy, StallBelievedOnlyWhenWorkersLookBlocked) {
  using std::chrono::milliseconds;
  EXPECT_TRUE(cpus_saturated(milliseconds(2), milliseconds(1), 2));
  EXPECT_TRUE(cpus_saturated(milliseconds(15), milliseconds(10), 2));
  EXPECT_FALSE(cpus_saturated(milliseconds(14), milliseconds(10), 2));
  EXPECT_FALSE(cpus_saturated(milliseconds(0), milliseconds(1), 1));
  EXPECT_TRUE(believe_stall(true, false, 1));
  EXPECT_FALSE(believe_stall(true, true, 1));
  EXPECT_FALSE(believe_stall(false, false, 1));
  EXPECT_FALSE(believe_stall(false, true, kLateStallChecks - 1));
  EXPECT_TRUE(believe_stall(false, true, kLateStallChecks));
}

// Short tasks that keep up: no growth. A backlog that still grows over an
// interval: one more thread, up to one per CPU (and the cap).
TEST(GrowthPolicy, BacklogGrowthAddsOneThreadUpToTheCpus) {
  Snapshot s = snap(/*queued=*/1000, /*threads=*/1, /*starting=*/0, /*idle=*/0, /*max=*/512);
  s.cpus = 2;
  EXPECT_EQ(threads_to_add_on_backlog(s, 1000), 0u);  // not growing
  EXPECT_EQ(threads_to_add_on_backlog(s, 1200), 0u);  // shrinking
  EXPECT_EQ(threads_to_add_on_backlog(s, 999), 1u);   // growing, by any amount
  EXPECT_EQ(threads_to_add_on_backlog(s, 100), 1u);
  s.threads = 2;
  EXPECT_EQ(threads_to_add_on_backlog(s, 100), 0u);  // one per CPU already
  s.threads = 1;
  s.max_threads = 1;
  EXPECT_EQ(threads_to_add_on_backlog(s, 100), 0u);  // the cap
}

TEST(GrowthPolicy, StallNeverExceedsCap) {
  for (std::size_t max = 1; max <= 16; ++max)
    for (std::size_t threads = 0; threads <= max + 1; ++threads)
      for (std::size_t starting = 0; starting <= threads; ++starting)
        for (std::size_t queued = 0; queued <= 20; ++queued) {
          const std::size_t n = threads_to_add_on_stall(snap(queued, threads, starting, 0, max));
          EXPECT_LE(threads + n, std::max(max, threads));
          EXPECT_LE(n, queued);
        }
}

TEST(GrowthPolicy, IntervalBacksOffAndResets) {
  EXPECT_EQ(next_interval(kGrace, false), kGrace);
  EXPECT_EQ(next_interval(kGrace, true), kGrace * 2);
  EXPECT_EQ(next_interval(kMaxInterval, true), kMaxInterval);
  EXPECT_EQ(next_interval(kMaxInterval, false), kGrace);
  microseconds i = kGrace;
  for (int k = 0; k < 20; ++k) i = next_interval(i, true);
  EXPECT_EQ(i, kMaxInterval);
  EXPECT_LT(kGrace, kMaxInterval);
}

// After a believed stall the pool is known to run blocking work: the next
// watches wait the short grace, and a stall resets the interval to it.
TEST(GrowthPolicy, ShortGraceOnlyShortlyAfterAStall) {
  EXPECT_EQ(grace_for(std::chrono::milliseconds(0)), kShortGrace);
  EXPECT_EQ(grace_for(kStallMemory - std::chrono::milliseconds(1)), kShortGrace);
  EXPECT_EQ(grace_for(kStallMemory), kGrace);
  EXPECT_EQ(grace_for(std::chrono::hours(1)), kGrace);
  EXPECT_LT(kShortGrace, kGrace);
  EXPECT_EQ(next_interval(kMaxInterval, false, kShortGrace), kShortGrace);
  EXPECT_EQ(next_interval(kShortGrace, true, kShortGrace), kShortGrace * 2);
}
