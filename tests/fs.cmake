# blockpool::fs (<blockpool/fs.hpp>), once per Asio flavour like the other
# Asio tests (see asio_flavour.hpp): fs_test (standalone Asio) and
# fs_boost_test (Boost.Asio, BLOCKPOOL_TEST_BOOST_ASIO). Each test's name
# starts with its binary's ("fs_test.Fs.ReadDir...", "fs_boost_test.Fs...").
if(TARGET blockpool::asio)
  blockpool_add_test(fs_test SOURCES fs_test.cpp LIBS blockpool::asio PREFIX fs_test.)
endif()
if(TARGET blockpool::boost_asio)
  blockpool_add_test(fs_boost_test SOURCES fs_test.cpp LIBS blockpool::boost_asio PREFIX fs_boost_test.)
  target_compile_definitions(fs_boost_test PRIVATE BLOCKPOOL_TEST_BOOST_ASIO)
endif()
