// The Asio layer when users destroy, stop and share things the way real
// programs do (issue 16, points 1 to 3):
//   * an io_context that stops (on a signal) and is destroyed while
//     operations are queued, running, or delivered but not yet run: their
//     handlers (and coroutine frames) die with it, unrun, and the tasks' ends
//     touch nothing of it (ASan in CI reports any use after free);
//   * strands: a handler bound to a strand, directly or through an
//     any_io_executor, runs on it, never concurrently with its other
//     handlers; a coroutine co_spawn'ed on a strand is back on it; an
//     any_io_executor wrapping system_executor works;
//   * batching cannot be observed: on an io_context run by two threads, a
//     handler that blocks does not hold back another operation's handler.
#include <signal.h>
#include <unistd.h>

#include "asio_flavour.hpp"
#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::BusyThreads;
using bptest::Gate;
using bptest::kLongWait;
using bptest::wait_until;

namespace {

// Counts live copies of a handler (or of anything holding it): the count
// goes back to one once every copy the library held has been destroyed.
using Token = std::shared_ptr<int>;

// A handler that records it ran.
struct Recorder {
  Token token;
  std::atomic<int>* ran;
  void operator()(std::exception_ptr, int) const { ran->fetch_add(1); }
  void operator()(std::exception_ptr) const { ran->fetch_add(1); }
};

}  // namespace

// ---- The io_context goes first ---------------------------------------------

// The exit of almost every Asio server: Pool first, io_context second; a
// signal handler stops the loop, main's scope ends while one task runs and
// another is queued. The handlers are destroyed with the io_context, unrun;
// the tasks end later and touch nothing of it.
TEST(AsioLifetime, SignalStopsTheLoopAndTheContextDiesWithTasksPending) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate release;
  std::latch running{1};
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  std::atomic<bool> queued_task_ran{false};
  {
    asio::io_context io;
    asio::signal_set signals(io, SIGUSR2);
    signals.async_wait([&](const std::error_code& ec, int) {
      if (!ec) io.stop();
    });
    bpa::async_spawn_blocking(pool,
                                    [&] {
                                      running.count_down();
                                      release.wait();
                                      return 1;
                                    },
                                    asio::bind_executor(io, Recorder{token, &ran}));
    bpa::async_spawn_blocking(pool, [&] {
      queued_task_ran = true;
      return 2;
    }, asio::bind_executor(io, Recorder{token, &ran}));
    running.wait();
    // A process-directed signal, as from `kill` or Ctrl-C: pool threads block
    // it, so the loop's thread takes it.
    asio::post(io, [] { ::kill(::getpid(), SIGUSR2); });
    io.run();  // returns once the signal handler stopped it
    EXPECT_EQ(token.use_count(), 3) << "both handlers are still pending";
  }  // the io_context is destroyed here, with both operations pending
  EXPECT_EQ(token.use_count(), 1) << "pending handlers must die with their io_context";
  release.open();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_EQ(ran.load(), 0);
  EXPECT_FALSE(queued_task_ran.load()) << "a queued task of a dead context must not run";
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
}

// An io_context local to a scope left after run_for: the same, with the
// completions already delivered to the context (run_for returned before they
// ran) as well as still pending.
TEST(AsioLifetime, ScopedContextLeftAfterRunFor) {
  for (const int hint : {1, BP_ASIO_HINT_DEFAULT}) {
    blockpool::Pool pool = blockpool::Builder{}.max_threads(2).build();
    Gate release;
    auto token = std::make_shared<int>(0);
    std::atomic<int> ran{0};
    {
      asio::io_context io(hint);
      // Two that end at once (delivered, not yet run), one that blocks.
      for (int i = 0; i < 2; ++i)
        bpa::async_spawn_blocking(pool, [i] { return i; }, asio::bind_executor(io, Recorder{token, &ran}));
      bpa::async_spawn_blocking(pool,
                                      [&] {
                                        release.wait();
                                        return 9;
                                      },
                                      asio::bind_executor(io, Recorder{token, &ran}));
      ASSERT_TRUE(wait_until([&] { return pool.metrics().completed >= 2; }));
      io.run_for(0ms);  // may run some completions; the blocked one stays pending
    }
    EXPECT_EQ(token.use_count(), 1) << "hint " << hint;
    release.open();
    EXPECT_TRUE(pool.shutdown(kLongWait));
    EXPECT_LE(ran.load(), 2);
  }
}

