// server.hpp: kvserver's HTTP/1.1 server (Boost.Beast) over a kv::Store.
//
// Routes (the table is in server.cpp, Server::routes()):
//   GET    /kv/{key}         200 with the value, or 404
//   PUT    /kv/{key}         204 once the row is committed (body = value)
//   DELETE /kv/{key}         204, or 404 if there was no such key
//   GET    /scan?prefix=p    200 "count N\nchecksum H\n": a full table scan
//   GET    /stats            200, "name value" lines: requests, pool threads...
//   GET    /metrics          200, the pool's metrics in Prometheus' text format
//   with --test-hooks only:
//   POST   /debug/hold       holds one pool thread until /debug/release
//                            (?pool=scan: a task of the scan lane)
//   POST   /debug/release    204: lets every held thread go
// Keys and the prefix are percent-decoded. Unknown path 404, known path with
// another method 405.
//
// Where SQLite runs (Mode): blockpool tasks (reads cancellable, writes
// mandatory; scans in a lane of the pool capped at scan_threads; a full queue
// answers 503 at once), the event-loop thread itself (inline), or one
// boost::asio::thread_pool of fixed size (fixed).
//
// A client that disconnects while its read (GET, scan) is queued or running
// cancels it: a queued task never runs, a running scan stops early. SIGINT or
// SIGTERM: stop accepting, close idle connections, finish the requests in
// flight (their responses say Connection: close), shut the pool down with a
// timeout, and return 0. A second signal closes every connection at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace kv {

enum class Mode { blockpool, inline_loop, fixed };

std::optional<Mode> parse_mode(std::string_view s);
const char* mode_name(Mode m);

struct ServerOptions {
  std::string db;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;              // 0: the OS picks a free port
  Mode mode = Mode::blockpool;
  std::size_t max_threads = 64;        // blockpool: the pool's max_threads
                                       // (each thread holds an SQLite connection)
  std::size_t fixed_threads = 4;       // fixed: the thread_pool's size
  std::size_t scan_threads = 4;        // blockpool: scans running at once (the scan lane's cap)
  bool background_scans = true;        // blockpool: the scan lane is a background lane
  std::size_t max_queued = 10'000;     // blockpool: requests waiting for the pool, per lane (then 503)
  long slow_ms = 0;                    // blockpool: report tasks running longer (0: off)
  bool test_hooks = false;             // /debug/hold and /debug/release
  std::chrono::milliseconds drain_timeout{10'000};    // for requests in flight at a signal
  std::chrono::milliseconds shutdown_timeout{5'000};  // Pool::shutdown's
};

// Runs the server until SIGINT or SIGTERM. Writes "listening on HOST:PORT"
// as the first line of stdout once it accepts connections, and a summary on
// stderr when it stops. Returns the process exit status (0 after a signal;
// 1 if the database or the listening socket cannot be opened).
int run_server(const ServerOptions& opt);

}  // namespace kv
