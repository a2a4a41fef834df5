// blockpool/detail/asio/operation.ipp: OpTask, one block that is both the
// pool's task and the Asio operation state. Not a public header; no include
// guard: included once per Asio flavour (see common.hpp), after executor.ipp.
namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL {

namespace net = BLOCKPOOL_ASIO_NET;

// The operation. It holds the task (TaskBase and body: callable, stop state,
// result), the handler and the work held on the handler's executor (the
// executor and the cancellation slot are read from the handler when needed).
// Allocated with the handler's associated allocator (a handler without one
// gets the pool's recycled task-block memory): one allocation, no JoinHandle.
//
// Lifetime. The block is its own continuation, set before it is submitted.
//   * Cancellable (a connected cancellation slot) or stoppable (a callable
//     taking a std::stop_token): two references, as for any task, the pool's
//     (queue, then the worker that runs it) and the operation's. When the
//     task ends (run, aborted, cancelled at shutdown), the thread that ends it
//     passes the operation's reference to a posted Completion or the ready
//     list.
//   * Otherwise nothing but the pool can end the task, and it is a hand-off
//     task (TaskBase::hand_off_to): one reference, the pool's, passed the
//     same way when the task ends.
// That reference is dropped on the handler's executor just before the
// handler runs, or when the context destroys the completion unrun, or (the
// context gone first) by whoever ends the abandoned operation last (see
// asio_common::PendingOp). The handler and the work are destroyed there too;
// only the memory may outlive them, until the pool drops its own reference.
template <class Fn, class R, class Handler>
class OpTask final : public TaskBase, public Batched, public PendingOp {
 public:
  using executor_type = net::associated_executor_t<Handler, net::system_executor>;
  using allocator_type = net::associated_allocator_t<Handler>;
  using slot_type = net::associated_cancellation_slot_t<Handler>;

  template <class H, class F>
  static void start(H&& handler, Core* core, unsigned lane, F&& f, bool mandatory, const TaskOptions& options) {
    OpAlloc alloc(net::get_associated_allocator(handler));
    OpTask* op = allocate(alloc);
    try {
      ::new (static_cast<void*>(op)) OpTask(std::forward<H>(handler), alloc, std::forward<F>(f), mandatory);
    } catch (...) {
      deallocate(alloc, op);
      throw;
    }
    op->core_ = core;
    op->set_lane(lane);
    op->name_ = options.name;
    // Registered first: from here on, the context's shutdown abandons the
    // operation. A context already shutting down gets no operation at all.
    if (op->svc_ != nullptr && !op->svc_->add(op)) {
      op->discard_unsubmitted();
      return;
    }
    // The continuation goes in before the pool can see the task: from
    // submit() on, it may end (and its completion run) on another thread at
    // any moment, so `op` must not be touched after.
    if (slot_type slot = op->slot(); slot.is_connected()) {
      try {
        // May allocate the slot's handler memory (std::bad_alloc).
        slot.template emplace<CancelHandler>(CancelHandler{op});
      } catch (...) {
        if (op->svc_ != nullptr) op->svc_->remove(op);
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
    // On a full queue the operation waits for room (admission control),
    // without blocking this thread; then, or if its cancellation slot fires
    // first, it ends as any task does. Or, if asked, it is rejected at once.
    if (options.reject_when_full) {
      submit(core, op);
    } else {
      submit_or_wait(core, op);
    }
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
      if (op_ != nullptr) op_->abandon_delivered();  // discarded unrun (context destroyed)
    }
    executor_type get_executor() const noexcept { return op_->executor(); }
    allocator_type get_allocator() const noexcept { return net::get_associated_allocator(op_->handler_); }
    void operator()() { std::exchange(op_, nullptr)->complete(); }

   private:
    OpTask* op_;
  };

  template <class H, class F>
  OpTask(H&& handler, const OpAlloc& alloc, F&& f, bool mandatory)
      : TaskBase(&kOps, mandatory),
        alloc_(alloc),
        handler_(std::forward<H>(handler)),
        work_(track_work(executor())),
        svc_(service_for(executor())),
        batched_(batched_on(svc_, executor())),
        // Spawned on the loop's own thread (see compact()).
        spawned_on_loop_(batched_ && svc_->batching_io().get_executor().running_in_this_thread()),
        body_(std::forward<F>(f)) {
    // The body is constructed last: a callable that throws while moved or
    // copied in leaves nothing behind. The members above are destroyed by
    // the unwinding, the handler and the work included: unlike a destructor,
    // a constructor's unwinding destroys variant (union) members whose
    // initialization completed ([except.ctor]). The tests
    // CallableWhoseCopyThrows / HandlerWhoseCopyThrows check it.
    Continuation::fn = &OpTask::on_end;
    batch_ops = &kBatchOps;
    PendingOp::abandon = &OpTask::abandon_pending;
  }
  // The handler and the work are gone (complete or abandon); the body's
  // callable was destroyed when the task ran or was dropped.
  ~OpTask() {}

  // On the thread that ends the task, with the reference passed to it.
  // Posting never runs the handler inline.
  static void on_end(Continuation* c) noexcept {
    OpTask* op = static_cast<OpTask*>(static_cast<Batched*>(c));
    ContextService* svc = op->svc_;
    if (svc == nullptr) {  // an executor with no context to tell us it went
      net::post(Completion(op));
      return;
    }
    switch (op->task_ended()) {
      case OnEnd::kDeliver:
        break;
      case OnEnd::kLeave:  // the context's shutdown is abandoning us: it releases
        return;
      case OnEnd::kRelease:  // abandoned: nothing of the context may be touched
        op->release();
        return;
    }
    if (op->batched_) {
      svc->deliver(op, [op, svc]() noexcept {
        PushRun& run = asio_common::t_push_run;
        if (run.list != svc) run = PushRun{svc, 0};
        Batched* item = op->spawned_on_loop_ && run.pushes >= kCompactAfter ? op->compact() : op;
        // From the push on, `item` is the drain's: a pending drain may run
        // (and free) it at once.
        if (svc->push_ready(item)) {
          run.pushes = 0;
          net::post(svc->batching_io().get_executor(), Drain(svc));
        } else {
          ++run.pushes;
        }
      });
    } else {
      // The Completion owns the operation's reference from here.
      svc->deliver(op, [op]() noexcept { net::post(Completion(op)); });
    }
  }

  // The pool runs the task: not if the context abandoned the operation
  // meanwhile (nobody can receive the result): the callable is then dropped.
  // A mandatory task runs anyway: its effect (a write) is what was asked for.
  static std::uint32_t run_task(TaskBase* b) noexcept {
    auto* op = static_cast<OpTask*>(b);
    if (op->abandoned() && !op->mandatory()) {
      op->body_.drop({JoinError::Kind::kCancelled, JoinError::Reason::kAborted, {}});
      return kCancelled;
    }
    return op->body_.run();
  }

  // On the handler's executor, once. The task has ended: the acquire in
  // state() pairs with finish()'s release (and the post that brought us here
  // happened after it).
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
  // reuse one. So for an operation spawned on the thread running its
  // io_context, once the thread ending it has pushed kCompactAfter completions
  // in a row onto that loop's ready list with a drain pending, that thread
  // moves what the completion needs (the handler, the work, the outcome) into
  // a small node and frees the block here, for the spawner to reuse. Only
  // where nothing can throw or fail: blocks from the task-block cache,
  // nothrow moves, a successful allocation; otherwise the block itself waits.
  // (bench/README.md has the measurements behind the rule.)
  static constexpr std::uint32_t kCompactAfter = 256;
  using Outcome = std::conditional_t<std::is_void_v<R>, Unit, asio_value_t<R>>;
  static constexpr bool compactible() noexcept {
    return kCachedMemory && NothrowMovable<Handler>::value && std::is_nothrow_move_constructible_v<Work> &&
           (std::is_void_v<R> ||
            (std::is_nothrow_move_constructible_v<R> && std::is_nothrow_move_constructible_v<Outcome> &&
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

  // A delivered completion destroyed unrun by its dying execution context.
  void abandon_delivered() noexcept {
    clear_slot();
    let_go();
  }

  // The context shuts down before the task ended (ContextService::shutdown,
  // on the thread destroying it; the claim is kAbandoning, so the block stays).
  static void abandon_pending(PendingOp* p) noexcept {
    auto* op = static_cast<OpTask*>(p);
    op->clear_slot();
    op->destroy_operation_state();
    // A running stoppable task: nobody wants its result (a mandatory one is
    // left alone, as shutdown leaves it).
    if (!op->mandatory() && op->state() == kRunning) op->request_stop();
    if (op->end_abandon()) op->release();  // the task ended meanwhile and left us its reference
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

  // Task operations (see TaskBase::Ops): TaskOpsFor's, but for run_task.
  friend struct TaskOpsFor<OpTask>;
  using Body = TaskBody<Fn, R>;
  static constexpr TaskBase::Ops kOps{&run_task, &TaskOpsFor<OpTask>::drop, &TaskOpsFor<OpTask>::destroy,
                                      Body::kStop ? &TaskOpsFor<OpTask>::stop : nullptr};
  static void destroy_block(OpTask* op) noexcept {
    OpAlloc alloc(op->alloc_);
    op->~OpTask();
    deallocate(alloc, op);
  }

  // A handler with no allocator of its own (std::allocator) gets its block
  // from the pool's task-block cache, like a plain spawn.
  static constexpr bool kCachedMemory = std::is_same_v<allocator_type, std::allocator<void>> &&
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
  // handler whenever needed rather than kept: a smaller block.
  executor_type executor() const noexcept { return net::get_associated_executor(handler_, net::system_executor()); }
  slot_type slot() const noexcept { return net::get_associated_cancellation_slot(handler_); }
  // Detaches the cancellation handler (on the handler's executor, or while
  // its context shuts down), so a later signal reaches nothing of ours.
  void clear_slot() noexcept {
    if (slot_type slot = this->slot(); slot.is_connected()) slot.clear();
  }
  static constexpr Batched::Ops kBatchOps{[](Batched* b) { static_cast<OpTask*>(b)->complete(); },
                                          [](Batched* b) noexcept { static_cast<OpTask*>(b)->abandon_delivered(); }};

  [[no_unique_address]] OpAlloc alloc_;  // frees the block, whoever drops it last
  // Alive from construction until complete() or an abandon, on the handler's
  // executor or its context's shutdown (unions: their lifetimes end there,
  // not in ~OpTask).
  union {
    Handler handler_;
  };
  union {
    Work work_;
  };
  ContextService* const svc_;   // the handler's context's service; null if it has none
  const bool batched_;          // completes through svc_'s ready list
  const bool spawned_on_loop_;  // initiated on the thread running that io_context
  Body body_;
};

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL
