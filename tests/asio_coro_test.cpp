// co_await on a JoinHandle without Asio: which thread resumes the coroutine.
//
// The rule (join_handle.hpp): the coroutine resumes on the thread that ends
// the task (the pool thread that ran it, or the thread calling abort() or
// shutdown()), or does not suspend at all if the task had already ended;
// resume_via(schedule) hands the resumption to `schedule` instead.
#include <gtest/gtest.h>

#include <chrono>
#include <coroutine>
#include <deque>
#include <exception>
#include <future>
#include <latch>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "blockpool/blockpool.hpp"

namespace {

using namespace std::chrono_literals;
constexpr auto kBound = 20s;

// A fire-and-forget coroutine: starts at once, frees itself at the end.
struct Fire {
  struct promise_type {
    Fire get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

struct Gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
  bool wait() const { return f.wait_for(kBound) == std::future_status::ready; }
};

struct Outcome {
  std::thread::id resumed_on;
  int value = 0;
  bool cancelled = false;
};

Fire await_value(blockpool::JoinHandle<int> h, std::promise<Outcome>& out) {
  Outcome o;
  try {
    o.value = co_await std::move(h);
  } catch (const blockpool::JoinError& e) {
    o.cancelled = e.is_cancelled();
  }
  o.resumed_on = std::this_thread::get_id();
  out.set_value(o);
}

TEST(CoAwait, ResumesOnThePoolThreadThatRanTheTask) {
  blockpool::Pool pool;
  Gate gate;
  std::promise<std::thread::id> task_thread;
  auto h = pool.spawn_blocking([&] {
    task_thread.set_value(std::this_thread::get_id());
    gate.wait();
    return 5;
  });
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(h), out);  // suspends: the task is blocked on the gate
  EXPECT_NE(fut.wait_for(0s), std::future_status::ready);
  gate.open();
  ASSERT_EQ(fut.wait_for(kBound), std::future_status::ready);
  const Outcome o = fut.get();
  EXPECT_EQ(o.value, 5);
  EXPECT_EQ(o.resumed_on, task_thread.get_future().get());
  EXPECT_NE(o.resumed_on, std::this_thread::get_id());
}

TEST(CoAwait, AlreadyFinishedDoesNotSuspend) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 6; });
  h.wait();
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(h), out);
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);  // ran to the end inline
  const Outcome o = fut.get();
  EXPECT_EQ(o.value, 6);
  EXPECT_EQ(o.resumed_on, std::this_thread::get_id());
}

TEST(CoAwait, AbortResumesOnTheAbortingThread) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  auto blocker = pool.spawn_blocking([&] { return gate.wait(); });
  auto queued = pool.spawn_blocking([] { return 1; });
  // The coroutine owns the victim's handle; the test aborts through the task
  // block (the seam adapters use), which the coroutine's handle keeps alive.
  auto victim = pool.spawn_blocking([] { return 2; });
  std::promise<Outcome> out;
  auto fut = out.get_future();
  blockpool::detail::TaskBase* task = victim.task_for_adapter();
  await_value(std::move(victim), out);
  EXPECT_NE(fut.wait_for(0s), std::future_status::ready);
  EXPECT_TRUE(task->abort());  // the coroutine runs to its end inside this call
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
  const Outcome o = fut.get();
  EXPECT_TRUE(o.cancelled);
  EXPECT_EQ(o.resumed_on, std::this_thread::get_id());
  gate.open();
  EXPECT_TRUE(blocker.get());
  EXPECT_EQ(queued.get(), 1);
}

TEST(CoAwait, ShutdownResumesOnTheShuttingDownThread) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  Gate gate;
  std::latch blocker_running(1);
  auto blocker = pool.spawn_blocking([&] {
    blocker_running.count_down();
    return gate.wait();
  });
  // The blocker must be running (not queued) when shutdown begins, or
  // shutdown cancels it too.
  blocker_running.wait();
  auto victim = pool.spawn_blocking([] { return 3; });
  std::promise<Outcome> out;
  auto fut = out.get_future();
  await_value(std::move(victim), out);
  std::thread::id shutter_id;
  std::thread shutter([&] {
    shutter_id = std::this_thread::get_id();
    pool.shutdown_background();  // cancels the queued task on this thread
  });
  shutter.join();
  ASSERT_EQ(fut.wait_for(kBound), std::future_status::ready);
  const Outcome o = fut.get();
  EXPECT_TRUE(o.cancelled);
  EXPECT_EQ(o.resumed_on, shutter_id);
  gate.open();
  EXPECT_TRUE(blocker.get());
}

// A minimal executor: a queue of coroutine handles drained by one thread.
struct Loop {
  std::mutex mu;
  std::deque<std::coroutine_handle<>> q;
  void post(std::coroutine_handle<> h) {
    std::lock_guard lock(mu);
    q.push_back(h);
  }
  bool run_one() {
    std::coroutine_handle<> h;
    {
      std::lock_guard lock(mu);
      if (q.empty()) return false;
      h = q.front();
      q.pop_front();
    }
    h.resume();
    return true;
  }
};

Fire await_via(blockpool::JoinHandle<int> h, Loop& loop, std::promise<Outcome>& out) {
  Outcome o;
  o.value = co_await h.resume_via([&loop](std::coroutine_handle<> c) { loop.post(c); });
  o.resumed_on = std::this_thread::get_id();
  out.set_value(o);
}

TEST(CoAwait, ResumeViaResumesWhereTheSchedulerRuns) {
  blockpool::Pool pool;
  Loop loop;
  for (bool finish_first : {false, true}) {
    SCOPED_TRACE(finish_first);
    Gate gate;
    auto h = pool.spawn_blocking([&] {
      gate.wait();
      return 7;
    });
    if (finish_first) {
      gate.open();
      h.wait();
    }
    std::promise<Outcome> out;
    auto fut = out.get_future();
    await_via(std::move(h), loop, out);
    // Even a finished task resumes through the scheduler, never inline.
    EXPECT_NE(fut.wait_for(0s), std::future_status::ready);
    if (!finish_first) gate.open();
    const auto deadline = std::chrono::steady_clock::now() + kBound;
    while (fut.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline) {
      if (!loop.run_one()) std::this_thread::yield();
    }
    ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
    const Outcome o = fut.get();
    EXPECT_EQ(o.value, 7);
    EXPECT_EQ(o.resumed_on, std::this_thread::get_id());
  }
}

}  // namespace
