// Shutdown: queued normal tasks cancelled, queued mandatory ones run, running
// ones finish (stop tokens triggered for non-mandatory), later spawns are
// cancelled, timeouts, repeated calls, the destructor, and shutdown from
// inside the pool's own tasks.
#include <memory>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

TEST(Shutdown, QueuedCancelledMandatoryRunRunningNotInterrupted) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch started{1};
  std::atomic<bool> stop_seen_before_release{false};
  auto running = pool.spawn_blocking([&](std::stop_token st) {
    started.count_down();
    // Wait for the stop request (shutdown triggers it), then for the gate.
    const auto limit = std::chrono::steady_clock::now() + bptest::kLongWait;
    while (!st.stop_requested() && std::chrono::steady_clock::now() < limit)
      std::this_thread::sleep_for(100us);
    stop_seen_before_release = st.stop_requested();
    gate.wait();
    return std::string("finished");
  });
  started.wait();

  std::atomic<int> normal_runs{0};
  std::atomic<int> mandatory_runs{0};
  auto n1 = pool.spawn_blocking([&] { normal_runs++; });
  auto m1 = pool.spawn_mandatory_blocking([&] {
    mandatory_runs++;
    return 11;
  });
  auto n2 = pool.spawn_blocking([&](std::stop_token) { normal_runs++; });
  auto m2 = pool.spawn_mandatory_blocking([&](std::stop_token st) {
    mandatory_runs++;
    return st.stop_requested();  // mandatory tasks' tokens are not triggered
  });
  ASSERT_EQ(pool.metrics().queue_depth, 4u);

  pool.shutdown_background();  // never waits

  // Queued normal tasks end at once as cancelled.
  EXPECT_TRUE(n1.is_finished());
  EXPECT_TRUE(n2.is_finished());
  const auto e1 = bptest::get_join_error(n1);
  EXPECT_TRUE(e1.is_cancelled());
  EXPECT_EQ(e1.reason(), blockpool::JoinError::Reason::kShutdown);
  EXPECT_TRUE(bptest::get_join_error(n2).is_cancelled());
  EXPECT_EQ(pool.metrics().queue_depth, 2u);
  EXPECT_EQ(pool.metrics().cancelled, 2u);
  // Mandatory ones are still waiting; the running one is not interrupted.
  EXPECT_FALSE(m1.is_finished());
  EXPECT_FALSE(m2.is_finished());
  EXPECT_FALSE(running.is_finished());
  ASSERT_TRUE(wait_until([&] { return stop_seen_before_release.load(); }))
      << "shutdown must trigger a running non-mandatory task's stop token";

  gate.open();
  EXPECT_EQ(running.get(), "finished");
  EXPECT_EQ(m1.get(), 11);
  EXPECT_FALSE(m2.get());
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_EQ(normal_runs.load(), 0);
  EXPECT_EQ(mandatory_runs.load(), 2);
  const auto m = pool.metrics();
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(m.cancelled, 2u);
  EXPECT_EQ(m.spawned, 5u);
}

TEST(Shutdown, RunningMandatoryTaskStopTokenNotTriggered) {
  blockpool::Pool pool;
  Gate gate;
  std::latch started{1};
  auto h = pool.spawn_mandatory_blocking([&](std::stop_token st) {
    started.count_down();
    gate.wait();
    return st.stop_requested();
  });
  started.wait();
  pool.shutdown_background();
  EXPECT_FALSE(h.is_finished());
  gate.open();
  EXPECT_FALSE(h.get());
}

TEST(Shutdown, SpawnAfterShutdownIsCancelled) {
  blockpool::Pool pool;
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  std::atomic<int> runs{0};
  auto capture = std::make_shared<int>(0);
  auto a = pool.spawn_blocking([&runs, capture] { runs++; });
  auto b = pool.spawn_mandatory_blocking([&runs, capture] {
    runs++;
    return 2;
  });
  auto h = pool.handle();
  auto c = h.spawn_mandatory_blocking([&runs] { runs++; });
  EXPECT_TRUE(a.is_finished());
  EXPECT_TRUE(b.is_finished());
  EXPECT_TRUE(c.is_finished());
  EXPECT_EQ(capture.use_count(), 1);  // dropped callables freed at once
  for (auto* e : {&a, &c}) {
    const auto err = bptest::get_join_error(*e);
    EXPECT_TRUE(err.is_cancelled());
    EXPECT_EQ(err.reason(), blockpool::JoinError::Reason::kSpawnAfterShutdown);
  }
  EXPECT_TRUE(bptest::get_join_error(b).is_cancelled());
  EXPECT_EQ(runs.load(), 0);
  const auto m = pool.metrics();
  EXPECT_EQ(m.cancelled, 3u);
  EXPECT_EQ(m.spawned, 4u);
  EXPECT_EQ(m.threads, 0u);
}

