// oneTBB peer (oneTBB 2021.8 from Debian's libtbb-dev): a
// tbb::task_arena(4, 0) fed with task_arena::enqueue. That is the pattern
// oneTBB's guide gives for a thread that runs an event loop ("GUI Thread"
// design pattern): the loop fires off a task with task_arena::enqueue, which
// returns at once and runs it on a worker thread, and the task posts an event
// back to the loop when done; here it ends with asio::post(io, ...)
// (bench/peers/asio_driver.hpp). Spawner threads enqueue the same way.
//
// Why these numbers:
//   * 4 = 2 x cores, the size of the other fixed pools here (asio_pool,
//     libuv, glib4). TBB sizes arenas for CPU-bound work (default: the core
//     count); its guide says the scheduler is meant for non-blocking tasks
//     and that blocking ones are best given full-blown threads, so the
//     sleeping tasks of burst and paced are outside what it is built for.
//     TBB's thread pool (the "market") has cores - 1 workers by default, 1
//     here, whatever an arena asks for (TBB warns "The number of workers is
//     currently limited to 1"); tbb::global_control's
//     max_allowed_parallelism is the documented way to change that limit
//     (workers = value - 1), so the peer sets it to 5 while it lives.
//   * 0 slots reserved for external threads: the loop and the spawner threads
//     only enqueue, they never join the arena (task_arena::execute), so all
//     4 slots are for TBB's workers. With the default (1 reserved) the arena
//     would get 3.
// Workers are started on demand and stay for the process's life (an idle
// worker looks for work for a while, then sleeps); TBB has no keep-alive.
//
// Teardown: the destructor releases the arena and calls tbb::finalize on a
// task_scheduler_handle taken at start, which waits for TBB's workers to exit,
// so no task is still inside asio::post when the io_context goes away.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include <new>
#include <utility>

#include "asio_driver.hpp"

namespace {

constexpr int kConcurrency = 4;
constexpr unsigned kReservedSlots = 0;

struct TbbPeer {
  static constexpr bool kHasKeepAlive = false;
  static constexpr const char* name = "tbb";

  TbbPeer(const bench::Params&, bool)
      : limit(tbb::global_control::max_allowed_parallelism, kConcurrency + 1),
        arena(kConcurrency, kReservedSlots),
        handle(tbb::attach{}) {
    arena.initialize();
  }
  TbbPeer(const TbbPeer&) = delete;
  TbbPeer& operator=(const TbbPeer&) = delete;
  ~TbbPeer() {
    arena.terminate();
    (void)tbb::finalize(handle, std::nothrow);
  }

  void reserve(std::uint64_t) {}
  template <class F>
  void submit(std::uint64_t, F&& f) {
    arena.enqueue(std::forward<F>(f));
  }
  void completed(std::uint64_t) {}
  void report(bench::Out& out) {
    out.integer("max_concurrency", arena.max_concurrency());
    out.integer("reserved_slots", kReservedSlots);
    out.integer("max_allowed_parallelism",
                static_cast<long long>(tbb::global_control::active_value(
                    tbb::global_control::max_allowed_parallelism)));
    out.str("tbb_version", TBB_runtime_version());
  }

  tbb::global_control limit;
  tbb::task_arena arena;
  tbb::task_scheduler_handle handle;
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<TbbPeer>(argc, argv); }
