// bench/micro/micro_bench.cpp: Google Benchmark micro-benchmarks of blockpool.
//
//   * BM_Spawn*: cost of spawn_blocking on the calling thread (handles are
//     collected in batches and joined with the timer paused).
//   * allocs_per_spawn counter: heap allocations made *by the spawning thread*
//     per spawn, counted by the replaced global operator new below. The pool
//     header promises at most 1 for any callable (stored inline) and 2 for one
//     that takes a std::stop_token; blocks of up to 248 bytes are recycled, so
//     a steady stream of small spawns makes close to 0 (BM_SpawnEmptyNoRecycling
//     shows the 1 without recycling). allocs_all_threads: the same over all
//     threads (pool workers included) per task.
//   * BM_RoundTrip*: spawn + get() from one thread, one task at a time: the
//     latency of a handle's completion as seen by a waiting caller.
//   * BM_WorkerDrain/0|1: one worker running a queued backlog of empty tasks,
//     detached (0) or with handles held (1): the pool's own cost per task.
//   * BM_AsyncSpawnBlocking: async_spawn_blocking from an io_context's thread
//     with the completion bound to it, kBatch operations then the loop run
//     until they have completed: spawn, task and completion on the loop, per
//     operation, and allocs_all_threads per operation.
#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <benchmark/benchmark.h>
#include <blockpool/asio.hpp>
#include <blockpool/blockpool.hpp>
#include <blockpool/testing.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <new>
#include <stop_token>
#include <thread>
#include <vector>

