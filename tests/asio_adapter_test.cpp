// Tests for <blockpool/asio.hpp>: tokens, the completion's executor, work
// tracking, the associated allocator and cancellation.
//
// Waits are bounded (futures with timeouts, io_context::run_for); nothing
// sleeps to synchronise. The only timing assertion is the generous bound in
// the awaitable_operators test.
#include "asio_flavour.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blockpool/blockpool.hpp"

namespace {

using namespace std::chrono_literals;
using blockpool::JoinError;

constexpr auto kBound = 20s;  // generous upper bound for any wait

// A pool that remembers its threads' ids.
struct TrackedPool {
  explicit TrackedPool(std::size_t max_threads = 8)
      : pool(blockpool::Builder{}
                 .max_threads(max_threads)
                 .on_thread_start([this] {
                   std::lock_guard lock(mu);
                   ids.insert(std::this_thread::get_id());
                 })
                 .build()) {}
  bool is_pool_thread(std::thread::id id) {
    std::lock_guard lock(mu);
    return ids.count(id) != 0;
  }
  std::mutex mu;
  std::set<std::thread::id> ids;
  blockpool::Pool pool;  // last: destroyed first, while mu/ids are alive
};

// A one-shot gate a task can block on (bounded).
struct Gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
  bool wait() const { return f.wait_for(kBound) == std::future_status::ready; }
};

// Runs `io` until `done` or the bound; returns whether done.
template <class Pred>
bool run_until(asio::io_context& io, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(100ms);
  }
  return done();
}

std::string join_error_text(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const JoinError& je) {
    return je.is_cancelled() ? "cancelled" : "spawn-failure";
  } catch (const std::exception& ex) {
    return std::string("other: ") + ex.what();
  }
}

// ---- Plain callbacks ------------------------------------------------------

TEST(AsioAdapter, CallbackValueOnIoThreadNeverInline) {
  TrackedPool tp;
  asio::io_context io;
  bool called = false;
  int value = 0;
  std::thread::id task_thread, completion_thread;
  bpa::async_spawn_blocking(
      tp.pool,
      [&] {
        task_thread = std::this_thread::get_id();
        return 42;
      },
      asio::bind_executor(io, [&](std::exception_ptr e, int v) {
        EXPECT_FALSE(e);
        completion_thread = std::this_thread::get_id();
        value = v;
        called = true;
      }));
  EXPECT_FALSE(called);  // never inline in the initiating call
  io.run();              // returns only after the completion: work was held
  ASSERT_TRUE(called);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(completion_thread, std::this_thread::get_id());
  EXPECT_TRUE(tp.is_pool_thread(task_thread));
  EXPECT_FALSE(tp.is_pool_thread(completion_thread));
}

TEST(AsioAdapter, WorkIsHeldWhileTheTaskRuns) {
  blockpool::Pool pool;
  asio::io_context io;
  Gate gate;
  bool called = false;
  bpa::async_spawn_blocking(
      pool, [&] { return gate.wait(); },
      asio::bind_executor(io, [&](std::exception_ptr e, bool opened) {
        EXPECT_FALSE(e);
        EXPECT_TRUE(opened);
        called = true;
      }));
  // With no outstanding work poll() would stop the context; the operation
  // holds work, so it stays live although nothing else is queued.
  io.poll();
  EXPECT_FALSE(io.stopped());
  EXPECT_FALSE(called);
  gate.open();
  io.run();  // no other work: returns only once the completion has run
  EXPECT_TRUE(called);
  EXPECT_TRUE(io.stopped());
}

TEST(AsioAdapter, ExceptionDeliveredUnchanged) {
  blockpool::Pool pool;
  asio::io_context io;
  std::exception_ptr got;
  int value = -1;
  bpa::async_spawn_blocking(
      pool, []() -> int { throw std::out_of_range("boom"); },
      asio::bind_executor(io, [&](std::exception_ptr e, int v) {
        got = e;
        value = v;
      }));
  io.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(value, 0);  // R{} on failure
  EXPECT_THROW(std::rethrow_exception(got), std::out_of_range);
}

TEST(AsioAdapter, VoidTaskHasExceptionOnlySignature) {
  blockpool::Pool pool;
  asio::io_context io;
  std::atomic<bool> ran{false};
  bool called = false;
  bpa::async_spawn_blocking(pool, [&] { ran = true; },
                                  asio::bind_executor(io, [&](std::exception_ptr e) {
                                    EXPECT_FALSE(e);
                                    called = true;
                                  }));
  io.run();
  EXPECT_TRUE(called);
  EXPECT_TRUE(ran);
}

