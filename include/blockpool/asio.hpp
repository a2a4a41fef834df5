// blockpool/asio.hpp: spawn_blocking as an Asio asynchronous operation.
//
//   #include <blockpool/asio.hpp>
//
//   // in an asio::awaitable<> coroutine:
//   std::string text = co_await blockpool::async_spawn_blocking(
//       pool, [path] { return read_file(path); }, asio::use_awaitable);
//
// Needs standalone Asio 1.22 or later (the CMake target blockpool::asio adds
// the include path and, for clang, the defines that switch on Asio's
// coroutine support). Everything else in blockpool works without Asio.
//
// async_spawn_blocking(pool_or_handle, f, token)
//   * pool_or_handle: a blockpool::Pool or a blockpool::Handle. The operation
//     keeps a Handle (never a reference to the Pool), so a deferred or lazily
//     started operation (asio::experimental::deferred, asio::use_awaitable)
//     may outlive the Pool object: it then completes as cancelled.
//   * f: what Pool::spawn_blocking accepts (moved or copied into the task); it
//     may take a std::stop_token, which cancellation triggers (see below).
//   * The task is spawned when the operation is initiated: at once for
//     callbacks and asio::use_future, when awaited for asio::use_awaitable,
//     when launched for deferred.
//   * Initiation throws only what allocating the operation or the task
//     throws (std::bad_alloc); then nothing was spawned.
//
// Completion signature, R = the callable's return type:
//   * R is void:                        void(std::exception_ptr)
//   * R is default-constructible:       void(std::exception_ptr, R)
//   * R is not default-constructible:   void(std::exception_ptr, std::optional<R>)
//   (blockpool::asio_value_t<R> names the second argument's type). On success
//   the exception_ptr is null and the value is the callable's result (moved;
//   move-only types are fine). On failure the exception_ptr holds the
//   callable's own exception unchanged, or a blockpool::JoinError (cancelled,
//   spawn failure), and the value is R{} (or an empty optional). With
//   asio::use_awaitable and asio::use_future the exception is thrown and the
//   value returned; with asio::experimental::as_tuple you get both.
//
// Where the completion runs
//   * Always on the handler's associated executor, through asio::post: never
//     inline in the initiating call (even when the task has already ended,
//     e.g. on a pool that is shutting down) and never on a blocking thread.
//   * There is no I/O object here, so a handler with no associated executor
//     gets Asio's default, asio::system_executor: a plain callback then runs
//     on one of Asio's system_context threads (a hidden thread pool). Give it
//     the executor you want with asio::bind_executor(io_context_or_strand, cb).
//     With asio::use_awaitable the associated executor is the coroutine's, so
//     the coroutine resumes on its own executor. asio::use_future completes
//     on the system executor, which is what a std::future wants.
//   * Until it completes, the operation holds outstanding work on that
//     executor (execution::outstanding_work.tracked, or executor_work_guard
//     for old-style executors), so io_context::run() does not return while a
//     task is still running. Keep the executor's context alive until then.
//   * One block per operation holds both the pool's task (callable, result)
//     and the operation state (handler, work on its executor); there is no
//     JoinHandle. The handler's associated allocator allocates it and,
//     through asio::post, the posted completion (but see batching below). A
//     handler with no allocator of its own (std::allocator) gets the block
//     from the pool's task-block cache instead, like any spawn: recycled, no
//     malloc per operation in a steady stream.
//   * Batching: when the associated executor is an io_context's own executor
//     (asio::bind_executor(io_context, cb), or an asio::any_io_executor that
//     wraps one, as coroutines co_spawn'ed on an io_context have), results
//     that arrive together are delivered together: one function is posted to
//     the io_context per batch and runs the completions one after another, in
//     the order their tasks ended. Each handler still runs on that io_context,
//     never inline in the initiating call. A loop that receives many results
//     pays one post and at most one wake-up per batch (measured: ~20% more
//     operations per second on a flood of short tasks). If a handler throws,
//     the exception leaves io_context::run() as usual and the rest of the
//     batch runs later; if the io_context is destroyed first, the pending
//     handlers are destroyed unrun. Strands and other executors are posted
//     to one operation at a time.
//
// Cancellation (the handler's associated cancellation slot)
//   * terminal or partial: a task that has not started never runs: it leaves
//     the queue and the operation completes at once (posted, as always) with a
//     cancelled JoinError. A task that is running gets its std::stop_token
//     triggered (when the callable takes one); the operation completes when
//     the callable returns, with whatever it returned or threw.
//   * total only: a task that has not started never runs and the operation
//     completes with a cancelled JoinError, as above; a running task is left
//     alone (no stop request), since total cancellation promises that a
//     cancelled operation had no observable effect.
//   * asio::use_awaitable coroutines pass terminal cancellation by default, so
//     `co_await (async_spawn_blocking(...) || timer.async_wait(...))` from
//     asio::experimental::awaitable_operators stops a stoppable task when the
//     timer wins. Cancellation signals must be emitted on the handler's
//     executor (as Asio requires of every slot): the operation clears its slot
//     there when it completes.
//
// Memory and threads: the completion is posted from the thread that ends the
// task (a pool thread, or the thread calling abort/shutdown, e.g. the one
// emitting cancellation). If posting fails to allocate, std::terminate is
// called (the post happens in a noexcept context).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/execution.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/system_executor.hpp>
#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "blockpool/detail/task.hpp"
#include "blockpool/join_handle.hpp"
#include "blockpool/pool.hpp"

