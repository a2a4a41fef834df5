// tests/asio_flavour.hpp: one Asio test source, two builds. By default the
// standalone Asio flavour (<blockpool/asio.hpp>); with BLOCKPOOL_TEST_BOOST_ASIO
// defined, the Boost.Asio flavour (<blockpool/boost_asio.hpp>). Either way
// `asio::` names that Asio, `bpa::` blockpool's functions for it, and
// BP_ASIO_HINT_DEFAULT the default concurrency hint (tests/asio.cmake builds
// each Asio test once per flavour).
#pragma once

#if defined(BLOCKPOOL_TEST_BOOST_ASIO)
#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/deferred.hpp>

#include "blockpool/boost_asio.hpp"
namespace asio = boost::asio;
namespace bpa = blockpool::boost_asio;
#define BP_ASIO_HINT_DEFAULT BOOST_ASIO_CONCURRENCY_HINT_DEFAULT
#define BP_ASIO_FLAVOUR "boost.asio"
#else
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>

#include "blockpool/asio.hpp"
namespace bpa = blockpool;
#define BP_ASIO_HINT_DEFAULT ASIO_CONCURRENCY_HINT_DEFAULT
#define BP_ASIO_FLAVOUR "asio"
#endif
