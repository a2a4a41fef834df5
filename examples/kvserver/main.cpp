// kvserver: an HTTP/1.1 key-value server on Boost.Beast and SQLite, every
// SQLite call made in a blockpool task (or, to compare, on the event loop or
// on a fixed thread pool). See README.md beside this file.
//
//   kvserver --db FILE --port N [--mode blockpool|inline|fixed] [options]
//   kvserver --db FILE --populate N [--value-size B]
#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "server.hpp"
#include "store.hpp"

namespace {

void usage(std::FILE* to) {
  std::fputs(
      "usage: kvserver --db FILE --port N [--mode blockpool|inline|fixed] [options]\n"
      "       kvserver --db FILE --populate N [--value-size B]\n"
      "  Serves GET/PUT/DELETE /kv/{key}, GET /scan?prefix=p, GET /stats and GET /metrics\n"
      "  over HTTP/1.1\n"
      "  on 127.0.0.1. Creates FILE (SQLite, WAL mode) if missing. --port 0 picks a free\n"
      "  port; the first line on stdout is 'listening on 127.0.0.1:PORT'. SIGINT or SIGTERM\n"
      "  stops it gracefully (exit status 0).\n"
      "  --mode M            where SQLite runs: blockpool tasks (default), inline on the\n"
      "                      event loop, or fixed: a boost::asio::thread_pool\n"
      "  --threads N         blockpool: the pool's max_threads (default 64: each thread\n"
      "                      holds an SQLite connection); fixed: the thread pool's size\n"
      "                      (default 4)\n"
      "  --scan-threads N    blockpool: scans run in a lane of the pool, at most N at\n"
      "                      once (default 4, the fixed mode's pool size)\n"
      "  --scan-priority P   blockpool: background (default: scans run at the lowest CPU\n"
      "                      priority, SCHED_IDLE) or normal\n"
      "  --max-queued N      blockpool: reads waiting for the pool, at most (per lane;\n"
      "                      default 10000); beyond, a quick 503 with Retry-After\n"
      "  --slow-ms MS        blockpool: report tasks running longer than MS on stderr\n"
      "  --host ADDR         address to listen on (default 127.0.0.1)\n"
      "  --shutdown-timeout MS  the pool's shutdown timeout (default 5000)\n"
      "  --drain-timeout MS  how long requests in flight get after a signal (default 10000)\n"
      "  --test-hooks        serve POST /debug/hold and /debug/release (for tests)\n"
      "  --populate N        fill FILE with N keys key00000000.. (values of --value-size\n"
      "                      bytes, default 100) and exit\n",
      to);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Many concurrent clients (the load test's open-loop client opens hundreds of
// connections): use the hard limit on open files, not the soft one.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  kv::ServerOptions opt;
  bool have_port = false;
  std::optional<std::uint64_t> populate;
  std::size_t value_size = 100;
  std::optional<std::size_t> threads;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if (a == "--test-hooks") {
      opt.test_hooks = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kvserver: %s: missing value\n", argv[i]);
      usage(stderr);
      return 2;
    }
    const std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--db") {
      opt.db = std::string(v);
    } else if (a == "--port") {
      ok = parse_number(v, opt.port);
      have_port = ok;
    } else if (a == "--host") {
      opt.host = std::string(v);
    } else if (a == "--mode") {
      const auto m = kv::parse_mode(v);
      ok = m.has_value();
      if (m) opt.mode = *m;
    } else if (a == "--threads") {
      std::size_t n = 0;
      ok = parse_number(v, n) && n > 0;
      threads = n;
    } else if (a == "--shutdown-timeout" || a == "--drain-timeout") {
      std::uint32_t ms = 0;
      ok = parse_number(v, ms);
      (a == "--shutdown-timeout" ? opt.shutdown_timeout : opt.drain_timeout) = std::chrono::milliseconds(ms);
    } else if (a == "--scan-threads") {
      ok = parse_number(v, opt.scan_threads) && opt.scan_threads > 0;
    } else if (a == "--scan-priority") {
      ok = v == "background" || v == "normal";
      opt.background_scans = v == "background";
    } else if (a == "--max-queued") {
      ok = parse_number(v, opt.max_queued) && opt.max_queued > 0;
    } else if (a == "--slow-ms") {
      ok = parse_number(v, opt.slow_ms) && opt.slow_ms >= 0;
    } else if (a == "--populate") {
      std::uint64_t n = 0;
      ok = parse_number(v, n);
      populate = n;
    } else if (a == "--value-size") {
      ok = parse_number(v, value_size);
    } else {
      std::fprintf(stderr, "kvserver: unknown option %s\n", argv[i - 1]);
      usage(stderr);
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "kvserver: bad value for %s: %s\n", argv[i - 1], argv[i]);
      return 2;
    }
  }
  if (opt.db.empty() || (!populate && !have_port)) {
    usage(stderr);
    return 2;
  }
  if (threads) (opt.mode == kv::Mode::fixed ? opt.fixed_threads : opt.max_threads) = *threads;

  if (populate) {
    try {
      kv::Store store(opt.db);
      const auto t0 = std::chrono::steady_clock::now();
      store.populate(*populate, value_size);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("populated %s: %llu rows of %zu-byte values in %.2f s (%llu rows in the table)\n",
                  opt.db.c_str(), static_cast<unsigned long long>(*populate), value_size, s,
                  static_cast<unsigned long long>(store.count()));
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kvserver: %s\n", e.what());
      return 1;
    }
  }
  raise_fd_limit();
  return kv::run_server(opt);
}
