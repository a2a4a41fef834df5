// C++20 coroutines without Asio: `co_await` on a JoinHandle.
//
// Where the coroutine resumes (documented in join_handle.hpp, tested here):
//   * `co_await handle` resumes on the thread that ENDS the task: the pool
//     thread that ran it, or the thread that called abort()/shutdown() for a
//     cancelled task. If the task had already ended when co_await was
//     reached, the coroutine does not suspend and continues on its own thread.
//   * `co_await handle.resume_via(schedule)` never resumes inline: it calls
//     schedule(coroutine_handle) and the executor behind `schedule` resumes
//     the coroutine on its own thread.
#include <coroutine>
#include <deque>
#include <mutex>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;

namespace {

using bptest::Detached;

struct Outcome {
  int value = 0;
  std::string error;
  std::thread::id resumed_on;
};

Detached await_value(blockpool::JoinHandle<int> h, std::promise<Outcome>& out) {
  Outcome o;
  try {
    o.value = co_await std::move(h);
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  o.resumed_on = std::this_thread::get_id();
  out.set_value(o);
}

Detached await_ref(blockpool::JoinHandle<int>& h, std::promise<Outcome>& out) {
  Outcome o;
  try {
    o.value = co_await h;
  } catch (const blockpool::JoinError& e) {
    o.error = std::string("JoinError:") + (e.is_cancelled() ? "cancelled" : "other");
  }
  o.resumed_on = std::this_thread::get_id();
  out.set_value(o);
}

Detached await_void(blockpool::JoinHandle<void> h, std::promise<std::thread::id>& out) {
  co_await std::move(h);
  out.set_value(std::this_thread::get_id());
}

// A tiny single-threaded executor: schedule() queues, run_until() resumes.
class Loop {
 public:
  void post(std::coroutine_handle<> h) {
    std::lock_guard lk(mu_);
    q_.push_back(h);
    cv_.notify_one();
  }
  // Resumes queued coroutines on the calling thread until `done` holds.
  template <class Pred>
  bool run_until(Pred done) {
    const auto limit = std::chrono::steady_clock::now() + bptest::kLongWait;
    std::unique_lock lk(mu_);
    while (!done()) {
      if (!cv_.wait_until(lk, limit, [&] { return !q_.empty(); })) return false;
      auto h = q_.front();
      q_.pop_front();
      lk.unlock();
      h.resume();
      lk.lock();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::coroutine_handle<>> q_;
};

Detached await_via(blockpool::JoinHandle<int> h, Loop& loop, std::atomic<bool>& done, Outcome& out) {
  try {
    out.value = co_await h.resume_via([&loop](std::coroutine_handle<> c) { loop.post(c); });
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  out.resumed_on = std::this_thread::get_id();
  done = true;
}

}  // namespace

TEST(Coroutine, ValueResumesOnThePoolThreadThatRanTheTask) {
  blockpool::Pool pool;
  Gate gate;
  std::promise<std::thread::id> task_thread;
  auto h = pool.spawn_blocking([&] {
    gate.wait();
    task_thread.set_value(std::this_thread::get_id());
    return 42;
  });
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(h), out);  // suspends (the task is blocked) and returns here
  EXPECT_EQ(fut.wait_for(0s), std::future_status::timeout);
  gate.open();
  ASSERT_EQ(fut.wait_for(bptest::kLongWait), std::future_status::ready);
  const Outcome o = fut.get();
  EXPECT_EQ(o.value, 42);
  EXPECT_EQ(o.resumed_on, task_thread.get_future().get());
  EXPECT_NE(o.resumed_on, std::this_thread::get_id());
}

TEST(Coroutine, ExceptionDeliveredToCoroutine) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&]() -> int {
    gate.wait();
    throw std::runtime_error("from task");
  });
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(h), out);
  gate.open();
  ASSERT_EQ(fut.wait_for(bptest::kLongWait), std::future_status::ready);
  EXPECT_EQ(fut.get().error, "from task");
}

TEST(Coroutine, AlreadyFinishedDoesNotSuspend) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 5; });
  h.wait();
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(h), out);
  // Completed synchronously, on this thread.
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
  const Outcome o = fut.get();
  EXPECT_EQ(o.value, 5);
  EXPECT_EQ(o.resumed_on, std::this_thread::get_id());
}

TEST(Coroutine, VoidTask) {
  blockpool::Pool pool;
  Gate gate;
  std::promise<std::thread::id> out;
  auto fut = out.get_future();
  await_void(pool.spawn_blocking([&] { gate.wait(); }), out);
  gate.open();
  ASSERT_EQ(fut.wait_for(bptest::kLongWait), std::future_status::ready);
  EXPECT_NE(fut.get(), std::this_thread::get_id());
}

