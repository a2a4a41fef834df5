// blockpool::Handle: copies used concurrently from many threads, use after
// the pool is gone, default-constructed handles.
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;

TEST(Handle, CopiesUsableFromManyThreadsConcurrently) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  const blockpool::Handle handle = pool.handle();
  constexpr int kThreads = 6;
  constexpr int kPerThread = 200;
  std::atomic<long> sum{0};
  std::atomic<int> bad{0};
  std::latch go{kThreads};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, h = handle, t] {  // each thread its own copy
      go.arrive_and_wait();
      std::vector<blockpool::JoinHandle<int>> hs;
      for (int i = 0; i < kPerThread; ++i) {
        blockpool::Handle copy = h;  // copying concurrently too
        hs.push_back(copy.spawn_blocking([t, i] { return t * 1000 + i; }));
      }
      for (int i = 0; i < kPerThread; ++i) {
        const int v = hs[static_cast<std::size_t>(i)].get();
        if (v != t * 1000 + i) bad++;
        sum += v;
      }
      (void)h.metrics();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  long expect = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) expect += t * 1000 + i;
  EXPECT_EQ(sum.load(), expect);
  const auto m = handle.metrics();
  EXPECT_EQ(m.spawned, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(m.completed, m.spawned);
}

TEST(Handle, MetricsSameAsPool) {
  blockpool::Pool pool;
  pool.spawn_blocking([] {}).get();
  const auto a = pool.metrics();
  const auto b = pool.handle().metrics();
  EXPECT_EQ(a.spawned, b.spawned);
  EXPECT_EQ(a.completed, b.completed);
  EXPECT_EQ(b.completed, 1u);
}

TEST(Handle, SpawnAfterPoolDestroyedIsCancelled) {
  blockpool::Handle handle;
  {
    blockpool::Pool pool;
    handle = pool.handle();
    EXPECT_EQ(handle.spawn_blocking([] { return 1; }).get(), 1);
  }
  std::atomic<bool> ran{false};
  auto capture = std::make_shared<int>(1);
  auto h = handle.spawn_blocking([&ran, capture] {
    ran = true;
    return 2;
  });
  auto m = handle.spawn_mandatory_blocking([&ran] { ran = true; });
  EXPECT_TRUE(h.is_finished());
  EXPECT_TRUE(m.is_finished());
  EXPECT_EQ(capture.use_count(), 1);
  const auto e = bptest::get_join_error(h);
  EXPECT_TRUE(e.is_cancelled());
  EXPECT_EQ(e.reason(), blockpool::JoinError::Reason::kSpawnAfterShutdown);
  EXPECT_TRUE(bptest::get_join_error(m).is_cancelled());
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(handle.metrics().threads, 0u);
}

TEST(Handle, DefaultConstructedSpawnsCancelled) {
  blockpool::Handle handle;
  std::atomic<bool> ran{false};
  auto h = handle.spawn_blocking([&] {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(h.is_finished());
  EXPECT_TRUE(bptest::get_join_error(h).is_cancelled());
  auto v = handle.spawn_mandatory_blocking([&](std::stop_token) { ran = true; });
  EXPECT_TRUE(bptest::get_join_error(v).is_cancelled());
  EXPECT_FALSE(ran.load());
  const auto m = handle.metrics();
  EXPECT_EQ(m.spawned, 0u);
  EXPECT_EQ(m.threads, 0u);
}

TEST(Handle, HandleOutlivesPoolWhileTasksRunOnOtherThreads) {
  // Spawning through a Handle while the pool is being destroyed: every
  // handle ends (completed or cancelled), nothing hangs or crashes.
  blockpool::Handle handle;
  std::atomic<bool> stop{false};
  std::atomic<int> ended{0};
  std::atomic<int> spawned{0};
  std::thread spawner;
  {
    blockpool::Pool pool;
    handle = pool.handle();
    spawner = std::thread([&, h = handle] {
      while (!stop.load()) {
        auto jh = h.spawn_blocking([] { return 1; });
        spawned++;
        try {
          (void)jh.get();
        } catch (const blockpool::JoinError& e) {
          if (!e.is_cancelled()) ADD_FAILURE() << e.what();
        }
        ended++;
      }
    });
    ASSERT_TRUE(bptest::wait_until([&] { return ended.load() >= 50; }));
  }
  // After the pool is gone, spawns are cancelled at once.
  const int before = ended.load();
  ASSERT_TRUE(bptest::wait_until([&] { return ended.load() >= before + 50; }));
  stop = true;
  spawner.join();
  EXPECT_EQ(ended.load(), spawned.load());
  const auto m = handle.metrics();
  EXPECT_EQ(m.spawned, m.completed + m.cancelled);
  EXPECT_EQ(m.threads, 0u);
}

TEST(Handle, JoinHandleOutlivesPool) {
  blockpool::JoinHandle<int> h;
  {
    blockpool::Pool pool;
    h = pool.spawn_mandatory_blocking([] { return 12; });  // mandatory: not dropped by shutdown
  }  // destructor waits for the task
  EXPECT_TRUE(h.is_finished());
  EXPECT_EQ(h.get(), 12);
}
