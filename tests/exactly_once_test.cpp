// Exactly once: thousands of tasks spawned from several threads, mixing
// values, exceptions, aborts, stop tokens, mandatory tasks and a shutdown
// partway through. Every handle ends exactly once with the outcome its task
// had; no task runs twice; cancelled tasks never ran; the counters balance.
#include <memory>
#include <random>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

struct TaskError : std::runtime_error {
  explicit TaskError(int i) : std::runtime_error("task " + std::to_string(i)), id(i) {}
  int id;
};

enum class Kind { kValue, kThrow, kAbort, kStop, kMandatory };

struct Record {
  std::atomic<int> runs{0};
  Kind kind = Kind::kValue;
  bool after_shutdown = false;  // spawned after shutdown began
};

void run_round(unsigned seed, std::size_t max_threads) {
  constexpr int kSpawners = 4;
  constexpr int kPerSpawner = 1000;
  constexpr int kTotal = kSpawners * kPerSpawner;
  std::vector<Record> records(kTotal);
  blockpool::Pool pool = blockpool::Builder{}.max_threads(max_threads).build();
  std::atomic<int> spawned_so_far{0};
  std::atomic<int> outcome_value{0}, outcome_throw{0}, outcome_cancel{0}, bad{0};
  std::latch go{kSpawners + 1};
  std::atomic<bool> shut{false};

  auto spawner = [&](int s) {
    std::mt19937 rng(seed * 31u + static_cast<unsigned>(s));
    go.arrive_and_wait();
    struct Pending {
      int id;
      blockpool::JoinHandle<int> h;
    };
    std::vector<Pending> pending;
    for (int k = 0; k < kPerSpawner; ++k) {
      const int id = s * kPerSpawner + k;
      Record& r = records[static_cast<std::size_t>(id)];
      // Three quarters in, wait for the shutdown, so it lands while every
      // spawner is active, and the last quarter is spawned after it began.
      if (k == kPerSpawner * 3 / 4) {
        if (!bptest::wait_until([&] { return shut.load(); })) bad++;
      }
      r.after_shutdown = k >= kPerSpawner * 3 / 4;
      r.kind = static_cast<Kind>(rng() % 5);
      blockpool::JoinHandle<int> h;
      switch (r.kind) {
        case Kind::kValue:
        case Kind::kAbort:
          h = pool.spawn_blocking([&r, id] {
            r.runs.fetch_add(1);
            return id;
          });
          break;
        case Kind::kThrow:
          h = pool.spawn_blocking([&r, id]() -> int {
            r.runs.fetch_add(1);
            throw TaskError(id);
          });
          break;
        case Kind::kStop:
          h = pool.spawn_blocking([&r, id](std::stop_token) {
            r.runs.fetch_add(1);
            return id;
          });
          break;
        case Kind::kMandatory:
          h = pool.spawn_mandatory_blocking([&r, id] {
            r.runs.fetch_add(1);
            return id;
          });
          break;
      }
      spawned_so_far.fetch_add(1);
      if (r.kind == Kind::kAbort || (r.kind == Kind::kStop && rng() % 2 == 0)) (void)h.abort();
      if (rng() % 4 == 0) {
        // Some handles are dropped (detached) without being joined.
        if (rng() % 8 == 0) continue;
      }
      pending.push_back({id, std::move(h)});
      // Join in batches, so spawning and joining interleave.
      if (pending.size() >= 64) {
        for (auto& p : pending) {
          const Record& rec = records[static_cast<std::size_t>(p.id)];
          try {
            const int v = p.h.get();
            if (v != p.id || rec.runs.load() != 1 || rec.kind == Kind::kThrow) bad++;
            outcome_value++;
          } catch (const TaskError& e) {
            if (e.id != p.id || rec.runs.load() != 1 || rec.kind != Kind::kThrow) bad++;
            outcome_throw++;
          } catch (const blockpool::JoinError& e) {
            if (!e.is_cancelled() || rec.runs.load() != 0) bad++;
            outcome_cancel++;
          }
          if (p.h.valid()) bad++;  // get() consumed it
        }
        pending.clear();
      }
    }
    for (auto& p : pending) {
      const Record& rec = records[static_cast<std::size_t>(p.id)];
      try {
        const int v = p.h.get();
        if (v != p.id || rec.runs.load() != 1) bad++;
        outcome_value++;
      } catch (const TaskError& e) {
        if (e.id != p.id || rec.runs.load() != 1) bad++;
        outcome_throw++;
      } catch (const blockpool::JoinError& e) {
        if (!e.is_cancelled() || rec.runs.load() != 0) bad++;
        outcome_cancel++;
      }
    }
  };

  std::vector<std::thread> ts;
  for (int s = 0; s < kSpawners; ++s) ts.emplace_back(spawner, s);
  go.arrive_and_wait();
  // Shut down partway, while the spawners are still going.
  ASSERT_TRUE(bptest::wait_until([&] { return spawned_so_far.load() >= kTotal / 4; }));
  pool.shutdown_background();
  shut = true;
  for (auto& t : ts) t.join();
  ASSERT_TRUE(pool.shutdown(bptest::kLongWait));

  EXPECT_EQ(bad.load(), 0);
  int ran = 0;
  for (const Record& r : records) {
    ASSERT_LE(r.runs.load(), 1) << "a task ran twice";
    if (r.after_shutdown) {
      EXPECT_EQ(r.runs.load(), 0) << "a task spawned after shutdown ran";
    }
    ran += r.runs.load();
  }
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, static_cast<std::uint64_t>(kTotal));
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
  EXPECT_EQ(static_cast<std::uint64_t>(ran), m.completed + m.failed);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.spawn_failures, 0u);
  EXPECT_GT(m.cancelled, 0u);  // the shutdown (and the aborts) cancelled some
  EXPECT_GT(m.completed, 0u);
  EXPECT_LE(static_cast<std::uint64_t>(outcome_value.load()), m.completed);
  EXPECT_LE(static_cast<std::uint64_t>(outcome_throw.load()), m.failed);
  EXPECT_LE(static_cast<std::uint64_t>(outcome_cancel.load()), m.cancelled);
}

}  // namespace

