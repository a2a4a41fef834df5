# Async integration tests: the Asio layer (<blockpool/asio.hpp>), co_await on
# JoinHandle, and the dirhash example end to end.
blockpool_add_test(asio_coro_test SOURCES asio_coro_test.cpp)

if(TARGET blockpool::asio)
  blockpool_add_test(asio_adapter_test SOURCES asio_adapter_test.cpp LIBS blockpool::asio)
  # io_contexts that die first, strands, batching that nobody can observe.
  blockpool_add_test(asio_lifetime_test SOURCES asio_lifetime_test.cpp LIBS blockpool::asio)

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
