// blockpool/asio.hpp: spawn_blocking as an Asio asynchronous operation
// (standalone Asio; <blockpool/boost_asio.hpp> is the same for Boost.Asio).
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
// async_spawn_mandatory_blocking(pool_or_handle, f, token) is the same for a
// mandatory task (Pool::spawn_mandatory_blocking): once queued, it runs even
// if the pool shuts down or the execution context is destroyed first (then
// only its handler is destroyed, unrun); neither triggers its stop token.
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
//   * Always on the handler's associated executor: never inline in the
//     initiating call (even when the task has already ended, e.g. on a pool
//     that is shutting down) and never on a blocking thread. A handler bound
//     to a strand (directly, or through an any_io_executor that wraps one)
//     runs on that strand; a coroutine co_spawn'ed on a strand is back on it.
//   * A handler with no associated executor gets Asio's default,
//     asio::system_executor: a plain callback then runs on one of Asio's
//     system_context threads. Give it the executor you want with
//     asio::bind_executor(io_context_or_strand, cb). With asio::use_awaitable
//     the associated executor is the coroutine's. asio::use_future completes
//     on the system executor, which is what a std::future wants.
//   * Until it completes, the operation holds outstanding work on that
//     executor, so io_context::run() does not return while a task still runs.
//   * One block per operation holds both the pool's task (callable, result)
//     and the operation state (handler, work on its executor); no JoinHandle.
//     The handler's associated allocator allocates it; a handler with no
//     allocator of its own gets it from the pool's recycled task blocks.
//   * Batching: on an io_context only one thread runs (constructed with
//     concurrency hint 1: asio::io_context io(1)), completions whose handler
//     runs on that io_context's own executor are queued together, and one
//     posted function runs each batch in the order the tasks ended: one post,
//     and at most one wake-up, per batch. Nobody can tell the difference, as
//     that one thread runs every handler anyway. On a context run by several
//     threads, and for strands and other executors, every completion is
//     posted on its own, so a handler that blocks never holds back another.
//     A handler that throws leaves run() as from any handler; the rest of its
//     batch runs later.
//
// Lifetime: the execution context may go first
//   * An io_context (or any execution context) that stops and is destroyed
//     while operations on it are pending (queued, running, or completed but
//     not yet run) takes them with it, as Asio's own operations: their
//     handlers (and the coroutine frames they own) are destroyed unrun, in
//     the context's destructor, and nothing of the context is touched
//     afterwards when the tasks end. A task still queued then never runs; a
//     running one gets its std::stop_token triggered (when it takes one) and
//     its result is dropped when it returns. The callable is the pool's until
//     then: if it refers to objects that die with the context (a coroutine's
//     locals), capture what it needs by value or give it a stop token.
//   * This is done by a service of the context (blockpool's ContextService),
//     created by the first operation whose handler runs there.
//   * An operation initiated on a context that is already shutting down
//     (from a handler's destructor, say) never starts: its handler is
//     destroyed at once, unrun.
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
//     executor (as Asio requires of every slot).
//
// Memory and threads: the completion is posted from the thread that ends the
// task (a pool thread, or the thread calling abort/shutdown, e.g. the one
// emitting cancellation), with the context's service locked; the handler's
// associated allocator (called by the post) must not start operations on the
// same context. If posting fails to allocate, std::terminate is called (the
// post happens in a noexcept context).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/detail/concurrency_hint.hpp>
#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>
#include <asio/system_executor.hpp>
#include <cstddef>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <utility>

#include "blockpool/detail/asio/common.hpp"

#define BLOCKPOOL_ASIO_NET ::asio
#define BLOCKPOOL_ASIO_IMPL asio_standalone
#define BLOCKPOOL_ASIO_HINT_IS_LOCKING(facility, hint) ASIO_CONCURRENCY_HINT_IS_LOCKING(facility, hint)
#include "blockpool/detail/asio/service.ipp"
#include "blockpool/detail/asio/executor.ipp"
#include "blockpool/detail/asio/operation.ipp"
#include "blockpool/detail/asio/initiation.ipp"
#undef BLOCKPOOL_ASIO_HINT_IS_LOCKING
#undef BLOCKPOOL_ASIO_IMPL
#undef BLOCKPOOL_ASIO_NET

namespace blockpool {

// Runs `f` on `pool`'s blocking threads as an Asio asynchronous operation;
// see the top of this header.
using detail::asio_standalone::async_spawn_blocking;
// The same for a mandatory task: it runs even if the pool shuts down, or the
// execution context is destroyed, before it starts.
using detail::asio_standalone::async_spawn_mandatory_blocking;

}  // namespace blockpool
