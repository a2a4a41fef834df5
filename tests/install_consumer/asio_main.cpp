// Uses both Asio flavours of an installed (or add_subdirectory'd) blockpool
// in one program: one task through standalone Asio, one through Boost.Asio.
#include <blockpool/asio.hpp>
#include <blockpool/boost_asio.hpp>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>

int main() {
  blockpool::Pool pool;
  asio::io_context io1(1);
  boost::asio::io_context io2(1);
  int a = 0, b = 0;
  blockpool::async_spawn_blocking(pool, [] { return 6; },
                                  asio::bind_executor(io1, [&](std::exception_ptr, int v) { a = v; }));
  blockpool::boost_asio::async_spawn_blocking(
      pool, [] { return 7; }, boost::asio::bind_executor(io2, [&](std::exception_ptr, int v) { b = v; }));
  io1.run();
  io2.run();
  if (a * b != 42) {
    std::fprintf(stderr, "asio consumer: expected 6 * 7, got %d * %d\n", a, b);
    return 1;
  }
  std::printf("asio + boost.asio consumer ok\n");
  return 0;
}
