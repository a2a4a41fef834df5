// blockpool/detail/asio/dns.ipp: dns::async_resolve, a getaddrinfo that runs
// as a pool task and completes as an Asio operation. Not a public header; no
// include guard: included once per Asio flavour (see common.hpp), after
// initiation.ipp and dns_common.hpp, by <blockpool/dns.hpp> (standalone) and
// <blockpool/boost_asio.hpp> (Boost).
//
// Why an operation of its own rather than async_spawn_blocking: a cancelled
// lookup must complete at once even while getaddrinfo runs (nothing can
// interrupt it), whereas async_spawn_blocking completes a running task's
// operation only when the task returns. So ResolveOp separates the two ends:
// the pool's task (the lookup) and the operation (handler, work on its
// executor) are one block, but the operation may end before the task.
//
// Who ends the operation: exactly one of
//   * the thread that ends the task (a pool thread; the thread cancelling
//     a queued task; shutdown), through the continuation on_end;
//   * a terminal or partial cancellation (on the handler's executor), which
//     completes at once with a cancelled JoinError and lets the task run on
//     unobserved: its result is discarded when it returns;
//   * the shutdown of the handler's execution context, which destroys the
//     handler unrun (ContextService, as for async_spawn_blocking).
// The claim is asio_common::PendingOp's: kPending -> kEnded by the first two
// (a compare-and-swap, so exactly one of them delivers), kPending ->
// kAbandoning by the third. A cancellation that finds the claim taken does
// nothing.
//
// References on the block (TaskBase's count, 2 at the start):
//   * the pool's, dropped when the task has ended;
//   * the operation's, passed to the continuation: on_end hands it to the
//     posted Delivery if it won the claim, releases it if the claim was
//     taken (cancelled early, or abandoned), or leaves it to the context's
//     shutdown while that is abandoning the operation (PendingOp::kLeave);
//   * while an early cancellation's Delivery is pending, a third one, its own.
// The Delivery keeps the block (and so the cancellation handler's target)
// alive until it has cleared the cancellation slot. After the claim, the
// handler and the work are reached only through the Delivery, and nothing of
// the execution context is touched by the task: a cancelled lookup holds no
// work, so io_context::run() may return (and the context be destroyed) while
// its getaddrinfo still runs.
namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL {

namespace net = BLOCKPOOL_ASIO_NET;

using ResolveResults = std::vector<net::ip::tcp::endpoint>;

// The task's callable: the lookup itself.
struct Lookup {
  std::string host;
  std::string service;
  ResolveResults operator()() const { return dns_common::lookup<net::ip::tcp::endpoint>(host, service); }
};

template <class Handler>
class ResolveOp final : public TaskBase, public Continuation, public PendingOp {
 public:
  using executor_type = net::associated_executor_t<Handler, net::system_executor>;
  using allocator_type = net::associated_allocator_t<Handler>;
  using slot_type = net::associated_cancellation_slot_t<Handler>;

  template <class H>
  static void start(H&& handler, Core* core, unsigned lane, std::string host, std::string service) {
    void* mem = ::operator new(sizeof(ResolveOp));
    ResolveOp* op = nullptr;
    try {
      op = ::new (mem) ResolveOp(std::forward<H>(handler), Lookup{std::move(host), std::move(service)});
    } catch (...) {
      ::operator delete(mem);
      throw;
    }
    op->core_ = core;
    op->set_lane(lane);
    op->name_ = "blockpool.dns";
    // Registered first: from here on the context's shutdown abandons it.
    if (op->svc_ != nullptr && !op->svc_->add(op)) {
      op->discard_unsubmitted();
      return;
    }
    if (slot_type slot = op->slot(); slot.is_connected()) {
      try {
        slot.template emplace<Cancel>(Cancel{op});
      } catch (...) {
        if (op->svc_ != nullptr) op->svc_->remove(op);
        op->discard_unsubmitted();
        throw;
      }
    }
    op->preset_continuation(op);
    // From here on the task may end (and the operation complete) on another
    // thread at any moment: `op` is not touched again.
    submit_or_wait(core, op);
  }

 private:
  using Work = decltype(track_work(std::declval<const executor_type&>()));
  using Body = TaskBody<Lookup, ResolveResults>;

  // The cancellation slot's handler; the slot is cleared (on the handler's
  // executor) before the block can go.
  struct Cancel {
    ResolveOp* op;
    void operator()(net::cancellation_type_t type) const noexcept {
      const auto wanted = net::cancellation_type::terminal | net::cancellation_type::partial;
      if ((type & wanted) != net::cancellation_type::none) {
        op->cancel_now();
      } else if ((type & net::cancellation_type::total) != net::cancellation_type::none) {
        // A lookup that has not started never runs, and the operation then
        // completes as cancelled through on_end; a running one is left alone.
        (void)op->cancel_if_queued();
      }
    }
  };

  // The posted completion: owns one reference on the block until it runs
  // (or is destroyed unrun by its dying execution context).
  class Delivery {
   public:
    using executor_type = typename ResolveOp::executor_type;
    using allocator_type = typename ResolveOp::allocator_type;

    explicit Delivery(ResolveOp* op) noexcept : op_(op) {}
    Delivery(Delivery&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    Delivery& operator=(Delivery&&) = delete;
    ~Delivery() {
      if (op_ != nullptr) op_->abandon_delivered();
    }
    executor_type get_executor() const noexcept { return op_->executor(); }
    allocator_type get_allocator() const noexcept { return net::get_associated_allocator(op_->handler_); }
    void operator()() { std::exchange(op_, nullptr)->complete(); }

   private:
    ResolveOp* op_;
  };

  template <class H>
  ResolveOp(H&& handler, Lookup&& lookup)
      : TaskBase(&kOps, false),
        handler_(std::forward<H>(handler)),
        work_(track_work(executor())),
        svc_(service_for(executor())),
        body_(std::move(lookup)) {
    Continuation::fn = &ResolveOp::on_end;
    PendingOp::abandon = &ResolveOp::abandon_pending;
  }
  ~ResolveOp() {}  // the handler and the work were destroyed when the operation ended

  // Runs the lookup, unless the operation has already ended (cancelled
  // early, or abandoned with its context): nobody would see the result.
  static std::uint32_t run_task(TaskBase* b) noexcept {
    auto* op = static_cast<ResolveOp*>(b);
    if (op->claim.load(std::memory_order_acquire) != kPending) {
      op->body_.drop({JoinError::Kind::kCancelled, JoinError::Reason::kAborted, {}});
      return kCancelled;
    }
    return op->body_.run();
  }

  // On the thread that ends the task, holding the operation's reference.
  static void on_end(Continuation* c) noexcept {
    auto* op = static_cast<ResolveOp*>(c);
    switch (op->task_ended()) {
      case OnEnd::kDeliver:
        op->deliver();  // the Delivery takes the operation's reference
        return;
      case OnEnd::kLeave:  // the context's shutdown is abandoning it and releases it
        return;
      case OnEnd::kRelease:  // cancelled early, or abandoned: the result is discarded
        op->release();
        return;
    }
  }

  // Terminal or partial cancellation, on the handler's executor.
  void cancel_now() noexcept {
    std::uint8_t c = kPending;
    if (!claim.compare_exchange_strong(c, kEnded, std::memory_order_acq_rel, std::memory_order_acquire)) {
      return;  // already delivered (its Delivery is pending) or abandoned
    }
    add_ref();  // the Delivery's: the task may end (and on_end release) at any moment
    aborted_early_ = true;
    // A queued lookup leaves the queue and never runs (its on_end, run here,
    // finds the claim taken); a running one runs on, unobserved.
    (void)cancel_if_queued();
    deliver();
  }

  // Hands the completion to the handler's executor (never inline); unlinks
  // the operation from its context's registry first.
  void deliver() noexcept {
    if (svc_ == nullptr) {
      net::post(Delivery(this));
      return;
    }
    svc_->deliver(this, [this]() noexcept { net::post(Delivery(this)); });
  }

  // On the handler's executor, once. The outcome was published by the claim
  // (and the post): the task's result if on_end delivered, or the early
  // cancellation, in which case the task's result is never read here (the
  // task may still be writing it).
  void complete() {
    clear_slot();
    std::exception_ptr error;
    ResolveResults results;
    if (aborted_early_) {
      error = std::make_exception_ptr(JoinError(JoinError::Kind::kCancelled, JoinError::Reason::kAborted));
    } else if (state() == kCompleted) {
      try {
        results = body_.result().take();
      } catch (...) {
        error = std::current_exception();
      }
    } else {
      error = body_.result().take_exception();
    }
    Handler handler(std::move(handler_));
    destroy_operation_state();
    release();  // before the upcall, as Asio asks: the handler may start another lookup
    std::move(handler)(std::move(error), std::move(results));
  }

  // Undoes start() before submission, as if nothing had been initiated.
  void discard_unsubmitted() noexcept {
    body_.drop({JoinError::Kind::kCancelled, JoinError::Reason::kAborted, {}});
    destroy_operation_state();
    destroy_block(this);
  }

  // A Delivery destroyed unrun by its dying execution context.
  void abandon_delivered() noexcept {
    clear_slot();
    destroy_operation_state();
    release();
  }

  // The context shuts down before the operation ended (on the thread
  // destroying it; the claim is kAbandoning, so the block stays).
  static void abandon_pending(PendingOp* p) noexcept {
    auto* op = static_cast<ResolveOp*>(p);
    op->clear_slot();
    op->destroy_operation_state();
    (void)op->cancel_if_queued();          // nobody waits for a queued lookup any more
    if (op->end_abandon()) op->release();  // the task ended meanwhile and left us its reference
  }

  void destroy_operation_state() noexcept {
    handler_.~Handler();
    work_.~Work();
  }

  friend struct TaskOpsFor<ResolveOp>;
  static constexpr TaskBase::Ops kOps{&run_task, &TaskOpsFor<ResolveOp>::drop, &TaskOpsFor<ResolveOp>::destroy,
                                      nullptr};
  static void destroy_block(ResolveOp* op) noexcept {
    op->~ResolveOp();
    ::operator delete(static_cast<void*>(op));
  }

  executor_type executor() const noexcept { return net::get_associated_executor(handler_, net::system_executor()); }
  slot_type slot() const noexcept { return net::get_associated_cancellation_slot(handler_); }
  void clear_slot() noexcept {
    if (slot_type slot = this->slot(); slot.is_connected()) slot.clear();
  }

  // Alive from construction until the operation ends (complete, or an
  // abandon); unions, so their lifetimes end there and not in ~ResolveOp.
  union {
    Handler handler_;
  };
  union {
    Work work_;
  };
  ContextService* const svc_;  // the handler's context's service; null if it has none
  // Set by an early cancellation after it won the claim, read by its Delivery.
  bool aborted_early_ = false;
  Body body_;
};

// The completion of a lookup that needs none (an IP literal): posted to the
// handler's executor like any completion, with the handler's allocator.
template <class Handler>
class ImmediateResolve {
 public:
  using executor_type = net::associated_executor_t<Handler, net::system_executor>;
  using allocator_type = net::associated_allocator_t<Handler>;

  ImmediateResolve(Handler&& handler, ResolveResults results)
      : handler_(std::move(handler)), results_(std::move(results)) {}
  executor_type get_executor() const noexcept { return net::get_associated_executor(handler_, net::system_executor()); }
  allocator_type get_allocator() const noexcept { return net::get_associated_allocator(handler_); }
  void operator()() { std::move(handler_)(std::exception_ptr(), std::move(results_)); }

 private:
  Handler handler_;
  ResolveResults results_;
};

// Holds its own Handle, so a lazily started lookup (deferred, use_awaitable)
// does not depend on the Pool object (it completes cancelled if the pool is
// gone), as async_spawn_blocking's initiation.
class ResolveInitiation {
 public:
  explicit ResolveInitiation(Handle handle) noexcept : handle_(std::move(handle)) {}

  template <class Handler>
  void operator()(Handler&& handler, std::string host, std::string service) const {
    using H = std::decay_t<Handler>;
    ResolveResults literal;
    if (dns_common::parse_literal(host, service, literal)) {
      net::post(ImmediateResolve<H>(H(std::forward<Handler>(handler)), std::move(literal)));
      return;
    }
    ResolveOp<H>::start(std::forward<Handler>(handler), PoolAccess::core(handle_), PoolAccess::lane(handle_),
                        std::move(host), std::move(service));
  }

 private:
  Handle handle_;
};

using ResolveSignature = void(std::exception_ptr, ResolveResults);

// Resolves `host` and `service` to TCP endpoints on `pool`'s threads; see
// <blockpool/dns.hpp> for the contract.
template <class CompletionToken>
auto async_resolve(const Handle& pool, std::string host, std::string service, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, ResolveSignature>(ResolveInitiation(pool), token, std::move(host),
                                                                std::move(service));
}
template <class CompletionToken>
auto async_resolve(const Pool& pool, std::string host, std::string service, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, ResolveSignature>(ResolveInitiation(pool.handle()), token,
                                                                std::move(host), std::move(service));
}

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL
