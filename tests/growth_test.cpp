// Growth: idle threads reused first; blocked work makes the pool grow up to
// max_threads; at the cap tasks wait in the queue; tasks start in order.
#include <sys/prctl.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

TEST(Growth, SequentialTasksReuseOneIdleThread) {
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(1h).build();
  std::set<std::string> names;
  for (int i = 0; i < 50; ++i) {
    auto h = pool.spawn_blocking([] { return bptest::thread_name(); });
    names.insert(h.get());
    // The worker reports the task's end before it parks; wait until it is
    // idle again, so the next spawn finds an idle thread (that is the case
    // under test: an idle thread must be reused, not a new one started).
    ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  }
  const auto m = pool.metrics();
  EXPECT_EQ(m.threads, 1u);
  EXPECT_EQ(m.threads_started, 1u);
  EXPECT_EQ(m.peak_threads, 1u);
  EXPECT_EQ(names.size(), 1u);
  EXPECT_EQ(m.completed, 50u);
}

TEST(Growth, BlockedTasksGrowToMaxThreads) {
  constexpr int kTasks = 8;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(kTasks).keep_alive(1h).build();
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<std::string>> hs;
  for (int i = 0; i < kTasks; ++i) {
    hs.push_back(pool.spawn_blocking([&] {
      running.fetch_add(1);
      gate.wait();
      return bptest::thread_name();
    }));
  }
  // Every task is blocked on the gate, so all 8 can only be running at once
  // if the pool grew to 8 threads.
  ASSERT_TRUE(wait_until([&] { return running.load() == kTasks; }))
      << "only " << running.load() << " of " << kTasks << " tasks started; threads="
      << pool.metrics().threads;
  auto m = pool.metrics();
  EXPECT_EQ(m.threads, static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.idle_threads, 0u);
  gate.open();
  std::set<std::string> names;
  for (auto& h : hs) names.insert(h.get());
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kTasks));  // each on its own thread
  m = pool.metrics();
  EXPECT_EQ(m.peak_threads, static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(m.threads_started, static_cast<std::uint64_t>(kTasks));
}

TEST(Growth, AtTheCapTasksWaitInTheQueue) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).keep_alive(1h).build();
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 5; ++i) {
    hs.push_back(pool.spawn_blocking([&, i] {
      running.fetch_add(1);
      gate.wait();
      return i;
    }));
  }
  ASSERT_TRUE(wait_until([&] { return running.load() == 2; }));
  ASSERT_TRUE(wait_until([&] { return pool.metrics().queue_depth == 3; }));
  auto m = pool.metrics();
  EXPECT_EQ(m.threads, 2u);
  EXPECT_EQ(m.queue_depth, 3u);
  // The cap holds while the stall lasts: no third task starts, no third thread.
  EXPECT_TRUE(bptest::stays_false([&] { return running.load() > 2 || pool.metrics().threads > 2; }));
  gate.open();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(hs[static_cast<std::size_t>(i)].get(), i);
  m = pool.metrics();
  EXPECT_EQ(m.peak_threads, 2u);
  EXPECT_LE(m.threads_started, 2u);
  EXPECT_EQ(m.queue_depth, 0u);
}

TEST(Growth, TasksStartInSubmissionOrder) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::mutex mu;
  std::vector<int> order;
  Gate gate;
  // Hold the only thread so all 100 are queued before any of them can start.
  std::latch started{1};
  auto blocker = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
  });
  started.wait();
  std::vector<blockpool::JoinHandle<void>> hs;
  for (int i = 0; i < 100; ++i) {
    hs.push_back(pool.spawn_blocking([&, i] {
      std::lock_guard lk(mu);
      order.push_back(i);
    }));
  }
  EXPECT_EQ(pool.metrics().queue_depth, 100u);
  gate.open();
  blocker.get();
  for (auto& h : hs) h.get();
  std::vector<int> expected(100);
  for (int i = 0; i < 100; ++i) expected[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(order, expected);
}

TEST(Growth, NoThreadsUntilFirstSpawn) {
  blockpool::Pool pool;
  auto m = pool.metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.threads_started, 0u);
}

TEST(Growth, ManyShortTasksFromOneThreadAllComplete) {
  // A flood of tiny tasks: everything completes and the pool stays within the cap.
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 2000; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  long sum = 0;
  for (auto& h : hs) sum += h.get();
  EXPECT_EQ(sum, 1999L * 2000 / 2);
  EXPECT_LE(pool.metrics().peak_threads, 4u);
}

// The controller's checks are 50-250 us apart: with Linux's default 50 us
// timer slack each would run up to 50 us late, and so would every growth step
// of a burst. Its thread asks for 1 us; the workers it creates must not
// inherit that (tasks run with the slack of the thread that made the pool).
TEST(Growth, ControllerSleepsWithFineTimerSlackWorkersKeepTheirs) {
  constexpr int kThreads = 4;
  const int mine = prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
  ASSERT_GT(mine, 1000) << "test assumes the default slack (50 us) on this thread";
  blockpool::Pool pool =
      blockpool::Builder{}.thread_name("slack").max_threads(kThreads).keep_alive(1h).build();
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<int>> hs;
  // Twice as many blocked tasks as threads: the controller grows the pool
  // 1 -> 2 -> 4 and, at the cap, parks (still alive) with work queued.
  for (int i = 0; i < 2 * kThreads; ++i) {
    hs.push_back(pool.spawn_blocking([&] {
      running.fetch_add(1);
      const int slack = prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
      gate.wait();
      return slack;
    }));
  }
  ASSERT_TRUE(wait_until([&] { return running.load() == kThreads; }));
  // The controller thread's slack, or -1 if there is no such thread.
  auto controller_slack = [] {
    long long slack = -1;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(e.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name != "slack-ctl") continue;
      // Per-thread value: /proc/<tid>/timerslack_ns (not under task/).
      std::ifstream ns(std::filesystem::path("/proc") / e.path().filename() / "timerslack_ns");
      if (!(ns >> slack)) slack = -1;
    }
    return slack;
  };
  // The last worker can be running its task before the controller that
  // created it has put its own fine slack back (it gives workers the
  // original while it creates them): wait for it, bounded.
  long long ctl_slack = -1;
  EXPECT_TRUE(wait_until([&] { return (ctl_slack = controller_slack()) == 1000; }))
      << "controller thread not found, or its slack is not 1 us: " << ctl_slack;
  gate.open();
  for (auto& h : hs) EXPECT_EQ(h.get(), mine) << "a worker inherited the controller's slack";
}
