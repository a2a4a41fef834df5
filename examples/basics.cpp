// examples/basics.cpp: the pool in one page.
//
// Spawns blocking tasks, shows the pool growing while they block, a result,
// an exception crossing back to the caller, an abort, and the metrics.
#include <chrono>
#include <cstdio>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blockpool/blockpool.hpp"

int main() {
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(16)
                             .keep_alive(std::chrono::seconds(2))
                             .thread_name("demo-io")
                             .build();

  // 1. A result.
  auto answer = pool.spawn_blocking([] { return 6 * 7; });
  std::printf("result: %d\n", answer.get());

  // 2. Growth: eight tasks that block (here on a latch, standing in for a
  //    slow disk or a database call). The pool adds threads while they wait.
  std::latch release(1);
  std::vector<blockpool::JoinHandle<std::string>> blocked;
  for (int i = 0; i < 8; ++i)
    blocked.push_back(pool.spawn_blocking([&release, i] {
      release.wait();
      return "task " + std::to_string(i);
    }));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (pool.metrics().threads < 8 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // just for display
  std::printf("threads while 8 tasks block: %llu\n",
              static_cast<unsigned long long>(pool.metrics().threads));
  release.count_down();
  for (auto& h : blocked) std::printf("  %s done\n", h.get().c_str());

  // 3. An exception thrown by a task is rethrown, unchanged, by get().
  auto bad = pool.spawn_blocking([]() -> int { throw std::runtime_error("disk on fire"); });
  try {
    bad.get();
  } catch (const std::runtime_error& e) {
    std::printf("exception: %s\n", e.what());
  }

  // 4. Abort before start: with every thread busy, a queued task can be
  //    cancelled and never runs. A stop_token lets a running one stop early.
  std::latch started(1);
  auto slow = pool.spawn_blocking([&started](std::stop_token st) {
    started.count_down();
    while (!st.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::string("stopped cooperatively");
  });
  started.wait();
  const bool never_runs = slow.abort();  // running: requests stop, returns false
  std::printf("abort while running: never_runs=%d, result: %s\n", never_runs, slow.get().c_str());

  std::latch hold(1);
  std::vector<blockpool::JoinHandle<void>> busy;
  for (int i = 0; i < 16; ++i) busy.push_back(pool.spawn_blocking([&hold] { hold.wait(); }));
  auto queued = pool.spawn_blocking([] { std::puts("never printed"); });
  std::printf("abort before start: never_runs=%d\n", queued.abort());
  try {
    queued.get();
  } catch (const blockpool::JoinError& e) {
    std::printf("  get(): %s\n", e.what());
  }
  hold.count_down();
  for (auto& h : busy) h.get();

  // 5. Metrics.
  const blockpool::Metrics m = pool.metrics();
  std::printf(
      "metrics: threads=%llu idle=%llu peak=%llu spawned=%llu completed=%llu failed=%llu "
      "cancelled=%llu\n",
      static_cast<unsigned long long>(m.threads), static_cast<unsigned long long>(m.idle_threads),
      static_cast<unsigned long long>(m.peak_threads), static_cast<unsigned long long>(m.spawned),
      static_cast<unsigned long long>(m.completed), static_cast<unsigned long long>(m.failed),
      static_cast<unsigned long long>(m.cancelled));

  // 6. Shutdown joins every thread (the destructor would do the same).
  const bool clean = pool.shutdown(std::chrono::seconds(5));
  std::printf("shutdown joined every thread: %s\n", clean ? "yes" : "no");
  return clean ? 0 : 1;
}