TEST(AsioAdapter, StrandExecutorRunsTheCompletion) {
  TrackedPool tp;
  asio::io_context io;
  auto strand = asio::make_strand(io);
  constexpr int kOps = 32;
  std::atomic<int> done{0};
  std::atomic<int> on_strand{0};
  std::atomic<int> on_pool{0};
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(
        tp.pool, [i] { return i; },
        asio::bind_executor(strand, [&, i](std::exception_ptr e, int v) {
          EXPECT_FALSE(e);
          EXPECT_EQ(v, i);
          if (strand.running_in_this_thread()) ++on_strand;
          if (tp.is_pool_thread(std::this_thread::get_id())) ++on_pool;
          ++done;
        }));
  }
  std::thread second([&] { io.run(); });
  io.run();
  second.join();
  EXPECT_EQ(done.load(), kOps);
  EXPECT_EQ(on_strand.load(), kOps);
  EXPECT_EQ(on_pool.load(), 0);
}

TEST(AsioAdapter, NoAssociatedExecutorMeansSystemExecutor) {
  TrackedPool tp;
  std::promise<std::thread::id> where;
  auto fut = where.get_future();
  bpa::async_spawn_blocking(tp.pool, [] { return 1; }, [&](std::exception_ptr, int) {
    where.set_value(std::this_thread::get_id());
  });
  ASSERT_EQ(fut.wait_for(kBound), std::future_status::ready);
  const auto id = fut.get();
  EXPECT_NE(id, std::this_thread::get_id());  // not inline in the initiating call
  EXPECT_FALSE(tp.is_pool_thread(id));  // an Asio system_context thread
}

TEST(AsioAdapter, AlreadyEndedTaskStillCompletesThroughTheExecutor) {
  // A Handle without a pool cancels every spawn at once: the task has ended
  // before the continuation is set, and the completion must still be posted.
  blockpool::Handle empty;
  asio::io_context io;
  bool called = false;
  std::string what;
  bpa::async_spawn_blocking(empty, [] { return 1; },
                                  asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                    what = join_error_text(e);
                                    called = true;
                                  }));
  EXPECT_FALSE(called);
  io.run();
  EXPECT_TRUE(called);
  EXPECT_EQ(what, "cancelled");
}

// ---- Allocator ------------------------------------------------------------

struct AllocCounts {
  std::atomic<int> allocations{0};
  std::atomic<int> deallocations{0};
};

template <class T>
struct CountingAllocator {
  using value_type = T;
  AllocCounts* counts;
  explicit CountingAllocator(AllocCounts* c) noexcept : counts(c) {}
  template <class U>
  CountingAllocator(const CountingAllocator<U>& o) noexcept : counts(o.counts) {}
  T* allocate(std::size_t n) {
    ++counts->allocations;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ++counts->deallocations;
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const CountingAllocator<U>& o) const noexcept {
    return counts == o.counts;
  }
};

TEST(AsioAdapter, AssociatedAllocatorIsUsed) {
  blockpool::Pool pool;
  asio::io_context io;
  auto strand = asio::make_strand(io);
  AllocCounts counts;
  bool called = false;
  bpa::async_spawn_blocking(
      pool, [] { return std::string(100, 'x'); },
      asio::bind_executor(strand, asio::bind_allocator(CountingAllocator<void>(&counts),
                                                       [&](std::exception_ptr e, std::string s) {
                                                         EXPECT_FALSE(e);
                                                         EXPECT_EQ(s.size(), 100u);
                                                         called = true;
                                                       })));
  EXPECT_GE(counts.allocations.load(), 1);  // the operation state
  io.run();
  EXPECT_TRUE(called);
  // On a strand, the state and the posted completion were both allocated with it.
  EXPECT_GE(counts.allocations.load(), 2);
  EXPECT_EQ(counts.allocations.load(), counts.deallocations.load());
}

