// Qt 6 QThreadPool peers (Qt 6.4 from Debian's qt6-base-dev). Built twice
// (bench/CMakeLists.txt):
//
//   qt_bench     BLOCKPOOL_BENCH_QT_MAX_THREADS=0: a QThreadPool with Qt's
//                defaults: maxThreadCount() = QThread::idealThreadCount() (the
//                core count), expiryTimeout() = 30 s. Within the 2 s idle
//                window it keeps its threads, like the fixed pools.
//   qt128_bench  BLOCKPOOL_BENCH_QT_MAX_THREADS=128: setMaxThreadCount(128).
//                It starts a thread whenever a task finds no thread waiting
//                and fewer than 128 active, so it grows with blocked tasks; for
//                the idle scenario setExpiryTimeout(Params::keep_alive_ms),
//                the growing peers' keep-alive.
//
// The pool is the peer's own QThreadPool (not globalInstance()). No Qt event
// loop and no QCoreApplication: pool threads run QRunnables, and every task
// ends with asio::post(io, ...) to the Asio loop (bench/peers/asio_driver.hpp).
// Each task is one QRunnable subclass holding the callable (autoDelete: the
// pool deletes it after run()): one allocation per task, as for the GLib peer.
#include <QtCore/QRunnable>
#include <QtCore/QThread>
#include <QtCore/QThreadPool>

#include <type_traits>
#include <utility>

#include "asio_driver.hpp"

#ifndef BLOCKPOOL_BENCH_QT_MAX_THREADS
#define BLOCKPOOL_BENCH_QT_MAX_THREADS 0
#endif

namespace {

constexpr int kMaxThreads = BLOCKPOOL_BENCH_QT_MAX_THREADS;  // 0: Qt's default
constexpr bool kGrowing = kMaxThreads != 0;

template <class F>
class Task final : public QRunnable {
 public:
  explicit Task(F&& f) : f_(std::move(f)) {}
  explicit Task(const F& f) : f_(f) {}
  void run() override { f_(); }

 private:
  F f_;
};

struct QtPeer {
  static constexpr bool kHasKeepAlive = kGrowing;
  static constexpr const char* name = kGrowing ? "qt128" : "qt";

  QtPeer(const bench::Params& p, bool idle) {
    if (kGrowing) {
      pool.setMaxThreadCount(kMaxThreads);
      if (idle) pool.setExpiryTimeout(static_cast<int>(p.keep_alive_ms));
    }
  }
  // ~QThreadPool waits for every task (waitForDone) before the io_context the
  // tasks post to is destroyed.

  void reserve(std::uint64_t) {}
  template <class F>
  void submit(std::uint64_t, F&& f) {
    pool.start(new Task<std::decay_t<F>>(std::forward<F>(f)));
  }
  void completed(std::uint64_t) {}
  void report(bench::Out& out) {
    out.integer("max_threads", pool.maxThreadCount());
    out.integer("expiry_timeout_ms", pool.expiryTimeout());
    out.integer("ideal_thread_count", QThread::idealThreadCount());
  }

  QThreadPool pool;
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<QtPeer>(argc, argv); }