TEST(Shutdown, SpawnAfterShutdownBackgroundIsCancelled) {
  blockpool::Pool pool;
  Gate gate;
  std::latch started{1};
  auto running = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
  });
  started.wait();
  pool.shutdown_background();
  auto late = pool.spawn_mandatory_blocking([] { return 1; });
  EXPECT_TRUE(late.is_finished());
  EXPECT_TRUE(bptest::get_join_error(late).is_cancelled());
  gate.open();
  running.get();
}

TEST(Shutdown, ReturnsTrueWhenAllThreadsExit) {
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(1h).build();
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(pool.spawn_blocking([i] { return i; }));
  for (auto& h : hs) h.get();
  // Idle threads with an hour of keep-alive left: shutdown wakes them and
  // returns true once they have exited, long before the limit.
  EXPECT_TRUE(pool.shutdown(std::chrono::hours(1)));
  EXPECT_EQ(pool.metrics().threads, 0u);
  EXPECT_EQ(pool.metrics().idle_threads, 0u);
  EXPECT_EQ(pool.metrics().threads_retired, 0u);  // shutdown exits are not keep-alive retirements
}

TEST(Shutdown, ShutdownOfUnusedPool) {
  blockpool::Pool pool;
  EXPECT_TRUE(pool.shutdown(0ms));
  EXPECT_TRUE(pool.shutdown());
}

TEST(Shutdown, TimeoutWithStuckTaskReturnsFalseThenLaterCallJoins) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch started{1};
  auto stuck = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
    return 3;
  });
  started.wait();
  std::atomic<int> mandatory_runs{0};
  auto queued_mandatory = pool.spawn_mandatory_blocking([&] { mandatory_runs++; });

  EXPECT_FALSE(pool.shutdown(50ms));
  // Only the first call acts: a second one does not cancel the queued
  // mandatory task either, and does not change the stuck one.
  EXPECT_FALSE(pool.shutdown(1ms));
  EXPECT_FALSE(queued_mandatory.is_finished());
  EXPECT_FALSE(stuck.is_finished());
  EXPECT_EQ(pool.metrics().cancelled, 0u);
  EXPECT_EQ(pool.metrics().threads, 1u);

  gate.open();
  EXPECT_TRUE(pool.shutdown());  // waits for and joins the leftover thread
  EXPECT_EQ(stuck.get(), 3);     // the stuck task completed normally
  queued_mandatory.get();
  EXPECT_EQ(mandatory_runs.load(), 1);
  EXPECT_EQ(pool.metrics().threads, 0u);
}

TEST(Shutdown, ThreadOutlivingTimeoutExitsOnItsOwn) {
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .on_thread_start([&] { starts++; })
                             .on_thread_stop([&] { stops++; })
                             .build();
  Gate gate;
  std::latch started{1};
  auto stuck = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
  });
  started.wait();
  EXPECT_FALSE(pool.shutdown(1ms));
  gate.open();
  stuck.get();
  // Nobody calls shutdown again: the thread exits by itself once its task returns.
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  EXPECT_EQ(stops.load(), starts.load());
}

