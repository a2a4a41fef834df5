// blockpool/join_handle.hpp: the result of spawn_blocking.
//
// A JoinHandle<T> refers to one spawned task. It is move-only; a default
// constructed or moved-from handle is empty (valid() == false), and calling
// anything but valid(), operator bool and the destructor on an empty handle
// throws std::logic_error.
//
// Thread-safety: one handle is used by one thread at a time (like any value).
// The task it refers to runs on a pool thread; the handle's view of the task's
// end is synchronised: once is_finished() returns true (or wait() returns),
// the value or exception is visible to the caller.
//
// Lifetime: the destructor detaches. The task still runs (or stays cancelled);
// its result is destroyed when the task ends. A handle may outlive its pool.
//
// Coroutines: `co_await std::move(handle)` (or `co_await handle`) suspends
// until the task ends and yields what get() would (the value, the task's own
// exception, or JoinError); it consumes the handle like get(), so an lvalue
// handle is empty afterwards. Any coroutine type works: no executor needed.
//
// WHICH THREAD RESUMES THE COROUTINE (plain co_await):
//   * the task had already ended when co_await began: no suspension; the
//     coroutine simply goes on, on the thread that awaited;
//   * the task completes or fails: the pool thread that ran it, right after
//     it ended. The code after co_await then runs ON THAT BLOCKING THREAD,
//     which stays busy (and unavailable to other tasks) until the coroutine
//     next suspends or finishes;
//   * the task is cancelled by abort(): the thread calling abort(), inside
//     that call (abort() returns once the coroutine has suspended again or
//     finished);
//   * the task is cancelled by shutdown: the thread calling shutdown(),
//     shutdown_background() or the pool's destructor, inside that call;
//   * the task ends as a spawn failure (no thread could be created): the
//     thread that tried to create one (normally the pool's controller).
// To resume somewhere else use handle.resume_via(schedule) (below): the
// coroutine is then always resumed by your scheduler, never inline; or await
// through the Asio layer (<blockpool/asio.hpp>), which resumes an
// asio::awaitable on its own executor.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "blockpool/detail/duration.hpp"
#include "blockpool/detail/task.hpp"
#include "blockpool/join_error.hpp"

