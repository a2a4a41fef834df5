// Keep-alive, measured on a ManualClock: idle threads retire after
// keep_alive, not before; idle threads are woken most recently idle first.
#include <set>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

namespace {

constexpr auto kKeepAlive = std::chrono::seconds(10);

struct ClockPool {
  std::shared_ptr<blockpool::testing::ManualClock> clock =
      std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool;
  // on_start: the pool's on_thread_start hook (none by default).
  explicit ClockPool(std::size_t max_threads = 8, std::function<void()> on_start = {})
      : pool(blockpool::Builder{}
                 .max_threads(max_threads)
                 .keep_alive(kKeepAlive)
                 .thread_name("ka")
                 .clock(clock)
                 .on_thread_start(std::move(on_start))
                 .build()) {}
};

// A ManualClock whose first now() call from a pool thread (after arm())
// holds until the test has advanced the clock, or 300 ms pass. It widens
// the window between "a thread reads the time it went idle" and "the thread
// shows in idle_threads" so a wrong order is caught deterministically.
class GatedClock final : public blockpool::Clock {
 public:
  time_point now() const noexcept override {
    if (armed_.exchange(false)) {
      (void)bptest::wait_until([&] { return advanced_.load(); }, 300ms);
    }
    return inner_.now();
  }
  bool is_real_time() const noexcept override { return false; }
  void add_observer(Observer* o) override { inner_.add_observer(o); }
  void remove_observer(Observer* o) override { inner_.remove_observer(o); }
  void arm() { armed_ = true; }
  void advance(duration d) {
    inner_.advance(d);
    advanced_ = true;
  }

 private:
  blockpool::testing::ManualClock inner_;
  mutable std::atomic<bool> armed_{false};
  std::atomic<bool> advanced_{false};
};

}  // namespace

TEST(KeepAlive, IdleThreadsRetireAfterKeepAlive) {
  ClockPool p;
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(p.pool, 4));
  ASSERT_EQ(p.pool.metrics().threads, 4u);
  p.clock->advance(kKeepAlive);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }))
      << "threads=" << p.pool.metrics().threads;
  const auto m = p.pool.metrics();
  EXPECT_EQ(m.threads_retired, 4u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.threads_started, 4u);
}

TEST(KeepAlive, AdvancingLessDoesNotRetire) {
  ClockPool p;
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(p.pool, 3));
  p.clock->advance(kKeepAlive - 1ns);
  EXPECT_TRUE(bptest::stays_false([&] { return p.pool.metrics().threads < 3; }));
  auto m = p.pool.metrics();
  EXPECT_EQ(m.threads, 3u);
  EXPECT_EQ(m.idle_threads, 3u);
  EXPECT_EQ(m.threads_retired, 0u);
  // The remaining nanosecond is exactly the deadline.
  p.clock->advance(1ns);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }));
  EXPECT_EQ(p.pool.metrics().threads_retired, 3u);
}

TEST(KeepAlive, SeveralSmallAdvancesAddUp) {
  ClockPool p;
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(p.pool, 2));
  for (int i = 0; i < 9; ++i) p.clock->advance(kKeepAlive / 10);
  EXPECT_TRUE(bptest::stays_false([&] { return p.pool.metrics().threads < 2; }));
  p.clock->advance(kKeepAlive / 10);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }));
  EXPECT_EQ(p.pool.metrics().threads_retired, 2u);
}

TEST(KeepAlive, StoppedManualClockNeverRetires) {
  // keep_alive of 1 ns on a manual clock that never moves: nothing retires,
  // and work still runs (the clock governs keep-alive only).
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(1ns).clock(clock).build();
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  EXPECT_TRUE(bptest::stays_false([&] { return pool.metrics().threads == 0; }));
  clock->advance(1ns);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  EXPECT_EQ(pool.metrics().threads_retired, 1u);
}

