// tests/load_test.cpp: load held (label "load"; not in the default ctest run;
// scripts/load.sh runs it). Drives ~1M tasks through a pool capped at 512
// threads with 512 of them blocked at once at the peak, then shows that memory
// returns to near its starting level once keep-alive (200 ms) retires the
// threads. glibc malloc keeps freed memory in its arenas, so malloc_trim(0) is
// called before each RSS reading (the figure is what the process could give
// back, which is what a long-running server cares about).
//
// Usage: load_test [total_tasks=1000000] [blocked=512]
// Exit status 0 if every task ran exactly once and the pool went back to 0
// threads; the RSS figures are printed, not asserted (they depend on the host).
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "blockpool/blockpool.hpp"

namespace {
long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}
long trimmed_rss_kib() {
  malloc_trim(0);
  return rss_kib();
}
}  // namespace

int main(int argc, char** argv) {
  const long total = argc > 1 ? std::atol(argv[1]) : 1000000;
  const int blocked = argc > 2 ? std::atoi(argv[2]) : 512;
  using clk = std::chrono::steady_clock;
  const auto t0 = clk::now();
  const long rss_start = trimmed_rss_kib();
  long rss_peak = rss_start;
  std::atomic<long> ran{0};
  bool ok = true;
  {
    blockpool::Pool pool = blockpool::Builder{}
                               .max_threads(512)
                               .keep_alive(std::chrono::milliseconds(200))
                               .thread_name("load")
                               .build();
    // Phase 1: `blocked` tasks blocked at once on a latch, with short tasks
    // queued behind them.
    std::latch all_in(blocked);
    std::latch release(1);
    std::vector<blockpool::JoinHandle<void>> blockers;
    blockers.reserve(static_cast<std::size_t>(blocked));
    for (int i = 0; i < blocked; ++i)
      blockers.push_back(pool.spawn_blocking([&] {
        all_in.count_down();
        release.wait();
        ran.fetch_add(1, std::memory_order_relaxed);
      }));
    all_in.wait();  // every blocker holds its own thread now
    const long queued_behind = std::min<long>(100000, total - blocked);
    for (long i = 0; i < queued_behind; ++i)
      (void)pool.spawn_blocking([&] { ran.fetch_add(1, std::memory_order_relaxed); });
    const auto at_peak = pool.metrics();
    rss_peak = std::max(rss_peak, rss_kib());
    std::printf("peak: %llu threads, %llu queued, RSS %ld KiB\n",
                static_cast<unsigned long long>(at_peak.threads),
                static_cast<unsigned long long>(at_peak.queue_depth), rss_peak);
    release.count_down();
    for (auto& b : blockers) b.get();

    // Phase 2: the rest as short tasks, in batches whose handles are joined.
    long left = total - blocked - queued_behind;
    std::vector<blockpool::JoinHandle<long>> batch;
    batch.reserve(10000);
    while (left > 0) {
      const long n = std::min<long>(left, 10000);
      for (long i = 0; i < n; ++i)
        batch.push_back(pool.spawn_blocking([&ran, i] {
          ran.fetch_add(1, std::memory_order_relaxed);
          return i;
        }));
      for (long i = 0; i < n; ++i)
        if (batch[static_cast<std::size_t>(i)].get() != i) ok = false;
      batch.clear();
      left -= n;
      rss_peak = std::max(rss_peak, rss_kib());
    }
    // Quiet: wait (bounded) for every queued task and for keep-alive to
    // retire every thread. No time is asserted.
    const auto limit = clk::now() + std::chrono::seconds(60);
    while ((pool.metrics().threads > 0 || pool.metrics().queue_depth > 0) && clk::now() < limit)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a gauge, not syncing
    const auto m = pool.metrics();
    const long rss_after = trimmed_rss_kib();
    const double wall = std::chrono::duration<double>(clk::now() - t0).count();
    std::printf("tasks: %ld run of %ld spawned (completed %llu, failed %llu, cancelled %llu)\n",
                ran.load(), total, static_cast<unsigned long long>(m.completed),
                static_cast<unsigned long long>(m.failed),
                static_cast<unsigned long long>(m.cancelled));
    std::printf("threads: peak %llu, started %llu, retired by keep-alive %llu, alive after %llu\n",
                static_cast<unsigned long long>(m.peak_threads),
                static_cast<unsigned long long>(m.threads_started),
                static_cast<unsigned long long>(m.threads_retired),
                static_cast<unsigned long long>(m.threads));
    std::printf("RSS (KiB, after malloc_trim(0)): start %ld, peak %ld, after keep-alive %ld\n",
                rss_start, rss_peak, rss_after);
    std::printf("wall time: %.2f s\n", wall);
    ok = ok && ran.load() == total && m.completed == static_cast<std::uint64_t>(total) &&
         m.threads == 0 && m.peak_threads == static_cast<std::uint64_t>(blocked);
    ok = pool.shutdown() && ok;
  }
  std::printf("load test %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}