namespace blockpool {

// The second argument of the completion signature for a task returning R
// (R not void): R itself if default-constructible, else std::optional<R>.
template <class R>
using asio_value_t = std::conditional_t<std::is_default_constructible_v<R>, R, std::optional<R>>;

namespace detail::asio_adapter {

template <class R>
struct Signature {
  using type = void(std::exception_ptr, asio_value_t<R>);
};
template <>
struct Signature<void> {
  using type = void(std::exception_ptr);
};
template <class F>
using signature_t = typename Signature<spawn_result_t<F>>::type;

// Outstanding work on `ex` for as long as the returned object lives.
template <class Ex>
auto track_work(const Ex& ex) {
  if constexpr (::asio::execution::is_executor<Ex>::value) {
    return ::asio::prefer(ex, ::asio::execution::outstanding_work.tracked);
  } else {
    return ::asio::executor_work_guard<Ex>(ex);
  }
}

// Forwards a cancellation request to the task. Lives in the slot's own
// storage; the operation clears the slot before it goes away.
struct CancelHandler {
  TaskBase* task;
  void operator()(::asio::cancellation_type_t type) const noexcept {
    const auto wanted = ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial;
    if ((type & wanted) != ::asio::cancellation_type::none) {
      task->abort();  // not started: never runs; running: stop requested
    } else if ((type & ::asio::cancellation_type::total) != ::asio::cancellation_type::none) {
      (void)task->cancel_if_queued();  // only if that leaves no observable effect
    }
  }
};

// Whether moving a handler cannot throw. asio::executor_binder does not
// declare its move constructor noexcept, but it only moves its executor and
// its target: it cannot throw when neither can.
template <class H>
struct NothrowMovable : std::is_nothrow_move_constructible<H> {};
template <class T, class Ex>
struct NothrowMovable<::asio::executor_binder<T, Ex>>
    : std::bool_constant<NothrowMovable<T>::value && std::is_nothrow_move_constructible_v<Ex>> {};

// ---- Completion batching (handlers that run on an io_context) -------------
//
// An operation whose handler runs on an io_context's own executor (directly,
// or through an any_io_executor wrapping it, as asio::use_awaitable
// coroutines spawned on an io_context have) does not post its completion by
// itself. The thread that ends its task pushes it onto a lock-free list kept
// for that io_context, and only the push that finds the list empty posts a
// Drain. The drain, on the io_context, takes the whole list and runs the
// completions in the order the tasks ended. A loop that receives many results
// then pays one post, and one wake-up, per batch rather than per task.
//
// Invariant: while a list is not empty, exactly one drain that has not yet
// taken it is posted (the one posted by whoever pushed onto the empty list;
// a drain takes the list once, when it starts). So an operation pushed onto
// an empty list cannot complete before its pusher has posted the drain.
struct Batched : Continuation {
  struct Ops {
    void (*complete)(Batched*);           // runs the handler; may throw
    void (*destroy)(Batched*) noexcept;   // frees it unrun
  };
  Batched* batch_next = nullptr;
  const Ops* batch_ops = nullptr;
};

// A list per io_context, found by the context's address in a fixed table:
// lookups are lock-free, an entry is claimed once and never released (a
// context that is destroyed leaves its entry, empty, to any later context at
// the same address). With the table full, operations post one by one.
struct BatchList {
  std::atomic<::asio::io_context*> context{nullptr};  // set once, never changed
  std::atomic<Batched*> head{nullptr};
};
inline constexpr std::size_t kBatchLists = 64;
inline BatchList g_batch_lists[kBatchLists];

// How many pushes in a row this thread has made onto one list without
// finding it empty: how far behind that loop is, as this thread sees it (a
// drain empties the list; the next push finds it so and starts again from 0).
// Thread-local, so keeping it costs the pushers no shared write.
struct PushRun {
  const void* list = nullptr;
  std::uint32_t pushes = 0;
};
inline thread_local PushRun t_push_run;

inline BatchList* batch_list_for(::asio::io_context* context) noexcept {
  for (BatchList& l : g_batch_lists) {
    ::asio::io_context* key = l.context.load(std::memory_order_acquire);
    if (key == nullptr) {
      if (l.context.compare_exchange_strong(key, context, std::memory_order_acq_rel,
                                            std::memory_order_acquire))
        return &l;
      // Lost the race for this entry: `key` is the winner's context.
    }
    if (key == context) return &l;
  }
  return nullptr;
}

// The io_context behind an executor, or null if it is not (directly or
// wrapped in an any_io_executor) an io_context's own executor.
template <class Ex>
::asio::io_context* io_context_of(const Ex& ex) noexcept {
  if constexpr (std::is_same_v<Ex, ::asio::io_context::executor_type>) {
    return &ex.context();
  } else if constexpr (std::is_same_v<Ex, ::asio::any_io_executor>) {
    const auto* io = ex.template target<::asio::io_context::executor_type>();
    return io != nullptr ? &io->context() : nullptr;
  } else {
    return nullptr;
  }
}

// Runs, in order, a chain of operations linked through batch_next: either the
// whole of a list (taken when the drain starts) or, after a handler threw,
// what was left of a chain. Destroyed unrun (its io_context shutting down),
// it destroys the operations it owns.
class Drain {
 public:
  Drain(::asio::io_context& io, BatchList* list) noexcept : io_(&io), list_(list) {}
  Drain(::asio::io_context& io, Batched* chain) noexcept : io_(&io), chain_(chain) {}
  Drain(Drain&& other) noexcept
      : io_(other.io_),
        list_(std::exchange(other.list_, nullptr)),
        chain_(std::exchange(other.chain_, nullptr)) {}
  Drain& operator=(Drain&&) = delete;
  ~Drain() {
    Batched* b = take();
    while (b != nullptr) {
      Batched* next = b->batch_next;
      b->batch_ops->destroy(b);
      b = next;
    }
  }

