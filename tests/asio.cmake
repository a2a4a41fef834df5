# Async integration tests: the Asio layer (<blockpool/asio.hpp>), co_await on
# JoinHandle, and the dirhash example end to end.
blockpool_add_test(asio_coro_test SOURCES asio_coro_test.cpp)

# The Asio layer's tests run once per flavour: standalone Asio, and Boost.Asio
# (the same sources, built with BLOCKPOOL_TEST_BOOST_ASIO; see asio_flavour.hpp).
#   asio_adapter_test   tokens, executors, allocators, cancellation, batching
#   asio_lifetime_test  io_contexts that die first, strands, batching nobody can observe
#   asio_admission_test awaitable admission (a full queue makes operations wait), lanes
set(BLOCKPOOL_ASIO_FLAVOUR_TESTS asio_adapter asio_lifetime asio_admission)
if(TARGET blockpool::asio)
  foreach(t IN LISTS BLOCKPOOL_ASIO_FLAVOUR_TESTS)
    blockpool_add_test(${t}_test SOURCES ${t}_test.cpp LIBS blockpool::asio)
  endforeach()

  # examples/dirhash is built when examples are on and OpenSSL is found; the
  # examples directory is processed after this one, so test the same
  # conditions here and name the binary with a generator expression.
  find_package(OpenSSL QUIET)
  find_program(BLOCKPOOL_SHA256SUM sha256sum)
  if(BLOCKPOOL_BUILD_EXAMPLES AND OpenSSL_FOUND AND BLOCKPOOL_SHA256SUM)
    blockpool_add_test(asio_dirhash_test SOURCES asio_dirhash_test.cpp)
    target_compile_definitions(asio_dirhash_test PRIVATE
      BLOCKPOOL_DIRHASH_BIN="$<TARGET_FILE:dirhash>"
      BLOCKPOOL_SHA256SUM="${BLOCKPOOL_SHA256SUM}")
    add_dependencies(asio_dirhash_test dirhash)
  endif()
endif()

if(TARGET blockpool::boost_asio)
  foreach(t IN LISTS BLOCKPOOL_ASIO_FLAVOUR_TESTS)
    blockpool_add_test(${t}_boost_test SOURCES ${t}_test.cpp LIBS blockpool::boost_asio)
    target_compile_definitions(${t}_boost_test PRIVATE BLOCKPOOL_TEST_BOOST_ASIO)
  endforeach()
endif()
if(TARGET blockpool::asio AND TARGET blockpool::boost_asio)
  # Both flavours' headers in one translation unit, on one pool.
  blockpool_add_test(asio_two_flavours_test SOURCES asio_two_flavours_test.cpp
                     LIBS blockpool::asio blockpool::boost_asio)
endif()