// On an io_context run by one thread, completions on its own executor are
// batched (one drain posted per batch, not per operation): the allocator
// serves the operation's one block, which is both the pool's task and the
// operation state. On any other io_context each completion is posted on its
// own, and the allocator serves that post too.
TEST(AsioAdapter, AssociatedAllocatorOnIoContextServesTheState) {
  for (const bool one_thread : {true, false}) {
    blockpool::Pool pool;
    asio::io_context io(one_thread ? 1 : BP_ASIO_HINT_DEFAULT);
    AllocCounts counts;
    bool called = false;
    Gate gate;  // the task ends only after the first count: its completion allocates too
    bpa::async_spawn_blocking(
        pool,
        [&gate] {
          EXPECT_TRUE(gate.wait());
          return std::string(100, 'x');
        },
        asio::bind_executor(io, asio::bind_allocator(CountingAllocator<void>(&counts),
                                                     [&](std::exception_ptr e, std::string s) {
                                                       EXPECT_FALSE(e);
                                                       EXPECT_EQ(s.size(), 100u);
                                                       called = true;
                                                     })));
    EXPECT_EQ(counts.allocations.load(), 1);
    gate.open();
    io.run();
    EXPECT_TRUE(called);
    EXPECT_EQ(counts.allocations.load(), one_thread ? 1 : 2);
    EXPECT_EQ(counts.deallocations.load(), counts.allocations.load());
  }
}

// ---- Futures, deferred, as_tuple -----------------------------------------

TEST(AsioAdapter, UseFutureValueAndException) {
  blockpool::Pool pool;
  std::future<int> ok = bpa::async_spawn_blocking(pool, [] { return 7; }, asio::use_future);
  ASSERT_EQ(ok.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(ok.get(), 7);

  std::future<void> bad = bpa::async_spawn_blocking(
      pool, [] { throw std::runtime_error("bad"); }, asio::use_future);
  ASSERT_EQ(bad.wait_for(kBound), std::future_status::ready);
  EXPECT_THROW(bad.get(), std::runtime_error);
}

TEST(AsioAdapter, DeferredSpawnsOnlyWhenLaunched) {
  blockpool::Pool pool;
  asio::io_context io;
  std::atomic<int> runs{0};
  auto op = bpa::async_spawn_blocking(
      pool,
      [&] {
        ++runs;
        return 5;
      },
      asio::experimental::deferred);
  EXPECT_EQ(pool.metrics().spawned, 0u);
  int value = 0;
  std::move(op)(asio::bind_executor(io, [&](std::exception_ptr e, int v) {
    EXPECT_FALSE(e);
    value = v;
  }));
  io.run();
  EXPECT_EQ(value, 5);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(pool.metrics().spawned, 1u);
}

TEST(AsioAdapter, DeferredOutlivesThePoolAndCompletesCancelled) {
  asio::io_context io;
  std::atomic<bool> ran{false};
  auto make = [&] {
    blockpool::Pool pool;
    return bpa::async_spawn_blocking(pool, [&] { ran = true; },
                                           asio::experimental::deferred);
  };
  auto op = make();  // the pool is gone now
  std::string what;
  std::move(op)(asio::bind_executor(io, [&](std::exception_ptr e) { what = join_error_text(e); }));
  io.run();
  EXPECT_EQ(what, "cancelled");
  EXPECT_FALSE(ran);
}

// ---- Coroutines (use_awaitable) -------------------------------------------

struct NoDefault {
  explicit NoDefault(int v) : value(v) {}
  int value;
};

TEST(AsioAdapter, AwaitableResumesOnItsExecutorWithEveryResultKind) {
  TrackedPool tp;
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        int v = co_await bpa::async_spawn_blocking(tp.pool, [] { return 3; },
                                                         asio::use_awaitable);
        EXPECT_EQ(v, 3);
        EXPECT_EQ(std::this_thread::get_id(), io_thread);

        std::unique_ptr<int> p = co_await bpa::async_spawn_blocking(
            tp.pool, [] { return std::make_unique<int>(9); }, asio::use_awaitable);
        EXPECT_TRUE(p && *p == 9);

        std::optional<NoDefault> nd = co_await bpa::async_spawn_blocking(
            tp.pool, [] { return NoDefault(11); }, asio::use_awaitable);
        EXPECT_TRUE(nd.has_value() && nd->value == 11);

        co_await bpa::async_spawn_blocking(tp.pool, [] {}, asio::use_awaitable);
        EXPECT_EQ(std::this_thread::get_id(), io_thread);

        bool caught = false;
        try {
          co_await bpa::async_spawn_blocking(
              tp.pool, []() -> int { throw std::logic_error("task"); }, asio::use_awaitable);
        } catch (const std::logic_error&) {
          caught = true;
        }
        EXPECT_TRUE(caught);
        EXPECT_EQ(std::this_thread::get_id(), io_thread);

        auto [e, s] = co_await bpa::async_spawn_blocking(
            tp.pool, []() -> std::string { throw std::runtime_error("tuple"); },
            asio::experimental::as_tuple(asio::use_awaitable));
        EXPECT_TRUE(e);
        EXPECT_TRUE(s.empty());

        auto deferred_op = bpa::async_spawn_blocking(tp.pool, [] { return 4; },
                                                           asio::experimental::deferred);
        int d = co_await std::move(deferred_op)(asio::use_awaitable);
        EXPECT_EQ(d, 4);
        finished = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  EXPECT_TRUE(finished);
}

// ---- Cancellation ---------------------------------------------------------

TEST(AsioAdapter, CancelBeforeStartRemovesTheTaskAndCompletesAtOnce) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io;
  Gate gate;
  std::promise<void> blocker_started;
  auto blocker = pool.spawn_blocking([&] {
    blocker_started.set_value();
    return gate.wait();
  });
  ASSERT_EQ(blocker_started.get_future().wait_for(kBound), std::future_status::ready);

  asio::cancellation_signal signal;
  std::atomic<bool> ran{false};
  bool called = false;
  std::string what;
  bpa::async_spawn_blocking(
      pool, [&] { ran = true; },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e) {
                                     what = join_error_text(e);
                                     called = true;
                                   })));
  EXPECT_EQ(pool.metrics().queue_depth, 1u);
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_FALSE(called);                        // posted, not run inside emit()
  EXPECT_EQ(pool.metrics().queue_depth, 0u);   // left the queue at once
  EXPECT_EQ(pool.metrics().cancelled, 1u);
  // Completes while the only pool thread is still blocked.
  ASSERT_TRUE(run_until(io, [&] { return called; }));
  EXPECT_EQ(what, "cancelled");
  EXPECT_FALSE(blocker.is_finished());
  gate.open();
  EXPECT_TRUE(blocker.get());
  EXPECT_FALSE(ran);
}