TEST(Shutdown, DestructorWaitsForRunningTask) {
  std::atomic<bool> finished{false};
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  std::thread releaser;
  {
    blockpool::Pool pool = blockpool::Builder{}
                               .on_thread_start([&] { starts++; })
                               .on_thread_stop([&] { stops++; })
                               .build();
    auto gate = std::make_shared<Gate>();
    std::latch started{1};
    pool.spawn_blocking([&finished, &started, gate] {
      started.count_down();
      gate->wait();
      finished = true;
    });  // handle dropped: detached
    started.wait();
    // Open the gate only once the destructor has begun shutting down
    // (observed as a spawn through a Handle being cancelled at once).
    releaser = std::thread([h = pool.handle(), gate] {
      (void)wait_until([&] {
        auto probe = h.spawn_blocking([] {});
        return probe.is_finished() && probe.exception() != nullptr;
      });
      gate->open();
    });
  }  // ~Pool: shutdown() with no limit
  EXPECT_TRUE(finished.load()) << "the destructor returned before the running task finished";
  EXPECT_GE(starts.load(), 1);
  EXPECT_EQ(stops.load(), starts.load());
  releaser.join();
}

TEST(Shutdown, DestructorRunsQueuedMandatoryTasks) {
  std::atomic<int> runs{0};
  {
    blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
    auto gate = std::make_shared<Gate>();
    std::latch started{1};
    pool.spawn_blocking([&started, gate] {
      started.count_down();
      gate->wait();
    });
    started.wait();
    for (int i = 0; i < 5; ++i) pool.spawn_mandatory_blocking([&] { runs++; });
    for (int i = 0; i < 5; ++i) pool.spawn_blocking([&] { runs += 100; });
    gate->open();
  }
  // The non-mandatory ones may have run before the destructor began, but
  // every mandatory one ran before it returned.
  EXPECT_EQ(runs.load() % 100, 5);
}

TEST(Shutdown, ShutdownFromInsideOwnTaskDoesNotDeadlock) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  auto h = pool.spawn_blocking([&pool] { return pool.shutdown(); });
  ASSERT_TRUE(h.wait_for(bptest::kLongWait)) << "shutdown from inside a task deadlocked";
  EXPECT_TRUE(h.get());  // every other thread exited
  EXPECT_TRUE(bptest::get_join_error(pool.spawn_blocking([] {})).is_cancelled());
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));  // joins the calling thread too
  EXPECT_EQ(pool.metrics().threads, 0u);
}

TEST(Shutdown, ShutdownFromInsideWithOtherThreadsRunning) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<void>> others;
  for (int i = 0; i < 2; ++i)
    others.push_back(pool.spawn_blocking([&] {
      running++;
      gate.wait();
    }));
  ASSERT_TRUE(wait_until([&] { return running.load() == 2; }));
  auto h = pool.spawn_blocking([&pool] { return pool.shutdown(30ms); });
  // With the other two threads stuck it times out; it does not wait for itself.
  ASSERT_TRUE(h.wait_for(bptest::kLongWait));
  EXPECT_FALSE(h.get());
  gate.open();
  for (auto& o : others) o.get();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

TEST(Shutdown, PoolDeletedFromInsideItsOwnTask) {
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  auto* pool = new blockpool::Pool(blockpool::Builder{}
                                       .on_thread_start([&] { starts++; })
                                       .on_thread_stop([&] { stops++; })
                                       .build());
  blockpool::Handle handle = pool->handle();
  auto h = pool->spawn_blocking([pool] {
    delete pool;
    return 7;
  });
  ASSERT_TRUE(h.wait_for(bptest::kLongWait)) << "deleting the pool from its own task deadlocked";
  EXPECT_EQ(h.get(), 7);
  // The pool is gone; its Handle still works and yields cancelled handles.
  EXPECT_TRUE(bptest::get_join_error(handle.spawn_blocking([] { return 1; })).is_cancelled());
  ASSERT_TRUE(wait_until([&] { return handle.metrics().threads == 0; }));
  ASSERT_TRUE(wait_until([&] { return stops.load() == starts.load(); }));
}

TEST(Shutdown, MoveAssignShutsDownTheOldPool) {
  std::atomic<bool> finished{false};
  blockpool::Pool a;
  std::latch started{1};
  a.spawn_blocking([&] {
    started.count_down();
    finished = true;
  });
  started.wait();
  blockpool::Handle old = a.handle();
  a = blockpool::Pool{};
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(old.metrics().threads, 0u);
  EXPECT_TRUE(bptest::get_join_error(old.spawn_blocking([] {})).is_cancelled());
  EXPECT_EQ(a.spawn_blocking([] { return 4; }).get(), 4);
}