namespace {
// Sets a flag when the frame that holds it is destroyed.
struct FrameProbe {
  std::atomic<bool>* gone;
  ~FrameProbe() { gone->store(true); }
};

asio::awaitable<void> await_blocking(blockpool::Pool& pool, Gate& release, std::atomic<bool>& gone,
                                     std::atomic<bool>& resumed) {
  FrameProbe probe{&gone};
  (void)co_await bpa::async_spawn_blocking(pool, [&release] {
    release.wait();
    return 1;
  }, asio::use_awaitable);
  resumed = true;
}
}  // namespace

// A coroutine suspended in co_await async_spawn_blocking when its io_context
// dies: the frame is destroyed with the context, and the task's end later
// touches neither.
TEST(AsioLifetime, CoroutinePendingWhenTheContextDies) {
  blockpool::Pool pool;
  Gate release;
  std::atomic<bool> gone{false}, resumed{false};
  {
    asio::io_context io;
    asio::co_spawn(io, await_blocking(pool, release, gone, resumed), asio::detached);
    io.run_for(20ms);  // the coroutine starts and suspends in the pool's task
    EXPECT_FALSE(gone.load());
  }
  EXPECT_TRUE(gone.load()) << "the suspended frame dies with its io_context";
  release.open();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_FALSE(resumed.load());
}

// A running task whose context died gets its stop token triggered (nobody
// can receive its result): a long task can stop early.
TEST(AsioLifetime, RunningStoppableTaskOfADeadContextIsAskedToStop) {
  blockpool::Pool pool;
  std::latch running{1};
  std::promise<bool> stopped;
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  {
    asio::io_context io;
    bpa::async_spawn_blocking(
        pool,
        [&](std::stop_token st) {
          running.count_down();
          std::mutex m;
          std::condition_variable_any cv;
          std::unique_lock lk(m);
          stopped.set_value(cv.wait_for(lk, st, kLongWait, [] { return false; }) || st.stop_requested());
          return 0;
        },
        asio::bind_executor(io, Recorder{token, &ran}));
    running.wait();
  }
  auto f = stopped.get_future();
  ASSERT_EQ(f.wait_for(kLongWait), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(token.use_count(), 1);
}

// Many operations, many tasks ending while the context is destroyed: each
// handler is destroyed exactly once, none runs after, nothing is touched.
TEST(AsioLifetime, ContextDestroyedWhileTasksEndConcurrently) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  for (int round = 0; round < 30; ++round) {
    auto token = std::make_shared<int>(0);
    std::atomic<int> ran{0};
    {
      asio::io_context io;
      for (int i = 0; i < 50; ++i)
        bpa::async_spawn_blocking(pool, [i] { return i; }, asio::bind_executor(io, Recorder{token, &ran}));
      io.run_one_for(1ms);
    }  // tasks are still ending on the pool's threads
    EXPECT_TRUE(wait_until([&] { return token.use_count() == 1; })) << "round " << round;
    ASSERT_TRUE(wait_until([&] { return pool.metrics().queue_depth == 0; }));
  }
  EXPECT_TRUE(pool.shutdown(kLongWait));
  const auto m = pool.metrics();
  EXPECT_EQ(m.spawned, m.completed + m.failed + m.cancelled);
}

namespace {
// A handler whose destructor, when the context destroys it unrun, starts
// another operation on the same (dying) context.
struct Respawner {
  blockpool::Pool* pool;
  asio::io_context* io;
  Token token;
  std::atomic<int>* ran;
  bool armed = true;
  Respawner(blockpool::Pool* p, asio::io_context* i, Token t, std::atomic<int>* r)
      : pool(p), io(i), token(std::move(t)), ran(r) {}
  Respawner(Respawner&& o) noexcept
      : pool(o.pool), io(o.io), token(std::move(o.token)), ran(o.ran), armed(std::exchange(o.armed, false)) {}
  ~Respawner() {
    if (armed && token) bpa::async_spawn_blocking(*pool, [] { return 0; }, asio::bind_executor(*io, Recorder{token, ran}));
  }
  void operator()(std::exception_ptr, int) { armed = false, ran->fetch_add(1); }
};
}  // namespace

