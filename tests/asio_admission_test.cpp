// Awaitable admission: async_spawn_blocking on a full queue waits, without
// blocking any thread, until there is room; waiters are let in in the order
// they came; a waiter whose cancellation slot fires, or that still waits
// when shutdown begins, completes at once as cancelled. Lanes through Asio.
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "asio_flavour.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::BusyThreads;
using bptest::kLongWait;
using bptest::wait_until;

namespace {
std::string outcome(std::exception_ptr e) {
  if (!e) return "ok";
  try {
    std::rethrow_exception(e);
  } catch (const blockpool::JoinError& j) {
    return j.is_cancelled() ? "cancelled" : j.is_rejected() ? "rejected" : "spawn-failure";
  } catch (...) {
    return "other";
  }
}
}  // namespace

TEST(AsioAdmission, WaitsForRoomInOrderWithoutBlocking) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).max_queued(2).build();
  asio::io_context io(1);
  std::vector<int> order;
  std::vector<std::string> results(6);
  {
    BusyThreads busy(pool, 1);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 6; ++i) {
      bpa::async_spawn_blocking(pool, [i, &order] {
        order.push_back(i);  // one thread runs them all: no race
        return i;
      }, asio::bind_executor(io, [&results, i](std::exception_ptr e, int) { results[static_cast<std::size_t>(i)] = outcome(e); }));
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "initiation must not block";
    const auto m = pool.metrics();
    EXPECT_EQ(m.queue_depth, 2u);
    EXPECT_EQ(m.admission_waiting, 4u);
    EXPECT_EQ(m.rejected, 0u);
  }  // busy released: the queue drains and lets the waiters in, in order
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  for (const auto& r : results) EXPECT_EQ(r, "ok");
  EXPECT_EQ(pool.metrics().admission_waiting, 0u);
  // A plain spawn on a full queue is still rejected.
}

TEST(AsioAdmission, CancelledWaiterCompletesAtOnce) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).max_queued(1).build();
  BusyThreads busy(pool, 1);
  asio::io_context io(1);
  std::string first, waiter;
  std::atomic<bool> waiter_ran{false};
  bpa::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(io, [&](std::exception_ptr e, int) { first = outcome(e); }));
  asio::cancellation_signal signal;
  bpa::async_spawn_blocking(pool, [&] {
    waiter_ran = true;
    return 2;
  }, asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, int) { waiter = outcome(e); })));
  ASSERT_EQ(pool.metrics().admission_waiting, 1u);
  signal.emit(asio::cancellation_type::terminal);
  // The cancelled waiter completes while the queue is still full (the first
  // operation still waits behind the busy thread, so run one handler only).
  EXPECT_EQ(io.run_one_for(kLongWait), 1u);
  EXPECT_EQ(waiter, "cancelled");
  EXPECT_EQ(pool.metrics().admission_waiting, 0u);
  busy.release();
  io.restart();
  io.run();
  EXPECT_EQ(first, "ok");
  EXPECT_FALSE(waiter_ran.load());
  EXPECT_TRUE(pool.shutdown(kLongWait));
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled + m.rejected);
}

TEST(AsioAdmission, ShutdownCancelsEveryWaiter) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).max_queued(1).build();
  asio::io_context io(1);
  std::vector<std::string> results(4);
  {
    BusyThreads busy(pool, 1);
    for (int i = 0; i < 4; ++i)
      bpa::async_spawn_blocking(pool, [i] { return i; }, asio::bind_executor(io, [&results, i](std::exception_ptr e, int) {
                                  results[static_cast<std::size_t>(i)] = outcome(e);
                                }));
    ASSERT_EQ(pool.metrics().admission_waiting, 3u);
    pool.shutdown_background();
  }
  io.run();
  EXPECT_EQ(results[0], "cancelled");  // queued at shutdown
  for (int i = 1; i < 4; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], "cancelled") << i;
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

namespace {
asio::awaitable<int> producer(blockpool::Pool& pool, int n, std::atomic<int>& peak_waiting) {
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    // Backpressure: a full queue makes the coroutine wait, not fail.
    auto f = [i] { return i; };
    sum += co_await bpa::async_spawn_blocking(pool, std::move(f), asio::use_awaitable);
    const int w = static_cast<int>(pool.metrics().admission_waiting);
    int p = peak_waiting.load();
    while (w > p && !peak_waiting.compare_exchange_weak(p, w)) {
    }
  }
  co_return sum;
}
}  // namespace

