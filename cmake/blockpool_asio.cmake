# blockpool::asio — the Asio completion-token layer (<blockpool/asio.hpp>).
# Debian's libasio-dev ships headers only (no CMake config), so look for asio.hpp.
find_path(BLOCKPOOL_ASIO_INCLUDE_DIR asio.hpp)
if(BLOCKPOOL_ASIO_INCLUDE_DIR)
  set(BLOCKPOOL_HAS_ASIO ON)
  add_library(blockpool_asio INTERFACE)
  add_library(blockpool::asio ALIAS blockpool_asio)
  set_target_properties(blockpool_asio PROPERTIES EXPORT_NAME asio)
  target_link_libraries(blockpool_asio INTERFACE blockpool)
  target_include_directories(blockpool_asio SYSTEM INTERFACE
    $<BUILD_INTERFACE:${BLOCKPOOL_ASIO_INCLUDE_DIR}>)
  # clang 14 + libstdc++: Asio 1.22 does not detect std coroutines by itself.
  target_compile_definitions(blockpool_asio INTERFACE
    $<$<CXX_COMPILER_ID:Clang>:ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1>)
else()
  set(BLOCKPOOL_HAS_ASIO OFF)
  message(STATUS "blockpool: asio.hpp not found; blockpool::asio not built (apt-get install libasio-dev)")
endif()

# blockpool::boost_asio — the same layer for Boost.Asio (<blockpool/boost_asio.hpp>),
# from the same implementation. Boost >= 1.77 (cancellation slots); Debian 12:
# libboost1.81-dev (its default libboost-dev is 1.74, too old).
find_package(Boost 1.77 CONFIG QUIET)
if(Boost_FOUND AND TARGET Boost::headers)
  set(BLOCKPOOL_HAS_BOOST_ASIO ON)
  add_library(blockpool_boost_asio INTERFACE)
  add_library(blockpool::boost_asio ALIAS blockpool_boost_asio)
  set_target_properties(blockpool_boost_asio PROPERTIES EXPORT_NAME boost_asio)
  target_link_libraries(blockpool_boost_asio INTERFACE blockpool Boost::headers)
  # clang 14 + libstdc++: Boost.Asio does not detect std coroutines by itself either.
  target_compile_definitions(blockpool_boost_asio INTERFACE
    $<$<CXX_COMPILER_ID:Clang>:BOOST_ASIO_HAS_CO_AWAIT=1 BOOST_ASIO_HAS_STD_COROUTINE=1>)
else()
  set(BLOCKPOOL_HAS_BOOST_ASIO OFF)
  message(STATUS "blockpool: Boost >= 1.77 not found; blockpool::boost_asio not built (apt-get install libboost1.81-dev)")
endif()
