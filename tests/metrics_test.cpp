// Metrics: every field, and the ordering guarantee (a task's counter is
// updated before its handle ends; a thread's before `threads` drops).
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

TEST(Metrics, FreshPoolIsZero) {
  blockpool::Pool pool;
  const auto m = pool.metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.spawned, 0u);
  EXPECT_EQ(m.completed, 0u);
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.cancelled, 0u);
  EXPECT_EQ(m.threads_started, 0u);
  EXPECT_EQ(m.threads_retired, 0u);
  EXPECT_EQ(m.spawn_failures, 0u);
  EXPECT_EQ(m.peak_threads, 0u);
  EXPECT_EQ(m.hook_errors, 0u);
}

TEST(Metrics, EveryFieldThroughAScenario) {
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  std::atomic<int> hook_calls{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(2)
                             .keep_alive(5s)
                             .clock(clock)
                             .on_thread_start([&] {
                               if (hook_calls++ == 0) throw std::runtime_error("first start hook");
                             })
                             .build();
  Gate gate;
  std::atomic<int> running{0};
  auto blocked = [&] {
    running++;
    gate.wait();
    return 1;
  };
  auto a = pool.spawn_blocking(blocked);
  auto b = pool.spawn_blocking(blocked);
  auto c = pool.spawn_blocking(blocked);                        // waits: cap is 2
  auto d = pool.spawn_blocking([]() -> int { throw 1; });      // waits, then fails
  auto e = pool.spawn_blocking([] { return 2; });               // waits, then aborted
  ASSERT_TRUE(wait_until([&] { return running.load() == 2; }));
  ASSERT_TRUE(wait_until([&] { return pool.metrics().queue_depth == 3; }));
  auto m = pool.metrics();
  EXPECT_EQ(m.threads, 2u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.queue_depth, 3u);
  EXPECT_EQ(m.spawned, 5u);
  EXPECT_EQ(m.threads_started, 2u);
  EXPECT_EQ(m.peak_threads, 2u);
  EXPECT_EQ(m.hook_errors, 1u);
  EXPECT_EQ(m.completed, 0u);

  EXPECT_TRUE(e.abort());
  m = pool.metrics();
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.queue_depth, 2u);

  gate.open();
  EXPECT_EQ(a.get(), 1);
  EXPECT_EQ(b.get(), 1);
  EXPECT_EQ(c.get(), 1);
  EXPECT_THROW(d.get(), int);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 2; }));
  m = pool.metrics();
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.threads, 2u);
  EXPECT_EQ(m.threads_retired, 0u);

  clock->advance(5s);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  m = pool.metrics();
  EXPECT_EQ(m.threads_retired, 2u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.peak_threads, 2u);  // a high-water mark: does not drop
  EXPECT_EQ(m.spawn_failures, 0u);
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
}

TEST(Metrics, SpawnFailuresCounted) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_creation_fault_for_testing([](std::uint64_t) { return EAGAIN; }).build();
  for (int i = 0; i < 3; ++i) (void)bptest::get_join_error(pool.spawn_blocking([] {}));
  const auto m = pool.metrics();
  EXPECT_GE(m.spawn_failures, 3u);
  EXPECT_EQ(m.failed, 3u);
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.peak_threads, 0u);
}

TEST(Metrics, TaskCountersUpdatedBeforeHandleEnds) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  for (int i = 0; i < 300; ++i) {
    if (i % 3 == 0) {
      auto h = pool.spawn_blocking([]() -> int { throw std::runtime_error("x"); });
      EXPECT_THROW(h.get(), std::runtime_error);
      ++failed;
    } else {
      auto h = pool.spawn_blocking([i] { return i; });
      EXPECT_EQ(h.get(), i);
      ++completed;
    }
    // Read right after get(): the counter must already include this task.
    const auto m = pool.metrics();
    ASSERT_EQ(m.completed, completed) << "at task " << i;
    ASSERT_EQ(m.failed, failed) << "at task " << i;
  }
}

TEST(Metrics, CountersVisibleWhenIsFinishedTurnsTrue) {
  blockpool::Pool pool;
  for (int i = 0; i < 200; ++i) {
    auto h = pool.spawn_blocking([] {});
    while (!h.is_finished()) {
    }
    ASSERT_EQ(pool.metrics().completed, static_cast<std::uint64_t>(i + 1));
  }
}

TEST(Metrics, ThreadCountersBeforeThreadsDrops) {
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(1s).clock(clock).build();
  for (int round = 1; round <= 20; ++round) {
    pool.spawn_blocking([] {}).get();
    // threads_started is counted before the thread runs its first task.
    ASSERT_EQ(pool.metrics().threads_started, static_cast<std::uint64_t>(round));
    ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
    clock->advance(1s);
    ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
    // threads_retired is counted before threads drops.
    ASSERT_EQ(pool.metrics().threads_retired, static_cast<std::uint64_t>(round));
  }
}

TEST(Metrics, CancelledCountedBeforeHandleEndsOnShutdown) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch started{1};
  auto blocker = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
  });
  started.wait();
  std::vector<blockpool::JoinHandle<void>> hs;
  for (int i = 0; i < 10; ++i) hs.push_back(pool.spawn_blocking([] {}));
  std::thread closer([&] { pool.shutdown_background(); });
  hs.back().wait();
  EXPECT_EQ(pool.metrics().cancelled, 10u);
  closer.join();
  gate.open();
  blocker.get();
}
