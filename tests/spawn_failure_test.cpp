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
  // The first thread is created; every later creation fails. Queued tasks
  // must not fail: they wait for the live thread.
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(8)
                             .thread_creation_fault_for_testing(
                                 [](std::uint64_t attempt) { return attempt == 0 ? 0 : EAGAIN; })
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
