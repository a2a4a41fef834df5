// Thread names, stack size, on_thread_start/on_thread_stop hooks (balanced,
// on the pool's threads, throwing hooks counted), nested spawns.
#include <pthread.h>

#include <mutex>
#include <set>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::wait_until;

TEST(ThreadNames, DefaultNameHasIndex) {
  blockpool::Pool pool;
  EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "blockpool-0");
}

TEST(ThreadNames, ConfiguredNameWithIndexes) {
  blockpool::Pool pool = blockpool::Builder{}.thread_name("db-io").max_threads(3).build();
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<std::string>> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(pool.spawn_blocking([&] {
      running++;
      gate.wait();
      return bptest::thread_name();
    }));
  ASSERT_TRUE(wait_until([&] { return running.load() == 3; }));
  gate.open();
  std::set<std::string> names;
  for (auto& h : hs) names.insert(h.get());
  EXPECT_EQ(names, (std::set<std::string>{"db-io-0", "db-io-1", "db-io-2"}));
}

TEST(ThreadNames, LongNameIsCutKeepingIndex) {
  blockpool::Pool pool = blockpool::Builder{}.thread_name("a-very-long-thread-name-indeed").build();
  const std::string name = pool.spawn_blocking([] { return bptest::thread_name(); }).get();
  EXPECT_EQ(name.size(), 15u) << name;
  EXPECT_EQ(name, "a-very-long-t-0");
}

TEST(ThreadNames, NameExactlyAtLimit) {
  blockpool::Pool pool = blockpool::Builder{}.thread_name("thirteen-char").build();  // 13 + "-0" = 15
  EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "thirteen-char-0");
}

TEST(ThreadNames, LongUtf8NameNotSplitInsideACharacter) {
  // 12 ASCII bytes then a 3-byte character: cutting at 13 would split it.
  blockpool::Pool pool = blockpool::Builder{}.thread_name("abcdefghijkl\xe2\x82\xac-tail").build();
  const std::string name = pool.spawn_blocking([] { return bptest::thread_name(); }).get();
  EXPECT_EQ(name, "abcdefghijkl-0");
}

TEST(ThreadNames, NameFnUsedAsIs) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name("ignored")
                             .thread_name_fn([] { return std::string("custom"); })
                             .build();
  EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "custom");
}

TEST(ThreadNames, NameFnLongNameIsCut) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_name_fn([] { return std::string("0123456789abcdefghij"); }).build();
  EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "0123456789abcde");
  EXPECT_EQ(pool.metrics().hook_errors, 0u);
}

TEST(ThreadNames, NameFnRunsOnTheNewThread) {
  std::atomic<std::thread::id> fn_thread{};
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name_fn([&] {
                               fn_thread = std::this_thread::get_id();
                               return std::string("n");
                             })
                             .build();
  const auto task_thread = pool.spawn_blocking([] { return std::this_thread::get_id(); }).get();
  EXPECT_EQ(fn_thread.load(), task_thread);
}

TEST(ThreadNames, ThrowingNameFnIsCountedAndDefaultNameUsed) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name("fallback")
                             .thread_name_fn([]() -> std::string { throw std::runtime_error("no name"); })
                             .build();
  EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "fallback-0");
  EXPECT_EQ(pool.metrics().hook_errors, 1u);
}

TEST(ThreadNames, EmptyNameFromFnIsNotAnError) {
  blockpool::Pool pool = blockpool::Builder{}.thread_name_fn([] { return std::string(); }).build();
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
}

TEST(StackSize, Honoured) {
  constexpr std::size_t kRequested = std::size_t{24} << 20;  // above the usual 8 MiB default
  blockpool::Pool pool = blockpool::Builder{}.stack_size(kRequested).build();
  const std::size_t got = pool.spawn_blocking([] {
                                pthread_attr_t attr;
                                std::size_t size = 0;
                                void* addr = nullptr;
                                if (pthread_getattr_np(pthread_self(), &attr) != 0) return std::size_t{0};
                                pthread_attr_getstack(&attr, &addr, &size);
                                pthread_attr_destroy(&attr);
                                return size;
                              }).get();
  EXPECT_GE(got, kRequested);
}

TEST(StackSize, TinyIsRaisedToMinimum) {
  blockpool::Pool pool = blockpool::Builder{}.stack_size(1).build();
  EXPECT_EQ(pool.spawn_blocking([] { return 3; }).get(), 3);
}

