// blockpool peer: tasks go to blockpool::async_spawn_blocking (default
// configuration; keep_alive = Params::keep_alive_ms for the idle scenario),
// with the completion bound to the loop's io_context: the library brings each
// result back to the loop (batched, see docs/asio.md), where the harness's
// on_complete checks it like any other peer's.
#include <asio/bind_executor.hpp>
#include <blockpool/asio.hpp>
#include <blockpool/blockpool.hpp>

#include <cstdlib>
#include <exception>

#include <chrono>
#include <utility>

#include "asio_driver.hpp"

namespace {

blockpool::Pool make_pool(const bench::Params& p, bool idle) {
  blockpool::Builder b;
  if (idle) b.keep_alive(std::chrono::milliseconds(p.keep_alive_ms));
  // For the A/B of latency recording's cost (bench/README.md): the library's
  // default records queue-wait and run-time histograms.
  if (const char* v = std::getenv("BLOCKPOOL_BENCH_NO_LATENCY"); v != nullptr && *v != '\0' && *v != '0')
    b.record_latency(false);
  return b.build();
}

struct BlockpoolPeer {
  static constexpr bool kHasKeepAlive = true;
  static constexpr const char* name = "blockpool";
  BlockpoolPeer(const bench::Params& p, bool idle) : pool(make_pool(p, idle)) {}

  void reserve(std::uint64_t) {}
#ifdef BLOCKPOOL_BENCH_PLAIN
  // For A/B runs: a detached spawn whose task posts its own result.
  template <class F>
  void submit(std::uint64_t, F&& f) {
    (void)pool.spawn_blocking(std::forward<F>(f));
  }
#else
  template <class W, class D>
  void submit_returning(asio::io_context& io, std::uint64_t, W&& work, D&& done) {
    blockpool::async_spawn_blocking(
        pool, std::forward<W>(work),
        asio::bind_executor(io, [done = std::forward<D>(done)](std::exception_ptr e,
                                                               std::uint64_t v) {
          if (e) std::rethrow_exception(e);  // out of io_context::run(): the run fails
          done(v);
        }));
  }
#endif
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