// ---- allocation counting --------------------------------------------------------
namespace {
std::atomic<std::uint64_t> g_allocs{0};
thread_local std::uint64_t t_allocs = 0;

void* counted_alloc(std::size_t n, std::size_t align) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  ++t_allocs;
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else {
    n = (n + align - 1) / align * align;
    p = std::aligned_alloc(align, n);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new[](std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// ---- helpers --------------------------------------------------------------------------
namespace {

blockpool::Pool& pool() {
  static blockpool::Pool p;
  return p;
}

constexpr std::size_t kBatch = 1024;

struct Big {
  std::array<std::uint64_t, 32> data{};  // 256 bytes of captured state
};

template <class MakeTask>
void spawn_bench(benchmark::State& state, MakeTask make) {
  auto& p = pool();
  using H = decltype(p.spawn_blocking(make()));
  std::vector<H> handles;
  handles.reserve(kBatch);
  std::uint64_t spawns = 0, mine = 0, all = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = t_allocs, g0 = g_allocs.load(std::memory_order_relaxed);
    handles.push_back(p.spawn_blocking(make()));
    mine += t_allocs - t0;
    all += g_allocs.load(std::memory_order_relaxed) - g0;
    ++spawns;
    if (handles.size() == kBatch) {
      state.PauseTiming();
      for (auto& h : handles) h.wait();
      handles.clear();
      state.ResumeTiming();
    }
  }
  for (auto& h : handles) h.wait();  // the timed loop is over
  handles.clear();
  state.SetItemsProcessed(static_cast<std::int64_t>(spawns));
  state.counters["allocs_per_spawn"] = static_cast<double>(mine) / static_cast<double>(spawns);
  state.counters["allocs_all_threads"] = static_cast<double>(all) / static_cast<double>(spawns);
}

void BM_SpawnEmpty(benchmark::State& state) {
  spawn_bench(state, [] { return [] {}; });
}
// The same with the recycling of task blocks turned off: every spawn then
// allocates its block with operator new (the upper bound the header promises).
void BM_SpawnEmptyNoRecycling(benchmark::State& state) {
  blockpool::testing::set_task_block_cache(false);
  spawn_bench(state, [] { return [] {}; });
  blockpool::testing::set_task_block_cache(true);
}
void BM_SpawnSmallValue(benchmark::State& state) {
  std::uint64_t x = 1;
  spawn_bench(state, [&] { return [v = ++x] { return v * 3; }; });
}
void BM_SpawnBigCapture(benchmark::State& state) {
  spawn_bench(state, [] { return [b = Big{}] { return b.data[0]; }; });
}
void BM_SpawnStopToken(benchmark::State& state) {
  spawn_bench(state, [] { return [](std::stop_token st) { return st.stop_requested(); }; });
}

// Spawn without keeping the handle (detached), as the comparative bench does.
void BM_SpawnDetached(benchmark::State& state) {
  auto& p = pool();
  std::uint64_t n = 0, mine = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = t_allocs;
    (void)p.spawn_blocking([] {});
    mine += t_allocs - t0;
    if (++n % kBatch == 0) {
      state.PauseTiming();
      while (p.metrics().queue_depth != 0) std::this_thread::yield();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["allocs_per_spawn"] = static_cast<double>(mine) / static_cast<double>(n);
}

void BM_RoundTrip(benchmark::State& state) {
  auto& p = pool();
  std::uint64_t i = 0, all = 0;
  for (auto _ : state) {
    const std::uint64_t g0 = g_allocs.load(std::memory_order_relaxed);
    benchmark::DoNotOptimize(p.spawn_blocking([v = ++i] { return v + 1; }).get());
    all += g_allocs.load(std::memory_order_relaxed) - g0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_all_threads"] =
      static_cast<double>(all) / static_cast<double>(state.iterations());
}

// Round trip observed by polling is_finished() (no futex sleep on the caller).
void BM_RoundTripSpin(benchmark::State& state) {
  auto& p = pool();
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto h = p.spawn_blocking([v = ++i] { return v + 1; });
    while (!h.is_finished()) {
    }
    benchmark::DoNotOptimize(h.get());
  }
  state.SetItemsProcessed(state.iterations());
}

// Worker cost per task: kDrain empty tasks queued behind a blocked task on a
// one-thread pool, then released; timed until the last one has run (spawning
// is not timed). Arg 0: handles dropped at spawn (detached: the worker starts
// and ends the task without atomic read-modify-writes on it); arg 1: handles
// held until the end (the worker publishes each end for its handle).
void BM_WorkerDrain(benchmark::State& state) {
  constexpr int kDrain = 20000;
  const bool keep_handles = state.range(0) != 0;
  blockpool::Pool p = blockpool::Builder{}.max_threads(1).build();
  std::vector<blockpool::JoinHandle<void>> held;
  held.reserve(kDrain);
  for (auto _ : state) {
    state.PauseTiming();
    std::atomic<bool> go{false};
    std::latch done{1};
    (void)p.spawn_blocking([&go] { go.wait(false); });
    for (int i = 0; i < kDrain; ++i) {
      auto h = p.spawn_blocking([] {});
      if (keep_handles) held.push_back(std::move(h));
    }
    (void)p.spawn_blocking([&done] { done.count_down(); });
    state.ResumeTiming();
    go.store(true);
    go.notify_one();
    done.wait();
    state.PauseTiming();
    held.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kDrain);
}

// The operation is one block (task and operation state, recycled like any
// task block); the loop receives each batch of results through one post.
void BM_AsyncSpawnBlocking(benchmark::State& state) {
  auto& p = pool();
  asio::io_context io(1);
  std::uint64_t n = 0, sum = 0;
  const std::uint64_t g0 = g_allocs.load(std::memory_order_relaxed);
  auto drain = [&io] {
    io.restart();
    io.run();  // returns once every operation has completed: each holds work
  };
  for (auto _ : state) {
    blockpool::async_spawn_blocking(p, [] { return std::uint64_t{1}; },
                                    asio::bind_executor(io, [&sum](std::exception_ptr e, std::uint64_t v) {
                                      if (!e) sum += v;
                                    }));
    if (++n % kBatch == 0) drain();
  }
  drain();
  const std::uint64_t all = g_allocs.load(std::memory_order_relaxed) - g0;
  if (sum != n) state.SkipWithError("an operation did not complete with its value");
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["allocs_all_threads"] = static_cast<double>(all) / static_cast<double>(n);
}

}  // namespace

BENCHMARK(BM_SpawnEmpty);
BENCHMARK(BM_SpawnEmptyNoRecycling);
BENCHMARK(BM_SpawnSmallValue);
BENCHMARK(BM_SpawnBigCapture);
BENCHMARK(BM_SpawnStopToken);
BENCHMARK(BM_SpawnDetached);
BENCHMARK(BM_RoundTrip)->UseRealTime();
BENCHMARK(BM_RoundTripSpin)->UseRealTime();
BENCHMARK(BM_WorkerDrain)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_AsyncSpawnBlocking)->UseRealTime();

BENCHMARK_MAIN();
