# Pool core tests. One executable per component; see tests/test_util.hpp for
# the shared helpers (bounded waits, gates). No test sleeps to synchronise.
set(BLOCKPOOL_CORE_TESTS
  smoke
  spawn
  growth
  keep_alive
  abort
  shutdown
  spawn_failure
  thread_hooks
  handle
  builder
  metrics
  exactly_once
  coroutine
  wake
  reentrancy
  signal
  duration
  admission
  latency
  background_lane
  block_cache
)
foreach(t IN LISTS BLOCKPOOL_CORE_TESTS)
  blockpool_add_test(${t}_test SOURCES ${t}_test.cpp TIMEOUT 120 LABELS core)
endforeach()

# White-box checks (src/core.hpp): aborted tasks are unlinked from the queue;
# held tasks are not growth need.
target_include_directories(abort_test PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_include_directories(admission_test PRIVATE ${PROJECT_SOURCE_DIR}/src)

# The growth policy is internal (src/growth.hpp): unit-tested directly.
blockpool_add_test(growth_policy_test SOURCES growth_policy_test.cpp LABELS core)
target_include_directories(growth_policy_test PRIVATE ${PROJECT_SOURCE_DIR}/src)

# So is the wake-up policy (src/wake_policy.hpp).
blockpool_add_test(wake_policy_test SOURCES wake_policy_test.cpp LABELS core)
target_include_directories(wake_policy_test PRIVATE ${PROJECT_SOURCE_DIR}/src)

# The CPU count the policy uses (affinity mask, cgroup quota) is internal
# (src/cpu_limit.hpp): its parsing is unit-tested on file contents.
blockpool_add_test(cpu_limit_test SOURCES cpu_limit_test.cpp LABELS core)
target_include_directories(cpu_limit_test PRIVATE ${PROJECT_SOURCE_DIR}/src)

# Install + find_package consumer, and add_subdirectory consumer.
if(BLOCKPOOL_INSTALL)
  add_test(NAME install_consumer
    COMMAND ${CMAKE_COMMAND}
      -DBUILD_DIR=${PROJECT_BINARY_DIR}
      -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_consumer_work
      -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
      "-DGENERATOR=${CMAKE_GENERATOR}"
      -DCONFIG=$<IF:$<BOOL:$<CONFIG>>,$<CONFIG>,Debug>
      "-DSANITIZE=${BLOCKPOOL_SANITIZE}"
      -DMODE=install
      "-DREQUIRE_ASIO_FLAVOURS=$<AND:$<TARGET_EXISTS:blockpool::asio>,$<TARGET_EXISTS:blockpool::boost_asio>>"
      -P ${CMAKE_CURRENT_SOURCE_DIR}/install_test.cmake)
  set_tests_properties(install_consumer PROPERTIES TIMEOUT 300 LABELS "core;install")
endif()
add_test(NAME subdir_consumer
  COMMAND ${CMAKE_COMMAND}
    -DBUILD_DIR=${PROJECT_BINARY_DIR}
    -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
    -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/subdir_consumer_work
    -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
    "-DGENERATOR=${CMAKE_GENERATOR}"
    -DCONFIG=$<IF:$<BOOL:$<CONFIG>>,$<CONFIG>,Debug>
    "-DSANITIZE=${BLOCKPOOL_SANITIZE}"
    -DMODE=subdir
    "-DREQUIRE_ASIO_FLAVOURS=$<AND:$<TARGET_EXISTS:blockpool::asio>,$<TARGET_EXISTS:blockpool::boost_asio>>"
    -P ${CMAKE_CURRENT_SOURCE_DIR}/install_test.cmake)
set_tests_properties(subdir_consumer PROPERTIES TIMEOUT 300 LABELS "core;install")