TEST(AsioAdapter, PartialCancellationAlsoAborts) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io;
  Gate gate;
  auto blocker = pool.spawn_blocking([&] { return gate.wait(); });
  asio::cancellation_signal signal;
  std::string what;
  bpa::async_spawn_blocking(
      pool, [] { return 1; },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                     what = join_error_text(e);
                                   })));
  signal.emit(asio::cancellation_type::partial);
  ASSERT_TRUE(run_until(io, [&] { return !what.empty(); }));
  EXPECT_EQ(what, "cancelled");
  gate.open();
  EXPECT_TRUE(blocker.get());  // the task is done with the gate before it goes
}

TEST(AsioAdapter, TotalCancellationRemovesAQueuedTask) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io;
  Gate gate;
  auto blocker = pool.spawn_blocking([&] { return gate.wait(); });
  asio::cancellation_signal signal;
  std::atomic<bool> ran{false};
  std::string what;
  bpa::async_spawn_blocking(
      pool, [&] { ran = true; return 8; },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                     what = join_error_text(e);
                                   })));
  signal.emit(asio::cancellation_type::total);
  EXPECT_EQ(pool.metrics().cancelled, 1u);
  ASSERT_TRUE(run_until(io, [&] { return !what.empty(); }));
  EXPECT_EQ(what, "cancelled");
  gate.open();
  EXPECT_TRUE(blocker.get());
  EXPECT_FALSE(ran.load());
}

TEST(AsioAdapter, TotalCancellationLeavesARunningTaskAlone) {
  blockpool::Pool pool;
  asio::io_context io;
  Gate gate;
  std::promise<void> started;
  asio::cancellation_signal signal;
  bool called = false;
  bool saw_stop = true;
  bpa::async_spawn_blocking(
      pool,
      [&](std::stop_token st) {
        started.set_value();
        gate.wait();
        return st.stop_requested();
      },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e, bool s) {
                                     EXPECT_FALSE(e);  // it ran: its own result
                                     saw_stop = s;
                                     called = true;
                                   })));
  ASSERT_EQ(started.get_future().wait_for(kBound), std::future_status::ready);
  signal.emit(asio::cancellation_type::total);
  gate.open();
  io.run();
  EXPECT_TRUE(called);
  EXPECT_FALSE(saw_stop);  // total cancellation must not have an observable effect
  EXPECT_EQ(pool.metrics().cancelled, 0u);
}

