// blockpool/detail/asio/service.ipp: one service per execution context, which
// owns the operations pending on that context and batches their completions.
// Not a public header; no include guard: included once per Asio flavour (see
// common.hpp), with BLOCKPOOL_ASIO_NET, BLOCKPOOL_ASIO_IMPL and
// BLOCKPOOL_ASIO_HINT_IS_LOCKING defined.
//
// Why a service. An execution context (an io_context, most often) may stop
// and be destroyed while operations on it are still pending: the exit of
// almost every server (a signal handler calls io.stop(), main returns). Asio's
// own operations die with their context: its services destroy their handlers
// unrun at shutdown, and nothing touches the context afterwards. Ours are held
// by the pool, not by the context, so the context must be told about them:
// ContextService, created on the context by the first operation whose
// handler runs there, keeps a registry of its operations whose tasks have not
// ended, and when the context shuts down it abandons them (see
// asio_common::PendingOp for the claim that decides, once, between the
// thread that ends a task and the shutdown).
//
// Threads and locking. lock_ (a spin lock: its sections are a few pointer
// writes) guards the registry and the shutdown flag. It is taken at
// initiation (add) and by the thread that ends a task (unlink), never while
// anything else is done. A delivery (the post, or the push onto the ready
// list) happens after the unlink, outside the lock, counted in delivering_;
// shutdown waits until no delivery is in flight, so the context outlives
// every post made into it. The ready list is lock-free (a stack pushed by
// enders, taken whole by a drain).
//
// Batching. On an io_context that only one thread runs (constructed with
// concurrency hint 1, or a hint that turns locking off, as the scheduler
// itself decides), completions of operations whose handler runs on that
// io_context's own executor (directly, or wrapped in an any_io_executor) go
// to a ready list instead of one post each; the push that finds the list
// empty posts a Drain, which takes the whole list and runs it in the order
// the tasks ended. Invariant: while the list is not empty, exactly one drain
// that has not yet taken it is posted, so the context cannot lose a
// completion, and one pushed onto an empty list cannot run before its pusher
// posted the drain. Nobody
// can tell the difference there: one thread runs every handler anyway. On a
// context run by several threads, or for a strand or any other executor,
// each completion is posted on its own, so a handler that blocks never holds
// back another operation's.
namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL {

namespace net = BLOCKPOOL_ASIO_NET;
using asio_common::Batched;
using asio_common::PendingOp;
using asio_common::PushRun;

class ContextService;

// Runs batched completions on the io_context, in order: the whole ready list
// (taken when the drain runs), or what was left of one after a handler threw.
// Destroyed unrun (its io_context shutting down), it destroys what it owns.
class Drain {
 public:
  explicit Drain(ContextService* svc) noexcept : svc_(svc), takes_list_(true) {}
  Drain(ContextService* svc, Batched* chain) noexcept : svc_(svc), chain_(chain) {}
  Drain(Drain&& o) noexcept
      : svc_(std::exchange(o.svc_, nullptr)), chain_(std::exchange(o.chain_, nullptr)), takes_list_(o.takes_list_) {}
  Drain& operator=(Drain&&) = delete;
  ~Drain() {
    for (Batched* b = take(); b != nullptr;) {
      Batched* next = b->batch_next;
      b->batch_ops->destroy(b);
      b = next;
    }
  }
  void operator()();

 private:
  Batched* take() noexcept;

  ContextService* svc_;
  Batched* chain_ = nullptr;
  bool takes_list_ = false;
};

class ContextService final : public net::execution_context::service {
 public:
  inline static net::execution_context::id id;

  explicit ContextService(net::execution_context& ctx) : net::execution_context::service(ctx) {}
  ~ContextService() override { asio_common::g_service_epoch.fetch_add(1, std::memory_order_release); }
  ContextService(const ContextService&) = delete;
  ContextService& operator=(const ContextService&) = delete;

  // Whether completions on `io` (this service's context, as an operation
  // whose handler runs on its own executor found) are batched: `io` is run by
  // one thread. Decided once, by the first such operation.
  bool batches_for(net::io_context& io) noexcept {
    int v = one_thread_.load(std::memory_order_acquire);
    if (v < 0) {
      // The scheduler's own test for "one thread" (it then keeps a thread's
      // posts to itself in a private queue). Racing deciders agree.
      const int hint = net::use_service<net::detail::io_context_impl>(io).concurrency_hint();
      v = hint == 1 || !BLOCKPOOL_ASIO_HINT_IS_LOCKING(SCHEDULER, hint) ||
                  !BLOCKPOOL_ASIO_HINT_IS_LOCKING(REACTOR_IO, hint)
              ? 1
              : 0;
      io_.store(&io, std::memory_order_relaxed);
      one_thread_.store(v, std::memory_order_release);  // publishes io_
    }
    return v == 1;
  }
  // The io_context completions are batched on; valid once batches_for() said so.
  [[nodiscard]] net::io_context& batching_io() const noexcept { return *io_.load(std::memory_order_relaxed); }

  // At initiation, before the task is submitted. False if the context is
  // shutting down: the operation must not start.
  bool add(PendingOp* op) noexcept {
    std::lock_guard lk(lock_);
    if (shut_down_) return false;
    op->reg_prev = nullptr;
    op->reg_next = head_;
    if (head_ != nullptr) head_->reg_prev = op;
    head_ = op;
    return true;
  }
  // Undoes add() for an operation that was not submitted after all.
  void remove(PendingOp* op) noexcept {
    std::lock_guard lk(lock_);
    unlink_locked(op);
  }

  // The thread that ended `op`'s task, which claimed it (kEnded): unlinks it
  // and runs `deliver` (which hands the completion to the context) while
  // shutdown waits for it.
  template <class Deliver>
  void deliver(PendingOp* op, Deliver&& deliver) noexcept {
    {
      std::lock_guard lk(lock_);
      unlink_locked(op);
      // Relaxed: shutdown reads it under the lock, or with acquire after
      // the release below.
      delivering_.fetch_add(1, std::memory_order_relaxed);
    }
    deliver();
    // Release: the delivery (the post into the context) happens before
    // shutdown sees it done. The last touch of this service by this thread.
    delivering_.fetch_sub(1, std::memory_order_release);
  }

  // Pushes a completion onto the ready list (inside deliver()). Returns true
  // when the list was empty: the caller posts the Drain that will take it.
  // Release publishes the completion's state to the drain.
  bool push_ready(Batched* item) noexcept {
    Batched* head = ready_.load(std::memory_order_relaxed);
    do {
      item->batch_next = head;
    } while (!ready_.compare_exchange_weak(head, item, std::memory_order_release, std::memory_order_relaxed));
    return head == nullptr;
  }

  // For a drain that starts (or is destroyed unrun): the whole ready list,
  // oldest first. Acquire pairs with push_ready's release.
  Batched* take_ready() noexcept {
    Batched* b = ready_.exchange(nullptr, std::memory_order_acquire);
    Batched* oldest_first = nullptr;
    while (b != nullptr) {
      Batched* next = b->batch_next;
      b->batch_next = oldest_first;
      oldest_first = b;
      b = next;
    }
    return oldest_first;
  }

 private:
  // The context is shutting down (its destructor, or shutdown()). Operations
  // whose tasks have not ended are abandoned: their handlers and work are
  // destroyed unrun here, a running task gets its stop requested, and a
  // queued one never runs. Operations whose tasks have ended are being
  // delivered (waited for here) or are already in the context's queues,
  // whose own shutdown destroys them. Runs before the context's scheduler
  // shuts down (services shut down in reverse order of creation), so every
  // delivery in flight can still post.
  void shutdown() override {
    PendingOp* abandoned = nullptr;  // chained through reg_next
    for (;;) {
      bool ended_linked = false;
      {
        std::lock_guard lk(lock_);
        shut_down_ = true;
        for (PendingOp* op = head_; op != nullptr;) {
          PendingOp* next = op->reg_next;
          if (op->begin_abandon()) {
            unlink_locked(op);
            op->reg_next = abandoned;
            abandoned = op;
          } else {
            ended_linked = true;  // its ender is on its way to deliver()
          }
          op = next;
        }
      }
      // Acquire pairs with deliver()'s release: the posts are done.
      if (!ended_linked && delivering_.load(std::memory_order_acquire) == 0) break;
      std::this_thread::yield();  // a delivery is a few instructions and a post
    }
    while (abandoned != nullptr) {
      PendingOp* op = abandoned;
      abandoned = op->reg_next;
      op->reg_next = nullptr;
      op->abandon(op);  // user code (handler destructors): after the lock
    }
  }

  void unlink_locked(PendingOp* op) noexcept {
    if (op->reg_prev != nullptr)
      op->reg_prev->reg_next = op->reg_next;
    else
      head_ = op->reg_next;
    if (op->reg_next != nullptr) op->reg_next->reg_prev = op->reg_prev;
    op->reg_prev = op->reg_next = nullptr;
  }

  SpinLock lock_;
  PendingOp* head_ = nullptr;  // guarded by lock_: operations whose tasks have not ended
  bool shut_down_ = false;     // guarded by lock_
  // Deliveries in flight (unlinked, not yet handed to the context).
  std::atomic<std::size_t> delivering_{0};
  // Batched completions, newest first; a Drain takes the whole list.
  std::atomic<Batched*> ready_{nullptr};
  // Whether this context is an io_context run by one thread: -1 until the
  // first operation on its own executor decides (see batches_for), then 0/1.
  // io_ is that io_context, published by the release store of one_thread_.
  std::atomic<int> one_thread_{-1};
  std::atomic<net::io_context*> io_{nullptr};
};

// The service of `ctx`. net::use_service locks the context's service
// registry; an initiation would pay that (contended, with several spawning
// threads) every time, so each thread remembers its last lookup. The entry
// is valid while no ContextService has been destroyed since it was made: a
// context destroyed and another created at the same address would otherwise
// be taken for the old one. (Initiating an operation on a context while
// another thread destroys it is a caller's error, as for any Asio object.)
inline ContextService& service_of(net::execution_context& ctx) {
  struct Cache {
    const net::execution_context* ctx = nullptr;
    ContextService* svc = nullptr;
    std::uint64_t epoch = 0;
  };
  thread_local Cache cache;
  // Acquire pairs with the destructor's release: a service destroyed before
  // this load is not taken from the cache.
  const std::uint64_t epoch = asio_common::g_service_epoch.load(std::memory_order_acquire);
  if (cache.ctx == &ctx && cache.epoch == epoch) return *cache.svc;
  ContextService& svc = net::use_service<ContextService>(ctx);
  cache = Cache{&ctx, &svc, epoch};
  return svc;
}

inline Batched* Drain::take() noexcept {
  if (svc_ == nullptr) return nullptr;
  if (takes_list_) {
    takes_list_ = false;
    return svc_->take_ready();
  }
  return std::exchange(chain_, nullptr);
}

inline void Drain::operator()() {
  Batched* b = take();
  while (b != nullptr) {
    Batched* next = b->batch_next;
    try {
      b->batch_ops->complete(b);
    } catch (...) {
      // A handler threw: it propagates out of run(), as from any handler; the
      // rest of the batch completes in a drain of its own.
      if (next != nullptr) net::post(svc_->batching_io().get_executor(), Drain(svc_, next));
      throw;
    }
    b = next;
  }
}

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL
