// tests/fault_test.cpp: fault injection (label "stress"; fast enough for the
// default run). Each test pins one documented outcome (docs/reliability.md):
//   * the OS refusing thread creation (Builder::thread_creation_fault_for_testing),
//     at the first thread, at a later thread, at random during a burst;
//   * exceptions from on_thread_start, on_thread_stop and thread_name_fn;
//   * a result type whose destructor throws.
// Allocation failure during spawn is in fault_alloc_test.cpp (it replaces the
// global operator new, which must not affect these tests).
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "stress_util.hpp"

using namespace std::chrono_literals;
using blockpool::JoinError;
using blockpool::JoinHandle;

namespace {

struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lk(mu);
      open = true;
    }
    cv.notify_all();
  }
};

void expect_quiet_and_balanced(blockpool::Pool& pool) {
  ASSERT_TRUE(pool.shutdown());
  const auto m = pool.metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
}

}  // namespace

// ---- Thread creation refused ------------------------------------------------

// The very first thread cannot be created: nothing could ever run the task,
// so it fails at once with a spawn failure carrying the OS error. The pool
// stays usable: the next spawn tries again.
TEST(FaultThreadCreation, FirstThreadRefused) {
  std::atomic<bool> refuse{true};
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing(
                                 [&](std::uint64_t) { return refuse.load() ? EAGAIN : 0; })
                             .build();
  std::atomic<int> runs{0};
  auto h = pool.spawn_blocking([&] { return runs.fetch_add(1), 1; });
  ASSERT_TRUE(h.wait_for(30s));
  try {
    (void)h.get();
    FAIL() << "expected a spawn failure";
  } catch (const JoinError& e) {
    EXPECT_TRUE(e.is_spawn_failure());
    EXPECT_FALSE(e.is_cancelled());
    EXPECT_EQ(e.code(), std::error_code(EAGAIN, std::system_category()));
  }
  EXPECT_EQ(runs.load(), 0);
  auto m = pool.metrics();
  EXPECT_EQ(m.spawn_failures, 1u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.threads, 0u);

  refuse.store(false);
  EXPECT_EQ(pool.spawn_blocking([] { return 2; }).get(), 2);
  expect_quiet_and_balanced(pool);
  EXPECT_EQ(runs.load(), 0);
}

// A mandatory task is failed the same way (it cannot run either).
TEST(FaultThreadCreation, FirstThreadRefusedMandatory) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([](std::uint64_t) { return ENOMEM; })
                             .build();
  auto h = pool.spawn_mandatory_blocking([] {});
  try {
    h.get();
    FAIL() << "expected a spawn failure";
  } catch (const JoinError& e) {
    EXPECT_TRUE(e.is_spawn_failure());
    EXPECT_EQ(e.code().value(), ENOMEM);
  }
  expect_quiet_and_balanced(pool);
}

// A throwing injector counts as a refusal (EAGAIN), never escapes.
TEST(FaultThreadCreation, ThrowingInjectorIsARefusal) {
  blockpool::Pool pool =
      blockpool::Builder{}
          .thread_creation_fault_for_testing([](std::uint64_t a) -> int {
            if (a == 0) throw std::runtime_error("injector");
            return 0;
          })
          .build();
  auto h = pool.spawn_blocking([] { return 1; });
  EXPECT_THROW((void)h.get(), JoinError);
  EXPECT_EQ(pool.spawn_blocking([] { return 3; }).get(), 3);
  expect_quiet_and_balanced(pool);
}

// Later threads are refused while one thread exists: nothing fails; queued
// tasks wait for the thread that exists (the pool retries growth with a
// backoff) and all run. Once the OS accepts again, the pool grows.
TEST(FaultThreadCreation, LaterThreadsRefused) {
  std::atomic<bool> refuse{false};
  Gate gate;
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(4)
                             .thread_creation_fault_for_testing([&](std::uint64_t attempt) {
                               // Attempts 0 and 1: the controller and the first worker.
                               return attempt > 1 && refuse.load() ? EAGAIN : 0;
                             })
                             .build();
  refuse.store(true);
  std::latch blocker_in(1);
  auto blocker = pool.spawn_blocking([&] {
    blocker_in.count_down();
    gate.wait();
    return 0;
  });
  blocker_in.wait();
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < 20; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  ASSERT_TRUE(stress::eventually([&] { return pool.metrics().spawn_failures >= 1; }));
  EXPECT_EQ(pool.metrics().threads, 1u);
  gate.release();
  EXPECT_EQ(blocker.get(), 0);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(hs[i].get(), i);
  EXPECT_EQ(pool.metrics().failed, 0u);

  // The OS accepts again: blocked tasks get threads of their own.
  refuse.store(false);
  Gate gate2;
  std::latch all_in(3);
  std::vector<JoinHandle<void>> blocked;
  for (int i = 0; i < 3; ++i)
    blocked.push_back(pool.spawn_blocking([&] {
      all_in.count_down();
      gate2.wait();
    }));
  all_in.wait();  // three tasks blocked at once: three threads
  EXPECT_GE(pool.metrics().threads, 3u);
  gate2.release();
  for (auto& b : blocked) b.get();
  expect_quiet_and_balanced(pool);
}

