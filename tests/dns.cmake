# Name lookups (<blockpool/dns.hpp>, issue 18), once per Asio flavour like
# the Asio layer's tests (asio.cmake): dns_test (standalone Asio, which also
# uses both flavours in one translation unit when Boost.Asio is there) and
# dns_boost_test (Boost.Asio).
if(TARGET blockpool::asio)
  if(TARGET blockpool::boost_asio)
    blockpool_add_test(dns_test SOURCES dns_test.cpp LIBS blockpool::asio blockpool::boost_asio)
    target_compile_definitions(dns_test PRIVATE BLOCKPOOL_DNS_TEST_BOTH_FLAVOURS)
  else()
    blockpool_add_test(dns_test SOURCES dns_test.cpp LIBS blockpool::asio)
  endif()
endif()
if(TARGET blockpool::boost_asio)
  blockpool_add_test(dns_boost_test SOURCES dns_test.cpp LIBS blockpool::boost_asio)
  target_compile_definitions(dns_boost_test PRIVATE BLOCKPOOL_TEST_BOOST_ASIO)
endif()
