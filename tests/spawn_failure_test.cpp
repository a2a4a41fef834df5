// Thread creation refused by the OS (fault injection and an absurd stack
// size): with no live thread tasks fail with a spawn-failure JoinError; with
// live threads they wait for them; the pool recovers when the fault goes away.
#include <cerrno>
#include <system_error>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

TEST(SpawnFailure, NoThreadCanBeCreated) {
  std::atomic<int> injector_calls{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([&](std::uint64_t) {
                               injector_calls++;
                               return EAGAIN;
                             })
                             .build();
  std::atomic<bool> ran{false};
  auto h = pool.spawn_blocking([&] {
    ran = true;
    return 1;
  });
  ASSERT_TRUE(bptest::ends_soon(h));
  const auto m = pool.metrics();
  EXPECT_EQ(m.queue_depth, 0u) << "a task no thread can run must not stay queued";
  EXPECT_GE(m.spawn_failures, 1u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.threads_started, 0u);
  const blockpool::JoinError e = bptest::get_join_error(h);
  EXPECT_TRUE(e.is_spawn_failure());
  EXPECT_FALSE(e.is_cancelled());
  EXPECT_EQ(e.code(), std::error_code(EAGAIN, std::system_category()));
  EXPECT_NE(std::string(e.what()).find("thread"), std::string::npos) << e.what();
  EXPECT_FALSE(ran.load());
  EXPECT_GE(injector_calls.load(), 1);
}

TEST(SpawnFailure, ErrnoIsPassedThrough) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_creation_fault_for_testing([](std::uint64_t) { return ENOMEM; }).build();
  auto h = pool.spawn_blocking([] {});
  const auto e = bptest::get_join_error(h);
  EXPECT_TRUE(e.is_spawn_failure());
  EXPECT_EQ(e.code().value(), ENOMEM);
  EXPECT_EQ(e.code().category(), std::system_category());
}

TEST(SpawnFailure, ThrowingInjectorCountsAsFailure) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([](std::uint64_t) -> int {
                               throw std::runtime_error("injector");
                             })
                             .build();
  auto h = pool.spawn_blocking([] {});
  EXPECT_TRUE(bptest::get_join_error(h).is_spawn_failure());
}

TEST(SpawnFailure, AbsurdStackSize) {
  blockpool::Pool pool = blockpool::Builder{}.stack_size(std::size_t{1} << 46).build();
  std::atomic<bool> ran{false};
  auto h = pool.spawn_blocking([&] { ran = true; });
  ASSERT_TRUE(bptest::ends_soon(h));
  const auto m = pool.metrics();
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_GE(m.spawn_failures, 1u);
  EXPECT_EQ(m.failed, 1u);
  const auto e = bptest::get_join_error(h);
  EXPECT_TRUE(e.is_spawn_failure());
  EXPECT_NE(e.code().value(), 0);
  EXPECT_TRUE(e.code().value() == EAGAIN || e.code().value() == ENOMEM || e.code().value() == EINVAL)
      << e.code().message();
  EXPECT_FALSE(ran.load());
}

TEST(SpawnFailure, ManyTasksWithNoThreadAllFail) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_creation_fault_for_testing([](std::uint64_t) { return EAGAIN; }).build();
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 50; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  for (auto& h : hs) EXPECT_TRUE(bptest::get_join_error(h).is_spawn_failure());
  const auto m = pool.metrics();
  EXPECT_EQ(m.failed, 50u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.spawned, m.failed);
}

TEST(SpawnFailure, PoolRecoversWhenFaultGoesAway) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing(
                                 [](std::uint64_t attempt) { return attempt == 0 ? EAGAIN : 0; })
                             .build();
  auto first = pool.spawn_blocking([] { return 1; });
  EXPECT_TRUE(bptest::get_join_error(first).is_spawn_failure());
  auto second = pool.spawn_blocking([] { return 2; });
  EXPECT_EQ(second.get(), 2);
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawn_failures, 1u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.threads_started, 1u);
}