// An operation initiated on a context that is already shutting down (from a
// handler destroyed by that shutdown) never starts: its handler is destroyed
// at once, and no task runs for it.
TEST(AsioLifetime, OperationStartedDuringTheContextsShutdownNeverStarts) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  BusyThreads busy(pool, 1);  // the first operation's task stays queued
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  const auto spawned_before = pool.metrics().spawned;
  {
    asio::io_context io;
    bpa::async_spawn_blocking(pool, [] { return 1; },
                                    asio::bind_executor(io, Respawner(&pool, &io, token, &ran)));
  }
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(pool.metrics().spawned, spawned_before + 1) << "nothing spawned for the late operation";
  busy.release();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_EQ(ran.load(), 0);
}

// ---- Strands -----------------------------------------------------------------

namespace {
// Checks that no two handlers of one strand overlap, and that each runs on it.
struct StrandProbe {
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> off_strand{0};
  std::atomic<int> done{0};
  template <class Strand>
  void enter(const Strand& s) {
    if (!s.running_in_this_thread()) off_strand.fetch_add(1);
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
    std::this_thread::sleep_for(50us);  // widen the window for an overlap (not synchronisation)
    inside.fetch_sub(1);
    done.fetch_add(1);
  }
};

template <class Executor, class Strand>
void run_on_strand(Executor ex, const Strand& strand, const char* what) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  asio::io_context& io = static_cast<asio::io_context&>(asio::query(strand, asio::execution::context));
  StrandProbe probe;
  constexpr int kOps = 200;
  for (int i = 0; i < kOps; ++i) {
    bpa::async_spawn_blocking(pool, [i] { return i; },
                                    asio::bind_executor(ex, [&](std::exception_ptr e, int) {
                                      EXPECT_FALSE(e);
                                      probe.enter(strand);
                                    }));
  }
  std::thread t1([&] { io.run(); });
  std::thread t2([&] { io.run(); });
  t1.join();
  t2.join();
  EXPECT_EQ(probe.done.load(), kOps) << what;
  EXPECT_EQ(probe.overlaps.load(), 0) << what << ": handlers of one strand ran concurrently";
  EXPECT_EQ(probe.off_strand.load(), 0) << what << ": a handler ran outside its strand";
}
}  // namespace

TEST(AsioLifetime, HandlerBoundToAStrandRunsOnIt) {
  for (const int hint : {BP_ASIO_HINT_DEFAULT, 1}) {
    asio::io_context io(hint);
    auto strand = asio::make_strand(io);
    run_on_strand(strand, strand, "strand");
  }
}

TEST(AsioLifetime, HandlerBoundToAnAnyIoExecutorWrappingAStrandRunsOnIt) {
  for (const int hint : {BP_ASIO_HINT_DEFAULT, 1}) {
    asio::io_context io(hint);
    auto strand = asio::make_strand(io);
    asio::any_io_executor ex = strand;
    run_on_strand(ex, strand, "any_io_executor(strand)");
  }
}

namespace {
asio::awaitable<void> on_strand_after_await(blockpool::Pool& pool, asio::strand<asio::io_context::executor_type> s,
                                            std::atomic<int>& on_strand, std::atomic<int>& off_strand) {
  for (int i = 0; i < 20; ++i) {
    (void)co_await bpa::async_spawn_blocking(pool, [i] { return i; }, asio::use_awaitable);
    (s.running_in_this_thread() ? on_strand : off_strand).fetch_add(1);
  }
}
}  // namespace

TEST(AsioLifetime, CoroutineSpawnedOnAStrandIsBackOnIt) {
  blockpool::Pool pool;
  asio::io_context io;
  auto strand = asio::make_strand(io);
  std::atomic<int> on{0}, off{0};
  for (int c = 0; c < 4; ++c) asio::co_spawn(strand, on_strand_after_await(pool, strand, on, off), asio::detached);
  std::thread t1([&] { io.run(); });
  std::thread t2([&] { io.run(); });
  t1.join();
  t2.join();
  EXPECT_EQ(on.load(), 80);
  EXPECT_EQ(off.load(), 0);
}