  void operator()() {
    Batched* b = take();
    while (b != nullptr) {
      Batched* next = b->batch_next;
      try {
        b->batch_ops->complete(b);
      } catch (...) {
        // A handler threw: it propagates out of io_context::run(), as from
        // any handler; the rest of the batch completes in a drain of its own.
        if (next != nullptr) ::asio::post(io_->get_executor(), Drain(*io_, next));
        throw;
      }
      b = next;
    }
  }

 private:
  // The operations this drain owns, oldest first. Acquire pairs with the
  // release of the pushes, so the operations' state is visible.
  Batched* take() noexcept {
    if (list_ != nullptr) {
      Batched* b = std::exchange(list_, nullptr)->head.exchange(nullptr, std::memory_order_acquire);
      Batched* oldest_first = nullptr;
      while (b != nullptr) {
        Batched* next = b->batch_next;
        b->batch_next = oldest_first;
        oldest_first = b;
        b = next;
      }
      return oldest_first;
    }
    return std::exchange(chain_, nullptr);
  }

  ::asio::io_context* io_;
  BatchList* list_ = nullptr;
  Batched* chain_ = nullptr;
};

// The operation: one block that is both the pool's task and the Asio
// operation state. It holds the task (TaskBase and body: callable, stop
// state, result), the handler and the work held on the handler's executor
// (the executor and the cancellation slot are read from the handler when
// needed). Allocated with the handler's associated
// allocator (a handler without one gets the pool's recycled task-block
// memory), so an operation costs one allocation, and no JoinHandle.
//
// Lifetime. The block is its own continuation, set before it is submitted.
//   * Cancellable (a connected cancellation slot) or stoppable (a callable
//     taking a std::stop_token): two references, as for any task, the pool's
//     (queue, then the worker that runs it) and the operation's. When the
//     task ends (run, aborted, cancelled at shutdown), the thread that ends it
//     passes the operation's reference to a posted Completion or a Drain.
//   * Otherwise nothing but the pool can end the task, and it is a hand-off
//     task (TaskBase::hand_off_to): one reference, the pool's, passed the
//     same way when the task ends.
// That reference is dropped on the handler's executor just before the
// handler runs, or when a dying execution context destroys the completion
// unrun. The handler and the work are destroyed there too; only the memory
// may outlive them, until the pool drops its own reference.
template <class Fn, class R, class Handler>
class OpTask final : public TaskBase, public Batched {
 public:
  using executor_type = ::asio::associated_executor_t<Handler, ::asio::system_executor>;
  using allocator_type = ::asio::associated_allocator_t<Handler>;
  using slot_type = ::asio::associated_cancellation_slot_t<Handler>;