namespace blockpool {

template <class T>
class JoinHandle;

namespace detail {
struct HandleAccess;
}  // namespace detail

template <class T>
class JoinHandle {
 public:
  using value_type = T;

  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&& other) noexcept
      : task_(std::exchange(other.task_, nullptr)), slot_(std::exchange(other.slot_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      reset();
      task_ = std::exchange(other.task_, nullptr);
      slot_ = std::exchange(other.slot_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return task_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  // Waits for the task to end, then returns its value, rethrows its own
  // exception unchanged, or throws JoinError (cancelled or spawn failure).
  // Consumes the handle: afterwards it is empty.
  T get() {
    check();
    task_->wait();
    JoinHandle self(std::move(*this));  // released when get() returns or throws
    return self.slot_->take();
  }

  // Waits for the task to end without consuming the result.
  void wait() const {
    check();
    task_->wait();
  }

  // Waits at most `d`; true if the task has ended. Any duration is accepted:
  // zero or negative only looks, and a duration too long for the clock
  // (seconds::max(), say) waits without a limit.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    check();
    const std::int64_t now = detail::steady_ns(std::chrono::steady_clock::now());
    return task_->wait_until_ns(detail::saturating_add(now, detail::saturating_ns(d).count()));
  }
  // Waits until `t`; true if the task has ended. A time already past (even
  // time_point::min()) only looks; time_point::max() waits without a limit.
  template <class Duration>
  bool wait_until(std::chrono::time_point<std::chrono::steady_clock, Duration> t) const {
    check();
    return task_->wait_until_ns(detail::steady_ns(t));
  }

  // True once the task has ended: completed, failed or cancelled.
  [[nodiscard]] bool is_finished() const {
    check();
    return task_->is_done();
  }

  // If the task has not started: it never will; the handle ends at once as
  // cancelled (get() throws JoinError, is_cancelled()), the task leaves the
  // queue and its callable is destroyed on this thread. Returns true.
  // If it is running: triggers its std::stop_token (when the callable takes
  // one) and returns false. If it has ended: returns false, unless it had
  // been cancelled, in which case true.
  bool abort() {
    check();
    return task_->abort();
  }

  // After the task ended: its exception (including a JoinError) or null.
  // For adapters that deliver `void(std::exception_ptr, T)`.
  [[nodiscard]] std::exception_ptr exception() const {
    check();
    return task_->is_done() ? slot_->exception() : nullptr;
  }

  // ---- Coroutine support -------------------------------------------------

  // Both awaiters below live in the awaiting coroutine's frame. A coroutine
  // may be destroyed while it is suspended on one of them (a lazy task that
  // is dropped, a structured-concurrency scope that ends early): the
  // awaiter's destructor then takes its continuation back from the task, so
  // that when the task ends later (completes, is aborted, is cancelled by
  // shutdown) nothing touches the destroyed frame. Destroying the frame must
  // not race with the task's end itself: a coroutine that may be resumed on
  // another thread at that very moment cannot be destroyed safely by anyone.

  // Resumes the awaiting coroutine on the thread that ends the task.
  class Awaiter : detail::Continuation {
   public:
    explicit Awaiter(JoinHandle& h) noexcept : handle_(h) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (suspended_) (void)handle_.task_->detach_continuation(this);
    }
    bool await_ready() const { return handle_.is_finished(); }
    bool await_suspend(std::coroutine_handle<> co) {
      coro_ = co;
      fn = &Awaiter::resume;
      // Set before the continuation is published: from then on the finisher
      // may resume (and the coroutine destroy) us on another thread.
      suspended_ = true;
      if (handle_.task_->set_continuation(this)) return true;
      suspended_ = false;  // the task ended meanwhile: go on without suspending
      return false;
    }
    T await_resume() { return handle_.get(); }

   private:
    static void resume(detail::Continuation* c) noexcept {
      auto* self = static_cast<Awaiter*>(c);
      self->suspended_ = false;  // the task is done with us
      self->coro_.resume();
    }
    JoinHandle& handle_;
    std::coroutine_handle<> coro_;
    bool suspended_ = false;  // our continuation is set on the task and not yet run
  };

  // Resumes the awaiting coroutine by calling `schedule(coroutine_handle)`
  // on the thread that ends the task; `schedule` should hand the handle to an
  // executor (post it to an event loop, a queue, ...), which then resumes it.
  template <class Schedule>
  class ViaAwaiter : detail::Continuation {
   public:
    ViaAwaiter(JoinHandle& h, Schedule s) : handle_(h), schedule_(std::move(s)) {}
    ViaAwaiter(const ViaAwaiter&) = delete;
    ViaAwaiter& operator=(const ViaAwaiter&) = delete;
    ~ViaAwaiter() {
      if (suspended_) (void)handle_.task_->detach_continuation(this);
    }
    bool await_ready() const { return false; }  // always resume through schedule_
    void await_suspend(std::coroutine_handle<> co) {
      coro_ = co;
      fn = &ViaAwaiter::resume;
      suspended_ = true;  // before publishing, as in Awaiter
      if (!handle_.task_->set_continuation(this)) {
        suspended_ = false;
        schedule_(co);
      }
    }
    T await_resume() { return handle_.get(); }

   private:
    static void resume(detail::Continuation* c) noexcept {
      auto* self = static_cast<ViaAwaiter*>(c);
      self->suspended_ = false;  // before schedule_: it may resume (and end) the coroutine
      self->schedule_(self->coro_);
    }
    JoinHandle& handle_;
    Schedule schedule_;
    std::coroutine_handle<> coro_;
    bool suspended_ = false;
  };

  Awaiter operator co_await() & noexcept { return Awaiter(*this); }
  Awaiter operator co_await() && noexcept { return Awaiter(*this); }

  // `co_await handle.resume_via([&](std::coroutine_handle<> h){ loop.post(h); })`
  // The coroutine always suspends; `schedule(h)` is called exactly once,
  // on the thread that ends the task (see the list at the top of this file),
  // or on the awaiting thread from within co_await if the task had already
  // ended. The coroutine resumes wherever `schedule` has it resumed, so code
  // after the co_await runs on your executor, never on a blocking thread
  // unless you put it there.
  // Requirements: schedule(h) must not throw and must eventually call
  // h.resume() exactly once. `schedule` itself lives in the coroutine frame:
  // once it has handed `h` over (another thread may resume, and even
  // finish, the coroutine at once), it must not touch its own state again.
  template <class Schedule>
  ViaAwaiter<std::decay_t<Schedule>> resume_via(Schedule&& schedule) {
    check();
    return ViaAwaiter<std::decay_t<Schedule>>(*this, std::forward<Schedule>(schedule));
  }

  // ---- Adapter access (Asio layer, tests) --------------------------------
  detail::TaskBase* task_for_adapter() const noexcept { return task_; }

 private:
  friend struct detail::HandleAccess;

  JoinHandle(detail::TaskBase* task, detail::ResultSlot<T>* slot) noexcept
      : task_(task), slot_(slot) {}

  void check() const {
    if (task_ == nullptr) throw std::logic_error("blockpool: empty JoinHandle");
  }
  void reset() noexcept {
    if (task_ != nullptr) {
      task_->release();
      task_ = nullptr;
      slot_ = nullptr;
    }
  }

  detail::TaskBase* task_ = nullptr;
  detail::ResultSlot<T>* slot_ = nullptr;
};

namespace detail {
// Builds handles from task blocks (used by the pool; not for users).
struct HandleAccess {
  template <class T>
  static JoinHandle<T> make(TaskBase* task, ResultSlot<T>* slot) noexcept {
    return JoinHandle<T>(task, slot);
  }
};
}  // namespace detail

}  // namespace blockpool
