# ctest driver (cmake -P): install the current build tree into a temporary
# prefix, then configure, build and run two tiny consumer projects:
#   * install_consumer: find_package(blockpool CONFIG REQUIRED) against the prefix;
#   * subdir_consumer:  add_subdirectory() of the source tree (tests off).
# Inputs (-D): BUILD_DIR SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR CONFIG SANITIZE [MODE]
# MODE: "install" or "subdir" (default: both).
cmake_minimum_required(VERSION 3.21)

foreach(v BUILD_DIR SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install_test.cmake: ${v} not set")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Debug)
endif()
if(NOT MODE)
  set(MODE "install;subdir")
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "FAILED (${rc}): ${cmd}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# Consumers of a sanitized library must link the sanitizer runtime too.
set(flags "")
if(SANITIZE)
  set(flags "-fsanitize=${SANITIZE}")
endif()
set(common_args -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${CONFIG}
  "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

if("install" IN_LIST MODE)
  set(prefix "${WORK_DIR}/prefix")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}" --config ${CONFIG})
  foreach(f include/blockpool/blockpool.hpp include/blockpool/detail/task.hpp)
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "not installed: ${f}")
    endif()
  endforeach()
  file(GLOB_RECURSE cfg "${prefix}/*/blockpoolConfig.cmake")
  if(NOT cfg)
    message(FATAL_ERROR "blockpoolConfig.cmake not installed under ${prefix}")
  endif()
  set(b "${WORK_DIR}/install_consumer")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install_consumer" -B "${b}" ${common_args}
      "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  run(${CMAKE_COMMAND} --build "${b}" -j2)
  run("${b}/app")
  message(STATUS "install consumer: ${last_output}")
  if(REQUIRE_ASIO_FLAVOURS AND NOT EXISTS "${b}/app_asio")
    message(FATAL_ERROR "the installed package lacks blockpool::asio or blockpool::boost_asio")
  endif()
  if(EXISTS "${b}/app_asio")
    run("${b}/app_asio")
    message(STATUS "install consumer (asio flavours): ${last_output}")
  endif()
endif()

if("subdir" IN_LIST MODE)
  set(b "${WORK_DIR}/subdir_consumer")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/subdir_consumer" -B "${b}" ${common_args}
      "-DBLOCKPOOL_SOURCE_DIR=${SOURCE_DIR}")
  run(${CMAKE_COMMAND} --build "${b}" -j2)
  run("${b}/app")
  message(STATUS "add_subdirectory consumer: ${last_output}")
  if(REQUIRE_ASIO_FLAVOURS AND NOT EXISTS "${b}/app_asio")
    message(FATAL_ERROR "add_subdirectory consumer: blockpool::asio or blockpool::boost_asio missing")
  endif()
  if(EXISTS "${b}/app_asio")
    run("${b}/app_asio")
    message(STATUS "add_subdirectory consumer (asio flavours): ${last_output}")
  endif()
endif()