TEST(AsioAdapter, CancelAfterStartTriggersTheStopToken) {
  blockpool::Pool pool;
  asio::io_context io;
  std::promise<void> started;
  asio::cancellation_signal signal;
  bool called = false;
  bool saw_stop = false;
  bpa::async_spawn_blocking(
      pool,
      [&](std::stop_token st) {
        started.set_value();
        const auto deadline = std::chrono::steady_clock::now() + kBound;
        while (!st.stop_requested() && std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
        return st.stop_requested();
      },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e, bool s) {
                                     EXPECT_FALSE(e);  // it ran: its own result
                                     saw_stop = s;
                                     called = true;
                                   })));
  ASSERT_EQ(started.get_future().wait_for(kBound), std::future_status::ready);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(called);
  EXPECT_TRUE(saw_stop);
}

TEST(AsioAdapter, AwaitableOrOperatorStopsTheTaskWhenTheTimerWins) {
  using namespace asio::experimental::awaitable_operators;
  blockpool::Pool pool;
  asio::io_context io;
  std::atomic<bool> observed_stop{false};
  bool timer_won = false;
  std::chrono::steady_clock::duration elapsed{};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io, 50ms);
        const auto t0 = std::chrono::steady_clock::now();
        auto result = co_await (
            bpa::async_spawn_blocking(
                pool,
                [&](std::stop_token st) {
                  const auto end = std::chrono::steady_clock::now() + 2s;
                  while (std::chrono::steady_clock::now() < end) {
                    if (st.stop_requested()) {
                      observed_stop = true;
                      return 1;
                    }
                    std::this_thread::yield();
                  }
                  return 2;
                },
                asio::use_awaitable) ||
            timer.async_wait(asio::use_awaitable));
        elapsed = std::chrono::steady_clock::now() - t0;
        timer_won = result.index() == 1;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  EXPECT_TRUE(timer_won);
  EXPECT_TRUE(observed_stop.load());
  EXPECT_LT(elapsed, 1500ms);
}

TEST(AsioAdapter, AwaitableOrOperatorBeforeStartNeverRunsTheTask) {
  using namespace asio::experimental::awaitable_operators;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io;
  Gate gate;
  auto blocker = pool.spawn_blocking([&] { return gate.wait(); });
  std::atomic<bool> ran{false};
  bool timer_won = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io, 10ms);
        auto result = co_await (
            bpa::async_spawn_blocking(pool, [&] { ran = true; }, asio::use_awaitable) ||
            timer.async_wait(asio::use_awaitable));
        timer_won = result.index() == 1;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();  // returns with the pool's only thread still blocked
  EXPECT_TRUE(timer_won);
  EXPECT_FALSE(blocker.is_finished());
  gate.open();
  EXPECT_TRUE(blocker.get());
  EXPECT_FALSE(ran);
  EXPECT_EQ(pool.metrics().cancelled, 1u);
}

// ---- Batched completions (handlers on an io_context's own executor) --------

// Waits (bounded) until every task has ended and the pool's only thread is
// parked: then every operation has been handed to its io_context.
bool all_handed_over(blockpool::Pool& pool, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto m = pool.metrics();
    if (m.completed + m.failed == n && m.idle_threads == 1) return true;
    std::this_thread::sleep_for(200us);
  }
  return false;
}

TEST(AsioAdapter, BatchedCompletionsRunOnceEachInTheOrderTasksEnded) {
  constexpr int kOps = 64;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();  // tasks end in order
  asio::io_context io(1);  // one thread runs it: completions are batched
  std::vector<int> order;
  std::thread::id loop_thread;
  bool off_loop = false;
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(pool, [i] { return i; },
                                    asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                                      EXPECT_FALSE(e);
                                      off_loop |= std::this_thread::get_id() != loop_thread;
                                      order.push_back(v);
                                    }));
  }
  // The loop is not running: every result waits in the batch list.
  ASSERT_TRUE(all_handed_over(pool, kOps));
  EXPECT_TRUE(order.empty());
  loop_thread = std::this_thread::get_id();
  io.run();
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kOps));
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_FALSE(off_loop);
}