// Random refusals during a burst, some tasks blocking: every task ends exactly
// once, either run (completed) or never run (spawn failure, only when no
// thread at all existed); counters add up; no thread is left.
TEST(FaultThreadCreation, RandomRefusalsDuringBurst) {
  const std::uint64_t base = stress::base_seed();
  for (int round = 0; round < 30; ++round) {
    const std::uint64_t seed = base + static_cast<std::uint64_t>(round);
    SCOPED_TRACE(stress::seed_msg(seed));
    std::mt19937_64 rng(seed);
    const unsigned refuse_pct = 20 + static_cast<unsigned>(rng() % 70);
    auto fault = [seed, refuse_pct](std::uint64_t attempt) {
      std::mt19937_64 r(seed * 31 + attempt);  // deterministic per attempt
      return r() % 100 < refuse_pct ? (attempt % 2 == 0 ? EAGAIN : ENOMEM) : 0;
    };
    std::atomic<long> starts{0}, stops{0};
    Gate gate;
    blockpool::Pool pool = blockpool::Builder{}
                               .max_threads(1 + rng() % 8)
                               .keep_alive(rng() % 2 == 0 ? 0ns : 10s)
                               .on_thread_start([&] { starts.fetch_add(1); })
                               .on_thread_stop([&] { stops.fetch_add(1); })
                               .thread_creation_fault_for_testing(fault)
                               .build();
    const int n = 100;
    std::vector<std::atomic<int>> runs(n);
    std::vector<JoinHandle<int>> hs;
    for (int i = 0; i < n; ++i) {
      const bool blocks = rng() % 10 == 0;
      hs.push_back(pool.spawn_blocking([&, i, blocks] {
        runs[i].fetch_add(1);
        if (blocks) gate.wait();
        return i;
      }));
    }
    gate.release();
    int ok = 0, spawn_failed = 0;
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(hs[i].wait_for(60s)) << "task " << i << " stranded";
      try {
        EXPECT_EQ(hs[i].get(), i);
        EXPECT_EQ(runs[i].load(), 1);
        ++ok;
      } catch (const JoinError& e) {
        EXPECT_TRUE(e.is_spawn_failure()) << e.what();
        EXPECT_NE(e.code().value(), 0);
        EXPECT_EQ(runs[i].load(), 0);
        ++spawn_failed;
      }
    }
    ASSERT_TRUE(pool.shutdown());
    const auto m = pool.metrics();
    EXPECT_EQ(m.completed, static_cast<std::uint64_t>(ok));
    EXPECT_EQ(m.failed, static_cast<std::uint64_t>(spawn_failed));
    EXPECT_EQ(m.spawned, static_cast<std::uint64_t>(n));
    EXPECT_EQ(m.threads, 0u);
    EXPECT_EQ(starts.load(), stops.load());
    if (spawn_failed > 0) { EXPECT_GE(m.spawn_failures, 1u); }
    if (HasFailure()) break;
  }
}

// ---- Throwing hooks ------------------------------------------------------------

