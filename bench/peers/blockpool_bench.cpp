// blockpool peer: tasks go to blockpool::Pool::spawn_blocking (default
// configuration; keep_alive = Params::keep_alive_ms for the idle scenario).
// The JoinHandle is dropped (detached): the task itself posts its result to
// the io_context, exactly like the other asio-loop peers.
#include <blockpool/blockpool.hpp>

#include <chrono>
#include <utility>

#include "asio_driver.hpp"

namespace {

blockpool::Pool make_pool(const bench::Params& p, bool idle) {
  blockpool::Builder b;
  if (idle) b.keep_alive(std::chrono::milliseconds(p.keep_alive_ms));
  return b.build();
}

struct BlockpoolPeer {
  static constexpr bool kHasKeepAlive = true;
  static constexpr const char* name = "blockpool";
  BlockpoolPeer(const bench::Params& p, bool idle) : pool(make_pool(p, idle)) {}

  void reserve(std::uint64_t) {}
  template <class F>
  void submit(std::uint64_t, F&& f) {
    (void)pool.spawn_blocking(std::forward<F>(f));
  }
  void completed(std::uint64_t) {}
  void report(bench::Out& out) {
    const blockpool::Metrics m = pool.metrics();
    out.integer("pool_peak_threads", static_cast<long long>(m.peak_threads));
    out.integer("pool_threads_started", static_cast<long long>(m.threads_started));
    out.integer("pool_threads_retired", static_cast<long long>(m.threads_retired));
  }

  blockpool::Pool pool;
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<BlockpoolPeer>(argc, argv); }
