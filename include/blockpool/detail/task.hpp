// blockpool/detail/task.hpp: the task block shared by a pool and a JoinHandle.
//
// Not a public header: included by join_handle.hpp and pool.hpp.
//
// One heap block per spawn holds everything about a task: the callable (stored
// inline whatever its size, moved in once), the result slot, the handle's
// completion state and the queue link. The only other allocation a spawn can
// make is the shared state of a std::stop_source, and only for callables that
// accept a std::stop_token.
//
// Life cycle (TaskBase::state_, low byte):
//
//   kQueued --(worker pops, under the pool lock)--> kRunning --> kCompleted | kFailed
//      |
//      +--(abort(), no lock)--> kAborting --> kCancelling --> kCancelled
//      +--(shutdown, under the pool lock)-------> kCancelled
//      +--(no thread could be created)------------> kFailed (spawn failure)
//
// Exactly one party moves a task out of kQueued (a compare-and-swap), and that
// party is the only one to end it: so every task ends exactly once. kAborting
// is a short transient state: the aborting thread is updating the pool's
// counters (two relaxed atomic operations, no lock, no user code). Whoever
// unlinks such a task from the queue waits for it to leave kAborting before
// letting the pool go, so an aborting thread never touches a pool that is
// being destroyed (see Core::reap_tombstone). The callable is destroyed
// later, in kCancelling, so a destructor that uses the pool cannot deadlock
// against that wait.
//
// Reference counting: a block starts with two references, the JoinHandle's and
// the pool's (queue, then running worker). The last release destroys it. A
// hand-off task (see TaskBase::hand_off_to) has only the pool's, which passes
// to its continuation when it ends.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <climits>
#include <exception>
#include <functional>
#include <new>
#include <stop_token>
#include <system_error>
#include <type_traits>
#include <utility>

#include "blockpool/join_error.hpp"

namespace blockpool::detail {

class Core;

// Task block memory (src/block_cache.cpp): blocks of up to 256 bytes are
// recycled between the threads that free them and the threads that spawn;
// larger ones come from ::operator new. allocate_task_block throws
// std::bad_alloc like operator new.
void* allocate_task_block(std::size_t n);
void free_task_block(void* p, std::size_t n) noexcept;
// Gives back what the process-wide shelf of free blocks holds beyond what it
// keeps when idle (a pool thread calls it when it retires for idleness).
void trim_task_block_cache() noexcept;
// Blocks on the shelf now (for tests).
std::size_t task_block_cache_shelved() noexcept;

enum TaskState : std::uint32_t {
  kQueued = 0,
  kRunning = 1,
  kAborting = 2,    // claimed by abort(); the aborter is updating the pool's counters
  kCancelling = 3,  // the aborter is done with the pool; it is destroying the callable
  kCompleted = 4,
  kFailed = 5,
  kCancelled = 6,
};
inline constexpr std::uint32_t kStateMask = 0xff;
// Set by a thread that sleeps in wait(): the finisher must wake the futex.
inline constexpr std::uint32_t kWaiterBit = 0x100;
// Set at construction for spawn_mandatory_blocking; never changes (every
// transition keeps the bits above kStateMask).
inline constexpr std::uint32_t kMandatoryBit = 0x200;
// Set before submission by hand_off_to(); never changes. The task has one
// reference, the pool's, and ending it passes that reference to its
// continuation (see hand_off_to).
inline constexpr std::uint32_t kHandOffBit = 0x400;
// Set (under the pool lock, only while the state is kQueued) when the task
// waits for room in a full queue (admission control), cleared when it is let
// in. An aborter that claims the task sees it in the state it replaced, and
// so knows the task is not in the queue.
inline constexpr std::uint32_t kAdmissionWaitBit = 0x800;
// The task's lane (0: the default lane): set before the block is shared,
// never changes.
inline constexpr unsigned kLaneShift = 16;
inline constexpr std::uint32_t kLaneMask = 0xffffu << kLaneShift;
// The bits every transition keeps.
inline constexpr std::uint32_t kFixedBits = kMandatoryBit | kHandOffBit | kLaneMask;

inline constexpr bool is_final(std::uint32_t s) noexcept { return (s & kStateMask) >= kCompleted; }

// A one-shot callback run when the task ends, on the thread that ends it (a
// pool thread, or a thread calling abort() or shutdown). It must not block for
// long; coroutine and Asio adapters use it to post a resumption.
struct Continuation {
  void (*fn)(Continuation* self) noexcept = nullptr;
};

struct JoinErrorInfo {
  JoinError::Kind kind = JoinError::Kind::kCancelled;
  JoinError::Reason reason = JoinError::Reason::kAborted;
  std::error_code code;
  [[nodiscard]] JoinError make() const { return JoinError(kind, reason, code); }
};

class TaskBase {
 public:
  struct Ops {
    // Runs the callable once and stores its value or exception; destroys the
    // callable. Returns kCompleted or kFailed; or kCancelled when an adapter
    // finds that nobody can receive the result any more (an Asio operation
    // whose execution context is gone): the callable was then destroyed
    // unrun and an error stored. Never throws.
    std::uint32_t (*run)(TaskBase* self) noexcept;
    // Destroys the callable without running it and stores `error`.
    void (*drop)(TaskBase* self, const JoinErrorInfo& error) noexcept;
    // Destroys the whole block (result included).
    void (*destroy)(TaskBase* self) noexcept;
    // The block's stop source; null (the pointer itself) for callables that
    // do not take a std::stop_token.
    std::stop_source* (*stop)(TaskBase* self) noexcept;
  };

  TaskBase(const Ops* ops, bool mandatory) noexcept
      : ops_(ops), state_{mandatory ? kMandatoryBit : std::uint32_t{kQueued}} {}
  TaskBase(const TaskBase&) = delete;
  TaskBase& operator=(const TaskBase&) = delete;

  void add_ref() noexcept {
    // Relaxed: a new reference is made from an existing one, which already
    // orders everything the new holder may read.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    // Sole owner: nobody else can touch the block any more (see sole_owner),
    // so no read-modify-write is needed. Otherwise acq_rel: the releaser's
    // writes (result consumed, callable destroyed) happen before destroy()
    // on whichever thread drops the last reference.
    if (sole_owner() || refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) ops_->destroy(this);
  }
  // Whether the caller's reference is the only one left. Then it stays so: a
  // reference is only ever made from an existing one, and the one place that
  // makes one for another party (shutdown, for a running stoppable task, from
  // the worker's reference under the pool lock) never does so for a task the
  // caller may call this on without that lock (see run_worker). Acquire pairs
  // with the release in the other holders' fetch_sub: everything they did to
  // the block (an abort, a taken result) is visible once they are gone.
  [[nodiscard]] bool sole_owner() const noexcept {
    return refs_.load(std::memory_order_acquire) == 1;
  }

  [[nodiscard]] std::uint32_t state() const noexcept {
    // Acquire pairs with the release in finish(): seeing a final state makes
    // the stored result visible.
    return state_.load(std::memory_order_acquire) & kStateMask;
  }
  [[nodiscard]] bool is_done() const noexcept { return is_final(state()); }
  [[nodiscard]] bool mandatory() const noexcept {
    // Relaxed: the bit is set before the block is shared and never changes.
    return (state_.load(std::memory_order_relaxed) & kMandatoryBit) != 0;
  }
  [[nodiscard]] bool stoppable() const noexcept { return ops_->stop != nullptr; }

