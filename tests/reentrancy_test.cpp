// Code that runs when a task ends may call back into the pool, and shutdown
// may be called from several places at once (issue 16, points 5, 6 and 8):
//   * a coroutine resumed by shutdown (its queued task cancelled) shuts the
//     pool down again, or waits for a task that is still running;
//   * a callable's or result's destructor spawns, waits or shuts down;
//   * a running task waits for a mandatory task it spawned just as shutdown
//     begins (the mandatory task needs a thread of its own);
//   * several threads call shutdown() at once: each returns true only after
//     every thread has been joined.
// The rule behind the first two (docs/architecture.md, "Shutdown and
// joining"): tasks are ended last, after every state change, wake-up and
// stop request.
#include <condition_variable>
#include <coroutine>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Detached;
using bptest::Gate;
using bptest::kLongWait;
using bptest::wait_until;

namespace {

// A task that runs until its stop token is triggered (by shutdown), without
// polling: it sleeps on a condition variable that the stop request wakes.
auto until_stopped(std::latch& started) {
  return [&started](std::stop_token st) {
    started.count_down();
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lk(m);
    return cv.wait_for(lk, st, kLongWait, [] { return false; }) ? 0 : (st.stop_requested() ? 1 : -1);
  };
}

// Awaits `queued`; once resumed (by the shutdown that cancels it), runs `then`.
Detached await_then(blockpool::JoinHandle<int> queued, std::function<void()> then,
                    std::promise<bool>& cancelled) {
  bool was_cancelled = false;
  try {
    (void)co_await std::move(queued);
  } catch (const blockpool::JoinError& e) {
    was_cancelled = e.is_cancelled();
  }
  then();
  cancelled.set_value(was_cancelled);
}

}  // namespace

// The coroutine is resumed inside shutdown_background() and shuts the pool
// down again, waiting for every thread: the running task exits only when
// shutdown triggers its stop token, so that must have happened before the
// coroutine runs.
TEST(Reentrancy, CoroutineResumedByShutdownShutsDownAgain) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::latch started{1};
  auto running = pool.spawn_blocking(until_stopped(started));
  started.wait();
  auto queued = pool.spawn_blocking([] { return 1; });
  std::promise<bool> cancelled;
  std::optional<bool> inner_result;
  await_then(std::move(queued), [&] { inner_result = pool.shutdown(kLongWait); }, cancelled);

  pool.shutdown_background();  // cancels `queued`: the coroutine runs here
  EXPECT_TRUE(cancelled.get_future().get());
  ASSERT_TRUE(inner_result.has_value());
  EXPECT_TRUE(*inner_result) << "the nested shutdown must see every thread exit";
  EXPECT_EQ(running.get(), 1) << "the running task saw its stop request";
}

// Same, but the coroutine waits for the running task instead.
TEST(Reentrancy, CoroutineResumedByShutdownWaitsForARunningTask) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::latch started{1};
  auto running = pool.spawn_blocking(until_stopped(started));
  started.wait();
  auto queued = pool.spawn_blocking([] { return 1; });
  std::promise<bool> cancelled;
  bool running_ended = false;
  await_then(std::move(queued), [&] { running_ended = running.wait_for(kLongWait); }, cancelled);

  pool.shutdown_background();
  EXPECT_TRUE(cancelled.get_future().get());
  EXPECT_TRUE(running_ended);
  EXPECT_EQ(running.get(), 1);
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

// A coroutine resumed by shutdown releases the mandatory tasks that hold
// every thread, then shuts down again: the nested call sees the threads that
// ran them exit (and the parked controller, woken before tasks are ended).
TEST(Reentrancy, CoroutineResumedByShutdownReleasesMandatoryWork) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(3).build();
  bptest::BusyThreads busy(pool, 3, /*mandatory=*/true);
  auto queued = pool.spawn_blocking([] { return 1; });
  std::promise<bool> cancelled;
  std::optional<bool> inner;
  await_then(std::move(queued),
             [&] {
               busy.release();  // the mandatory tasks end; their threads leave
               inner = pool.shutdown(kLongWait);
             },
             cancelled);
  pool.shutdown_background();
  EXPECT_TRUE(cancelled.get_future().get());
  ASSERT_TRUE(inner.has_value());
  EXPECT_TRUE(*inner);
  for (auto& b : busy.tasks()) EXPECT_TRUE(b.wait_for(kLongWait));
}

