// blockpool/dns.hpp: name lookups on a blockpool Pool as Asio asynchronous
// operations (standalone Asio; <blockpool/boost_asio.hpp> gives the same in
// blockpool::boost_asio::dns for Boost.Asio). CMake target blockpool::asio.
//
//   #include <blockpool/dns.hpp>
//
//   std::vector<asio::ip::tcp::endpoint> eps = co_await
//       blockpool::dns::async_resolve(pool, "localhost", "8080", asio::use_awaitable);
//
// async_resolve(pool_or_handle, host, service, token)
//   * Runs getaddrinfo(host, service) for TCP (AF_UNSPEC, SOCK_STREAM, the
//     system's own order and configuration: /etc/hosts, DNS, nsswitch) as a
//     task on the pool, or on the lane of a lane's Handle. An empty host or
//     service is passed to getaddrinfo as null.
//   * An IP literal host (IPv4 dotted quad, or IPv6 without a scope id) with a
//     numeric or empty service is parsed on the spot: no task, no file read,
//     no socket. Its one endpoint is still delivered through the ordinary
//     completion path: posted to the handler's executor, never inline.
//   * Completion signature void(std::exception_ptr, std::vector<tcp::endpoint>):
//     the endpoints in getaddrinfo's order on success (never empty for a
//     successful lookup of an address family Asio knows), else an empty
//     vector and the error.
//   * Lookups run in parallel, as many as the pool (or the lane) runs tasks
//     at once; Asio's own resolver runs one lookup at a time per io_context.
//     A lane's Handle caps how many run at once; a full queue makes the
//     lookup wait for room, as async_spawn_blocking does.
//   * Every completion token (callbacks, use_future, use_awaitable,
//     deferred, as_tuple); the completion runs on the handler's associated
//     executor, and the operation holds work on it until it completes,
//     exactly as for async_spawn_blocking (<blockpool/asio.hpp>).
//
// Errors (in the exception_ptr)
//   * The lookup failed: std::system_error whose what() names the host (and
//     the service): code() is an EAI_* value in blockpool::dns::category()
//     (message: gai_strerror), or, for EAI_SYSTEM, errno in
//     std::system_category().
//   * The lookup never ran (cancelled, the pool gone or shutting down) or no
//     thread could be created for it: a blockpool::JoinError, exactly as
//     async_spawn_blocking reports it.
//
// Cancellation (the handler's associated cancellation slot)
//   * terminal or partial: the operation completes at once (posted) with a
//     cancelled JoinError, whether the lookup is queued or already running. A
//     queued lookup never runs. A running getaddrinfo cannot be interrupted:
//     it runs on, on its pool thread, holding no work on the handler's
//     executor (io_context::run() may return, and the context be destroyed,
//     meanwhile), and its result is discarded when it returns.
//   * total only: a queued lookup never runs and the operation completes as
//     cancelled; a running one is left to complete (total cancellation
//     promises no observable effect, and there is none to undo).
//
// Lifetime: the execution context may be destroyed while lookups are
// pending; their handlers are then destroyed unrun, as for
// async_spawn_blocking, and a running getaddrinfo is left to finish.
// The pool (or its Handle's pool) may go first too: a lookup not yet started
// completes as cancelled; a running one completes with its result.
#pragma once

#include <asio/ip/tcp.hpp>
#include <string>
#include <vector>

#include "blockpool/asio.hpp"
#include "blockpool/detail/asio/dns_common.hpp"

#define BLOCKPOOL_ASIO_NET ::asio
#define BLOCKPOOL_ASIO_IMPL asio_standalone
#include "blockpool/detail/asio/dns.ipp"
#undef BLOCKPOOL_ASIO_IMPL
#undef BLOCKPOOL_ASIO_NET

namespace blockpool::dns {

// Resolves host and service to TCP endpoints on the pool; see above.
using detail::asio_standalone::async_resolve;
// The category of getaddrinfo's EAI_* error codes.
using detail::dns_common::category;

}  // namespace blockpool::dns
