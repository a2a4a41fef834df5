// blockpool/pool.hpp: the blocking pool and its spawner handle.
//
// A Pool runs blocking or CPU-heavy callables on a set of threads that grows
// on demand up to max_threads and shrinks as threads stay idle for
// keep_alive.
//
//   blockpool::Pool pool;                                  // no threads yet
//   auto h = pool.spawn_blocking([] { return read_file("x"); });
//   std::string s = h.get();                               // or co_await, or Asio
//
// Spawning
//   * spawn_blocking(f) queues f and returns a JoinHandle<R> at once. It never
//     blocks for load and never throws for load; it throws only what
//     allocating the task throws (std::bad_alloc), and then nothing was
//     spawned.
//   * f may take a std::stop_token: it is triggered by JoinHandle::abort() on
//     the running task and by shutdown (non-mandatory tasks only).
//   * Tasks start in submission order (one FIFO queue for the pool). An idle
//     thread is reused first, the most recently idle one. When every thread is
//     busy and no queued task has started for a short grace period (a quarter
//     of a millisecond), the pool adds threads, doubling while the stall
//     lasts, up to max_threads; at the cap tasks wait in the queue. A flood of
//     short tasks that the threads keep up with adds no thread.
//   * Threads are created outside any lock, by a small growth-controller
//     thread that exists exactly while the pool has workers: a spawn on an
//     empty pool creates the controller, then the first worker; it never
//     waits for a thread to start. A thread the OS refuses is retried by the
//     controller with a backoff (1 ms doubling to 1 s) while tasks wait for
//     the workers that exist; with no worker (the controller or the first
//     worker refused) queued tasks end as spawn failures (JoinError).
//   * Pool threads block asynchronous signals (SIGINT, SIGTERM, ...), which
//     go to the application's threads; synchronous ones a task raises
//     (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) reach its handlers.
//   * Memory: at most one heap allocation per spawn holds the callable (any
//     size, stored inline), the result and the handle's state. Blocks of up to
//     248 bytes (callables capturing up to ~200 bytes) are recycled between
//     the pool's threads and the spawning threads, so a steady stream of small
//     spawns allocates almost nothing. A callable that takes a std::stop_token
//     costs one more allocation (the stop state).
//
// Shutdown (first call acts; the destructor calls shutdown() with no limit)
//   * Queued non-mandatory tasks are cancelled at once; queued mandatory tasks
//     still run; running tasks are not interrupted, but their stop tokens are
//     triggered (non-mandatory ones); spawns after shutdown began are
//     cancelled, mandatory or not.
//   * shutdown(timeout) returns true as soon as every thread has exited and
//     been joined, or false after `timeout`. Threads that outlive it exit when
//     their task returns; a later shutdown() or the destructor waits for and
//     joins them.
//   * Called from one of the pool's own tasks, shutdown and the destructor do
//     not wait for the calling thread (they would deadlock); that thread
//     exits and is cleaned up when its task returns.
//
// Thread-safety: every member of Pool and Handle may be called from any thread
// concurrently, except that moving or destroying a Pool must not race with
// other calls on the same Pool object. Handle is a cheap copyable reference;
// it stays safe to use after the Pool is gone (spawns are then cancelled).
#pragma once

#include <chrono>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include <string>

#include "blockpool/builder.hpp"
#include "blockpool/detail/duration.hpp"
#include "blockpool/detail/task.hpp"
#include "blockpool/join_handle.hpp"
#include "blockpool/metrics.hpp"
#include "blockpool/task_options.hpp"

