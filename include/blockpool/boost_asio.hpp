// blockpool/boost_asio.hpp: spawn_blocking as a Boost.Asio asynchronous
// operation. Everything <blockpool/asio.hpp> gives standalone Asio, with the
// same semantics (read that header's contract: completion signature,
// executor, strands, batching, lifetime, cancellation), in namespace
// blockpool::boost_asio and for boost::asio executors and tokens:
//
//   #include <blockpool/boost_asio.hpp>
//   std::string text = co_await blockpool::boost_asio::async_spawn_blocking(
//       pool, [path] { return read_file(path); }, boost::asio::use_awaitable);
//
// Needs Boost 1.77 or later (cancellation slots); Debian 12's
// libboost1.81-dev is Boost.Asio 1.26. The CMake target blockpool::boost_asio
// adds Boost's headers and, for clang, the defines that switch on Boost.Asio's
// coroutine support. One implementation serves both flavours
// (detail/asio/*.ipp, included here with the Boost namespace), and both
// headers can be used in one translation unit.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detail/concurrency_hint.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/system_executor.hpp>
#include <cstddef>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <utility>

#include "blockpool/detail/asio/common.hpp"
#include "blockpool/detail/asio/dns_common.hpp"

#define BLOCKPOOL_ASIO_NET ::boost::asio
#define BLOCKPOOL_ASIO_IMPL asio_boost
#define BLOCKPOOL_ASIO_HINT_IS_LOCKING(facility, hint) BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(facility, hint)
#include "blockpool/detail/asio/service.ipp"
#include "blockpool/detail/asio/executor.ipp"
#include "blockpool/detail/asio/operation.ipp"
#include "blockpool/detail/asio/initiation.ipp"
#include "blockpool/detail/asio/fs.ipp"
#include "blockpool/detail/asio/dns.ipp"
#undef BLOCKPOOL_ASIO_HINT_IS_LOCKING
#undef BLOCKPOOL_ASIO_IMPL
#undef BLOCKPOOL_ASIO_NET

namespace blockpool::boost_asio {

// Runs `f` on `pool`'s blocking threads as a Boost.Asio asynchronous
// operation; see <blockpool/asio.hpp> for the contract.
using detail::asio_boost::async_spawn_blocking;
// The same for a mandatory task: it runs even if the pool shuts down, or the
// execution context is destroyed, before it starts.
using detail::asio_boost::async_spawn_mandatory_blocking;
// The second argument of the completion signature for a task returning R.
using blockpool::asio_value_t;
// Files and directories through the pool (<blockpool/fs.hpp> for the contract).
namespace fs = detail::asio_boost::fs;

}  // namespace blockpool::boost_asio

// Name lookups as pool tasks; see <blockpool/dns.hpp> for the contract.
namespace blockpool::boost_asio::dns {
using detail::asio_boost::async_resolve;
using detail::dns_common::category;
}  // namespace blockpool::boost_asio::dns
