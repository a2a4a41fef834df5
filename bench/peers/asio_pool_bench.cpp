// asio::thread_pool peer: a fixed pool of 2 x hardware_concurrency threads
// (created up front); tasks are posted to it and post their result to the
// io_context.
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>

#include <thread>
#include <utility>

#include "asio_driver.hpp"

namespace {

struct AsioPoolPeer {
  static constexpr bool kHasKeepAlive = false;
  static constexpr const char* name = "asio_pool";
  AsioPoolPeer(const bench::Params&, bool) : pool(threads()) {}
  ~AsioPoolPeer() { pool.join(); }
  static std::size_t threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return 2 * (n == 0 ? 1 : n);
  }

  void reserve(std::uint64_t) {}
  template <class F>
  void submit(std::uint64_t, F&& f) {
    asio::post(pool, std::forward<F>(f));
  }
  void completed(std::uint64_t) {}
  void report(bench::Out& out) { out.integer("pool_size", static_cast<long long>(threads())); }

  asio::thread_pool pool;
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<AsioPoolPeer>(argc, argv); }
