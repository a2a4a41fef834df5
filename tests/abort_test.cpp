// JoinHandle::abort(): before start (the task never runs and ends at once),
// while running (stop token triggered, task completes normally), after end;
// and tasks whose handle is dropped (detached) before or while they run.
#include <memory>
#include <mutex>
#include <vector>

#include <array>

#include "core.hpp"  // white-box: CoreTestAccess (src/)
#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

namespace {

// A pool with one thread, held busy by a blocked task.
struct BusyPool {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch started{1};
  blockpool::JoinHandle<int> blocker;
  BusyPool() {
    blocker = pool.spawn_blocking([this] {
      started.count_down();
      gate.wait();
      return 1;
    });
    started.wait();
  }
  ~BusyPool() { gate.open(); }
};

}  // namespace

TEST(Abort, BeforeStartCancelsAtOnce) {
  BusyPool b;
  auto capture = std::make_shared<int>(7);
  std::atomic<bool> ran{false};
  auto h = b.pool.spawn_blocking([&ran, capture] {
    ran = true;
    return *capture;
  });
  EXPECT_EQ(capture.use_count(), 2);
  ASSERT_EQ(b.pool.metrics().queue_depth, 1u);

  EXPECT_TRUE(h.abort());
  // All of this holds immediately, with the only thread still blocked.
  EXPECT_TRUE(h.is_finished());
  EXPECT_TRUE(h.wait_for(0s));
  EXPECT_EQ(b.pool.metrics().queue_depth, 0u);
  EXPECT_EQ(b.pool.metrics().cancelled, 1u);
  EXPECT_EQ(capture.use_count(), 1) << "the aborted callable's captures must be destroyed at abort";
  EXPECT_TRUE(h.abort()) << "abort on a cancelled task still says it will never run";
  const blockpool::JoinError e = bptest::get_join_error(h);
  EXPECT_TRUE(e.is_cancelled());
  EXPECT_FALSE(e.is_spawn_failure());
  EXPECT_EQ(e.reason(), blockpool::JoinError::Reason::kAborted);
  EXPECT_NE(std::string(e.what()).find("cancel"), std::string::npos) << e.what();

  // Let the thread go on: the aborted task is skipped, the next one runs.
  auto after = b.pool.spawn_blocking([] { return 2; });
  b.gate.open();
  EXPECT_EQ(b.blocker.get(), 1);
  EXPECT_EQ(after.get(), 2);
  EXPECT_FALSE(ran.load());
  const auto m = b.pool.metrics();
  EXPECT_EQ(m.completed, 2u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.spawned, 3u);
}

TEST(Abort, BeforeStartVoidAndStopTokenTasks) {
  BusyPool b;
  std::atomic<int> ran{0};
  auto v = b.pool.spawn_blocking([&] { ran++; });
  auto s = b.pool.spawn_blocking([&](std::stop_token) { ran++; });
  auto m = b.pool.spawn_mandatory_blocking([&] { ran++; });
  EXPECT_TRUE(v.abort());
  EXPECT_TRUE(s.abort());
  EXPECT_TRUE(m.abort());  // mandatory only matters for shutdown
  EXPECT_TRUE(bptest::get_join_error(v).is_cancelled());
  EXPECT_TRUE(bptest::get_join_error(s).is_cancelled());
  EXPECT_TRUE(bptest::get_join_error(m).is_cancelled());
  b.gate.open();
  EXPECT_EQ(b.blocker.get(), 1);
  b.pool.shutdown();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(b.pool.metrics().cancelled, 3u);
}

TEST(Abort, AbortOfMiddleTaskKeepsOrderOfOthers) {
  BusyPool b;
  std::mutex mu;
  std::vector<int> order;
  std::vector<blockpool::JoinHandle<void>> hs;
  for (int i = 0; i < 10; ++i) {
    hs.push_back(b.pool.spawn_blocking([&, i] {
      std::lock_guard lk(mu);
      order.push_back(i);
    }));
  }
  for (int i : {0, 4, 9}) EXPECT_TRUE(hs[static_cast<std::size_t>(i)].abort());
  EXPECT_EQ(b.pool.metrics().queue_depth, 7u);
  b.gate.open();
  for (auto& h : hs) h.wait();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 5, 6, 7, 8}));
}

