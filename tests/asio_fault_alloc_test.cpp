// tests/asio_fault_alloc_test.cpp: allocation failure inside
// async_spawn_blocking's initiation (label "stress"; replaces operator new).
//
// Documented outcome (asio.hpp): initiation throws only what allocating the
// operation or the task throws (std::bad_alloc), and then nothing was
// spawned: the callable never runs, the handler is never called, and both
// are destroyed. Otherwise the operation completes exactly once.
#include <gtest/gtest.h>

#include "asio_flavour.hpp"
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <new>
#include <stop_token>
#include <string>

#include "blockpool/blockpool.hpp"
#include "blockpool/testing.hpp"
#include "failing_new.hpp"

using failing_new::t_fail_countdown;

namespace {
// Every allocation of the operation must reach operator new: no recycled
// task blocks.
const bool g_block_cache_off = (blockpool::testing::set_task_block_cache(false), true);

std::atomic<long> g_live{0};  // callables and handlers alive
struct Tracked {
  Tracked() { g_live.fetch_add(1); }
  Tracked(const Tracked&) { g_live.fetch_add(1); }
  ~Tracked() { g_live.fetch_sub(1); }
};

enum class Variant { kPlain, kCancellable, kStoppable };

void initiate(blockpool::Pool& pool, asio::io_context& io, asio::cancellation_signal& signal,
              Variant v, std::atomic<int>& runs, int& calls, std::string& outcome) {
  auto handler = [&calls, &outcome, t = Tracked{}](std::exception_ptr e, int value) {
    ++calls;
    if (!e) {
      outcome = std::to_string(value);
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const blockpool::JoinError& je) {
      outcome = je.is_spawn_failure() ? "spawn-failure" : "cancelled";
    } catch (...) {
      outcome = "other";
    }
  };
  auto task = [&runs, t = Tracked{}] { return runs.fetch_add(1) + 1; };
  switch (v) {
    case Variant::kPlain:
      bpa::async_spawn_blocking(pool, task, asio::bind_executor(io, handler));
      break;
    case Variant::kCancellable:
      bpa::async_spawn_blocking(
          pool, task, asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, handler)));
      break;
    case Variant::kStoppable:
      bpa::async_spawn_blocking(
          pool, [&runs, t = Tracked{}](std::stop_token) { return runs.fetch_add(1) + 1; },
          asio::bind_executor(io, handler));
      break;
  }
}
}  // namespace

// Fail each allocation in turn (the operation's block, the stop state, a new
// thread's record): either the call throws and nothing was spawned, or the
// operation completes once. (Asio allocates a cancellation slot's handler
// memory with aligned_alloc, out of this operator new's reach: the next test
// covers that point.)
TEST(AsioFaultAlloc, EveryAllocationPointOfInitiation) {
  int threw = 0, completed = 0;
  for (long n = 1; n <= 6; ++n) {
    for (Variant v : {Variant::kPlain, Variant::kCancellable, Variant::kStoppable}) {
      SCOPED_TRACE("fail allocation #" + std::to_string(n) + ", variant " +
                   std::to_string(static_cast<int>(v)));
      blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
      asio::io_context io;
      asio::cancellation_signal signal;
      std::atomic<int> runs{0};
      int calls = 0;
      std::string outcome;
      bool threw_now = false;
      t_fail_countdown = n;
      try {
        initiate(pool, io, signal, v, runs, calls, outcome);
      } catch (const std::bad_alloc&) {
        threw_now = true;
      }
      t_fail_countdown = 0;
      io.run();  // an initiated operation holds work until it completes
      if (threw_now) {
        ++threw;
        EXPECT_EQ(pool.metrics().spawned, 0u);
        EXPECT_EQ(calls, 0);
      } else {
        ++completed;
        EXPECT_EQ(calls, 1);
        // The pool's own allocation for its first thread may have been the
        // one that failed: then the task could not run (spawn failure).
        EXPECT_TRUE(outcome == "1" || (outcome == "spawn-failure" && runs.load() == 0)) << outcome;
      }
      ASSERT_TRUE(pool.shutdown(std::chrono::seconds(20)));
      const auto m = pool.metrics();
      EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
      EXPECT_LE(runs.load(), 1);
      EXPECT_EQ(g_live.load(), 0) << "a callable or a handler leaked";
    }
  }
  EXPECT_GT(threw, 0);
  EXPECT_GT(completed, 0);
  std::printf("[fault] async_spawn_blocking alloc points: %d threw bad_alloc, %d completed\n", threw,
              completed);
}

// A cancellation slot that cannot take the operation's cancellation handler
// (Asio's throws std::bad_alloc when it cannot allocate the handler's memory).
struct RefusingSlot {
  [[nodiscard]] bool is_connected() const noexcept { return true; }
  template <class CancellationHandler, class... Args>
  CancellationHandler& emplace(Args&&...) {
    throw std::bad_alloc();
  }
  void clear() noexcept {}
};

struct HandlerWithRefusingSlot {
  using cancellation_slot_type = RefusingSlot;
  [[nodiscard]] RefusingSlot get_cancellation_slot() const noexcept { return {}; }
  void operator()(std::exception_ptr, int) const { ++*calls; }
  int* calls;
  Tracked t;
};

TEST(AsioFaultAlloc, SlotThatCannotTakeTheCancellationHandlerLeavesNothingSpawned) {
  blockpool::Pool pool;
  std::atomic<int> runs{0};
  int calls = 0;
  EXPECT_THROW(bpa::async_spawn_blocking(pool, [&runs, t = Tracked{}] { return ++runs; },
                                               HandlerWithRefusingSlot{&calls, {}}),
               std::bad_alloc);
  EXPECT_EQ(pool.metrics().spawned, 0u);
  ASSERT_TRUE(pool.shutdown(std::chrono::seconds(20)));
  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(g_live.load(), 0) << "the callable or the handler leaked";
}