TEST(ExactlyOnce, MixedOutcomesWithShutdownPartway) {
  for (unsigned seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(seed);
    run_round(seed, 4);
  }
}

TEST(ExactlyOnce, MixedOutcomesSingleThread) { run_round(7, 1); }

TEST(ExactlyOnce, MixedOutcomesManyThreads) { run_round(11, 64); }

TEST(ExactlyOnce, AbortRacingShutdown) {
  // abort() and shutdown race for the same queued tasks: each ends once.
  for (int round = 0; round < 20; ++round) {
    blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
    bptest::Gate gate;
    std::latch started{1};
    auto blocker = pool.spawn_blocking([&] {
      started.count_down();
      gate.wait();
    });
    started.wait();
    std::vector<blockpool::JoinHandle<int>> hs;
    std::vector<std::unique_ptr<std::atomic<int>>> runs;
    for (int i = 0; i < 200; ++i) {
      runs.push_back(std::make_unique<std::atomic<int>>(0));
      hs.push_back(pool.spawn_blocking([r = runs.back().get(), i] {
        r->fetch_add(1);
        return i;
      }));
    }
    std::latch go{2};
    std::thread aborter([&] {
      go.arrive_and_wait();
      for (auto& h : hs) (void)h.abort();
    });
    go.arrive_and_wait();
    pool.shutdown_background();
    aborter.join();
    for (auto& h : hs) EXPECT_TRUE(bptest::get_join_error(h).is_cancelled());
    gate.open();
    blocker.get();
    ASSERT_TRUE(pool.shutdown(bptest::kLongWait));
    for (auto& r : runs) EXPECT_EQ(r->load(), 0);
    const auto m = pool.metrics();
    EXPECT_EQ(m.cancelled, 200u);
    EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
  }
}