  template <class H, class F>
  static void start(H&& handler, Core* core, F&& f) {
    OpAlloc alloc(::asio::get_associated_allocator(handler));
    OpTask* op = allocate(alloc);
    try {
      ::new (static_cast<void*>(op)) OpTask(std::forward<H>(handler), alloc, std::forward<F>(f));
    } catch (...) {
      deallocate(alloc, op);
      throw;
    }
    op->core_ = core;
    // Both go in before the pool can see the task: from submit() on, it may
    // end (and its completion run) on another thread at any moment, so `op`
    // must not be touched after.
    if (slot_type slot = op->slot(); slot.is_connected()) {
      try {
        // May allocate the slot's handler memory (std::bad_alloc).
        slot.template emplace<CancelHandler>(CancelHandler{op});
      } catch (...) {
        op->discard_unsubmitted();  // nothing was spawned
        throw;
      }
      op->preset_continuation(op);
    } else if constexpr (Body::kStop) {
      op->preset_continuation(op);  // shutdown references a running stoppable task
    } else {
      // Nothing but the pool can end this task: one reference, passed to
      // on_end (see TaskBase::hand_off_to). The worker then starts and ends
      // it without a read-modify-write on the block.
      op->hand_off_to(op);
    }
    submit(core, op);
  }

 private:
  using OpAlloc = typename std::allocator_traits<allocator_type>::template rebind_alloc<OpTask>;
  using Work = decltype(track_work(std::declval<const executor_type&>()));

  // The posted function object: owns the operation's reference until it runs.
  class Completion {
   public:
    using executor_type = typename OpTask::executor_type;
    using allocator_type = typename OpTask::allocator_type;

    explicit Completion(OpTask* op) noexcept : op_(op) {}
    Completion(Completion&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    Completion& operator=(Completion&&) = delete;
    ~Completion() {
      if (op_ != nullptr) op_->abandon();  // discarded unrun (context destroyed)
    }
    executor_type get_executor() const noexcept { return op_->executor(); }
    allocator_type get_allocator() const noexcept {
      return ::asio::get_associated_allocator(op_->handler_);
    }
    void operator()() { std::exchange(op_, nullptr)->complete(); }

   private:
    OpTask* op_;
  };

  template <class H, class F>
  OpTask(H&& handler, const OpAlloc& alloc, F&& f)
      : TaskBase(&TaskOpsFor<OpTask>::kOps, /*mandatory=*/false),
        alloc_(alloc),
        handler_(std::forward<H>(handler)),
        work_(track_work(executor())),
        batch_(batch_list_of(executor())),
        // The list records its io_context: no second lookup from the executor.
        spawned_on_loop_(batch_ != nullptr && batch_->context.load(std::memory_order_relaxed)
                                                   ->get_executor()
                                                   .running_in_this_thread()),
        body_(std::forward<F>(f)) {
    // The body is constructed last: a callable that throws while moved or
    // copied in leaves nothing behind. The members above are destroyed by
    // the unwinding, the handler and the work included: unlike a destructor,
    // a constructor's unwinding destroys variant (union) members whose
    // initialization completed ([except.ctor]). The tests
    // CallableWhoseCopyThrows / HandlerWhoseCopyThrows check it.
    Continuation::fn = &OpTask::on_end;
    batch_ops = &kBatchOps;
  }
  // The handler and the work are gone (complete or abandon); the body's
  // callable was destroyed when the task ran or was dropped.
  ~OpTask() {}