TEST(Coroutine, AbortResumesOnTheAbortingThread) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch started{1};
  auto blocker = pool.spawn_blocking([&] {
    started.count_down();
    gate.wait();
  });
  started.wait();
  auto h = pool.spawn_blocking([] { return 1; });  // queued behind the blocker
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_ref(h, out);
  EXPECT_EQ(fut.wait_for(0s), std::future_status::timeout);
  std::thread aborter([&] { EXPECT_TRUE(h.abort()); });
  const auto aborter_id = aborter.get_id();
  aborter.join();
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);  // resumed inside abort()
  const Outcome o = fut.get();
  EXPECT_EQ(o.error, "JoinError:cancelled");
  EXPECT_EQ(o.resumed_on, aborter_id);
  gate.open();
  blocker.get();
}

TEST(Coroutine, ResumeViaResumesOnTheExecutor) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] {
    gate.wait();
    return 8;
  });
  Loop loop;
  std::atomic<bool> done{false};
  Outcome o;
  await_via(std::move(h), loop, done, o);
  EXPECT_FALSE(done.load());
  gate.open();
  ASSERT_TRUE(loop.run_until([&] { return done.load(); }));
  EXPECT_EQ(o.value, 8);
  EXPECT_EQ(o.resumed_on, std::this_thread::get_id());  // the loop's thread, not the pool's
}

TEST(Coroutine, ResumeViaAlreadyFinishedStillGoesThroughExecutor) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 9; });
  h.wait();
  Loop loop;
  std::atomic<bool> done{false};
  Outcome o;
  await_via(std::move(h), loop, done, o);
  EXPECT_FALSE(done.load()) << "resume_via must not resume inline";
  ASSERT_TRUE(loop.run_until([&] { return done.load(); }));
  EXPECT_EQ(o.value, 9);
}

TEST(Coroutine, ResumeViaException) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([]() -> int { throw std::runtime_error("via"); });
  Loop loop;
  std::atomic<bool> done{false};
  Outcome o;
  await_via(std::move(h), loop, done, o);
  ASSERT_TRUE(loop.run_until([&] { return done.load(); }));
  EXPECT_EQ(o.error, "via");
}

TEST(Coroutine, ManyConcurrentAwaits) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  constexpr int kN = 300;
  std::vector<std::promise<Outcome>> outs(kN);
  std::vector<std::future<Outcome>> futs;
  for (auto& p : outs) futs.push_back(p.get_future());
  for (int i = 0; i < kN; ++i) await_value(pool.spawn_blocking([i] { return i; }), outs[static_cast<std::size_t>(i)]);
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(futs[static_cast<std::size_t>(i)].wait_for(bptest::kLongWait), std::future_status::ready);
    EXPECT_EQ(futs[static_cast<std::size_t>(i)].get().value, i);
  }
}

