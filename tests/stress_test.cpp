// tests/stress_test.cpp: exactly-once stress suite (label "stress").
//
// RandomMix drives seeded random mixes of every kind of operation from several
// spawning threads at once, racing shutdown (with and without timeouts) and
// keep-alive retirements on a ManualClock, then checks after each round that
// every task ended exactly once and that every counter adds up.
//
// The Loom* tests are the scenarios of Tokio's loom suite for the blocking
// pool (tokio/src/runtime/tests/loom_blocking.rs), each repeated many times.
// Retire* are the keep-alive-retirement-versus-spawn races (a bug found here:
// a spawn at the cap while the only thread was leaving was stranded).
//
// Budget: BLOCKPOOL_STRESS_SECONDS (default 10) for the whole binary; seeds:
// BLOCKPOOL_STRESS_SEED. No sleeps are used to synchronise; bounded waits only
// turn a hang into a failure.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "stress_util.hpp"

using namespace std::chrono_literals;
using blockpool::JoinError;
using blockpool::JoinHandle;
using blockpool::testing::ManualClock;

namespace {

std::atomic<long> g_live_callables{0};

// Counts live copies of every callable: after a complete shutdown each one
// has been run-then-destroyed or dropped (none leaked, none destroyed twice).
struct Tracker {
  Tracker() { g_live_callables.fetch_add(1); }
  Tracker(const Tracker&) { g_live_callables.fetch_add(1); }
  Tracker(Tracker&&) noexcept { g_live_callables.fetch_add(1); }
  Tracker& operator=(const Tracker&) = default;
  ~Tracker() { g_live_callables.fetch_sub(1); }
};

struct TaskErr {
  int id;
};

struct Gate {
  std::mutex mu;
  std::condition_variable_any cv;
  bool open = false;
  void wait(std::stop_token st) {
    std::unique_lock lk(mu);
    cv.wait(lk, st, [&] { return open; });
  }
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

enum class Kind { kShort, kThrow, kStoppable, kGated, kNested };

struct Rec {
  int id = 0;
  Kind kind = Kind::kShort;
  bool mandatory = false;
  bool keep = true;                // keep the handle (else dropped unawaited)
  Rec* child = nullptr;            // kNested: the task it spawns
  std::atomic<bool> spawn_called{false};
  std::atomic<int> runs{0};
  bool accepted_before_shutdown = false;  // spawn returned before shutdown began
  bool abort_true = false;                // abort() returned true
  std::optional<JoinHandle<int>> h;
};

struct Round {
  std::uint64_t seed = 0;
  blockpool::Handle handle;
  Gate gate;
  std::atomic<bool> shutdown_flag{false};
  std::atomic<long> ops{0};
};

void spawn_rec(Round& R, const blockpool::Handle& h, Rec* r);

template <class F>
void spawn_with(Round& R, const blockpool::Handle& h, Rec* r, F f) {
  r->spawn_called.store(true);
  JoinHandle<int> jh = r->mandatory ? h.spawn_mandatory_blocking(std::move(f))
                                    : h.spawn_blocking(std::move(f));
  r->accepted_before_shutdown = !R.shutdown_flag.load();
  if (r->keep) r->h = std::move(jh);
}

void spawn_rec(Round& R, const blockpool::Handle& h, Rec* r) {
  switch (r->kind) {
    case Kind::kShort:
      spawn_with(R, h, r, [r, t = Tracker{}] { return r->runs.fetch_add(1), r->id; });
      break;
    case Kind::kThrow:
      spawn_with(R, h, r, [r, t = Tracker{}]() -> int {
        r->runs.fetch_add(1);
        throw TaskErr{r->id};
      });
      break;
    case Kind::kStoppable:
      spawn_with(R, h, r, [r, t = Tracker{}, g = &R.gate](std::stop_token st) {
        r->runs.fetch_add(1);
        g->wait(st);
        return r->id;
      });
      break;
    case Kind::kGated:
      spawn_with(R, h, r, [r, t = Tracker{}, g = &R.gate] {
        r->runs.fetch_add(1);
        g->wait();
        return r->id;
      });
      break;
    case Kind::kNested:
      spawn_with(R, h, r, [r, t = Tracker{}, &R, hd = h] {
        r->runs.fetch_add(1);
        spawn_rec(R, hd, r->child);  // from a pool thread; may race shutdown
        return r->id;
      });
      break;
  }
}

struct RoundResult {
  long spawns = 0;
  long ran = 0;
};

// One random round. Returns false (with gtest failures recorded) on a violation.
void run_round(std::uint64_t seed, RoundResult& total) {
  SCOPED_TRACE(stress::seed_msg(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };

  const std::size_t caps[] = {1, 1, 2, 3, 4, 8};
  const std::size_t cap = caps[pick(6)];
  const bool manual = pick(2) == 0;
  auto clock = std::make_shared<ManualClock>();
  std::chrono::nanoseconds keep_alive =
      manual ? (pick(3) == 0 ? 0ns : (pick(2) == 0 ? 1ms : 1h)) : (pick(2) == 0 ? 0ns : 10s);
  std::atomic<long> starts{0}, stops{0};
  blockpool::Builder b;
  b.max_threads(cap).keep_alive(keep_alive).thread_name("stress");
  b.on_thread_start([&] { starts.fetch_add(1); }).on_thread_stop([&] { stops.fetch_add(1); });
  if (manual) b.clock(clock);
  auto pool = std::make_unique<blockpool::Pool>(b.build());

  Round R;
  R.seed = seed;
  R.handle = pool->handle();
  const int spawners = 2 + pick(3);
  const int ops_per = 20 + pick(120);
  // Records: per spawner; children are allocated by the spawner too.
  std::vector<std::vector<std::unique_ptr<Rec>>> recs(spawners);
  std::vector<std::uint64_t> seeds;
  for (int i = 0; i < spawners; ++i) seeds.push_back(rng());
  const int shutdown_mode = pick(5);  // 0 none; 1 timeout 0; 2 1 ms; 3 background; 4 unlimited
  const long shutdown_at = pick(spawners * ops_per + 1);
  std::atomic<int> spawners_done{0};

  std::vector<std::thread> threads;
  for (int s = 0; s < spawners; ++s) {
    threads.emplace_back([&, s] {
      std::mt19937_64 r2(seeds[s]);
      auto p = [&](int n) { return static_cast<int>(r2() % static_cast<std::uint64_t>(n)); };
      auto& mine = recs[s];
      std::vector<Rec*> kept;
      for (int i = 0; i < ops_per; ++i) {
        const int op = p(100);
        if (op < 70) {
          auto rec = std::make_unique<Rec>();
          rec->id = s * 100000 + i;
          const int k = p(100);
          rec->kind = k < 45   ? Kind::kShort
                      : k < 60 ? Kind::kThrow
                      : k < 75 ? Kind::kStoppable
                      : k < 82 ? Kind::kGated
                               : Kind::kNested;
          rec->mandatory = p(5) == 0;
          rec->keep = p(10) < 7;
          if (rec->kind == Kind::kNested) {
            auto child = std::make_unique<Rec>();
            child->id = rec->id + 50000;
            child->kind = p(2) == 0 ? Kind::kShort : Kind::kThrow;
            child->mandatory = p(3) == 0;
            child->keep = p(2) == 0;
            rec->child = child.get();
            mine.push_back(std::move(child));
          }
          Rec* raw = rec.get();
          mine.push_back(std::move(rec));
          spawn_rec(R, R.handle, raw);
          if (raw->keep) {
            if (p(8) == 0) raw->abort_true = raw->h->abort();  // abort at once
            kept.push_back(raw);
          }
        } else if (op < 85 && !kept.empty()) {
          Rec* r = kept[p(static_cast<int>(kept.size()))];
          if (r->h && r->h->abort()) r->abort_true = true;  // before or during running
        } else if (op < 92 && !kept.empty()) {
          Rec* r = kept[p(static_cast<int>(kept.size()))];
          r->h.reset();  // drop the handle unawaited
        } else if (!kept.empty()) {
          Rec* r = kept[p(static_cast<int>(kept.size()))];
          if (r->h) (void)r->h->is_finished();
        }
        R.ops.fetch_add(1);
      }
      spawners_done.fetch_add(1);
    });
  }
  std::thread racer([&] {
    if (shutdown_mode == 0) return;
    while (R.ops.load() < shutdown_at && spawners_done.load() < spawners) std::this_thread::yield();
    R.shutdown_flag.store(true);
    switch (shutdown_mode) {
      case 1:
        (void)pool->shutdown(0ns);
        break;
      case 2:
        (void)pool->shutdown(1ms);
        break;
      case 3:
        pool->shutdown_background();
        break;
      default:
        (void)pool->shutdown();  // waits for gated tasks: the gate opens below
        break;
    }
  });
  std::thread ticker([&] {
    if (!manual) return;
    std::mt19937_64 r3(seed ^ 0x9e3779b97f4a7c15ULL);
    while (spawners_done.load() < spawners) {
      clock->advance(std::chrono::microseconds(r3() % 2000));
      std::this_thread::yield();
    }
  });
  for (auto& t : threads) t.join();
  R.gate.release();
  racer.join();
  ticker.join();
  R.shutdown_flag.store(true);
  ASSERT_TRUE(pool->shutdown());

  const blockpool::Metrics m = pool->metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.idle_threads, 0u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_LE(m.peak_threads, cap);
  EXPECT_EQ(m.spawn_failures, 0u);
  EXPECT_EQ(starts.load(), stops.load());
  EXPECT_EQ(static_cast<std::uint64_t>(starts.load()), m.threads_started);
  EXPECT_EQ(g_live_callables.load(), 0) << "a callable was leaked or destroyed twice";

  std::uint64_t spawned = 0, completed = 0, failed = 0, cancelled = 0;
  for (auto& v : recs) {
    for (auto& rp : v) {
      Rec& r = *rp;
      if (!r.spawn_called.load()) continue;  // a child whose parent never ran
      ++spawned;
      const int runs = r.runs.load();
      ASSERT_LE(runs, 1) << "task " << r.id << " ran twice";
      if (runs == 0)
        ++cancelled;
      else if (r.kind == Kind::kThrow)
        ++failed;
      else
        ++completed;
      if (r.abort_true) { EXPECT_EQ(runs, 0) << "abort() returned true but task " << r.id << " ran"; }
      if (r.mandatory && r.accepted_before_shutdown && !r.abort_true) {
        EXPECT_EQ(runs, 1) << "mandatory task " << r.id << " accepted before shutdown never ran";
      }
      if (!r.h) continue;
      ASSERT_TRUE(r.h->is_finished()) << "task " << r.id << " never ended";
      try {
        const int v2 = r.h->get();
        EXPECT_EQ(v2, r.id);
        EXPECT_EQ(runs, 1);
        EXPECT_NE(r.kind, Kind::kThrow);
      } catch (const TaskErr& e) {
        EXPECT_EQ(e.id, r.id);
        EXPECT_EQ(runs, 1);
        EXPECT_EQ(r.kind, Kind::kThrow);
      } catch (const JoinError& e) {
        EXPECT_TRUE(e.is_cancelled()) << e.what();
        EXPECT_EQ(runs, 0) << "handle of task " << r.id << " says cancelled but it ran";
      }
    }
  }
  EXPECT_EQ(m.spawned, spawned);
  EXPECT_EQ(m.completed, completed);
  EXPECT_EQ(m.failed, failed);
  EXPECT_EQ(m.cancelled, cancelled);
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
  total.spawns += static_cast<long>(spawned);
  total.ran += static_cast<long>(completed + failed);
}

}  // namespace

TEST(Stress, RandomMix) {
  const std::uint64_t seed = stress::base_seed();
  SCOPED_TRACE(stress::seed_msg(seed));
  stress::Deadline deadline(0.4);
  RoundResult total;
  int rounds = 0;
  for (; rounds < 5 || (!deadline.expired() && rounds < 100000); ++rounds) {
    run_round(seed + static_cast<std::uint64_t>(rounds), total);
    if (HasFatalFailure() || HasNonfatalFailure()) break;
  }
  std::printf("[stress] RandomMix: base %s, %d rounds, %ld tasks spawned, %ld ran\n",
              stress::seed_msg(seed).c_str(), rounds, total.spawns, total.ran);
}

// ---- Loom scenarios (loom_blocking.rs), each repeated ----------------------

namespace {
template <class Body>
int repeat(double share, int min_iters, int max_iters, Body body) {
  stress::Deadline deadline(share);
  int i = 0;
  for (; i < min_iters || (i < max_iters && !deadline.expired()); ++i) {
    body(i);
    if (::testing::Test::HasFailure()) break;
  }
  return i;
}
constexpr double kLoomShare = 0.06;
}  // namespace

// blocking_shutdown: two tasks each hold a clone of a shared value; the pool is
// dropped; afterwards only the original reference is left.
TEST(StressLoom, BlockingShutdown) {
  int n = repeat(kLoomShare, 50, 5000, [](int i) {
    auto v = std::make_shared<int>(7);
    {
      blockpool::Pool pool = blockpool::Builder{}.max_threads(1 + i % 2).build();
      (void)pool.spawn_blocking([v] { return *v; });
      (void)pool.spawn_blocking([v] { return *v; });
    }
    ASSERT_EQ(v.use_count(), 1) << "iteration " << i;
  });
  std::printf("[stress] BlockingShutdown: %d iterations\n", n);
}

// spawn_mandatory_blocking_should_always_run
TEST(StressLoom, MandatoryAlwaysRuns) {
  int n = repeat(kLoomShare, 50, 5000, [](int i) {
    std::atomic<bool> ran{false};
    {
      blockpool::Pool pool = blockpool::Builder{}.max_threads(1 + i % 3).build();
      (void)pool.spawn_blocking([] { return 0; });
      (void)pool.spawn_mandatory_blocking([&] { ran.store(true); });
    }
    ASSERT_TRUE(ran.load()) << "iteration " << i;
  });
  std::printf("[stress] MandatoryAlwaysRuns: %d iterations\n", n);
}

// spawn_mandatory_blocking_should_run_even_when_shutting_down_from_other_thread
TEST(StressLoom, MandatoryRunsWhenShutdownFromOtherThread) {
  int accepted = 0;
  int n = repeat(kLoomShare, 50, 5000, [&](int i) {
    std::atomic<bool> ran{false};
    auto pool = std::make_unique<blockpool::Pool>(blockpool::Builder{}.max_threads(1 + i % 2).build());
    blockpool::Handle h = pool->handle();
    if (i % 2 == 0) (void)h.spawn_blocking([] { return 0; });  // a thread may exist already
    std::thread dropper([p = std::move(pool)]() mutable { p.reset(); });
    JoinHandle<void> jh = h.spawn_mandatory_blocking([&] { ran.store(true); });
    dropper.join();
    ASSERT_TRUE(jh.is_finished()) << "iteration " << i;  // the pool is gone: it ended
    bool cancelled = false;
    try {
      jh.get();
    } catch (const JoinError& e) {
      ASSERT_TRUE(e.is_cancelled());
      cancelled = true;
    }
    if (!cancelled) ++accepted;
    ASSERT_EQ(ran.load(), !cancelled) << "iteration " << i << ": accepted but not run, or vice versa";
  });
  std::printf("[stress] MandatoryRunsWhenShutdownFromOtherThread: %d iterations, %d accepted\n", n,
              accepted);
}

// spawn_blocking_when_paused: a clock that never moves stalls nothing.
TEST(StressLoom, SpawnWhenClockPaused) {
  int n = repeat(kLoomShare / 2, 50, 2000, [](int i) {
    auto clock = std::make_shared<ManualClock>();
    blockpool::Pool pool =
        blockpool::Builder{}.max_threads(1 + i % 2).clock(clock).keep_alive(1ms).build();
    auto a = pool.spawn_blocking([] { return 1; });
    auto b = pool.spawn_blocking([] { return 2; });
    ASSERT_TRUE(a.wait_for(30s));
    ASSERT_TRUE(b.wait_for(30s));
    ASSERT_EQ(a.get() + b.get(), 3);
  });
  std::printf("[stress] SpawnWhenClockPaused: %d iterations\n", n);
}

// spawn_blocking_then_shutdown: cap 1, very long keep-alive; one task runs so
// the thread parks; a second claims the idle thread; shutdown at once.
TEST(StressLoom, SpawnThenShutdownClaimedIdleThread) {
  int n = repeat(kLoomShare, 50, 5000, [](int i) {
    auto clock = std::make_shared<ManualClock>();
    blockpool::Pool pool = blockpool::Builder{}.max_threads(1).clock(clock).keep_alive(1h).build();
    ASSERT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
    if (i % 2 == 0) { ASSERT_TRUE(stress::eventually([&] { return pool.metrics().idle_threads == 1; })); }
    auto second = pool.spawn_blocking([] { return 2; });
    ASSERT_TRUE(pool.shutdown());
    ASSERT_TRUE(second.is_finished()) << "iteration " << i;
    try {
      ASSERT_EQ(second.get(), 2);
    } catch (const JoinError& e) {
      ASSERT_TRUE(e.is_cancelled());
    }
    const auto m = pool.metrics();
    ASSERT_EQ(m.idle_threads, 0u);  // no underflow (would read as a huge number)
    ASSERT_EQ(m.threads, 0u);
    ASSERT_EQ(m.spawned, m.completed + m.cancelled);
  });
  std::printf("[stress] SpawnThenShutdownClaimedIdleThread: %d iterations\n", n);
}

// spawn_blocking_at_thread_cap_runs: cap 1; the second task is submitted while
// the only thread is anywhere between busy and parked (Tokio 1.52.0 hung here).
TEST(StressLoom, SpawnAtThreadCapRuns) {
  long tasks = 0;
  int n = repeat(kLoomShare, 20, 2000, [&](int i) {
    auto clock = std::make_shared<ManualClock>();
    blockpool::Pool pool = blockpool::Builder{}.max_threads(1).clock(clock).keep_alive(1h).build();
    auto first = pool.spawn_blocking([] { return 1; });
    for (int k = 0; k < 50; ++k) {
      if (k % 2 == 0) { ASSERT_TRUE(first.wait_for(30s)); }
      auto next = pool.spawn_blocking([k] { return k; });
      ASSERT_TRUE(next.wait_for(30s)) << "lost wakeup at iteration " << i << "/" << k;
      ASSERT_EQ(next.get(), k);
      ++tasks;
    }
  });
  std::printf("[stress] SpawnAtThreadCapRuns: %d iterations, %ld tasks\n", n, tasks);
}

// spawn_blocking_racing_shutdown_resolves: a second thread spawns through a
// cloned handle while the pool is dropped; the handle resolves either way.
TEST(StressLoom, SpawnRacingShutdownResolves) {
  int ran = 0;
  int n = repeat(kLoomShare, 50, 5000, [&](int i) {
    auto pool = std::make_unique<blockpool::Pool>(blockpool::Builder{}.max_threads(1 + i % 2).build());
    blockpool::Handle h = pool->handle();
    std::optional<JoinHandle<int>> jh;
    std::latch go(2);
    std::thread spawner([&] {
      go.arrive_and_wait();
      jh = h.spawn_blocking([] { return 5; });
    });
    go.arrive_and_wait();
    pool.reset();
    spawner.join();
    ASSERT_TRUE(jh->wait_for(30s)) << "iteration " << i;
    try {
      ASSERT_EQ(jh->get(), 5);
      ++ran;
    } catch (const JoinError& e) {
      ASSERT_TRUE(e.is_cancelled());
    }
  });
  std::printf("[stress] SpawnRacingShutdownResolves: %d iterations, %d ran\n", n, ran);
}

// ---- Keep-alive retirement racing spawns -------------------------------------

// Deterministic: the only thread (cap 1) decided to retire and is in
// on_thread_stop when a task is spawned. Before the fix the task was stranded.
TEST(StressRetire, SpawnWhileOnlyThreadRetiresAtCap) {
  int n = repeat(kLoomShare / 2, 20, 500, [](int i) {
    std::latch stopping(1), proceed(1);
    std::atomic<int> stops{0};
    auto clock = std::make_shared<ManualClock>();
    blockpool::Builder b;
    b.max_threads(1).on_thread_stop([&] {
      if (stops.fetch_add(1) == 0) {
        stopping.count_down();
        proceed.wait();
      }
    });
    if (i % 2 == 0)
      b.keep_alive(0ns);
    else
      b.clock(clock).keep_alive(1ms);
    blockpool::Pool pool = b.build();
    ASSERT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
    if (i % 2 == 1) {
      ASSERT_TRUE(stress::eventually([&] { return pool.metrics().idle_threads == 1; }));
      clock->advance(1ms);
    }
    stopping.wait();
    auto second = pool.spawn_blocking([] { return 2; });
    auto mand = pool.spawn_mandatory_blocking([] { return 3; });
    proceed.count_down();
    ASSERT_TRUE(second.wait_for(30s)) << "task stranded by a retiring thread, iteration " << i;
    ASSERT_EQ(second.get(), 2);
    ASSERT_EQ(mand.get(), 3);
    ASSERT_TRUE(pool.shutdown());
    ASSERT_EQ(pool.metrics().threads, 0u);
  });
  std::printf("[stress] SpawnWhileOnlyThreadRetiresAtCap: %d iterations\n", n);
}

// Same race during shutdown: the retiring thread must not strand a mandatory
// task queued just before shutdown began.
TEST(StressRetire, MandatoryQueuedWhileOnlyThreadRetiresThenShutdown) {
  int n = repeat(kLoomShare / 2, 20, 500, [](int i) {
    std::latch stopping(1), proceed(1);
    std::atomic<int> stops{0};
    std::atomic<bool> ran{false};
    auto pool = std::make_unique<blockpool::Pool>(
        blockpool::Builder{}.max_threads(1).keep_alive(0ns).on_thread_stop([&] {
          if (stops.fetch_add(1) == 0) {
            stopping.count_down();
            proceed.wait();
          }
        }).build());
    ASSERT_EQ(pool->spawn_blocking([] { return 1; }).get(), 1);
    stopping.wait();
    auto mand = pool->spawn_mandatory_blocking([&] { ran.store(true); });
    std::thread stopper([&] { ASSERT_TRUE(pool->shutdown()); });
    if (i % 2 == 0) std::this_thread::yield();  // vary the interleaving, not a wait
    proceed.count_down();
    stopper.join();
    ASSERT_TRUE(mand.is_finished()) << "iteration " << i;
    mand.get();
    ASSERT_TRUE(ran.load());
  });
  std::printf("[stress] MandatoryQueuedWhileOnlyThreadRetiresThenShutdown: %d iterations\n", n);
}

// Random: ManualClock retirements (a ticker thread) racing spawns at small caps.
TEST(StressRetire, ManualClockRetirementsRaceSpawns) {
  long tasks = 0;
  int n = repeat(kLoomShare, 10, 1000, [&](int i) {
    auto clock = std::make_shared<ManualClock>();
    std::atomic<long> starts{0}, stops{0};
    auto pool = std::make_unique<blockpool::Pool>(
        blockpool::Builder{}
            .max_threads(1 + i % 2)
            .clock(clock)
            .keep_alive(1ms)
            .on_thread_start([&] { starts.fetch_add(1); })
            .on_thread_stop([&] { stops.fetch_add(1); })
            .build());
    std::atomic<bool> done{false};
    std::thread ticker([&] {
      while (!done.load()) {
        clock->advance(1ms);
        std::this_thread::yield();
      }
    });
    for (int k = 0; k < 100; ++k) {
      auto h = pool->spawn_blocking([k] { return k; });
      ASSERT_TRUE(h.wait_for(30s)) << "stranded at iteration " << i << "/" << k;
      ASSERT_EQ(h.get(), k);
      ++tasks;
    }
    done.store(true);
    ticker.join();
    ASSERT_TRUE(pool->shutdown());
    const auto m = pool->metrics();
    ASSERT_EQ(m.threads, 0u);
    ASSERT_EQ(starts.load(), stops.load());
    ASSERT_EQ(m.completed, 100u);
  });
  std::printf("[stress] ManualClockRetirementsRaceSpawns: %d iterations, %ld tasks\n", n, tasks);
}
