# examples/kvserver end to end (kvserver_test.cpp: every endpoint in each
# mode, cancel on disconnect, SIGTERM durability). The server is added here,
# before examples/ is processed, so that it is built even when examples are
# off (the sanitizer builds): these tests then run under every sanitizer too.
get_property(blockpool_kvserver_added GLOBAL PROPERTY blockpool_kvserver_added)
if(NOT blockpool_kvserver_added AND EXISTS ${PROJECT_SOURCE_DIR}/examples/kvserver/CMakeLists.txt)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/kvserver ${PROJECT_BINARY_DIR}/examples/kvserver)
endif()
if(TARGET kvserver)
  find_package(SQLite3 REQUIRED)  # its imported target is local to each directory
  blockpool_add_test(kvserver_test SOURCES kvserver_test.cpp LIBS SQLite::SQLite3 LABELS kvserver TIMEOUT 120)
  target_compile_definitions(kvserver_test PRIVATE BLOCKPOOL_KVSERVER_BIN="$<TARGET_FILE:kvserver>")
  add_dependencies(kvserver_test kvserver)
endif()