// Many coroutines pushing through a small queue: every operation completes
// (none rejected), in bounded time.
TEST(AsioAdmission, CoroutinesUnderBackpressureAllComplete) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).max_queued(4).build();
  asio::io_context io(1);
  std::atomic<int> peak{0};
  int total = 0;
  for (int c = 0; c < 16; ++c)
    asio::co_spawn(io, producer(pool, 50, peak), [&](std::exception_ptr e, int sum) {
      EXPECT_FALSE(e);
      total += sum;
    });
  io.run();
  EXPECT_EQ(total, 16 * (49 * 50 / 2));
  EXPECT_EQ(pool.metrics().rejected, 0u);
  EXPECT_LE(pool.metrics().queue_depth, 4u);
}

TEST(AsioAdmission, LaneHandlesThroughAsio) {
  blockpool::Pool pool = blockpool::Builder{}.lane("dns", {.max_running = 1, .max_queued = 1}).build();
  blockpool::Handle dns = pool.lane("dns");
  asio::io_context io(1);
  std::atomic<int> running{0}, over{0};
  std::vector<std::string> results(5);
  for (int i = 0; i < 5; ++i)
    bpa::async_spawn_blocking(dns, [&] {
      if (++running > 1) ++over;
      std::this_thread::yield();
      --running;
      return 1;
    }, asio::bind_executor(io, [&results, i](std::exception_ptr e, int) { results[static_cast<std::size_t>(i)] = outcome(e); }));
  io.run();
  for (const auto& r : results) EXPECT_EQ(r, "ok");
  EXPECT_EQ(over.load(), 0);
  const auto m = pool.metrics();
  EXPECT_EQ(m.lanes[1].completed, 5u);
  EXPECT_EQ(m.lanes[1].rejected, 0u) << "Asio operations wait, they are not rejected";
}

// Many waiters cancelled one after another while the queue stays full: each
// completes at once as cancelled, none is left counted, none ever runs (the
// cancelled waiters are swept from the waiting list as they pile up).
TEST(AsioAdmission, ManyCancelledWaitersLeaveNothingBehind) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).max_queued(1).build();
  asio::io_context io(1);
  std::atomic<int> ran{0};
  int cancelled = 0;
  {
    BusyThreads busy(pool, 1);
    bpa::async_spawn_blocking(pool, [] { return 0; }, asio::bind_executor(io, [](std::exception_ptr, int) {}));
    for (int i = 0; i < 300; ++i) {
      asio::cancellation_signal signal;
      bpa::async_spawn_blocking(pool, [&] { return ++ran; },
                                asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                  cancelled += outcome(e) == "cancelled" ? 1 : 0;
                                })));
      signal.emit(asio::cancellation_type::terminal);
      ASSERT_EQ(io.run_one_for(kLongWait), 1u);
    }
    EXPECT_EQ(pool.metrics().admission_waiting, 0u);
  }
  io.run();
  EXPECT_EQ(cancelled, 300);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_TRUE(pool.shutdown(kLongWait));
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled + m.rejected);
}

// TaskOptions::reject_when_full: a server that sheds load gets a rejected
// JoinError at once (posted, as every completion), never a wait.
TEST(AsioAdmission, RejectWhenFullCompletesAtOnceAsRejected) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).max_queued(1).build();
  BusyThreads busy(pool, 1);
  asio::io_context io(1);
  std::string queued, shed;
  std::atomic<bool> shed_ran{false};
  const blockpool::TaskOptions shed_load{.name = "kv.get", .reject_when_full = true};
  bpa::async_spawn_blocking(pool, [] { return 1; }, shed_load,
                            asio::bind_executor(io, [&](std::exception_ptr e, int) { queued = outcome(e); }));
  bpa::async_spawn_blocking(pool, [&] {
    shed_ran = true;
    return 2;
  }, shed_load, asio::bind_executor(io, [&](std::exception_ptr e, int) { shed = outcome(e); }));
  EXPECT_TRUE(shed.empty()) << "never inline";
  EXPECT_EQ(io.run_one_for(kLongWait), 1u);
  EXPECT_EQ(shed, "rejected");
  EXPECT_EQ(pool.metrics().rejected, 1u);
  EXPECT_EQ(pool.metrics().admission_waiting, 0u);
  busy.release();
  io.run();
  EXPECT_EQ(queued, "ok");
  EXPECT_FALSE(shed_ran.load());
}