namespace blockpool {

class Pool;
class Handle;

namespace detail {
class Core;
// Hands a freshly built task (two references) to the pool. Never throws. On
// a full queue the task ends at once as rejected (JoinError::is_rejected).
void submit(Core* core, TaskBase* task) noexcept;
// The same, but on a full queue the task waits, without blocking the caller,
// until there is room (admission control for the Asio layer); it is then
// queued in the order it arrived. Cancelled if shutdown begins first.
void submit_or_wait(Core* core, TaskBase* task) noexcept;
Metrics metrics(const Core* core);
// The index of the lane named `name`; throws std::invalid_argument if the
// pool has no such lane.
unsigned lane_index(const Core* core, const std::string& name);

template <class F>
using spawn_result_t = task_result_t<F>;

// The pool behind a Pool or Handle, for adapters that build their own task
// blocks (asio.hpp) and hand them to submit(). Null for an empty Handle.
// lane(): the lane a Handle spawns into (0 for a Pool).
struct PoolAccess {
  static Core* core(const Pool& pool);
  static Core* core(const Handle& handle);
  static unsigned lane(const Pool&) noexcept { return 0; }
  static unsigned lane(const Handle& handle) noexcept;
};

template <class F>
JoinHandle<spawn_result_t<F>> spawn(Core* core, unsigned lane, F&& f, bool mandatory, const TaskOptions& options) {
  using Fn = std::decay_t<F>;
  using R = spawn_result_t<F>;
  static_assert(std::is_invocable_v<Fn&> || kTakesStopToken<Fn>,
                "blockpool: the callable must be invocable with no arguments or with a "
                "std::stop_token");
  static_assert(std::is_move_constructible_v<Fn>, "blockpool: the callable must be movable");
  auto* task = new TaskImpl<Fn, R>(std::forward<F>(f), mandatory);
  task->core_ = core;
  task->set_lane(lane);
  task->name_ = options.name;
  JoinHandle<R> handle = HandleAccess::make<R>(task, &task->result());
  submit(core, task);
  return handle;
}
}  // namespace detail

class Pool {
 public:
  // A pool with the default configuration (see builder.hpp).
  Pool();
  // A pool with a validated configuration (Builder::build() is the usual way).
  explicit Pool(Config config);

  Pool(Pool&& other) noexcept;
  Pool& operator=(Pool&& other) noexcept;  // shuts this pool down first
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  template <class F>
  JoinHandle<detail::spawn_result_t<F>> spawn_blocking(F&& f, const TaskOptions& options = {}) {
    return detail::spawn(core(), 0, std::forward<F>(f), false, options);
  }
  // Like spawn_blocking, but once queued the task runs even if shutdown
  // begins before it starts (shutdown waits for it). Never rejected by a
  // full queue (it may exceed max_queued).
  template <class F>
  JoinHandle<detail::spawn_result_t<F>> spawn_mandatory_blocking(F&& f, const TaskOptions& options = {}) {
    return detail::spawn(core(), 0, std::forward<F>(f), true, options);
  }

  [[nodiscard]] Handle handle() const;
  // A Handle that spawns into the lane `name` (lane.hpp). Throws
  // std::invalid_argument if the pool declared no such lane.
  [[nodiscard]] Handle lane(const std::string& name) const;
  [[nodiscard]] Metrics metrics() const { return detail::metrics(core()); }

  // See "Shutdown" above. Returns true if every thread has exited (and been
  // joined; when called from a pool thread: every other thread). Any duration
  // type is accepted: zero or negative does not wait, and one too long for
  // nanoseconds (seconds::max(), say) waits without a limit.
  bool shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  template <class Rep, class Period>
  bool shutdown(std::chrono::duration<Rep, Period> timeout) {
    return shutdown(detail::saturating_ns(timeout));
  }
  // Begins shutdown and returns at once.
  void shutdown_background();

 private:
  friend struct detail::PoolAccess;
  detail::Core* core() const;
  std::shared_ptr<detail::Core> core_;
};

class Handle {
 public:
  Handle() = default;  // empty: every spawn yields a cancelled handle

  template <class F>
  JoinHandle<detail::spawn_result_t<F>> spawn_blocking(F&& f, const TaskOptions& options = {}) const {
    return detail::spawn(core(), lane_, std::forward<F>(f), false, options);
  }
  template <class F>
  JoinHandle<detail::spawn_result_t<F>> spawn_mandatory_blocking(F&& f, const TaskOptions& options = {}) const {
    return detail::spawn(core(), lane_, std::forward<F>(f), true, options);
  }
  [[nodiscard]] Metrics metrics() const { return detail::metrics(core()); }

 private:
  friend class Pool;
  friend struct detail::PoolAccess;
  Handle(std::shared_ptr<detail::Core> core, unsigned lane) noexcept : core_(std::move(core)), lane_(lane) {}
  detail::Core* core() const;
  std::shared_ptr<detail::Core> core_;
  unsigned lane_ = 0;  // the lane spawns go to (0: the default lane)
};

namespace detail {
inline Core* PoolAccess::core(const Pool& pool) { return pool.core(); }
inline Core* PoolAccess::core(const Handle& handle) { return handle.core(); }
inline unsigned PoolAccess::lane(const Handle& handle) noexcept { return handle.lane_; }
}  // namespace detail

}  // namespace blockpool
