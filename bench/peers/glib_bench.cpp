// GLib GThreadPool peers (GLib 2.74 from Debian's libglib2.0-dev). Built twice
// (bench/CMakeLists.txt):
//
//   glib_bench   BLOCKPOOL_BENCH_GLIB_THREADS=-1: g_thread_pool_new(..., -1,
//                FALSE): unlimited and non-exclusive. A push that finds no
//                thread waiting on the pool's queue starts (or takes from
//                GLib's global pool of unused threads) one more thread, so the
//                pool grows while its threads are busy. For the idle scenario
//                g_thread_pool_set_max_idle_time(Params::keep_alive_ms).
//   glib4_bench  BLOCKPOOL_BENCH_GLIB_THREADS=4: g_thread_pool_new(..., 4,
//                TRUE): exclusive, its 4 threads started by
//                g_thread_pool_new and kept until g_thread_pool_free: a fixed
//                pool, like asio_pool and libuv.
//
// Each task is a heap-allocated callable handed to g_thread_pool_push as the
// task's data; the pool's function runs and deletes it. The task ends with
// asio::post(io, ...) (bench/peers/asio_driver.hpp).
//
// What a non-exclusive thread does when idle (glib/gthreadpool.c): it waits
// up to 1/2 s on its pool's queue, then moves to GLib's global queue of
// unused threads; if 2 (g_thread_pool_set_max_unused_threads' default)
// are already there it exits, otherwise it waits there up to the max idle
// time (default 15 s) for a pool that needs a thread, and exits when that
// runs out.
#include <glib.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "asio_driver.hpp"

#ifndef BLOCKPOOL_BENCH_GLIB_THREADS
#define BLOCKPOOL_BENCH_GLIB_THREADS -1
#endif

namespace {

constexpr int kMaxThreads = BLOCKPOOL_BENCH_GLIB_THREADS;
constexpr bool kUnlimited = kMaxThreads == -1;

struct TaskBase {
  virtual ~TaskBase() = default;
  virtual void run() = 0;
};

template <class F>
struct Task final : TaskBase {
  explicit Task(F&& f) : f_(std::move(f)) {}
  explicit Task(const F& f) : f_(f) {}
  void run() override { f_(); }
  F f_;
};

void run_task(gpointer data, gpointer) {
  auto* t = static_cast<TaskBase*>(data);
  t->run();
  delete t;
}

struct GlibPeer {
  // The unlimited pool retires idle threads; the idle scenario gives it the
  // growing peers' keep-alive as GLib's max idle time.
  static constexpr bool kHasKeepAlive = kUnlimited;
  static constexpr const char* name = kUnlimited ? "glib" : "glib4";

  GlibPeer(const bench::Params& p, bool idle) {
    if (kUnlimited && idle) g_thread_pool_set_max_idle_time(static_cast<guint>(p.keep_alive_ms));
    GError* err = nullptr;
    pool = g_thread_pool_new(run_task, nullptr, kMaxThreads, kUnlimited ? FALSE : TRUE, &err);
    if (err != nullptr) {
      std::printf("{\"peer\":\"%s\",\"ok\":false,\"error\":\"g_thread_pool_new: %s\"}\n", name,
                  err->message);
      std::fflush(stdout);
      std::_Exit(3);
    }
  }
  GlibPeer(const GlibPeer&) = delete;
  GlibPeer& operator=(const GlibPeer&) = delete;
  // Waits for every queued task to finish (immediate = FALSE, wait = TRUE):
  // before the io_context the tasks post to is destroyed.
  ~GlibPeer() { g_thread_pool_free(pool, FALSE, TRUE); }

  void reserve(std::uint64_t) {}
  template <class F>
  void submit(std::uint64_t, F&& f) {
    auto* t = new Task<std::decay_t<F>>(std::forward<F>(f));
    // FALSE only when a thread could not be started; the task is queued
    // anyway and runs on an existing thread. Counted, reported.
    if (!g_thread_pool_push(pool, static_cast<TaskBase*>(t), nullptr))
      push_errors.fetch_add(1, std::memory_order_relaxed);
  }
  void completed(std::uint64_t) {}
  void report(bench::Out& out) {
    out.integer("max_threads", kMaxThreads);
    out.boolean("exclusive", !kUnlimited);
    out.integer("push_errors", static_cast<long long>(push_errors.load()));
    if (kUnlimited) {
      out.integer("max_idle_time_ms", static_cast<long long>(g_thread_pool_get_max_idle_time()));
      out.integer("max_unused_threads", g_thread_pool_get_max_unused_threads());
      out.integer("unused_threads_at_end", g_thread_pool_get_num_unused_threads());
    }
  }

  GThreadPool* pool = nullptr;
  std::atomic<std::uint64_t> push_errors{0};
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<GlibPeer>(argc, argv); }