TEST(Abort, WhileRunningTriggersStopTokenAndCompletes) {
  blockpool::Pool pool;
  std::latch started{1};
  auto h = pool.spawn_blocking([&](std::stop_token st) {
    started.count_down();
    // Cooperative long work: stop when asked (bounded, so a bug fails the
    // test instead of hanging it).
    const auto limit = std::chrono::steady_clock::now() + bptest::kLongWait;
    while (!st.stop_requested() && std::chrono::steady_clock::now() < limit)
      std::this_thread::sleep_for(100us);
    return st.stop_requested() ? std::string("stopped") : std::string("timed out");
  });
  started.wait();
  EXPECT_FALSE(h.abort());
  EXPECT_EQ(h.get(), "stopped");
  const auto m = pool.metrics();
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.cancelled, 0u);
}

TEST(Abort, WhileRunningWithStopCallback) {
  blockpool::Pool pool;
  std::latch started{1};
  auto h = pool.spawn_blocking([&](std::stop_token st) {
    std::promise<void> stopped;
    std::stop_callback cb(st, [&] { stopped.set_value(); });
    started.count_down();
    return stopped.get_future().wait_for(bptest::kLongWait) == std::future_status::ready;
  });
  started.wait();
  EXPECT_FALSE(h.abort());
  EXPECT_TRUE(h.get());
}

TEST(Abort, WhileRunningWithoutStopTokenReturnsFalse) {
  blockpool::Pool pool;
  Gate gate;
  std::latch started{1};
  auto h = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
    return 5;
  });
  started.wait();
  EXPECT_FALSE(h.abort());
  EXPECT_FALSE(h.is_finished());
  gate.open();
  EXPECT_EQ(h.get(), 5);
}

TEST(Abort, AfterCompletionReturnsFalseAndKeepsResult) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 9; });
  h.wait();
  EXPECT_FALSE(h.abort());
  EXPECT_EQ(h.get(), 9);
  auto f = pool.spawn_blocking([]() -> int { throw std::runtime_error("x"); });
  f.wait();
  EXPECT_FALSE(f.abort());
  EXPECT_THROW(f.get(), std::runtime_error);
}

TEST(Abort, RacingAbortAndStartEndsExactlyOnce) {
  // abort() races with a worker popping the task: whichever wins, the task
  // ends exactly once, and abort()'s answer matches what happened.
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  for (int round = 0; round < 500; ++round) {
    std::atomic<int> runs{0};
    auto h = pool.spawn_blocking([&] { return ++runs; });
    const bool aborted = h.abort();
    if (aborted) {
      EXPECT_TRUE(bptest::get_join_error(h).is_cancelled());
      pool.spawn_blocking([] {}).get();  // a later task ran: the aborted one was skipped
      EXPECT_EQ(runs.load(), 0);
    } else {
      EXPECT_EQ(h.get(), 1);
      EXPECT_EQ(runs.load(), 1);
    }
  }
  ASSERT_TRUE(wait_until([&] { return bptest::quiet_and_balanced(pool.metrics()); }));
}

// Once its handle is gone, a queued task is the pool's alone: the worker
// starts it without a compare-and-swap and ends it without publishing an end
// nobody can read (worker.cpp). These pin what must still hold on that path.

TEST(Abort, AbortedThenHandleDroppedIsSkippedNotRun) {
  BusyPool b;
  auto capture = std::make_shared<int>(7);
  std::atomic<bool> ran{false};
  {
    auto h = b.pool.spawn_blocking([&ran, capture] { ran = true; });
    EXPECT_TRUE(h.abort());
  }  // the handle goes: only the queue's tombstone references the task
  auto after = b.pool.spawn_blocking([] { return 2; });
  b.gate.open();
  EXPECT_EQ(after.get(), 2);
  EXPECT_FALSE(ran.load()) << "an aborted task must never start, handle or not";
  EXPECT_EQ(capture.use_count(), 1);
  const auto m = b.pool.metrics();
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 2u);
  EXPECT_EQ(m.queue_depth, 0u);
}