TEST(Hooks, BalancedAndOnPoolThreads) {
  std::mutex mu;
  std::multiset<std::string> start_names;
  std::multiset<std::string> stop_names;
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  {
    blockpool::Pool pool = blockpool::Builder{}
                               .thread_name("hk")
                               .max_threads(4)
                               .on_thread_start([&] {
                                 starts++;
                                 std::lock_guard lk(mu);
                                 start_names.insert(bptest::thread_name());
                               })
                               .on_thread_stop([&] {
                                 stops++;
                                 std::lock_guard lk(mu);
                                 stop_names.insert(bptest::thread_name());
                               })
                               .build();
    Gate gate;
    std::atomic<int> running{0};
    std::vector<blockpool::JoinHandle<void>> hs;
    for (int i = 0; i < 4; ++i)
      hs.push_back(pool.spawn_blocking([&] {
        running++;
        gate.wait();
      }));
    ASSERT_TRUE(wait_until([&] { return running.load() == 4; }));
    EXPECT_EQ(starts.load(), 4);  // on_thread_start ran before each thread's first task
    EXPECT_EQ(stops.load(), 0);
    gate.open();
    for (auto& h : hs) h.get();
    EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
    EXPECT_EQ(stops.load(), 4);
    EXPECT_EQ(static_cast<std::uint64_t>(starts.load()), pool.metrics().threads_started);
  }
  EXPECT_EQ(starts.load(), stops.load());
  EXPECT_EQ(start_names, (std::multiset<std::string>{"hk-0", "hk-1", "hk-2", "hk-3"}));
  EXPECT_EQ(stop_names, start_names);  // each stop ran on the thread that started
}

TEST(Hooks, StartRunsBeforeFirstTaskOnSameThread) {
  thread_local bool started_here = false;
  blockpool::Pool pool = blockpool::Builder{}.on_thread_start([] { started_here = true; }).build();
  EXPECT_TRUE(pool.spawn_blocking([] { return started_here; }).get());
}

TEST(Hooks, StopRunsOnRetirement) {
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  std::atomic<int> stops{0};
  blockpool::Pool pool =
      blockpool::Builder{}.keep_alive(1s).clock(clock).on_thread_stop([&] { stops++; }).build();
  pool.spawn_blocking([] {}).get();
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 1; }));
  clock->advance(1s);
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  // "Before the thread stops counting as alive": the hook has already run.
  EXPECT_EQ(stops.load(), 1);
}

TEST(Hooks, ThrowingHooksCountedPoolStillWorks) {
  std::atomic<int> stops{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .on_thread_start([] { throw std::runtime_error("start hook"); })
                             .on_thread_stop([&] {
                               stops++;
                               throw 42;
                             })
                             .build();
  EXPECT_EQ(pool.spawn_blocking([] { return 5; }).get(), 5);
  EXPECT_EQ(pool.metrics().hook_errors, 1u);
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_EQ(stops.load(), 1);
  EXPECT_EQ(pool.metrics().hook_errors, 2u);
  EXPECT_EQ(pool.metrics().completed, 1u);
}

TEST(Nested, SpawnFromInsideTaskAndWait) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
  auto outer = pool.spawn_blocking([&pool] {
    auto inner = pool.spawn_blocking([] { return 20; });
    return inner.get() + 1;  // needs a second thread: the pool must grow
  });
  ASSERT_TRUE(outer.wait_for(bptest::kLongWait)) << "nested wait did not complete";
  EXPECT_EQ(outer.get(), 21);
}

TEST(Nested, SpawnThroughHandleDetached) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::promise<int> p;
  auto fut = p.get_future();
  auto outer = pool.spawn_blocking([h = pool.handle(), &p] {
    h.spawn_blocking([&p] { p.set_value(8); });  // runs after the outer returns
  });
  outer.get();
  ASSERT_EQ(fut.wait_for(bptest::kLongWait), std::future_status::ready);
  EXPECT_EQ(fut.get(), 8);
}

TEST(Nested, DeepChain) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(8).build();
  std::function<int(int)> chain = [&](int depth) -> int {
    if (depth == 0) return 0;
    return pool.spawn_blocking([&, depth] { return chain(depth - 1); }).get() + 1;
  };
  auto h = pool.spawn_blocking([&] { return chain(6); });
  ASSERT_TRUE(h.wait_for(bptest::kLongWait));
  EXPECT_EQ(h.get(), 6);
}
