// blockpool/detail/asio/common.hpp: the parts of the Asio layer that do not
// depend on which Asio it serves (standalone or Boost). Not a public header.
//
// The layer's pieces, one concept a file:
//   common.hpp       this file: completion signatures, the links an operation
//                    carries, and the claim that decides who ends it
//   service.ipp      ContextService: one per execution context; owns the
//                    operations pending on it and batches their completions
//   executor.ipp     what an operation learns from its handler's executor
//   operation.ipp    OpTask: one block that is both the pool's task and the
//                    Asio operation state
//   initiation.ipp   the initiating function (async_spawn_blocking)
// The .ipp files have no include guard on purpose: <blockpool/asio.hpp> and
// <blockpool/boost_asio.hpp> each include them once, with
// BLOCKPOOL_ASIO_NET naming their Asio namespace and BLOCKPOOL_ASIO_IMPL
// the namespace (under blockpool::detail) to define the flavour in, so one
// implementation serves both and both can be used in one program.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>

#include "blockpool/detail/spin.hpp"
#include "blockpool/detail/task.hpp"
#include "blockpool/pool.hpp"

namespace blockpool {

// The second argument of the completion signature for a task returning R
// (R not void): R itself if default-constructible, else std::optional<R>.
template <class R>
using asio_value_t = std::conditional_t<std::is_default_constructible_v<R>, R, std::optional<R>>;

}  // namespace blockpool

namespace blockpool::detail::asio_common {

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

// A completion that waits in an execution context's ready list (see
// ContextService): an operation, or the small node an operation was
// compacted into. The ready list is a FIFO through batch_next.
struct Batched : Continuation {
  struct Ops {
    void (*complete)(Batched*);          // runs the handler; may throw
    void (*destroy)(Batched*) noexcept;  // frees it unrun (its context is going)
  };
  Batched* batch_next = nullptr;
  const Ops* batch_ops = nullptr;
};

// An operation as its execution context's service sees it, from initiation
// until its task ends: linked in the service's registry, and claimed exactly
// once, either by the thread that ends the task (to deliver the completion)
// or by the context's shutdown (to abandon it).
//
//   kPending --(task ends)----------------> kEnded       the ender delivers
//      |
//      +--(context shuts down)--> kAbandoning --(handler destroyed)--> kAbandoned
//                                     |                                   |
//                                     +--(task ends meanwhile)            +--(task ends later)
//                                        --> kAbandonedEnded                 the ender releases
//                                            shutdown releases               the operation
//
// Whoever ends the task holds a reference to the block (the one passed to
// the continuation). In kAbandoning the context's shutdown is destroying the
// handler and the work, so the block must not be freed: a task that ends
// then leaves its reference for shutdown to release. Every transition is an
// acq_rel compare-and-swap (acquire on failure), so what one side did to the
// block (the result stored, the handler destroyed) happens before the other
// side frees it.
struct PendingOp {
  enum Claim : std::uint8_t { kPending, kEnded, kAbandoning, kAbandonedEnded, kAbandoned };

  // What the thread that ended the task must do.
  enum class OnEnd {
    kDeliver,       // post the completion (the context is alive and waits for us)
    kLeave,         // nothing: the context's shutdown releases the reference
    kRelease,       // release the reference: the operation was abandoned
  };
  OnEnd task_ended() noexcept {
    std::uint8_t c = kPending;
    if (claim.compare_exchange_strong(c, kEnded, std::memory_order_acq_rel, std::memory_order_acquire))
      return OnEnd::kDeliver;
    if (c == kAbandoning && claim.compare_exchange_strong(c, kAbandonedEnded, std::memory_order_acq_rel,
                                                          std::memory_order_acquire))
      return OnEnd::kLeave;
    return OnEnd::kRelease;
  }
  // The context's shutdown, under its service's lock: kPending -> kAbandoning.
  bool begin_abandon() noexcept {
    std::uint8_t c = kPending;
    return claim.compare_exchange_strong(c, kAbandoning, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  // The context's shutdown, once the handler is destroyed: true if the task
  // ended meanwhile, and shutdown must now release the reference it left.
  bool end_abandon() noexcept {
    std::uint8_t c = kAbandoning;
    return !claim.compare_exchange_strong(c, kAbandoned, std::memory_order_acq_rel, std::memory_order_acquire);
  }
  // Whether the context has abandoned the operation (its task need not run).
  [[nodiscard]] bool abandoned() const noexcept {
    return claim.load(std::memory_order_acquire) >= kAbandoning;
  }

  PendingOp* reg_prev = nullptr;  // the registry's links: guarded by the service's mutex
  PendingOp* reg_next = nullptr;
  std::atomic<std::uint8_t> claim{kPending};
  // Destroys the handler and the work unrun (on the thread destroying the
  // context), requests a running task's stop, then calls end_abandon().
  void (*abandon)(PendingOp*) noexcept = nullptr;
};

// Bumped whenever a ContextService (of any flavour) is destroyed: a
// thread's cached context -> service lookup is valid while the epoch it was
// made in lasts (see service_for). Written once per context destruction, read
// (relaxed, a line nobody writes) once per initiation.
inline std::atomic<std::uint64_t> g_service_epoch{0};

// How many completions in a row this thread has pushed onto one context's
// ready list while a drain was already pending (see OpTask::compact).
// Thread-local, so keeping it costs the pushers no shared write.
struct PushRun {
  const void* list = nullptr;
  std::uint32_t pushes = 0;
};
inline thread_local PushRun t_push_run;

}  // namespace blockpool::detail::asio_common