  // On the thread that ends the task. Posting never runs the handler inline.
  // The posted completion may run (and release the operation's work) on
  // another thread before post() has returned here, and an io_context is
  // free to stop and be destroyed once its work runs out. So this thread
  // holds work of its own until post() is done with the execution context.
  static void on_end(Continuation* c) noexcept {
    OpTask* op = static_cast<OpTask*>(static_cast<Batched*>(c));
    if (BatchList* list = op->batch_) {
      // Batched (see Drain). Release publishes the operation to the drain.
      // Relaxed: an entry's context never changes once claimed.
      ::asio::io_context* io = list->context.load(std::memory_order_relaxed);
      PushRun& run = t_push_run;
      if (run.list != list) run = PushRun{list, 0};
      Batched* item = op->spawned_on_loop_ && run.pushes >= kCompactAfter ? op->compact() : op;
      Batched* head = list->head.load(std::memory_order_relaxed);
      do {
        item->batch_next = head;
      } while (!list->head.compare_exchange_weak(head, item, std::memory_order_release,
                                                 std::memory_order_relaxed));
      run.pushes = head == nullptr ? 0 : run.pushes + 1;
      if (head != nullptr) return;  // the pending drain takes it; `op` is not ours any more
      // The list was empty, so no drain can complete `op` (and release its
      // work) before the one posted here: the context is alive. Hold work of
      // our own while posting, since that drain may run (and the context stop)
      // before post() returns.
      [[maybe_unused]] const auto posting_work = track_work(io->get_executor());
      ::asio::post(io->get_executor(), Drain(*io, list));
      return;
    }
    [[maybe_unused]] const auto posting_work = track_work(op->executor());
    ::asio::post(Completion(op));  // the operation's reference belongs to the completion now
  }

  // On the handler's executor, once. The task has ended: the acquire in
  // state() pairs with finish()'s release (and the push or post that brought
  // us here happened after it).
  void complete() {
    clear_slot();
    std::exception_ptr error;
    if constexpr (std::is_void_v<R>) {
      if (state() != kCompleted) error = body_.result().take_exception();
      Handler handler = take_handler();
      std::move(handler)(std::move(error));
    } else {
      asio_value_t<R> value{};
      if (state() == kCompleted) {
        try {
          value = asio_value_t<R>(body_.result().take());
        } catch (...) {
          error = std::current_exception();  // moving the value out threw
        }
      } else {
        error = body_.result().take_exception();
      }
      Handler handler = take_handler();
      std::move(handler)(std::move(error), std::move(value));
    }
  }

  // A loop that spawns a flood of operations from one of its own handlers
  // cannot run a single completion until that handler returns: each
  // operation's whole block would wait for it, and none of its spawns could
  // reuse one (measured: 200,000 blocks, 51 MB of fresh memory, half the
  // flood's rate). So for an operation spawned on the thread running its
  // io_context, once the thread ending it has pushed kCompactAfter completions
  // in a row onto that loop's list without finding it empty, that thread
  // moves what the completion needs (the handler, the work, the outcome) into
  // a small node and frees the block here, for the spawner to reuse. Spawns
  // from other threads are left alone: there the loop is merely busy, and
  // compacting cost the contended benchmark 14%. Only where nothing can throw
  // or fail: blocks from the task-block cache, nothrow moves, a successful
  // allocation; otherwise the block itself waits.
  static constexpr std::uint32_t kCompactAfter = 256;
  using Outcome = std::conditional_t<std::is_void_v<R>, Unit, asio_value_t<R>>;
  static constexpr bool compactible() noexcept {
    return kCachedMemory && NothrowMovable<Handler>::value &&
           std::is_nothrow_move_constructible_v<Work> &&
           (std::is_void_v<R> || (std::is_nothrow_move_constructible_v<R> &&
                                  std::is_nothrow_move_constructible_v<Outcome> &&
                                  std::is_nothrow_default_constructible_v<Outcome>));
  }

  class Compact final : public Batched {
   public:
    Compact(Handler&& h, Work&& w, std::exception_ptr e, Outcome&& v) noexcept
        : handler_(std::move(h)), work_(std::move(w)), error_(std::move(e)), value_(std::move(v)) {
      batch_ops = &kOps;
    }

   private:
    static void complete(Batched* b) {
      auto* self = static_cast<Compact*>(b);
      Handler handler(std::move(self->handler_));
      std::exception_ptr error = std::move(self->error_);
      Outcome value = std::move(self->value_);
      release_node(self);  // before the upcall, the work included, as for the operation
      if constexpr (std::is_void_v<R>) {
        std::move(handler)(std::move(error));
      } else {
        std::move(handler)(std::move(error), std::move(value));
      }
    }
    static void release_node(Compact* self) noexcept {
      self->~Compact();
      free_task_block(self, sizeof(Compact));
    }
    static constexpr Batched::Ops kOps{&Compact::complete,
                                       [](Batched* b) noexcept { release_node(static_cast<Compact*>(b)); }};

    Handler handler_;
    Work work_;
    std::exception_ptr error_;
    Outcome value_;
  };

  // The value to hand over (a default one when the task did not complete).
  // Constructions only, all nothrow for a compactible operation.
  Outcome take_outcome(bool completed) noexcept {
    if constexpr (std::is_void_v<R>) {
      return Unit{};
    } else {
      return completed ? Outcome(body_.result().take()) : Outcome();
    }
  }

  // On the thread that ended the task, which owns the block (on_end). Returns
  // the node to push instead of the operation, or the operation itself.
  Batched* compact() noexcept {
    if constexpr (compactible()) {
      if (!hands_off()) return this;  // a cancellable or stoppable operation is shared
      void* mem = nullptr;
      try {
        mem = allocate_task_block(sizeof(Compact));
      } catch (...) {
        return this;
      }
      const bool completed = state() == kCompleted;
      std::exception_ptr error = completed ? nullptr : body_.result().take_exception();
      Batched* node = ::new (mem) Compact(std::move(handler_), std::move(work_), std::move(error),
                                          take_outcome(completed));
      destroy_operation_state();
      destroy_block(this);  // the pool's only reference was passed to us
      return node;
    } else {
      return this;
    }
  }

  // Moves the handler out and lets everything else go before the upcall, as
  // Asio asks: the handler may start a new operation that reuses the memory.
  // The work goes too; the running handler itself still counts as work for
  // its execution context.
  Handler take_handler() {
    Handler handler(std::move(handler_));
    let_go();
    return handler;
  }

  // Undoes start() before submission: the callable is destroyed unrun and
  // the block freed, as if the operation had never been initiated.
  void discard_unsubmitted() noexcept {
    body_.drop({JoinError::Kind::kCancelled, JoinError::Reason::kAborted, {}});
    destroy_operation_state();
    destroy_block(this);
  }

  // Destroyed unrun by a dying execution context.
  void abandon() noexcept {
    clear_slot();
    let_go();
  }

  void let_go() noexcept {
    destroy_operation_state();
    release();  // the operation's reference; the pool may still hold its own
  }

  // Ends the lifetime of the handler and the work (union members, destroyed
  // by hand): the handler first, then the work held on its executor.
  void destroy_operation_state() noexcept {
    handler_.~Handler();
    work_.~Work();
  }

  // Task operations (see TaskBase::Ops).
  friend struct TaskOpsFor<OpTask>;
  using Body = TaskBody<Fn, R>;
  static void destroy_block(OpTask* op) noexcept {
    OpAlloc alloc(op->alloc_);
    op->~OpTask();
    deallocate(alloc, op);
  }

  // A handler with no allocator of its own (std::allocator) gets its block
  // from the pool's task-block cache, like a plain spawn: recycled between
  // the threads that free and allocate them, no malloc per operation in a
  // steady stream.
  static constexpr bool kCachedMemory =
      std::is_same_v<allocator_type, std::allocator<void>> &&
      alignof(OpTask) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  static OpTask* allocate(OpAlloc& alloc) {
    if constexpr (kCachedMemory) {
      return static_cast<OpTask*>(allocate_task_block(sizeof(OpTask)));
    } else {
      return std::allocator_traits<OpAlloc>::allocate(alloc, 1);
    }
  }
  static void deallocate(OpAlloc& alloc, OpTask* op) noexcept {
    if constexpr (kCachedMemory) {
      free_task_block(op, sizeof(OpTask));
    } else {
      std::allocator_traits<OpAlloc>::deallocate(alloc, op, 1);
    }
  }