TEST(Abort, DetachedTasksRunInOrderAndFreeCallableAndResult) {
  BusyPool b;
  auto capture = std::make_shared<int>(1);
  std::mutex mu;
  std::vector<int> order;
  for (int i = 0; i < 8; ++i) {
    // Dropped at once: detached before it starts. The result holds a
    // reference too, so a result the pool failed to destroy shows up below.
    (void)b.pool.spawn_blocking([&, i, capture] {
      std::lock_guard lk(mu);
      order.push_back(i);
      return capture;
    });
  }
  auto last = b.pool.spawn_blocking([] { return 9; });
  b.gate.open();
  EXPECT_EQ(last.get(), 9);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_TRUE(wait_until([&] { return capture.use_count() == 1; }))
      << "callables and results of detached tasks must be destroyed";
  EXPECT_EQ(b.pool.metrics().completed, 10u);
}

TEST(Abort, HandleDroppedWhileRunningStillEndsOnce) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  auto capture = std::make_shared<int>(1);
  Gate gate;
  std::latch started{1};
  {
    auto h = pool.spawn_blocking([&, capture] {
      started.count_down();
      gate.wait();
      return capture;
    });
    started.wait();
  }  // dropped mid-run: the worker's reference is now the last
  gate.open();
  ASSERT_TRUE(wait_until([&] { return pool.metrics().completed == 1; }));
  ASSERT_TRUE(wait_until([&] { return capture.use_count() == 1; }));
  EXPECT_EQ(pool.spawn_blocking([] { return 3; }).get(), 3);
  const auto m = pool.metrics();
  EXPECT_EQ(m.completed, 2u);
  EXPECT_EQ(m.failed + m.cancelled, 0u);
}

// ---- abort() frees the task (issue 16, point 11) ---------------------------
//
// An aborted task leaves the queue's count at once; its block used to stay
// linked (and allocated) until a worker reached it. With every thread busy, a
// loop of spawn-then-abort grew memory without bound. Now aborted tasks are
// unlinked once they are at least 64 and half the queue: what the queue
// holds stays bounded by what is live.
namespace blockpool::detail {
struct CoreTestAccess {
  static std::uint64_t queue_entries(const Core& c) { return c.queued_.load(); }
  static std::uint64_t tombstones(const Core& c) { return c.tombstones_.load(); }
};
}  // namespace blockpool::detail

namespace {
// Counts live callables: the memory an aborted task holds is its block; the
// callable goes at abort. The block itself is counted through the queue.
struct Big {
  std::array<char, 200> bytes{};
};
}  // namespace

TEST(Abort, SpawnThenAbortWhileEveryThreadIsBusyStaysBounded) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  bptest::BusyThreads busy(pool, 2);
  // A few live queued tasks, then a long run of spawn-then-abort.
  std::vector<blockpool::JoinHandle<int>> live;
  for (int i = 0; i < 10; ++i) live.push_back(pool.spawn_blocking([i] { return i; }));
  const auto* core = blockpool::detail::PoolAccess::core(pool);
  std::uint64_t peak_entries = 0;
  for (int i = 0; i < 200'000; ++i) {
    auto h = pool.spawn_blocking([big = Big{}] { return static_cast<int>(big.bytes[0]); });
    ASSERT_TRUE(h.abort());
    peak_entries = std::max(peak_entries, blockpool::detail::CoreTestAccess::queue_entries(*core));
  }
  EXPECT_LE(peak_entries, 10u + 2 * 64u) << "aborted tasks pile up in the queue";
  EXPECT_EQ(pool.metrics().queue_depth, 10u);
  EXPECT_EQ(pool.metrics().cancelled, 200'000u);
  busy.release();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(live[static_cast<std::size_t>(i)].get(), i);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_EQ(blockpool::detail::CoreTestAccess::tombstones(*core), 0u);
}

// Aborting every queued task at once leaves at most a few tombstones behind.
TEST(Abort, AbortingAWholeQueueFreesIt) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bptest::BusyThreads busy(pool, 1);
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 10'000; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  for (auto& h : hs) ASSERT_TRUE(h.abort());
  const auto* core = blockpool::detail::PoolAccess::core(pool);
  EXPECT_LT(blockpool::detail::CoreTestAccess::queue_entries(*core), 64u);
  EXPECT_EQ(pool.metrics().queue_depth, 0u);
  busy.release();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}