// A spawn from a coroutine resumed by shutdown is cancelled at once (the pool
// is shutting down) and never blocks.
TEST(Reentrancy, SpawnFromCoroutineResumedByShutdownIsCancelled) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::latch started{1};
  auto running = pool.spawn_blocking(until_stopped(started));
  started.wait();
  std::promise<bool> cancelled;
  std::optional<bool> spawn_cancelled;
  await_then(pool.spawn_blocking([] { return 1; }),
             [&] {
               auto h = pool.spawn_blocking([] { return 2; });
               spawn_cancelled = bptest::get_join_error(h).is_cancelled();
             },
             cancelled);
  pool.shutdown_background();
  EXPECT_TRUE(cancelled.get_future().get());
  ASSERT_TRUE(spawn_cancelled.has_value());
  EXPECT_TRUE(*spawn_cancelled);
  EXPECT_EQ(running.get(), 1);
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

namespace {
// Runs `fn` when destroyed (as a callable's capture or as a result).
struct OnDestroy {
  explicit OnDestroy(std::function<void()> f) : fn(std::move(f)) {}
  OnDestroy(OnDestroy&& o) noexcept : fn(std::exchange(o.fn, nullptr)) {}
  OnDestroy& operator=(OnDestroy&&) = delete;
  ~OnDestroy() {
    if (fn) fn();
  }
  std::function<void()> fn;
};
}  // namespace

// An aborted task's callable is destroyed on the aborting thread, inside
// abort(): its destructor may spawn into the pool and read its metrics.
TEST(Reentrancy, AbortedCallableDestructorSpawns) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bptest::BusyThreads busy(pool, 1);
  blockpool::JoinHandle<int> inner;
  std::uint64_t queued_seen = 0;
  auto victim = pool.spawn_blocking([guard = OnDestroy([&] {
                                       inner = pool.spawn_blocking([] { return 7; });
                                       queued_seen = pool.metrics().queue_depth;
                                     })] {});
  EXPECT_TRUE(victim.abort());
  ASSERT_TRUE(inner.valid());
  EXPECT_EQ(queued_seen, 1u) << "the victim left the queue before its callable was destroyed";
  busy.release();
  EXPECT_TRUE(inner.wait_for(kLongWait));
  EXPECT_EQ(inner.get(), 7);
  EXPECT_TRUE(bptest::get_join_error(victim).is_cancelled());
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

// A queued task cancelled by shutdown has its callable destroyed inside
// shutdown(); the destructor shuts the pool down again (no deadlock) and the
// outer call still waits for every thread.
TEST(Reentrancy, CancelledCallableDestructorShutsDownAgain) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::latch started{1};
  auto running = pool.spawn_blocking(until_stopped(started));
  started.wait();
  std::optional<bool> inner;
  auto victim = pool.spawn_blocking([guard = OnDestroy([&] { inner = pool.shutdown(kLongWait); })] {});
  EXPECT_TRUE(pool.shutdown(kLongWait));
  ASSERT_TRUE(inner.has_value());
  EXPECT_TRUE(*inner);
  EXPECT_TRUE(bptest::get_join_error(victim).is_cancelled());
  EXPECT_EQ(running.get(), 1);
}