// on_thread_start, on_thread_stop and thread_name_fn may throw: the exception
// is caught, counted in Metrics::hook_errors, and the thread goes on (with
// the default "<thread_name>-N" name when thread_name_fn threw).
TEST(FaultHooks, ThrowingHooksAreCountedAndThreadsGoOn) {
  std::atomic<long> starts{0}, stops{0}, names{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(4)
                             .thread_name("hooky")
                             .thread_name_fn([&]() -> std::string {
                               names.fetch_add(1);
                               throw std::runtime_error("name");
                             })
                             .on_thread_start([&] {
                               starts.fetch_add(1);
                               throw 1;
                             })
                             .on_thread_stop([&] {
                               stops.fetch_add(1);
                               throw std::logic_error("stop");
                             })
                             .build();
  std::latch all_in(3);
  Gate gate;
  std::vector<JoinHandle<std::string>> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(pool.spawn_blocking([&] {
      all_in.count_down();
      gate.wait();
      char buf[16] = {};
      pthread_getname_np(pthread_self(), buf, sizeof buf);
      return std::string(buf);
    }));
  all_in.wait();
  gate.release();
  for (auto& h : hs) EXPECT_EQ(h.get().rfind("hooky-", 0), 0u);
  ASSERT_TRUE(pool.shutdown());
  const auto m = pool.metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(static_cast<std::uint64_t>(starts.load()), m.threads_started);
  EXPECT_EQ(starts.load(), stops.load());
  EXPECT_EQ(names.load(), starts.load());
  EXPECT_EQ(m.hook_errors, 3 * m.threads_started);
}

// ---- A result whose destructor throws -----------------------------------------

namespace {
std::atomic<int> g_boom_thrown{0};

// Throws from its destructor unless moved from.
struct Boom {
  int v = 0;
  bool armed = true;
  explicit Boom(int x) : v(x) {}
  Boom(Boom&& o) noexcept : v(o.v), armed(std::exchange(o.armed, false)) {}
  ~Boom() noexcept(false) {
    if (armed) {
      g_boom_thrown.fetch_add(1);
      throw std::runtime_error("Boom destructor");
    }
  }
};

// Throws from its destructor always, moved-from or not.
struct AlwaysBoom {
  int v = 0;
  explicit AlwaysBoom(int x) : v(x) {}
  AlwaysBoom(AlwaysBoom&& o) noexcept : v(o.v) {}
  ~AlwaysBoom() noexcept(false) {
    g_boom_thrown.fetch_add(1);
    if (std::uncaught_exceptions() == 0) throw std::runtime_error("AlwaysBoom destructor");
  }
};
}  // namespace

static_assert(std::is_nothrow_destructible_v<blockpool::detail::ResultSlot<Boom>>);

// Destroyed by the pool (handle detached before or after the end): swallowed.
TEST(FaultResultDestructor, DetachedResultIsSwallowed) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  const int before = g_boom_thrown.load();
  Gate gate;
  {
    auto h = pool.spawn_blocking([&] {
      gate.wait();
      return Boom(1);
    });
  }  // detached while running: the worker destroys the result
  gate.release();
  {
    auto h = pool.spawn_blocking([] { return Boom(2); });
    h.wait();
  }  // the handle holds the last reference: destroyed in its destructor
  ASSERT_TRUE(pool.shutdown());
  EXPECT_EQ(g_boom_thrown.load() - before, 2);
  EXPECT_EQ(pool.metrics().completed, 2u);
  EXPECT_EQ(pool.metrics().failed, 0u);
}

// Taken with get(): the value is the caller's, and so is its exception.
TEST(FaultResultDestructor, TakenResultThrowsToTheUser) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return Boom(3); });
  bool caught = false;
  try {
    Boom b = h.get();
    EXPECT_EQ(b.v, 3);
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "Boom destructor";
  }
  EXPECT_TRUE(caught);
  // A type that throws even when moved from: the temporary the callable
  // returned and the shell left in the slot are destroyed by the pool
  // (swallowed; the task still counts as completed), the user's copy throws
  // to the user.
  auto h2 = pool.spawn_blocking([] { return AlwaysBoom(4); });
  caught = false;
  try {
    AlwaysBoom b = h2.get();
    EXPECT_EQ(b.v, 4);
  } catch (const std::runtime_error&) {
    caught = true;
  }
  EXPECT_TRUE(caught);
  ASSERT_TRUE(pool.shutdown());
  EXPECT_EQ(pool.metrics().completed, 2u);
  EXPECT_EQ(pool.metrics().failed, 0u);
}

// Cancelled and failed tasks never construct a result: nothing to throw.
TEST(FaultResultDestructor, CancelledResultNeverConstructed) {
  const int before = g_boom_thrown.load();
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  auto blocker = pool.spawn_blocking([&] { gate.wait(); });
  auto h = pool.spawn_blocking([] { return Boom(5); });
  EXPECT_TRUE(h.abort());
  EXPECT_THROW((void)h.get(), JoinError);
  gate.release();
  blocker.get();
  ASSERT_TRUE(pool.shutdown());
  EXPECT_EQ(g_boom_thrown.load(), before);
}
