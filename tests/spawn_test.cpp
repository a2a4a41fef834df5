// Results: what JoinHandle::get()/wait()/wait_for()/is_finished() deliver.
#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;

namespace {

struct CustomError : std::runtime_error {
  CustomError(std::string m, int c) : std::runtime_error(std::move(m)), code(c) {}
  int code;
};

}  // namespace

TEST(Spawn, ReturnsValue) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 6 * 7; });
  static_assert(std::is_same_v<decltype(h), blockpool::JoinHandle<int>>);
  EXPECT_TRUE(h.valid());
  EXPECT_EQ(h.get(), 42);
  EXPECT_FALSE(h.valid());  // get() consumes the handle
}

TEST(Spawn, ReturnsStringValue) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return std::string(1000, 'x'); });
  EXPECT_EQ(h.get(), std::string(1000, 'x'));
}

TEST(Spawn, ExceptionRethrownUnchanged) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([]() -> int { throw CustomError("disk on fire", 17); });
  try {
    (void)h.get();
    FAIL() << "get() returned";
  } catch (const CustomError& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
    EXPECT_EQ(e.code, 17);
  } catch (...) {
    FAIL() << "wrong exception type";
  }
}

TEST(Spawn, ExceptionIsTheSameObject) {
  // "Unchanged": the very exception object the task threw, not a copy or a wrapper.
  blockpool::Pool pool;
  std::atomic<const void*> thrown{nullptr};
  auto h = pool.spawn_blocking([&] {
    try {
      throw CustomError("same", 1);
    } catch (const CustomError& e) {
      thrown = &e;
      throw;
    }
  });
  try {
    h.get();
    FAIL() << "get() returned";
  } catch (const CustomError& e) {
    EXPECT_EQ(static_cast<const void*>(&e), thrown.load());
  }
}

TEST(Spawn, NonStdExceptionRethrown) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { throw 5; });
  EXPECT_THROW(
      {
        try {
          h.get();
        } catch (int v) {
          EXPECT_EQ(v, 5);
          throw;
        }
      },
      int);
}

TEST(Spawn, MoveOnlyResult) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return std::make_unique<std::string>("moved"); });
  std::unique_ptr<std::string> p = h.get();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, "moved");
}

TEST(Spawn, MoveOnlyCallable) {
  blockpool::Pool pool;
  auto owned = std::make_unique<int>(9);
  auto h = pool.spawn_blocking([p = std::move(owned)] { return *p + 1; });
  EXPECT_EQ(h.get(), 10);
}

TEST(Spawn, VoidTask) {
  blockpool::Pool pool;
  std::atomic<bool> ran{false};
  auto h = pool.spawn_blocking([&] { ran = true; });
  static_assert(std::is_same_v<decltype(h), blockpool::JoinHandle<void>>);
  h.get();
  EXPECT_TRUE(ran.load());
}

TEST(Spawn, VoidTaskException) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { throw CustomError("void failed", 3); });
  EXPECT_THROW(h.get(), CustomError);
}

TEST(Spawn, LargeCallable) {
  blockpool::Pool pool;
  std::array<unsigned char, 4096> big{};
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<unsigned char>(i * 7);
  auto h = pool.spawn_blocking([big] {
    unsigned long sum = 0;
    for (unsigned char c : big) sum += c;
    return sum;
  });
  unsigned long expect = 0;
  for (unsigned char c : big) expect += c;
  EXPECT_EQ(h.get(), expect);
}

// A callable with extended alignment keeps it inside the task block (which
// then comes from the aligned operator new, not the recycled blocks).
TEST(Spawn, OverAlignedCallableIsAligned) {
  struct alignas(128) Aligned {
    unsigned char pad[8] = {};
    std::uintptr_t operator()() const { return reinterpret_cast<std::uintptr_t>(this) % 128; }
  };
  blockpool::Pool pool;
  for (int i = 0; i < 8; ++i) EXPECT_EQ(pool.spawn_blocking(Aligned{}).get(), 0u);
}

TEST(Spawn, EmptyHandleThrowsLogicError) {
  blockpool::JoinHandle<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_FALSE(static_cast<bool>(empty));
  EXPECT_THROW(empty.get(), std::logic_error);
  EXPECT_THROW(empty.wait(), std::logic_error);
  EXPECT_THROW((void)empty.is_finished(), std::logic_error);
  EXPECT_THROW(empty.abort(), std::logic_error);
  EXPECT_THROW((void)empty.wait_for(1ms), std::logic_error);
}

TEST(Spawn, MovedFromHandleThrowsLogicError) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 1; });
  auto h2 = std::move(h);
  EXPECT_FALSE(h.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW(h.get(), std::logic_error);
  EXPECT_EQ(h2.get(), 1);
  EXPECT_THROW(h2.get(), std::logic_error);  // consumed by the first get()
}

TEST(Spawn, WaitForFalseThenTrue) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] {
    gate.wait();
    return 3;
  });
  EXPECT_FALSE(h.is_finished());
  EXPECT_FALSE(h.wait_for(1ms));
  EXPECT_FALSE(h.is_finished());
  gate.open();
  EXPECT_TRUE(h.wait_for(bptest::kLongWait));
  EXPECT_TRUE(h.is_finished());
  EXPECT_EQ(h.get(), 3);  // wait_for does not consume
}

TEST(Spawn, WaitDoesNotConsume) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] {
    gate.wait();
    return std::string("v");
  });
  std::thread opener([&] { gate.open(); });
  h.wait();
  EXPECT_TRUE(h.is_finished());
  EXPECT_TRUE(h.valid());
  h.wait();  // again: still fine
  EXPECT_EQ(h.get(), "v");
  opener.join();
}

TEST(Spawn, WaitUntilPast) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] { gate.wait(); });
  EXPECT_FALSE(h.wait_until(std::chrono::steady_clock::now() - 1s));
  gate.open();
  EXPECT_TRUE(h.wait_until(std::chrono::steady_clock::now() + bptest::kLongWait));
}

TEST(Spawn, DroppedHandleDetachesTaskStillRuns) {
  blockpool::Pool pool;
  std::promise<int> ran;
  auto fut = ran.get_future();
  auto resource = std::make_shared<int>(5);
  std::weak_ptr<int> weak = resource;
  {
    auto h = pool.spawn_blocking([&ran, r = std::move(resource)] {
      ran.set_value(*r);
      return std::make_unique<int>(1);  // result dropped with nobody to take it
    });
  }
  ASSERT_EQ(fut.wait_for(bptest::kLongWait), std::future_status::ready);
  EXPECT_EQ(fut.get(), 5);
  // The callable (and its captures) are destroyed once the task ends.
  EXPECT_TRUE(bptest::wait_until([&] { return weak.expired(); }));
}

TEST(Spawn, ManyTasksAllReturnTheirOwnValue) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  std::vector<blockpool::JoinHandle<int>> hs;
  for (int i = 0; i < 500; ++i) hs.push_back(pool.spawn_blocking([i] { return i * 3; }));
  for (int i = 0; i < 500; ++i) EXPECT_EQ(hs[static_cast<std::size_t>(i)].get(), i * 3);
}

TEST(Spawn, StopTokenCallableNotRequestedNormally) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([](std::stop_token st) { return st.stop_possible() && !st.stop_requested(); });
  EXPECT_TRUE(h.get());
}