  // Moves kQueued -> `to`, keeping the waiter bit. Returns false if the task
  // has already left kQueued.
  // `prev`, if given, receives the state word it replaced.
  bool claim_from_queued(std::uint32_t to, std::uint32_t* prev = nullptr) noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kStateMask) == kQueued) {
      // acq_rel: acquire so the claimer sees the spawner's writes to the
      // callable (published by the queue lock or by the handle); release so
      // kAborting/kRunning is seen with them.
      if (state_.compare_exchange_weak(s, (s & ~kStateMask) | to, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        if (prev != nullptr) *prev = s;
        return true;
      }
    }
    return false;
  }

  // ---- Lanes and admission control (under the pool lock) ----
  [[nodiscard]] unsigned lane() const noexcept {
    // Relaxed: set before the block is shared, never changes.
    return (state_.load(std::memory_order_relaxed) & kLaneMask) >> kLaneShift;
  }
  // Before the block is shared.
  void set_lane(unsigned lane) noexcept {
    state_.store((state_.load(std::memory_order_relaxed) & ~kLaneMask) | (std::uint32_t{lane} << kLaneShift),
                 std::memory_order_relaxed);
  }
  // Marks a queued task as waiting for room; false if it has left kQueued
  // (aborted meanwhile). Relaxed: the pool lock orders it with the list.
  bool begin_admission_wait() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kStateMask) == kQueued) {
      if (state_.compare_exchange_weak(s, s | kAdmissionWaitBit, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  // Lets a waiting task in; false if it was aborted while it waited.
  bool end_admission_wait() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kStateMask) == kQueued) {
      if (state_.compare_exchange_weak(s, s & ~kAdmissionWaitBit, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  // The worker that pops the task, under the pool lock: moves kQueued ->
  // kRunning, or returns false if an abort got there first. When the pool's
  // reference is the only one left, no handle exists to abort the task (and
  // shutdown, the only other claimer, needs the lock this caller holds), so a
  // plain store suffices instead of the compare-and-swap.
  bool start_from_queued() noexcept {
    if (sole_owner()) {
      const std::uint32_t s = state_.load(std::memory_order_relaxed);
      if ((s & kStateMask) != kQueued) return false;  // aborted before its handle went
      state_.store((s & ~kStateMask) | kRunning, std::memory_order_relaxed);
      return true;
    }
    return claim_from_queued(kRunning);
  }

  // kAborting -> kCancelling, keeping the waiter bit.
  void leave_aborting() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    // Release: the counter updates made in kAborting happen before a reaper
    // that acquires kCancelling goes on to release the pool.
    while (!state_.compare_exchange_weak(s, (s & ~kStateMask) | kCancelling,
                                         std::memory_order_release, std::memory_order_relaxed)) {
    }
  }

  // Ends the task: publishes `final_state` (the result must already be
  // stored), wakes sleeping waiters, then runs the continuation if one is set.
  // For a hand-off task, the continuation now owns the block.
  void finish(std::uint32_t final_state) noexcept;

  // Sets the continuation of a task that no other thread can see yet (built,
  // not yet submitted), so there is no race to lose. Relaxed: submitting
  // publishes it along with the rest of the block.
  void preset_continuation(Continuation* c) noexcept { cont_.store(c, std::memory_order_relaxed); }

  // For a task that no other thread can see yet, and that nothing but the
  // pool will ever end: no JoinHandle, no abort, no stop token. It keeps one
  // reference, the pool's, and whoever ends it (the worker that ran it, or
  // shutdown cancelling it) passes that reference to `c` with the call to
  // c->fn, which then owns the block. Such a task is its pool's sole owner
  // throughout, so the worker starts it with a plain store (see
  // start_from_queued) and finish() needs no read-modify-write. Relaxed:
  // submitting publishes the block.
  void hand_off_to(Continuation* c) noexcept {
    refs_.store(1, std::memory_order_relaxed);
    cont_.store(c, std::memory_order_relaxed);
    state_.store(state_.load(std::memory_order_relaxed) | kHandOffBit, std::memory_order_relaxed);
  }
  [[nodiscard]] bool hands_off() const noexcept {
    // Relaxed: set before the block is shared and never changes.
    return (state_.load(std::memory_order_relaxed) & kHandOffBit) != 0;
  }

  // Ends the task on the pool's behalf (run, cancelled at shutdown, spawn
  // failure) and gives up the pool's reference: released here, or passed to
  // the continuation of a hand-off task.
  void end_for_pool(std::uint32_t final_state) noexcept {
    const bool handed_off = hands_off();  // read first: finish() may pass the block on
    finish(final_state);
    if (!handed_off) release();
  }

  // Runs `c` when the task ends. Returns false (and does not keep `c`) if the
  // task has already ended. At most one continuation per task.
  bool set_continuation(Continuation* c) noexcept {
    Continuation* expected = nullptr;
    // Release publishes *c to the finisher; acquire on failure pairs with the
    // finisher's exchange so the caller then sees the result.
    return cont_.compare_exchange_strong(expected, c, std::memory_order_acq_rel,
                                         std::memory_order_acquire);
  }

  // Takes back a continuation set with set_continuation, before the task
  // ends: true if `c` will not be run. False if the task has ended (or is
  // ending): then the finisher has taken `c` and runs it. Used by an awaiter
  // whose coroutine is destroyed while suspended. Relaxed on success: `c` was
  // never read by anyone; acquire on failure, as for set_continuation.
  bool detach_continuation(Continuation* c) noexcept {
    Continuation* expected = c;
    return cont_.compare_exchange_strong(expected, nullptr, std::memory_order_relaxed,
                                         std::memory_order_acquire);
  }

  void request_stop() noexcept {
    if (ops_->stop != nullptr) ops_->stop(this)->request_stop();
  }

  // Blocking waits (futex based). wait_until_ns takes an absolute
  // steady_clock time in nanoseconds (kNoDeadline: no limit; a time already
  // past: no wait at all); returns true if the task ended.
  static constexpr std::int64_t kNoDeadline = INT64_MAX;
  void wait() noexcept;
  bool wait_until_ns(std::int64_t steady_deadline_ns) noexcept;
  // Sleeps on the futex until the task ends or (unless kNoDeadline) that
  // steady_clock time; true if it ended. Shared by wait and wait_until_ns.
  bool sleep_until_final(std::int64_t steady_deadline_ns) noexcept;

  // Cancels the task if it has not started, exactly like abort(), but leaves
  // a running task alone. Returns true if this call cancelled it.
  bool cancel_if_queued() noexcept;

  // Cancels a task that has not started. Returns true if the task will never
  // run (it was queued, or was already cancelled); false if it is running or
  // ended (a running task's stop token is triggered).
  bool abort() noexcept;

  // ---- Fields used by the pool (src/core.cpp) ----
  TaskBase* next_ = nullptr;  // queue link; guarded by the owning Core's mutex
  Core* core_ = nullptr;      // set at spawn; valid while the task is queued or running
  // When it was spawned, in ticks (detail/ticks.hpp), for its queue wait; 0
  // when the pool records no latency. Written by the spawner before the
  // task is queued, read by the worker that pops it (the pool lock orders them).
  std::uint64_t spawn_ticks_ = 0;
  const char* name_ = nullptr;  // TaskOptions::name (a static string); set before the block is shared

  const Ops* ops_;

 private:
  // 56 bytes in all, so that a block with a small callable stays within the
  // allocator's smallest, cheapest size classes (see TaskImpl).
  std::atomic<std::uint32_t> refs_{2};
  std::atomic<std::uint32_t> state_;  // TaskState | kWaiterBit | kMandatoryBit
  std::atomic<Continuation*> cont_{nullptr};
};

// Where a finished task's outcome lives. T may be void or a move-only type.
template <class T>
class ResultSlot {
 public:
  ResultSlot() noexcept {}
  // Never throws: an exception from T's destructor (a result nobody took,
  // or the moved-from shell left by take()) is swallowed; see reset().
  ~ResultSlot() noexcept { reset(); }
  ResultSlot(const ResultSlot&) = delete;
  ResultSlot& operator=(const ResultSlot&) = delete;

  template <class... A>
  void set_value(A&&... a) {
    ::new (static_cast<void*>(&value_)) T(std::forward<A>(a)...);
    kind_ = kValue;
  }
  void set_exception(std::exception_ptr e) noexcept {
    ::new (static_cast<void*>(&exc_)) std::exception_ptr(std::move(e));
    kind_ = kException;
  }
  void set_error(const JoinErrorInfo& e) noexcept {
    ::new (static_cast<void*>(&err_)) JoinErrorInfo(e);
    kind_ = kError;
  }

  // Precondition: the task ended. Returns the value or throws.
  T take() {
    switch (kind_) {
      case kValue:
        return std::move(value_);
      case kException: {
        // Moved out: the consumer's thread drops the last reference to the
        // exception (when its catch ends), not whichever pool thread happens
        // to destroy the task block later.
        std::exception_ptr e = std::move(exc_);
        std::rethrow_exception(std::move(e));
      }
      case kError:
        throw err_.make();
      default:
        throw std::logic_error("blockpool: result taken twice");
    }
  }
  // Precondition: the task did not complete (an exception or an error is
  // stored). Moves the exception out, as take() does before rethrowing it.
  [[nodiscard]] std::exception_ptr take_exception() noexcept {
    if (kind_ == kException) return std::move(exc_);
    return exception();
  }
  [[nodiscard]] std::exception_ptr exception() const noexcept {
    if (kind_ == kException) return exc_;
    if (kind_ == kError) return std::make_exception_ptr(err_.make());
    return nullptr;
  }
  [[nodiscard]] bool has_value() const noexcept { return kind_ == kValue; }

 private:
  void reset() noexcept {
    switch (kind_) {
      case kValue:
        if constexpr (std::is_nothrow_destructible_v<T>) {
          value_.~T();
        } else {
          // A result type whose destructor may throw (noexcept(false)): the
          // pool destroys results on its own threads or in a handle's
          // destructor, where nobody could catch it. Swallow it rather than
          // std::terminate. A value the user took with get() is theirs, and so
          // is any exception its destructor throws.
          try {
            value_.~T();
          } catch (...) {
          }
        }
        break;
      case kException:
        exc_.~exception_ptr();
        break;
      case kError:
        err_.~JoinErrorInfo();
        break;
      default:
        break;
    }
    kind_ = kNone;
  }
  enum Kind : unsigned char { kNone, kValue, kException, kError };
  Kind kind_ = kNone;
  union {
    T value_;
    std::exception_ptr exc_;
    JoinErrorInfo err_;
  };
};

// void results: the general slot holding an empty value, so the block has
// the same 32-byte slot (a one-byte kind and a union) as any small result.
struct Unit {};
template <>
class ResultSlot<void> : private ResultSlot<Unit> {
  using Base = ResultSlot<Unit>;

 public:
  void set_value() noexcept { Base::set_value(); }
  using Base::exception;
  using Base::has_value;
  using Base::take_exception;
  using Base::set_error;
  using Base::set_exception;
  void take() { (void)Base::take(); }
};

template <class F>
inline constexpr bool kTakesStopToken = std::is_invocable_v<F&, std::stop_token>;

template <class F>
struct TaskResult {
  using type = std::invoke_result_t<F&>;
};
template <class F>
  requires kTakesStopToken<F>
struct TaskResult<F> {
  using type = std::invoke_result_t<F&, std::stop_token>;
};
template <class F>
using task_result_t = typename TaskResult<std::decay_t<F>>::type;

struct NoStop {};

// What a task block holds besides its TaskBase: the stop state (only for
// callables that take a std::stop_token), the result slot and the callable.
// Shared by the pool's own block (TaskImpl) and by blocks that adapters build
// around it (the Asio operation in asio.hpp), so a task runs, fails and is
// dropped the same way whoever owns its block.
template <class F, class R>
class TaskBody {
 public:
  static constexpr bool kStop = kTakesStopToken<F>;

  template <class G>
  explicit TaskBody(G&& g) : fn_(std::forward<G>(g)) {}
  TaskBody(const TaskBody&) = delete;
  TaskBody& operator=(const TaskBody&) = delete;
  ~TaskBody() {}  // fn_ was destroyed by run() or drop()

  ResultSlot<R>& result() noexcept { return result_; }
  std::stop_source* stop_source() noexcept {
    if constexpr (kStop) {
      return &stop_state_;
    } else {
      return nullptr;
    }
  }

  // Runs the callable once, stores its value or exception and destroys it.
  // Returns kCompleted or kFailed.
  std::uint32_t run() noexcept {
    std::uint32_t outcome = kCompleted;
    try {
      if constexpr (std::is_void_v<R>) {
        invoke();
        result_.set_value();
      } else {
        result_.set_value(invoke());
      }
    } catch (...) {
      if (result_.has_value()) {
        // The value is stored; what threw is the destructor of the temporary
        // it was moved from. The task completed: swallow it (see ~ResultSlot).
      } else {
        result_.set_exception(std::current_exception());
        outcome = kFailed;
      }
    }
    fn_.~F();
    return outcome;
  }
  // Destroys the callable without running it and stores `e`.
  void drop(const JoinErrorInfo& e) noexcept {
    fn_.~F();
    result_.set_error(e);
  }

 private:
  decltype(auto) invoke() {
    if constexpr (kStop) {
      return std::invoke(fn_, stop_state_.get_token());
    } else {
      return std::invoke(fn_);
    }
  }

  // Declared (so constructed) before the callable: if allocating the stop
  // state throws, no callable has been constructed that would leak.
  [[no_unique_address]] std::conditional_t<kStop, std::stop_source, NoStop> stop_state_;
  ResultSlot<R> result_;
  // The callable lives in a union so that run()/drop() can end its life as
  // soon as it is no longer needed (captured resources are freed when the
  // task ends, not when the last handle goes).
  union {
    F fn_;
  };
};

// The Ops table of a task block type: a class derived from TaskBase with a
// member `body_` (a TaskBody), a type `Body` and a static
// `destroy_block(Block*)` that frees it (befriend TaskOpsFor<Block>).
template <class Block>
struct TaskOpsFor {
  static std::uint32_t run(TaskBase* b) noexcept { return static_cast<Block*>(b)->body_.run(); }
  static void drop(TaskBase* b, const JoinErrorInfo& e) noexcept {
    static_cast<Block*>(b)->body_.drop(e);
  }
  static void destroy(TaskBase* b) noexcept { Block::destroy_block(static_cast<Block*>(b)); }
  static std::stop_source* stop(TaskBase* b) noexcept {
    return static_cast<Block*>(b)->body_.stop_source();
  }
  static constexpr TaskBase::Ops kOps{&run, &drop, &destroy, Block::Body::kStop ? &stop : nullptr};
};

// The pool's own block: TaskBase, then the body.
template <class F, class R>
class TaskImpl final : public TaskBase {
 public:
  template <class G>
  TaskImpl(G&& g, bool mandatory)
      : TaskBase(&TaskOpsFor<TaskImpl>::kOps, mandatory), body_(std::forward<G>(g)) {}

  ResultSlot<R>& result() noexcept { return body_.result(); }

  // The block's memory: recycled (see allocate_task_block), except for an
  // over-aligned callable, which gets its alignment from ::operator new.
  static void* operator new(std::size_t n) { return allocate_task_block(n); }
  static void operator delete(void* p, std::size_t n) noexcept { free_task_block(p, n); }
  static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
  static void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
    ::operator delete(p, a);  // unsized: clang does not declare sized deallocation by default
  }

 private:
  friend struct TaskOpsFor<TaskImpl>;
  using Body = TaskBody<F, R>;
  static void destroy_block(TaskImpl* self) noexcept { delete self; }

  Body body_;
};

}  // namespace blockpool::detail