// A handler that spawns many operations on its own loop: past a few hundred
// waiting completions the thread that ends a task moves what the completion
// needs into a small node and frees the operation's block (operation.ipp,
// OpTask::compact). Values, move-only values, void results and exceptions
// all arrive, once each, in the order the tasks ended.
TEST(AsioAdapter, ALoopFarBehindStillGetsEveryCompletionOnceInOrder) {
  constexpr int kOps = 1200;  // well past the compaction threshold
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();  // tasks end in order
  asio::io_context io(1);  // one thread runs it: completions are batched
  std::vector<std::string> got;
  bool handed_over = false;
  asio::post(io, [&] {
    for (int i = 0; i < kOps; ++i) {
      switch (i % 4) {
        case 0:
          bpa::async_spawn_blocking(pool, [i] { return i; },
                                          asio::bind_executor(io, [&got](std::exception_ptr e, int v) {
                                            got.push_back(e ? "error" : std::to_string(v));
                                          }));
          break;
        case 1:
          bpa::async_spawn_blocking(
              pool, [i] { return std::make_unique<int>(i); },
              asio::bind_executor(io, [&got](std::exception_ptr e, std::unique_ptr<int> v) {
                got.push_back(e || !v ? "error" : "p" + std::to_string(*v));
              }));
          break;
        case 2:
          bpa::async_spawn_blocking(pool, [] {},
                                          asio::bind_executor(io, [&got, i](std::exception_ptr e) {
                                            got.push_back(e ? "error" : "v" + std::to_string(i));
                                          }));
          break;
        default:
          bpa::async_spawn_blocking(
              pool, [i]() -> int { throw std::runtime_error("t" + std::to_string(i)); },
              asio::bind_executor(io, [&got](std::exception_ptr e, int) {
                try {
                  if (e) std::rethrow_exception(e);
                  got.push_back("no error");
                } catch (const std::runtime_error& ex) {
                  got.push_back(ex.what());
                }
              }));
          break;
      }
    }
    // Every task ends while this handler still holds the loop.
    handed_over = all_handed_over(pool, kOps);
    EXPECT_TRUE(got.empty());
  });
  io.run();
  ASSERT_TRUE(handed_over);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kOps));
  for (int i = 0; i < kOps; ++i) {
    const std::string want = i % 4 == 0   ? std::to_string(i)
                             : i % 4 == 1 ? "p" + std::to_string(i)
                             : i % 4 == 2 ? "v" + std::to_string(i)
                                          : "t" + std::to_string(i);
    ASSERT_EQ(got[static_cast<std::size_t>(i)], want) << "completion " << i;
  }
}

TEST(AsioAdapter, ContextDestroyedWithALongBatchPendingDestroysEveryHandlerOnce) {
  constexpr int kOps = 1000;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  auto io = std::make_unique<asio::io_context>(1);  // batched
  auto token = std::make_shared<int>(0);
  int ran = 0;
  bool handed_over = false;
  asio::post(*io, [&] {  // spawned on the loop, as in the test above
    for (int i = 0; i < kOps; ++i) {
      bpa::async_spawn_blocking(
          pool, [i] { return i; },
          asio::bind_executor(*io, [&ran, token](std::exception_ptr, int) { ++ran; }));
    }
    handed_over = all_handed_over(pool, kOps);
  });
  EXPECT_EQ(io->run_one(), 1u);  // the spawning handler only: the batch stays pending
  ASSERT_TRUE(handed_over);
  EXPECT_EQ(token.use_count(), 1 + kOps);
  io.reset();
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(token.use_count(), 1) << "handlers of a destroyed context must be destroyed, once";
}

TEST(AsioAdapter, HandlerThrowingMidBatchLosesNoOtherCompletion) {
  constexpr int kOps = 10;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io(1);  // one thread runs it: completions are batched
  std::vector<int> order;
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(pool, [i] { return i; },
                                    asio::bind_executor(io, [&](std::exception_ptr, int v) {
                                      order.push_back(v);
                                      if (v == 3) throw std::runtime_error("handler 3");
                                    }));
  }
  ASSERT_TRUE(all_handed_over(pool, kOps));
  EXPECT_THROW(io.run(), std::runtime_error);  // propagates, as from any handler
  io.restart();
  io.run();  // the rest of the batch
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kOps));
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST(AsioAdapter, ContextDestroyedWithABatchPendingDestroysTheHandlers) {
  constexpr int kOps = 8;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  auto io = std::make_unique<asio::io_context>(1);  // batched
  auto token = std::make_shared<int>(0);
  int ran = 0;
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(
        pool, [i] { return i; },
        asio::bind_executor(*io, [&ran, token](std::exception_ptr, int) { ++ran; }));
  }
  ASSERT_TRUE(all_handed_over(pool, kOps));
  EXPECT_EQ(token.use_count(), 1 + kOps);
  io.reset();  // never run: the pending drain is destroyed, and with it every operation
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(token.use_count(), 1) << "handlers of a destroyed context must be destroyed, once";
}

