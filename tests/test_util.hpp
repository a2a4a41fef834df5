// tests/test_util.hpp: helpers shared by the core test suite.
//
// Rules the suite follows: no sleep is ever used to "let something happen".
// Tests synchronise with latches/promises, and wait for a pool state with
// wait_until(), which polls with a bounded limit and reports a timeout as a
// test failure. A timeout there means the behaviour did not happen.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "blockpool/blockpool.hpp"

namespace bptest {

using namespace std::chrono_literals;

// Generous bound for anything that must happen "soon" on a loaded 2-core box.
inline constexpr std::chrono::seconds kLongWait{20};

// Polls pred until it holds or `limit` passes. Returns whether it held.
// Use as ASSERT_TRUE(wait_until(...)) so a timeout fails the test.
template <class Pred>
[[nodiscard]] bool wait_until(Pred&& pred, std::chrono::steady_clock::duration limit = kLongWait) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(200us);
  }
}

// Checks that pred stays false for a short window: used only for negative
// assertions ("this must not happen"), never to wait for something.
template <class Pred>
[[nodiscard]] bool stays_false(Pred&& pred, std::chrono::milliseconds window = 50ms) {
  return !wait_until(std::forward<Pred>(pred), window);
}

// A one-shot gate: tasks block in wait() until the test calls open().
class Gate {
 public:
  void wait() { latch_.wait(); }
  void open() {
    if (!opened_.exchange(true)) latch_.count_down();
  }
  ~Gate() { open(); }  // never leave a pool thread blocked past a failed test

 private:
  std::latch latch_{1};
  std::atomic<bool> opened_{false};
};

// Holds `n` of the pool's threads busy: n tasks (mandatory ones if asked)
// that block on a gate until release() or destruction. The constructor
// returns once all n run. Call through ASSERT_NO_FATAL_FAILURE if it may fail.
class BusyThreads {
 public:
  BusyThreads(blockpool::Pool& pool, int n, bool mandatory = false) : started_(n) {
    for (int i = 0; i < n; ++i) {
      auto task = [this] {
        started_.count_down();
        gate_.wait();
      };
      tasks_.push_back(mandatory ? pool.spawn_mandatory_blocking(task) : pool.spawn_blocking(task));
    }
    started_.wait();
  }
  BusyThreads(const BusyThreads&) = delete;
  BusyThreads& operator=(const BusyThreads&) = delete;
  ~BusyThreads() { (void)release_and_wait(); }  // the tasks use gate_ until they end
  void release() { gate_.open(); }
  // Releases the tasks and waits (bounded) for them to end.
  [[nodiscard]] bool release_and_wait() {
    release();
    for (auto& t : tasks_)
      if (!t.wait_for(kLongWait)) return false;
    return true;
  }
  std::vector<blockpool::JoinHandle<void>>& tasks() { return tasks_; }

 private:
  Gate gate_;
  std::latch started_;
  std::vector<blockpool::JoinHandle<void>> tasks_;
};

// The smallest coroutine type: starts eagerly, never suspends at its end (the
// frame frees itself), returns nothing (results go through promises or
// variables the test owns).
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// The calling thread's OS name.
inline std::string thread_name() {
  char buf[64] = {};
  if (pthread_getname_np(pthread_self(), buf, sizeof buf) != 0) return "<error>";
  return buf;
}

// Waits (bounded) for the handle to end; fails the test on timeout.
template <class H>
[[nodiscard]] bool ends_soon(const H& h) {
  return h.wait_for(kLongWait);
}

// Calls h.get() expecting a JoinError; returns it (a default-made one, and a
// test failure, if get() returned or threw something else).
template <class H>
blockpool::JoinError get_join_error(H&& h) {
  try {
    (void)std::forward<H>(h).get();
    ADD_FAILURE() << "expected a JoinError, but get() returned";
  } catch (const blockpool::JoinError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a JoinError, got: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "expected a JoinError, got an unknown exception";
  }
  return blockpool::JoinError(blockpool::JoinError::Kind::kSpawnFailure,
                              blockpool::JoinError::Reason::kSpawnFailed);
}

// Up to `n` CPUs this process may run on (its affinity mask), lowest first.
inline std::vector<int> allowed_cpus(std::size_t n) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < n; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Pins the calling thread to one CPU. Returns whether it worked.
inline bool pin_to(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
}

// Puts the calling thread's affinity back as it was, at scope exit.
class AffinityGuard {
 public:
  AffinityGuard() {
    CPU_ZERO(&saved_);
    ok_ = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) == 0;
  }
  ~AffinityGuard() {
    if (ok_) (void)pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
  }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

// Starts `n` workers in `pool` (n tasks held at once on a gate, so each needs
// its own thread), lets the tasks end, and waits until all `n` are parked.
// Call through ASSERT_NO_FATAL_FAILURE.
inline void start_idle_workers(blockpool::Pool& pool, int n) {
  Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<void>> hs;
  for (int i = 0; i < n; ++i) {
    hs.push_back(pool.spawn_blocking([&] {
      running.fetch_add(1);
      gate.wait();
    }));
  }
  ASSERT_TRUE(wait_until([&] { return running.load() == n; })) << running.load() << " of " << n << " started";
  gate.open();
  for (auto& h : hs) ASSERT_TRUE(h.wait_for(kLongWait));
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == static_cast<std::uint64_t>(n); }));
}

// True when every metrics counter balances and nothing is queued.
inline bool quiet_and_balanced(const blockpool::Metrics& m) {
  return m.queue_depth == 0 && m.spawned == m.completed + m.failed + m.cancelled;
}

}  // namespace bptest