TEST(SpawnFailure, WithLiveThreadTasksWaitAndComplete) {
  // The pool's first two threads are created (its growth controller, then
  // its first worker); every later creation fails. Queued tasks must not
  // fail: they wait for the live worker.
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(8)
                             .thread_creation_fault_for_testing(
                                 [](std::uint64_t attempt) { return attempt <= 1 ? 0 : EAGAIN; })
                             .build();
  Gate gate;
  std::latch started{1};
  auto blocker = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
    return -1;
  });
  started.wait();
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 6; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  // The pool tried (and failed) to add threads for the stalled queue.
  ASSERT_TRUE(wait_until([&] { return pool.metrics().spawn_failures >= 1; }));
  auto m = pool.metrics();
  EXPECT_EQ(m.threads, 1u);
  EXPECT_EQ(m.queue_depth, 6u);
  EXPECT_EQ(m.failed, 0u);
  for (auto& h : hs) EXPECT_FALSE(h.is_finished());
  gate.open();
  EXPECT_EQ(blocker.get(), -1);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hs[static_cast<std::size_t>(i)].get(), i);
  m = pool.metrics();
  EXPECT_EQ(m.completed, 7u);
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.threads_started, 1u);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

TEST(SpawnFailure, WithLiveThreadAfterRetirementNextSpawnRetries) {
  // Faults come and go: after every thread retired, a spawn that cannot
  // create a thread fails; once creation works again, spawns succeed.
  std::atomic<bool> refuse{false};
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool = blockpool::Builder{}
                             .keep_alive(1s)
                             .clock(clock)
                             .thread_creation_fault_for_testing(
                                 [&](std::uint64_t) { return refuse.load() ? EAGAIN : 0; })
                             .build();
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  refuse = true;
  // An idle thread exists: no creation needed, the task runs.
  EXPECT_EQ(pool.spawn_blocking([] { return 2; }).get(), 2);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  clock->advance(1s);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  EXPECT_TRUE(bptest::get_join_error(pool.spawn_blocking([] { return 3; })).is_spawn_failure());
  refuse = false;
  EXPECT_EQ(pool.spawn_blocking([] { return 4; }).get(), 4);
  const auto m = pool.metrics();
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_GE(m.spawn_failures, 1u);
}

TEST(SpawnFailure, ShutdownAfterFailuresIsClean) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_creation_fault_for_testing([](std::uint64_t) { return EAGAIN; }).build();
  auto h = pool.spawn_mandatory_blocking([] {});
  EXPECT_TRUE(bptest::get_join_error(h).is_spawn_failure());
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

// The growth controller exists whenever the pool has a worker: it is created
// first, and a worker never runs without it. So refusing it leaves no worker
// (the task fails as a spawn failure, like any pool that gets no thread), and
// the next spawn creates both.
TEST(SpawnFailure, RefusedControllerMeansNoWorkerAndIsRetriedByTheNextSpawn) {
  std::atomic<int> refusals_left{1};
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([&](std::uint64_t) {
                               return refusals_left.fetch_sub(1) > 0 ? EAGAIN : 0;
                             })
                             .build();
  auto first = pool.spawn_blocking([] { return 1; });
  EXPECT_TRUE(bptest::get_join_error(first).is_spawn_failure());
  EXPECT_EQ(pool.metrics().threads_started, 0u) << "no worker may start without the controller";
  EXPECT_EQ(pool.metrics().spawn_failures, 1u);
  // Nested: a running task waits for a task it queued; the controller grows
  // the pool for it.
  auto outer = pool.spawn_blocking([&] {
    auto inner = pool.spawn_blocking([] { return 2; });
    return inner.wait_for(bptest::kLongWait) ? inner.get() : -1;
  });
  EXPECT_EQ(outer.get(), 2);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

// A running task waits for a task it queued while the OS refuses new threads
// for a while (the shape of tokio-rs/tokio #8406, transient): the controller
// retries with its backoff, without any other event, until a thread is
// created and the queued task runs.
TEST(SpawnFailure, RefusedGrowthIsRetriedWithBackoffWhileATaskWaits) {
  std::atomic<bool> refuse{false};
  std::atomic<int> refused{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([&](std::uint64_t) {
                               if (!refuse.load()) return 0;
                               // Refuse three attempts in a row, then accept.
                               return refused.fetch_add(1) < 3 ? EAGAIN : 0;
                             })
                             .build();
  EXPECT_EQ(pool.spawn_blocking([] { return 0; }).get(), 0);  // controller + first worker
  refuse = true;
  auto outer = pool.spawn_blocking([&] {
    auto inner = pool.spawn_blocking([] { return 3; });
    // Nobody spawns or ends anything while we wait: only the controller's
    // retries can give `inner` a thread.
    return inner.wait_for(bptest::kLongWait) ? inner.get() : -1;
  });
  EXPECT_EQ(outer.get(), 3);
  EXPECT_GE(pool.metrics().spawn_failures, 3u);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}