TEST(AsioAdapter, TwoIoContextsEachGetTheirOwnCompletions) {
  constexpr int kOps = 200;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  asio::io_context io1, io2;
  auto guard1 = asio::make_work_guard(io1);
  auto guard2 = asio::make_work_guard(io2);
  std::thread th1([&] { io1.run(); });
  std::thread th2([&] { io2.run(); });
  // Learn each loop's thread id through the loop itself.
  std::promise<std::thread::id> p1, p2;
  asio::post(io1, [&] { p1.set_value(std::this_thread::get_id()); });
  asio::post(io2, [&] { p2.set_value(std::this_thread::get_id()); });
  const auto id1 = p1.get_future().get(), id2 = p2.get_future().get();
  std::atomic<int> wrong{0}, done1{0}, done2{0};
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(pool, [] { return 1; },
                                    asio::bind_executor(io1, [&](std::exception_ptr, int) {
                                      if (std::this_thread::get_id() != id1) ++wrong;
                                      ++done1;
                                    }));
    bpa::async_spawn_blocking(pool, [] { return 2; },
                                    asio::bind_executor(io2, [&](std::exception_ptr, int) {
                                      if (std::this_thread::get_id() != id2) ++wrong;
                                      ++done2;
                                    }));
  }
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while ((done1 < kOps || done2 < kOps) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  guard1.reset();
  guard2.reset();
  th1.join();
  th2.join();
  EXPECT_EQ(done1.load(), kOps);
  EXPECT_EQ(done2.load(), kOps);
  EXPECT_EQ(wrong.load(), 0);
}

// ---- Initiation that throws -------------------------------------------------
// Copying the callable or the handler into the operation can throw. Then the
// initiation throws, nothing is spawned, nothing leaks, and the io_context
// holds no work for the operation (run() returns).

struct CopyThrows {
  explicit CopyThrows(std::shared_ptr<int> t) : token(std::move(t)) {}
  CopyThrows(const CopyThrows& other) : token(other.token) {
    if (*token != 0) throw std::runtime_error("copy refused");
  }
  std::shared_ptr<int> token;
};

void expect_nothing_spawned(blockpool::Pool& pool, asio::io_context& io, const bool& ran,
                            const bool& called) {
  EXPECT_EQ(pool.metrics().spawned, 0u);
  io.run_for(kBound);
  EXPECT_TRUE(io.stopped()) << "the failed operation left work on the io_context";
  EXPECT_FALSE(ran);
  EXPECT_FALSE(called);
}

TEST(AsioAdapter, CallableWhoseCopyThrowsLeavesNothingSpawned) {
  blockpool::Pool pool;
  asio::io_context io;
  auto token = std::make_shared<int>(1);  // non-zero: copies throw
  bool ran = false, called = false;
  const auto task = [&ran, c = CopyThrows(token)] {
    ran = true;
    return 1;
  };
  EXPECT_THROW(bpa::async_spawn_blocking(
                   pool, task,  // an lvalue: copied into the operation
                   asio::bind_executor(io, [&called](std::exception_ptr, int) { called = true; })),
               std::runtime_error);
  expect_nothing_spawned(pool, io, ran, called);
  EXPECT_EQ(token.use_count(), 2) << "only `task` still holds it";
}

TEST(AsioAdapter, HandlerWhoseCopyThrowsLeavesNothingSpawned) {
  blockpool::Pool pool;
  asio::io_context io;
  auto token = std::make_shared<int>(0);  // zero while the handler is built
  bool ran = false, called = false;
  auto handler = asio::bind_executor(io, [&called, c = CopyThrows(token)](std::exception_ptr, int) {
    called = true;
  });
  *token = 1;  // from now on copying the handler throws
  auto callable_token = std::make_shared<int>(0);
  EXPECT_THROW(bpa::async_spawn_blocking(
                   pool,
                   [&ran, callable_token] {
                     ran = true;
                     return 1;
                   },
                   handler),  // an lvalue: copied into the operation
               std::runtime_error);
  expect_nothing_spawned(pool, io, ran, called);
  EXPECT_EQ(callable_token.use_count(), 1) << "the callable moved into the operation was destroyed";
  EXPECT_EQ(token.use_count(), 2) << "only `handler` still holds it";
}

// ---- Operations the pool ends itself ----------------------------------------
// A plain callback cannot cancel its operation, so only the pool ends its
// task: the worker that runs it, shutdown cancelling it in the queue, a spawn
// after shutdown, or a thread the OS refused. Each must complete the
// operation exactly once, on its executor.