// ---- A coroutine destroyed while suspended in co_await (issue 16, point 4) --
//
// Lazy tasks and structured concurrency destroy coroutines that are still
// suspended. When the task then ends (completes, fails, is aborted, is
// cancelled by shutdown or by a spawn failure), nothing may touch the
// destroyed frame: the awaiter takes its continuation back as the frame goes.
// ASan (CI) reports any use of the freed frame.
namespace {

// A coroutine whose frame its owner destroys (final_suspend suspends).
struct Owned {
  struct promise_type {
    Owned get_return_object() noexcept {
      return Owned{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  explicit Owned(std::coroutine_handle<promise_type> h) : h_(h) {}
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Owned& operator=(Owned&&) = delete;
  ~Owned() { destroy(); }
  void destroy() {
    if (h_) std::exchange(h_, {}).destroy();
  }
  [[nodiscard]] bool done() const { return h_.done(); }
  std::coroutine_handle<promise_type> h_;
};

// Sets `gone` when the frame is destroyed; `resumed` if it ever resumes.
struct FrameProbe {
  std::atomic<bool>* gone;
  ~FrameProbe() { gone->store(true); }
};

Owned await_owned(blockpool::JoinHandle<int> h, std::atomic<bool>& resumed, std::atomic<bool>& gone) {
  FrameProbe probe{&gone};
  try {
    (void)co_await std::move(h);
  } catch (...) {
  }
  resumed = true;
}

Owned await_owned_ref(blockpool::JoinHandle<int>& h, std::atomic<bool>& resumed, std::atomic<bool>& gone) {
  FrameProbe probe{&gone};
  try {
    (void)co_await h;
  } catch (...) {
  }
  resumed = true;
}

Owned await_owned_via(blockpool::JoinHandle<int> h, Loop& loop, std::atomic<bool>& resumed,
                      std::atomic<bool>& gone) {
  FrameProbe probe{&gone};
  try {
    (void)co_await h.resume_via([&loop](std::coroutine_handle<> co) { loop.post(co); });
  } catch (...) {
  }
  resumed = true;
}

}  // namespace

TEST(CoroutineDestroyed, TaskCompletesAfterTheFrameIsGone) {
  blockpool::Pool pool;
  Gate gate;
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned(pool.spawn_blocking([&] {
                           gate.wait();
                           return 1;
                         }),
                         resumed, gone);
  co.destroy();
  EXPECT_TRUE(gone.load());
  gate.open();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));  // the task has ended
  EXPECT_FALSE(resumed.load());
}

TEST(CoroutineDestroyed, TaskFailsAfterTheFrameIsGone) {
  blockpool::Pool pool;
  Gate gate;
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned(pool.spawn_blocking([&]() -> int {
                           gate.wait();
                           throw std::runtime_error("late");
                         }),
                         resumed, gone);
  co.destroy();
  gate.open();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_FALSE(resumed.load());
}

TEST(CoroutineDestroyed, TaskAbortedAfterTheFrameIsGone) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bptest::BusyThreads busy(pool, 1);
  auto queued = pool.spawn_blocking([] { return 2; });
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned_ref(queued, resumed, gone);
  co.destroy();
  EXPECT_TRUE(queued.abort());  // ends the task here, on this thread
  EXPECT_FALSE(resumed.load());
  EXPECT_TRUE(bptest::get_join_error(queued).is_cancelled());
  busy.release();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

TEST(CoroutineDestroyed, TaskCancelledByShutdownAfterTheFrameIsGone) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bptest::BusyThreads busy(pool, 1);
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned(pool.spawn_blocking([] { return 3; }), resumed, gone);
  co.destroy();
  pool.shutdown_background();  // cancels the queued task
  EXPECT_FALSE(resumed.load());
  busy.release();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
}

TEST(CoroutineDestroyed, TaskEndsAsSpawnFailureAfterTheFrameIsGone) {
  // The first spawn (on another thread) is held inside the pool's first
  // thread creation, which then fails: every queued task ends as a spawn
  // failure, on that thread, after the coroutine awaiting one was destroyed.
  Gate creating, refuse;
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_creation_fault_for_testing([&](std::uint64_t) {
                               creating.open();
                               refuse.wait();
                               return EAGAIN;
                             })
                             .build();
  auto first = std::async(std::launch::async, [&] { return pool.spawn_blocking([] { return 0; }); });
  creating.wait();
  auto queued = pool.spawn_blocking([] { return 6; });  // waits for the thread being created
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned_ref(queued, resumed, gone);
  co.destroy();
  refuse.open();
  EXPECT_TRUE(bptest::get_join_error(first.get()).is_spawn_failure());
  EXPECT_TRUE(bptest::get_join_error(queued).is_spawn_failure());
  EXPECT_FALSE(resumed.load());
}

TEST(CoroutineDestroyed, ResumeViaFrameGoneBeforeTheTaskEnds) {
  blockpool::Pool pool;
  Gate gate;
  Loop loop;
  std::atomic<bool> resumed{false}, gone{false};
  Owned co = await_owned_via(pool.spawn_blocking([&] {
                               gate.wait();
                               return 5;
                             }),
                             loop, resumed, gone);
  co.destroy();
  gate.open();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_FALSE(resumed.load());
}

// Many coroutines destroyed while their tasks end on other threads at the
// same time as the destruction would be a race (documented); destroyed
// first, then ended, in bulk, is not.
TEST(CoroutineDestroyed, ManyFramesGoneThenTasksEnd) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(4).build();
  Gate gate;
  constexpr int kN = 200;
  std::vector<Owned> cos;
  std::vector<std::unique_ptr<std::atomic<bool>>> flags;
  for (int i = 0; i < kN; ++i) {
    flags.push_back(std::make_unique<std::atomic<bool>>(false));
    flags.push_back(std::make_unique<std::atomic<bool>>(false));
    cos.push_back(await_owned(pool.spawn_blocking([&gate, i] {
                                gate.wait();
                                return i;
                              }),
                              *flags[flags.size() - 2], *flags.back()));
  }
  cos.clear();  // every frame destroyed while suspended
  gate.open();
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  for (std::size_t i = 0; i < flags.size(); i += 2) EXPECT_FALSE(flags[i]->load());
}
