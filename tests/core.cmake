# Pool core tests.
blockpool_add_test(smoke_test SOURCES smoke_test.cpp)