TEST(AsioAdapter, ShutdownCompletesQueuedOperationsCancelledAndTheRunningOneWithItsValue) {
  constexpr int kQueued = 6;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io;
  Gate started, release;
  std::vector<int> calls(kQueued + 3, 0);
  std::vector<std::string> outcome(kQueued + 3);
  auto record = [&](int i) {
    return asio::bind_executor(io, [&, i](std::exception_ptr e, int v) {
      ++calls[static_cast<std::size_t>(i)];
      outcome[static_cast<std::size_t>(i)] = e ? join_error_text(e) : std::to_string(v);
    });
  };
  bpa::async_spawn_blocking(
      pool,
      [&] {
        started.open();
        return release.wait() ? 100 : -1;
      },
      record(0));
  ASSERT_TRUE(started.wait());  // the only thread is busy: the rest stay queued
  for (int i = 1; i <= kQueued; ++i) bpa::async_spawn_blocking(pool, [i] { return i; }, record(i));
  // A stoppable callable takes the two-reference path; it is cancelled the same way.
  bpa::async_spawn_blocking(pool, [](std::stop_token) { return 7; }, record(kQueued + 1));
  pool.shutdown_background();  // cancels the queued operations now
  // Spawned after shutdown began: cancelled at once, still posted.
  bpa::async_spawn_blocking(pool, [] { return 8; }, record(kQueued + 2));
  release.open();
  io.run();  // returns once every operation has completed (each holds work)
  EXPECT_EQ(outcome[0], "100");
  for (int i = 1; i < kQueued + 3; ++i) EXPECT_EQ(outcome[static_cast<std::size_t>(i)], "cancelled") << i;
  for (int i = 0; i < kQueued + 3; ++i) EXPECT_EQ(calls[static_cast<std::size_t>(i)], 1) << i;
  EXPECT_TRUE(pool.shutdown(kBound));
}

TEST(AsioAdapter, RefusedThreadCompletesTheOperationWithASpawnFailure) {
  blockpool::Pool pool =
      blockpool::Builder{}.thread_creation_fault_for_testing([](std::uint64_t) { return EAGAIN; }).build();
  asio::io_context io;
  std::string value_task, void_task;
  bool ran = false;
  bpa::async_spawn_blocking(pool,
                                  [&] {
                                    ran = true;
                                    return 1;
                                  },
                                  asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                    value_task = e ? join_error_text(e) : "value";
                                  }));
  bpa::async_spawn_blocking(pool, [&] { ran = true; },
                                  asio::bind_executor(io, [&](std::exception_ptr e) {
                                    void_task = e ? join_error_text(e) : "value";
                                  }));
  io.run();
  EXPECT_EQ(value_task, "spawn-failure");
  EXPECT_EQ(void_task, "spawn-failure");
  EXPECT_FALSE(ran);
}

TEST(AsioAdapter, OperationsRacingShutdownFromManyThreadsEachCompleteOnce) {
  constexpr int kThreads = 4, kPer = 500, kTotal = kThreads * kPer;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread loop([&] { io.run(); });
  std::vector<std::atomic<int>> calls(kTotal);
  std::atomic<int> values{0}, cancels{0}, done{0};
  std::promise<void> all_done;
  std::atomic<int> spawned{0};
  std::promise<void> halfway;
  std::vector<std::thread> spawners;
  for (int t = 0; t < kThreads; ++t) {
    spawners.emplace_back([&, t] {
      for (int k = 0; k < kPer; ++k) {
        const int id = t * kPer + k;
        bpa::async_spawn_blocking(pool, [id] { return id; },
                                        asio::bind_executor(io, [&, id](std::exception_ptr e, int v) {
                                          calls[static_cast<std::size_t>(id)]++;
                                          if (e) {
                                            ++cancels;
                                          } else if (v == id) {
                                            ++values;
                                          }
                                          if (++done == kTotal) all_done.set_value();
                                        }));
        if (++spawned == kTotal / 2) halfway.set_value();
      }
    });
  }
  halfway.get_future().wait();
  pool.shutdown_background();  // races the remaining spawns and the running tasks
  for (auto& th : spawners) th.join();
  const bool finished = all_done.get_future().wait_for(kBound) == std::future_status::ready;
  guard.reset();
  loop.join();
  ASSERT_TRUE(finished) << done.load() << " of " << kTotal << " completed";
  EXPECT_EQ(values.load() + cancels.load(), kTotal);
  for (int i = 0; i < kTotal; ++i) EXPECT_EQ(calls[static_cast<std::size_t>(i)].load(), 1) << i;
  EXPECT_TRUE(pool.shutdown(kBound));
}

}  // namespace