// A detached task's result is destroyed on the worker; its destructor spawns
// another task and waits for it there.
TEST(Reentrancy, ResultDestructorOnWorkerSpawnsAndWaits) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  std::promise<int> inner;
  {
    auto h = pool.spawn_blocking([&] {
      return OnDestroy([&] {
        auto t = pool.spawn_blocking([] { return 5; });
        inner.set_value(t.wait_for(kLongWait) ? t.get() : -1);
      });
    });
    ASSERT_TRUE(h.wait_for(kLongWait));
  }  // the handle goes first: the result is destroyed here, on this thread
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(f.get(), 5);

  // Detached from the start: the worker destroys the result right after the
  // run, and the destructor's spawn needs a second thread.
  std::promise<int> inner2;
  (void)pool.spawn_blocking([&] {
    return OnDestroy([&] {
      auto t = pool.spawn_blocking([] { return 6; });
      inner2.set_value(t.wait_for(kLongWait) ? t.get() : -1);
    });
  });
  auto f2 = inner2.get_future();
  ASSERT_EQ(f2.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(f2.get(), 6);
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

// A running task spawns a mandatory task and waits for it while shutdown
// begins, within the growth grace period: the mandatory task must still get
// a thread (growth goes on during shutdown while mandatory work is queued).
TEST(Reentrancy, MandatorySpawnedByRunningTaskRunsWhenShutdownBegins) {
  for (int round = 0; round < 20; ++round) {
    blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
    std::latch spawned{1};
    auto outer = pool.spawn_blocking([&] {
      auto m = pool.spawn_mandatory_blocking([] { return 42; });
      spawned.count_down();
      return m.wait_for(kLongWait) ? m.get() : -1;
    });
    spawned.wait();
    EXPECT_TRUE(pool.shutdown(kLongWait)) << "round " << round;
    ASSERT_TRUE(outer.is_finished()) << "round " << round;
    EXPECT_EQ(outer.get(), 42) << "round " << round;
  }
}

// The same from a pool that has one idle worker besides: the idle worker is
// woken by shutdown and takes the mandatory task.
TEST(Reentrancy, MandatoryQueuedAtShutdownRunsOnWokenWorker) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(pool, 2));
  bptest::BusyThreads busy(pool, 2);
  auto m = pool.spawn_mandatory_blocking([] { return 3; });
  pool.shutdown_background();
  busy.release();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_EQ(m.get(), 3);
}

namespace {
// Counts pool threads whose thread-local state has been destroyed: a thread
// gets there only after the pool's code on it has returned, so pthread_join
// returns after this count went up.
std::atomic<int> g_threads_gone{0};
struct ThreadGone {
  ~ThreadGone() {
    // Widen the window between the thread's last pool code and its end, so
    // that a shutdown() returning before the join would be seen.
    std::this_thread::sleep_for(2ms);
    g_threads_gone.fetch_add(1);
  }
};
thread_local std::optional<ThreadGone> t_gone;
}  // namespace

// Concurrent shutdown() calls each return true only once every thread has
// been joined: no caller sees the pool's threads still running.
TEST(Reentrancy, ConcurrentShutdownsAllReturnAfterEveryJoin) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> started{0};
    g_threads_gone = 0;
    auto pool = std::make_unique<blockpool::Pool>(blockpool::Builder{}
                                                      .max_threads(4)
                                                      .on_thread_start([&] {
                                                        t_gone.emplace();
                                                        started.fetch_add(1);
                                                      })
                                                      .build());
    ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(*pool, 4));
    constexpr int kCallers = 20;
    std::latch go{kCallers};
    std::atomic<int> early{0};
    std::atomic<int> not_true{0};
    std::vector<std::thread> callers;
    for (int i = 0; i < kCallers; ++i) {
      callers.emplace_back([&] {
        go.arrive_and_wait();
        if (!pool->shutdown(kLongWait)) not_true.fetch_add(1);
        if (g_threads_gone.load() != started.load()) early.fetch_add(1);
      });
    }
    for (auto& t : callers) t.join();
    EXPECT_EQ(not_true.load(), 0) << "round " << round;
    EXPECT_EQ(early.load(), 0) << "round " << round << ": a shutdown() returned before every join";
    pool.reset();
  }
}