TEST(KeepAlive, MostRecentlyIdleThreadIsWokenFirst) {
  // A spawn prefers an idle thread that parked on its own CPU (wake_test.cpp);
  // among those, the most recently idle. Pin the test and every worker to one
  // CPU, so all parked where the spawns come from and recency alone decides.
  const std::vector<int> cpus = bptest::allowed_cpus(1);
  ASSERT_FALSE(cpus.empty());
  bptest::AffinityGuard restore;
  ASSERT_TRUE(bptest::pin_to(cpus[0]));
  ClockPool p(8, [cpu = cpus[0]] { (void)bptest::pin_to(cpu); });
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(p.pool, 4));
  // All four went idle at time 0. Move halfway to their deadline.
  p.clock->advance(kKeepAlive / 2);
  std::set<std::string> used;
  for (int i = 0; i < 20; ++i) {
    used.insert(p.pool.spawn_blocking([] { return bptest::thread_name(); }).get());
    // Let the worker park again so the next spawn chooses among 4 idle threads.
    ASSERT_TRUE(wait_until([&] { return p.pool.metrics().idle_threads == 4; }));
  }
  ASSERT_EQ(used.size(), 1u) << "sequential tasks ran on " << used.size() << " threads";
  const std::string hot = *used.begin();
  // The rest of the keep-alive: the three cold threads (idle since time 0)
  // retire; the hot one (idle since keep_alive/2) stays.
  p.clock->advance(kKeepAlive / 2);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 1; }));
  EXPECT_EQ(p.pool.metrics().threads_retired, 3u);
  EXPECT_TRUE(bptest::stays_false([&] { return p.pool.metrics().threads == 0; }));
  // The survivor is the hot thread.
  EXPECT_EQ(p.pool.spawn_blocking([] { return bptest::thread_name(); }).get(), hot);
  EXPECT_EQ(p.pool.metrics().threads_started, 4u);
  // And it too retires after a full keep-alive of idleness.
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().idle_threads == 1; }));
  p.clock->advance(kKeepAlive);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }));
  EXPECT_EQ(p.pool.metrics().threads_retired, 4u);
}

TEST(KeepAlive, PoolGrowsAgainAfterRetiring) {
  ClockPool p;
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(p.pool, 2));
  p.clock->advance(kKeepAlive);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }));
  EXPECT_EQ(p.pool.spawn_blocking([] { return 5; }).get(), 5);
  EXPECT_EQ(p.pool.metrics().threads_started, 3u);
}

TEST(KeepAlive, BusyThreadDoesNotRetire) {
  // A thread running a task is not idle: advancing past keep_alive while it
  // works must not retire it or disturb the task.
  ClockPool p;
  Gate gate;
  std::latch started{1};
  auto h = p.pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
    return 1;
  });
  started.wait();
  p.clock->advance(kKeepAlive * 3);
  EXPECT_TRUE(bptest::stays_false([&] { return p.pool.metrics().threads_retired > 0; }));
  gate.open();
  EXPECT_EQ(h.get(), 1);
  // The deadline starts when it goes idle, not when the clock moved.
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().idle_threads == 1; }));
  EXPECT_EQ(p.pool.metrics().threads, 1u);
  p.clock->advance(kKeepAlive);
  ASSERT_TRUE(wait_until([&] { return p.pool.metrics().threads == 0; }));
}

TEST(KeepAlive, ZeroKeepAliveRetiresWhenQueueEmpty) {
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(0s).build();
  EXPECT_EQ(pool.spawn_blocking([] { return 2; }).get(), 2);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  EXPECT_EQ(pool.metrics().threads_retired, 1u);
}

TEST(KeepAlive, IdleStartTimeIsTakenBeforeThreadShowsIdle) {
  // Regression: a thread used to appear in idle_threads before it read the
  // clock for its idle deadline, so "wait for idle_threads, then advance by
  // keep_alive" could fix the deadline from the advanced time and the thread
  // never retired.
  auto clock = std::make_shared<GatedClock>();
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(kKeepAlive).clock(clock).build();
  clock->arm();  // the pool's first now() call is the one at parking
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  clock->advance(kKeepAlive);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }, 5s))
      << "the idle deadline was taken after the thread showed as idle";
  EXPECT_EQ(pool.metrics().threads_retired, 1u);
}
