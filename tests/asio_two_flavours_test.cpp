// Both flavours of the Asio layer in one translation unit and one program:
// <blockpool/asio.hpp> (standalone Asio) and <blockpool/boost_asio.hpp>
// (Boost.Asio) come from one implementation, each in its own namespace, and
// one pool serves both loops.
#include <unistd.h>

#include <asio.hpp>
#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <string>

#include "blockpool/asio.hpp"
#include "blockpool/boost_asio.hpp"
#include "blockpool/fs.hpp"

namespace {

asio::awaitable<std::string> standalone_coroutine(blockpool::Pool& pool) {
  auto f = [] { return std::string("standalone"); };
  co_return co_await blockpool::async_spawn_blocking(pool, std::move(f), asio::use_awaitable);
}

boost::asio::awaitable<std::string> boost_coroutine(blockpool::Pool& pool) {
  auto f = [] { return std::string("boost"); };
  co_return co_await blockpool::boost_asio::async_spawn_blocking(pool, std::move(f),
                                                                 boost::asio::use_awaitable);
}

}  // namespace

TEST(AsioTwoFlavours, OnePoolServesBothLoops) {
  blockpool::Pool pool;
  asio::io_context io1(1);
  boost::asio::io_context io2(1);
  std::string a, b;
  asio::co_spawn(io1, standalone_coroutine(pool), [&](std::exception_ptr e, std::string s) {
    a = e ? "error" : s;
  });
  boost::asio::co_spawn(io2, boost_coroutine(pool), [&](std::exception_ptr e, std::string s) {
    b = e ? "error" : s;
  });
  std::thread t([&] { io2.run(); });
  io1.run();
  t.join();
  EXPECT_EQ(a, "standalone");
  EXPECT_EQ(b, "boost");
  // Callbacks and futures too, both flavours at once.
  int x = 0, y = 0;
  blockpool::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(io1, [&](std::exception_ptr, int v) { x = v; }));
  blockpool::boost_asio::async_spawn_blocking(
      pool, [] { return 2; }, boost::asio::bind_executor(io2, [&](std::exception_ptr, int v) { y = v; }));
  io1.restart();
  io2.restart();
  io1.run();
  io2.run();
  EXPECT_EQ(x, 1);
  EXPECT_EQ(y, 2);
  std::future<int> fa = blockpool::async_spawn_blocking(pool, [] { return 3; }, asio::use_future);
  std::future<int> fb = blockpool::boost_asio::async_spawn_blocking(pool, [] { return 4; }, boost::asio::use_future);
  EXPECT_EQ(fa.get() + fb.get(), 7);
}

// Each flavour's io_context dying first is handled by its own service.
TEST(AsioTwoFlavours, EachContextDiesWithItsOwnOperations) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  std::promise<void> release;
  auto gate = release.get_future().share();
  auto token = std::make_shared<int>(0);
  auto blocker = pool.spawn_blocking([gate] { gate.wait(); });  // the two tasks below stay queued
  {
    asio::io_context io1;
    boost::asio::io_context io2;
    blockpool::async_spawn_blocking(pool, [] { return 1; }, asio::bind_executor(io1, [t = token](std::exception_ptr, int) {}));
    blockpool::boost_asio::async_spawn_blocking(pool, [] { return 2; },
                                                boost::asio::bind_executor(io2, [t = token](std::exception_ptr, int) {}));
  }
  release.set_value();
  EXPECT_TRUE(pool.shutdown(std::chrono::seconds(20)));
  EXPECT_EQ(token.use_count(), 1);
}

// blockpool::fs and blockpool::boost_asio::fs side by side, on one pool.
TEST(AsioTwoFlavours, FsOfBothFlavours) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("blockpool-two-flavours-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  blockpool::Pool pool;
  blockpool::fs::async_write_file(pool, dir / "a", std::string("standalone"), asio::use_future).get();
  blockpool::boost_asio::fs::async_write_file(pool, dir / "b", std::string("boost"), boost::asio::use_future).get();
  EXPECT_EQ(blockpool::boost_asio::fs::async_read_file(pool, dir / "a", boost::asio::use_future).get(), "standalone");
  EXPECT_EQ(blockpool::fs::async_read_file(pool, dir / "b", asio::use_future).get(), "boost");
  std::filesystem::remove_all(dir);
}