  // The handler's associated executor and cancellation slot, read from the
  // handler whenever needed rather than kept: a smaller block (what a loop
  // that spawns faster than it completes keeps alive is these blocks).
  executor_type executor() const noexcept {
    return ::asio::get_associated_executor(handler_, ::asio::system_executor());
  }
  slot_type slot() const noexcept { return ::asio::get_associated_cancellation_slot(handler_); }
  // Detaches the cancellation handler (on the handler's executor, before the
  // handler goes), so a later signal reaches nothing of ours.
  void clear_slot() noexcept {
    if (slot_type slot = this->slot(); slot.is_connected()) slot.clear();
  }
  static constexpr Batched::Ops kBatchOps{
      [](Batched* b) { static_cast<OpTask*>(b)->complete(); },
      [](Batched* b) noexcept { static_cast<OpTask*>(b)->abandon(); }};

  static BatchList* batch_list_of(const executor_type& ex) noexcept {
    ::asio::io_context* io = io_context_of(ex);
    return io != nullptr ? batch_list_for(io) : nullptr;
  }

  [[no_unique_address]] OpAlloc alloc_;  // frees the block, whoever drops it last
  // Alive from construction until complete() or abandon(), on the handler's
  // executor (unions: their lifetimes end there, not in ~OpTask).
  union {
    Handler handler_;
  };
  union {
    Work work_;
  };
  // The batch list of the io_context the handler runs on; null when the
  // completion is posted on its own (any other executor, or a full table).
  BatchList* const batch_;
  // Spawned on the thread running that io_context (see compact()).
  const bool spawned_on_loop_;
  Body body_;
};

// The initiation borrows the caller's Pool or Handle while async_initiate
// runs it in place (callbacks, use_future): the caller's object outlives that
// call, so no reference count is touched. A token that keeps the initiation
// to run later (deferred, use_awaitable) copies or moves it, and a copy owns
// a Handle of its own, so a lazily started operation never depends on the
// Pool object (it completes cancelled if the pool is gone).
class Initiation {
 public:
  explicit Initiation(const Pool& pool) noexcept : pool_(&pool) {}
  explicit Initiation(const Handle& handle) noexcept : handle_(&handle) {}
  Initiation(const Initiation& other) : owned_(other.owned_handle()) { handle_ = &*owned_; }
  Initiation(Initiation&& other) : Initiation(static_cast<const Initiation&>(other)) {}
  Initiation& operator=(const Initiation&) = delete;
  Initiation& operator=(Initiation&&) = delete;

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn&> || kTakesStopToken<Fn>,
                  "blockpool: the callable must be invocable with no arguments or with a "
                  "std::stop_token");
    static_assert(std::is_move_constructible_v<Fn>, "blockpool: the callable must be movable");
    Core* core = pool_ != nullptr ? PoolAccess::core(*pool_) : PoolAccess::core(*handle_);
    OpTask<Fn, spawn_result_t<F>, std::decay_t<Handler>>::start(std::forward<Handler>(handler), core,
                                                                 std::forward<F>(f));
  }

 private:
  Handle owned_handle() const { return pool_ != nullptr ? pool_->handle() : *handle_; }

  const Pool* pool_ = nullptr;      // borrowed, or
  const Handle* handle_ = nullptr;  // borrowed, or pointing at owned_
  std::optional<Handle> owned_;
};

}  // namespace detail::asio_adapter

// Runs `f` on `pool`'s blocking threads as an Asio asynchronous operation;
// see the top of this header for the completion signature, executor,
// work-tracking, allocator and cancellation rules.
template <class F, class CompletionToken>
auto async_spawn_blocking(const Handle& pool, F&& f, CompletionToken&& token) {
  return ::asio::async_initiate<CompletionToken, detail::asio_adapter::signature_t<F>>(
      detail::asio_adapter::Initiation(pool), token, std::forward<F>(f));
}

template <class F, class CompletionToken>
auto async_spawn_blocking(const Pool& pool, F&& f, CompletionToken&& token) {
  return ::asio::async_initiate<CompletionToken, detail::asio_adapter::signature_t<F>>(
      detail::asio_adapter::Initiation(pool), token, std::forward<F>(f));
}

}  // namespace blockpool
