# Reliability tests (issue 5): exactly-once stress, fault injection, load.
#   stress_test      label "stress"; budget BLOCKPOOL_STRESS_SECONDS (default 10 s)
#   fault_test       label "stress"; fast
#   fault_alloc_test label "stress"; replaces global operator new
#   asio_fault_alloc_test  the same for async_spawn_blocking's initiation
#   load_test        label "load"; only with -DBLOCKPOOL_LOAD_TESTS=ON (scripts/load.sh)
option(BLOCKPOOL_LOAD_TESTS "Register the load test (1M tasks, 512 threads) with ctest" OFF)

blockpool_add_test(stress_test SOURCES stress_test.cpp LABELS stress TIMEOUT 600)
blockpool_add_test(fault_test SOURCES fault_test.cpp LABELS stress TIMEOUT 300)
# Replacing the global operator new clashes with the sanitizers' own (static
# runtime): this one runs in normal builds and under valgrind only.
if(NOT BLOCKPOOL_SANITIZE)
  blockpool_add_test(fault_alloc_test SOURCES fault_alloc_test.cpp LABELS stress TIMEOUT 300)
  if(TARGET blockpool::asio)
    blockpool_add_test(asio_fault_alloc_test SOURCES asio_fault_alloc_test.cpp LABELS stress
                       TIMEOUT 300 LIBS blockpool::asio)
  endif()
  if(TARGET blockpool::boost_asio)
    blockpool_add_test(asio_fault_alloc_boost_test SOURCES asio_fault_alloc_test.cpp LABELS stress
                       TIMEOUT 300 LIBS blockpool::boost_asio)
    target_compile_definitions(asio_fault_alloc_boost_test PRIVATE BLOCKPOOL_TEST_BOOST_ASIO)
  endif()
endif()

# The load test is a plain program (prints figures for docs/reliability.md).
add_executable(load_test load_test.cpp)
target_link_libraries(load_test PRIVATE blockpool::blockpool blockpool_warnings)
if(BLOCKPOOL_LOAD_TESTS)
  add_test(NAME load_test COMMAND load_test)
  set_tests_properties(load_test PROPERTIES LABELS load TIMEOUT 1200)
endif()
