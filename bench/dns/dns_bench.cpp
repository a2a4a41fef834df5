// bench/dns/dns_bench.cpp: N lookups of "localhost" issued at once from one
// io_context, by blockpool::dns::async_resolve and by Asio's own
// asio::ip::tcp::resolver. Run with bench/dns/slow_getaddrinfo preloaded
// (bench/dns/run.sh), every getaddrinfo takes 50 ms: blockpool runs the
// lookups in parallel on its pool (about 50 ms for any N), Asio's resolver
// runs them one at a time on its one private thread per io_context (about
// N x 50 ms). Prints a Markdown table: best of a few rounds per N.
#include <netdb.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "blockpool/dns.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One plain getaddrinfo: tells whether the slow one is preloaded.
double one_lookup_ms() {
  const auto t0 = Clock::now();
  addrinfo* res = nullptr;
  if (getaddrinfo("localhost", "80", nullptr, &res) == 0) freeaddrinfo(res);
  return ms_since(t0);
}

double run_blockpool(blockpool::Pool& pool, int n) {
  asio::io_context io(1);
  int ok = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    blockpool::dns::async_resolve(pool, "localhost", "80",
                                  asio::bind_executor(io, [&](std::exception_ptr e, const auto& eps) {
                                    ok += (!e && !eps.empty()) ? 1 : 0;
                                  }));
  }
  io.run();
  const double ms = ms_since(t0);
  if (ok != n) std::fprintf(stderr, "blockpool: %d of %d lookups failed\n", n - ok, n);
  return ms;
}

double run_asio(int n) {
  asio::io_context io(1);
  asio::ip::tcp::resolver resolver(io);
  int ok = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    resolver.async_resolve("localhost", "80", [&](const asio::error_code& ec, const auto& results) {
      ok += (!ec && !results.empty()) ? 1 : 0;
    });
  }
  io.run();
  const double ms = ms_since(t0);
  if (ok != n) std::fprintf(stderr, "asio: %d of %d lookups failed\n", n - ok, n);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  const double one = one_lookup_ms();
  std::printf("one getaddrinfo(\"localhost\"): %.1f ms%s\n\n", one,
              one < 10 ? "  (slow_getaddrinfo is NOT preloaded: see bench/dns/run.sh)" : "");
  std::printf("| lookups | blockpool (ms) | asio resolver (ms) | asio / blockpool |\n");
  std::printf("|--------:|---------------:|-------------------:|-----------------:|\n");
  blockpool::Pool pool;  // default: up to 512 threads
  for (int n : {1, 8, 32, 64}) {
    double bp = 1e300, as = 1e300;
    for (int r = 0; r < rounds; ++r) {
      bp = std::min(bp, run_blockpool(pool, n));
      as = std::min(as, run_asio(n));
    }
    std::printf("| %7d | %14.1f | %18.1f | %15.1fx |\n", n, bp, as, as / bp);
    std::fflush(stdout);
  }
  return 0;
}