TEST(AsioLifetime, AnyIoExecutorWrappingTheSystemExecutor) {
  blockpool::Pool pool;
  asio::any_io_executor ex = asio::system_executor();
  std::promise<int> got;
  bpa::async_spawn_blocking(pool, [] { return 11; },
                                  asio::bind_executor(ex, [&](std::exception_ptr e, int v) { got.set_value(e ? -1 : v); }));
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(f.get(), 11);
}

TEST(AsioLifetime, ThreadPoolExecutorAndItsDestruction) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  BusyThreads busy(pool, 1);
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  {
    asio::thread_pool tp(2);
    bpa::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(tp, Recorder{token, &ran}));
    tp.stop();
    tp.join();
  }  // destroyed with the operation pending
  EXPECT_EQ(token.use_count(), 1);
  busy.release();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_EQ(ran.load(), 0);
}

// ---- Batching cannot be observed ------------------------------------------------

// On an io_context run by two threads, two operations end together. The first
// handler to run blocks until the other has run: with both completions in one
// batch it would wait forever (here: until the bound); posted separately, the
// second runs on the other thread at once.
TEST(AsioLifetime, ABlockingHandlerDoesNotHoldBackAnotherOnAMultiThreadedContext) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();  // tasks end back to back
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread t1([&] { io.run(); });
  std::thread t2([&] { io.run(); });
  for (int round = 0; round < 20; ++round) {
    BusyThreads busy(pool, 1);  // both tasks queue behind it, then end together
    std::promise<void> second_ran;
    auto second = second_ran.get_future().share();
    std::atomic<int> order{0};
    std::atomic<int> finished{0};
    std::atomic<bool> waited_ok{true};
    auto handler = [&](std::exception_ptr, int) {
      if (order.fetch_add(1) == 0) {
        waited_ok = second.wait_for(5s) == std::future_status::ready;  // blocks this io thread
      } else {
        second_ran.set_value();
      }
      finished.fetch_add(1);  // last: the round's state may go once both are here
    };
    bpa::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(io, handler));
    bpa::async_spawn_blocking(pool, [] { return 2; }, asio::bind_executor(io, handler));
    busy.release();
    ASSERT_EQ(second.wait_for(kLongWait), std::future_status::ready) << "round " << round;
    EXPECT_TRUE(waited_ok.load()) << "round " << round << ": the second handler was held back";
    ASSERT_TRUE(wait_until([&] { return finished.load() == 2; }));
  }
  guard.reset();
  t1.join();
  t2.join();
}

// ---- Mandatory operations ---------------------------------------------------------

// A mandatory operation's task runs even when its io_context dies before it
// starts (a write must reach its file): only the handler dies with the
// context. And when the pool shuts down first, it still runs and completes.
TEST(AsioLifetime, MandatoryTaskRunsEvenIfTheContextDiesFirst) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  BusyThreads busy(pool, 1);
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  std::atomic<bool> wrote{false};
  {
    asio::io_context io;
    bpa::async_spawn_mandatory_blocking(pool, [&] { wrote = true; }, asio::bind_executor(io, Recorder{token, &ran}));
  }
  EXPECT_EQ(token.use_count(), 1);
  busy.release();
  EXPECT_TRUE(pool.shutdown(kLongWait));
  EXPECT_TRUE(wrote.load()) << "a mandatory task must run though its context died";
  EXPECT_EQ(ran.load(), 0);
}

TEST(AsioLifetime, MandatoryOperationCompletesAfterThePoolShutsDown) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  BusyThreads busy(pool, 1);
  asio::io_context io;
  int normal = 0, mandatory = 0;
  bpa::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                              normal = e ? -1 : v;
                            }));
  bpa::async_spawn_mandatory_blocking(pool, [] { return 2; }, asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                                        mandatory = e ? -1 : v;
                                      }));
  pool.shutdown_background();  // the queued normal task is cancelled, the mandatory one runs
  busy.release();
  io.run();
  EXPECT_EQ(normal, -1);
  EXPECT_EQ(mandatory, 2);
}
