// server.cpp: see server.hpp. One event-loop thread (an io_context with
// concurrency hint 1) runs every session as a C++20 coroutine; SQLite runs
// where the mode says (Server::read and Server::write are the only places
// that decide).
#include "server.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <blockpool/blockpool.hpp>
#include <blockpool/boost_asio.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "store.hpp"

namespace kv {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using SteadyClock = std::chrono::steady_clock;

std::optional<Mode> parse_mode(std::string_view s) {
  if (s == "blockpool") return Mode::blockpool;
  if (s == "inline") return Mode::inline_loop;
  if (s == "fixed") return Mode::fixed;
  return std::nullopt;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::blockpool: return "blockpool";
    case Mode::inline_loop: return "inline";
    case Mode::fixed: return "fixed";
  }
  return "?";
}

namespace {

constexpr std::size_t kMaxBody = 1 << 20;   // a value: 1 MiB
constexpr std::size_t kMaxHeader = 16 << 10;
constexpr std::size_t kMaxKey = 1024;

// A request the server refuses before doing any work (bad key, bad query).
class HttpError : public std::runtime_error {
 public:
  HttpError(http::status s, const std::string& what) : std::runtime_error(what), status_(s) {}
  http::status status() const noexcept { return status_; }

 private:
  http::status status_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX escapes, as in a URI path segment or query value.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) throw HttpError(http::status::bad_request, "bad percent escape\n");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string decode_key(std::string_view raw) {
  std::string key = percent_decode(raw);
  if (key.empty()) throw HttpError(http::status::bad_request, "empty key\n");
  if (key.size() > kMaxKey) throw HttpError(http::status::bad_request, "key too long\n");
  return key;
}

// The value of `name` in a query string (a=1&b=2), percent-decoded; empty
// if absent.
std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (item.size() > name.size() && item.starts_with(name) && item[name.size()] == '=')
      return percent_decode(item.substr(name.size() + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string hex64(std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kHex[v & 15];
  return s;
}

// Runs f(std::stop_token{}) on a boost::asio::thread_pool and completes on
// the handler's executor (the "fixed" mode). A plain Asio operation: it holds
// work on that executor and ignores cancellation (nothing to compare with
// blockpool's here but where the work runs).
template <class F, class Token>
auto async_run_on(net::thread_pool& tp, std::atomic<std::uint64_t>& queued, F f, Token&& token) {
  using R = std::invoke_result_t<F&, std::stop_token>;
  auto init = [&tp, &queued](auto handler, F fn) {
    auto ex = net::prefer(net::get_associated_executor(handler),
                          net::execution::outstanding_work.tracked);
    queued.fetch_add(1, std::memory_order_relaxed);
    net::post(tp, [h = std::move(handler), ex = std::move(ex), fn = std::move(fn), &queued]() mutable {
      queued.fetch_sub(1, std::memory_order_relaxed);
      std::exception_ptr e;
      R r{};
      try {
        r = fn(std::stop_token{});
      } catch (...) {
        e = std::current_exception();
      }
      net::post(ex, net::append(std::move(h), e, std::move(r)));
    });
  };
  return net::async_initiate<Token, void(std::exception_ptr, R)>(std::move(init), token, std::move(f));
}

// ---- Where a GET's time goes (Server-Timing) -------------------------------
// A client that sends kSentHeader (its CLOCK_MONOTONIC send time in ns; the
// steady clock is CLOCK_MONOTONIC, one clock for every process on the
// machine) gets a Server-Timing header on GET /kv with four durations:
//   arrive  its send time -> the server handed the query to where it runs
//           (the kernel, the loop waking, reading and parsing the request)
//   queue   handed -> the query started (waiting for a thread)
//   run     the query itself
//   resume  the query ended -> the loop took up its result
// kvbench uses them to say where the slowest requests spent their time.
constexpr std::string_view kSentHeader = "X-Sent-Ns";

struct RunStamps {
  SteadyClock::time_point start{}, end{};
};

std::string server_timing(std::string_view sent_ns, SteadyClock::time_point handed, const RunStamps& ran,
                          SteadyClock::time_point resumed) {
  auto ms = [](SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::int64_t ns = 0;
  const bool have_sent = std::from_chars(sent_ns.data(), sent_ns.data() + sent_ns.size(), ns).ec == std::errc{};
  char buf[160];
  int n = 0;
  if (have_sent)
    n = std::snprintf(buf, sizeof buf, "arrive;dur=%.3f, ",
                      ms(handed - SteadyClock::time_point(std::chrono::nanoseconds(ns))));
  std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), "queue;dur=%.3f, run;dur=%.3f, resume;dur=%.3f",
                ms(ran.start - handed), ms(ran.end - ran.start), ms(resumed - ran.end));
  return buf;
}

struct Session {
  explicit Session(tcp::socket s) : sock(std::move(s)) {}
  enum class State { reading, working, writing };
  tcp::socket sock;
  beast::flat_buffer buf;
  State state = State::reading;
};

// /debug/hold tasks wait here until /debug/release (test hooks).
struct Holds {
  std::mutex m;
  std::condition_variable_any cv;
  std::uint64_t released = 0;  // generation; written under m by the loop
  std::atomic<int> running{0};
};

class Server {
 public:
  Server(net::io_context& io, Store& store, const ServerOptions& opt, blockpool::Pool* pool,
         net::thread_pool* fixed)
      : io_(io), store_(store), opt_(opt), pool_(pool), fixed_(fixed), acceptor_(io),
        signals_(io, SIGINT, SIGTERM), drain_timer_(io) {
    if (pool_ != nullptr) scans_ = pool_->lane("scan");
  }

  // Binds and listens; throws boost::system::system_error on failure.
  std::uint16_t listen() {
    const tcp::endpoint ep(net::ip::make_address(opt_.host), opt_.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    return acceptor_.local_endpoint().port();
  }

  void start() {
    net::co_spawn(io_, accept_loop(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (!ec) begin_stop(sig);
    });
  }

  int stop_signal() const noexcept { return stop_signal_; }
  std::uint64_t requests() const noexcept { return requests_; }
  std::uint64_t client_cancels() const noexcept { return client_cancels_; }

 private:
  enum class Work { loop, read, write };
  using Handler = net::awaitable<Response> (Server::*)(Request&, std::string_view rest,
                                                       std::string_view query);
  struct Route {
    http::verb method;
    std::string_view path;
    bool prefix;     // `path` is a prefix; the rest of the path is the handler's `rest`
    Work work;       // loop: answered on the loop; read: cancellable; write: must run
    bool test_hook;  // only with --test-hooks
    Handler handler;
  };

  // The route table.
  static std::span<const Route> routes() {
    static const Route kRoutes[] = {
        {http::verb::get, "/kv/", true, Work::read, false, &Server::get_kv},
        {http::verb::put, "/kv/", true, Work::write, false, &Server::put_kv},
        {http::verb::delete_, "/kv/", true, Work::write, false, &Server::delete_kv},
        {http::verb::get, "/scan", false, Work::read, false, &Server::scan},
        {http::verb::get, "/stats", false, Work::loop, false, &Server::stats},
        {http::verb::get, "/metrics", false, Work::loop, false, &Server::metrics},
        {http::verb::post, "/debug/hold", false, Work::read, true, &Server::hold},
        {http::verb::post, "/debug/release", false, Work::loop, true, &Server::release},
    };
    return kRoutes;
  }

  // ---- Where SQLite runs --------------------------------------------------

  // A read: cancellable (the caller's cancellation slot: a queued task never
  // runs, a running one sees its stop token). `slow` reads (scans) go to the
  // pool's scan lane in blockpool mode. A full queue (--max-queued, the scan
  // lane's bound) rejects it at once: the client gets a 503 (error_response).
  template <class F>
  net::awaitable<std::invoke_result_t<F&, std::stop_token>> read(F f, bool slow = false) {
    static constexpr blockpool::TaskOptions kGet{.name = "kv.get", .reject_when_full = true};
    static constexpr blockpool::TaskOptions kScan{.name = "kv.scan", .reject_when_full = true};
    switch (opt_.mode) {
      case Mode::blockpool:
        if (slow)
          co_return co_await blockpool::boost_asio::async_spawn_blocking(scans_, std::move(f), kScan,
                                                                         net::use_awaitable);
        co_return co_await blockpool::boost_asio::async_spawn_blocking(*pool_, std::move(f), kGet,
                                                                       net::use_awaitable);
      case Mode::fixed:
        co_return co_await async_run_on(*fixed_, fixed_queued_, std::move(f), net::use_awaitable);
      case Mode::inline_loop:
        break;
    }
    co_return f(std::stop_token{});
  }

  // A write: a mandatory task, so it runs even if shutdown begins before it
  // starts; the caller answers only once it has returned (committed).
  template <class F>
  net::awaitable<std::invoke_result_t<F&, std::stop_token>> write(F f) {
    switch (opt_.mode) {
      case Mode::blockpool:
        co_return co_await blockpool::boost_asio::async_spawn_mandatory_blocking(
            *pool_, std::move(f), net::use_awaitable);
      case Mode::fixed:
        co_return co_await async_run_on(*fixed_, fixed_queued_, std::move(f), net::use_awaitable);
      case Mode::inline_loop:
        break;
    }
    co_return f(std::stop_token{});
  }

  // ---- Responses --------------------------------------------------------------

  static Response reply(const Request& req, http::status st, std::string body,
                        const char* content_type = "text/plain") {
    Response res{st, req.version()};
    res.set(http::field::server, "kvserver");
    if (st != http::status::no_content) {
      res.set(http::field::content_type, content_type);
      res.body() = std::move(body);
      res.prepare_payload();
    }
    return res;
  }

  // The one place where a failed request becomes an HTTP status.
  Response error_response(std::exception_ptr e, const Request& req) {
    try {
      std::rethrow_exception(e);
    } catch (const HttpError& x) {
      return reply(req, x.status(), x.what());
    } catch (const blockpool::JoinError& x) {
      if (x.is_rejected()) {
        // Admission control: the queue is full. Shed the load at once.
        ++rejected_;
        Response res = reply(req, http::status::service_unavailable, "busy: the queue is full, retry later\n");
        res.set(http::field::retry_after, "1");
        return res;
      }
      // Cancelled (shutting down) or no thread could be started.
      return reply(req, http::status::service_unavailable, std::string(x.what()) + "\n");
    } catch (const std::exception& x) {
      return reply(req, http::status::internal_server_error, std::string(x.what()) + "\n");
    } catch (...) {
      return reply(req, http::status::internal_server_error, "unknown error\n");
    }
  }

  // ---- Handlers -----------------------------------------------------------

  net::awaitable<Response> get_kv(Request& req, std::string_view rest, std::string_view) {
    // Stamped on the thread that runs the query, read back here once it is
    // done (its completion, posted to the loop, orders the stores first). Shared:
    // a cancelled query may still be running when this frame is gone.
    auto ran = std::make_shared<RunStamps>();
    auto get = [&store = store_, key = decode_key(rest), ran](std::stop_token) {
      ran->start = SteadyClock::now();
      std::optional<std::string> v = store.get(key);
      ran->end = SteadyClock::now();
      return v;
    };
    const SteadyClock::time_point handed = SteadyClock::now();
    std::optional<std::string> v = co_await read(std::move(get));
    const SteadyClock::time_point resumed = SteadyClock::now();
    Response res = v ? reply(req, http::status::ok, std::move(*v), "application/octet-stream")
                     : reply(req, http::status::not_found, "not found\n");
    if (const auto sent = req.find(kSentHeader); sent != req.end())
      res.set("Server-Timing", server_timing(sent->value(), handed, *ran, resumed));
    co_return res;
  }

  net::awaitable<Response> put_kv(Request& req, std::string_view rest, std::string_view) {
    auto put = [&store = store_, key = decode_key(rest), value = std::move(req.body())](std::stop_token) {
      store.put(key, value);
      return true;
    };
    co_await write(std::move(put));
    co_return reply(req, http::status::no_content, {});
  }

  net::awaitable<Response> delete_kv(Request& req, std::string_view rest, std::string_view) {
    auto erase = [&store = store_, key = decode_key(rest)](std::stop_token) { return store.erase(key); };
    const bool existed = co_await write(std::move(erase));
    co_return existed ? reply(req, http::status::no_content, {})
                      : reply(req, http::status::not_found, "not found\n");
  }

  net::awaitable<Response> scan(Request& req, std::string_view, std::string_view query) {
    auto run = [&store = store_, prefix = query_param(query, "prefix")](std::stop_token st) {
      return store.scan(prefix, st);
    };
    const ScanResult r = co_await read(std::move(run), /*slow=*/true);
    if (r.stopped) co_return reply(req, http::status::service_unavailable, "scan stopped\n");
    co_return reply(req, http::status::ok,
                    "count " + std::to_string(r.count) + "\nchecksum " + hex64(r.checksum) + "\n");
  }

  net::awaitable<Response> stats(Request& req, std::string_view, std::string_view) {
    std::string s;
    auto line = [&s](const char* name, std::uint64_t v) {
      s += name;
      s += ' ';
      s += std::to_string(v);
      s += '\n';
    };
    s += "mode ";
    s += mode_name(opt_.mode);
    s += '\n';
    line("requests", requests_);
    line("in_flight", in_flight_);
    line("connections", sessions_.size());
    line("client_cancels", client_cancels_);
    line("errors_5xx", errors_5xx_);
    line("scans_started", store_.scans_started());
    line("store_connections", store_.connections_opened());
    line("holds_running", static_cast<std::uint64_t>(holds_.running.load()));
    line("rejected_503", rejected_);
    if (pool_) {
      const blockpool::Metrics m = pool_->metrics();
      line("scan_lane_running", m.lanes[1].running);
      line("scan_lane_queue_depth", m.lanes[1].queue_depth);
      line("pool_threads", m.threads);
      line("pool_peak_threads", m.peak_threads);
      line("pool_idle_threads", m.idle_threads);
      line("pool_queue_depth", m.queue_depth);
      line("pool_spawned", m.spawned);
      line("pool_completed", m.completed);
      line("pool_failed", m.failed);
      line("pool_cancelled", m.cancelled);
      line("pool_rejected", m.rejected);
      // Where a point query's time goes on the pool (the default lane: GETs,
      // PUTs, DELETEs), in microseconds: waiting for a thread, then running.
      const blockpool::LaneMetrics& d = m.lanes[0];
      auto us = [](std::chrono::nanoseconds ns) { return static_cast<std::uint64_t>(ns.count() / 1000); };
      line("point_queue_wait_p50_us", us(d.queue_wait.percentile(50)));
      line("point_queue_wait_p99_us", us(d.queue_wait.percentile(99)));
      line("point_run_time_p50_us", us(d.run_time.percentile(50)));
      line("point_run_time_p99_us", us(d.run_time.percentile(99)));
    } else if (fixed_) {
      line("pool_threads", opt_.fixed_threads);
      line("pool_peak_threads", opt_.fixed_threads);
      line("pool_queue_depth", fixed_queued_.load(std::memory_order_relaxed));
    } else {
      line("pool_threads", 0);
      line("pool_peak_threads", 0);
    }
    co_return reply(req, http::status::ok, std::move(s));
  }

  // GET /metrics: the pool's metrics in Prometheus' text format (blockpool
  // mode; the other modes have no pool to report).
  net::awaitable<Response> metrics(Request& req, std::string_view, std::string_view) {
    if (pool_ == nullptr) throw HttpError(http::status::not_found, "no pool in this mode\n");
    co_return reply(req, http::status::ok, blockpool::to_prometheus(pool_->metrics(), "server=\"kvserver\""),
                    "text/plain; version=0.0.4");
  }

  // ?pool=scan holds a thread running a task of the scan lane instead.
  net::awaitable<Response> hold(Request& req, std::string_view, std::string_view query) {
    if (opt_.mode == Mode::inline_loop)
      throw HttpError(http::status::conflict, "no hold in inline mode: it would stop the loop\n");
    auto wait = [h = &holds_, gen = holds_.released](std::stop_token st) {
      h->running.fetch_add(1);
      std::unique_lock lock(h->m);
      // Bounded: a test that forgets to release does not hang the server.
      h->cv.wait_for(lock, st, std::chrono::seconds(30), [&] { return h->released > gen; });
      h->running.fetch_sub(1);
      return true;
    };
    co_await read(std::move(wait), /*slow=*/query_param(query, "pool") == "scan");
    co_return reply(req, http::status::ok, "released\n");
  }

  net::awaitable<Response> release(Request& req, std::string_view, std::string_view) {
    {
      std::lock_guard lock(holds_.m);
      ++holds_.released;
    }
    holds_.cv.notify_all();
    co_return reply(req, http::status::no_content, {});
  }

  // ---- Sessions -----------------------------------------------------------

  net::awaitable<void> accept_loop() {
    while (!stopping_) {
      auto [ec, sock] = co_await acceptor_.async_accept(net::as_tuple(net::use_awaitable));
      if (stopping_ || ec == net::error::operation_aborted) break;
      if (ec) {  // EMFILE and the like: back off a little, keep serving
        std::fprintf(stderr, "kvserver: accept: %s\n", ec.message().c_str());
        net::steady_timer t(io_, std::chrono::milliseconds(10));
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
        continue;
      }
      boost::system::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      net::co_spawn(io_, serve(std::move(sock)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          std::fprintf(stderr, "kvserver: session: %s\n", x.what());
        }
      });
    }
  }

  net::awaitable<void> serve(tcp::socket sock) {
    Session s(std::move(sock));
    sessions_.insert(&s);
    struct Unregister {
      Server* server;
      Session* s;
      ~Unregister() {
        server->sessions_.erase(s);
        server->maybe_finish();
      }
    } unregister{this, &s};

    while (!stopping_) {
      s.state = Session::State::reading;
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxBody);
      parser.header_limit(kMaxHeader);
      auto [ec, n] = co_await http::async_read_header(s.sock, s.buf, parser, net::as_tuple(net::use_awaitable));
      if (!ec && !parser.is_done()) {
        // A client that asks (curl does, for bodies over 1 KiB) waits for
        // "100 Continue" before it sends the body.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          http::response<http::empty_body> go{http::status::continue_, 11};
          auto [wec, wn] = co_await http::async_write(s.sock, go, net::as_tuple(net::use_awaitable));
          (void)wn;
          ec = wec;
        }
        if (!ec) std::tie(ec, n) = co_await http::async_read(s.sock, s.buf, parser, net::as_tuple(net::use_awaitable));
      }
      (void)n;
      if (ec == http::error::body_limit) {
        Request head;
        head.version(11);
        Response res = reply(head, http::status::payload_too_large, "value too large\n");
        res.keep_alive(false);
        co_await http::async_write(s.sock, res, net::as_tuple(net::use_awaitable));
        break;
      }
      if (ec) break;  // the client closed, a bad request, or the server is stopping
      Request req = parser.release();
      s.state = Session::State::working;
      ++requests_;
      ++in_flight_;
      std::optional<Response> res = co_await handle(s, req);
      if (!res) {
        --in_flight_;
        break;  // the client is gone; its work was cancelled
      }
      if (res->result_int() >= 500) ++errors_5xx_;
      const bool keep = req.keep_alive() && !stopping_;
      res->keep_alive(keep);
      s.state = Session::State::writing;
      auto [wec, wn] = co_await http::async_write(s.sock, *res, net::as_tuple(net::use_awaitable));
      (void)wn;
      --in_flight_;
      if (wec || !keep) break;
    }
    boost::system::error_code ignored;
    s.sock.shutdown(tcp::socket::shutdown_send, ignored);
    s.sock.close(ignored);
  }

  // Finds the route and runs it; nullopt if the client disconnected first.
  net::awaitable<std::optional<Response>> handle(Session& s, Request& req) {
    const auto t = req.target();
    const std::string_view target(t.data(), t.size());
    const std::size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

    const Route* route = nullptr;
    bool path_known = false;
    for (const Route& r : routes()) {
      if (r.test_hook && !opt_.test_hooks) continue;
      if (r.prefix ? !path.starts_with(r.path) : path != r.path) continue;
      path_known = true;
      if (r.method == req.method()) {
        route = &r;
        break;
      }
    }
    if (!route) {
      co_return path_known ? reply(req, http::status::method_not_allowed, "method not allowed\n")
                           : reply(req, http::status::not_found, "no such path\n");
    }
    const std::string_view rest = route->prefix ? path.substr(route->path.size()) : std::string_view();
    if (route->work != Work::read || opt_.mode != Mode::blockpool) co_return co_await run(*route, req, rest, query);

    // A read on the pool races a 1-byte read on the socket: if the client
    // closes first, the read's cancellation slot cancels the task (a queued
    // task never runs; a running scan sees its stop token). If the client
    // sends more (a pipelined request), the byte is kept for the next parse
    // and the watch just waits for the work.
    using namespace net::experimental::awaitable_operators;
    auto r = co_await (run(*route, req, rest, query) || watch_peer(s));
    if (r.index() == 0) co_return std::move(std::get<0>(r));
    ++client_cancels_;
    co_return std::nullopt;
  }

  // Never throws: failures become responses (error_response).
  net::awaitable<Response> run(const Route& route, Request& req, std::string_view rest,
                               std::string_view query) {
    std::exception_ptr e;
    try {
      co_return co_await (this->*route.handler)(req, rest, query);
    } catch (...) {
      e = std::current_exception();
    }
    co_return error_response(e, req);
  }

  net::awaitable<void> watch_peer(Session& s) {
    auto [ec, n] = co_await s.sock.async_read_some(s.buf.prepare(1), net::as_tuple(net::use_awaitable));
    if (ec) co_return;  // EOF or reset: the client is gone
    s.buf.commit(n);
    net::steady_timer forever(io_, SteadyClock::time_point::max());
    co_await forever.async_wait(net::as_tuple(net::use_awaitable));
  }

  // ---- Stopping -----------------------------------------------------------

  void begin_stop(int sig) {
    stopping_ = true;
    stop_signal_ = sig;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    // Idle connections (waiting for a request) go now; requests in flight
    // finish, and their responses close their connections.
    for (Session* s : sessions_)
      if (s->state == Session::State::reading) s->sock.cancel(ignored);
    drain_timer_.expires_after(opt_.drain_timeout);
    drain_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) force_close("drain timeout");
    });
    signals_.async_wait([this](boost::system::error_code ec, int) {
      if (!ec) force_close("second signal");
    });
    maybe_finish();
  }

  void force_close(const char* why) {
    std::fprintf(stderr, "kvserver: %s: closing %zu connections\n", why, sessions_.size());
    boost::system::error_code ignored;
    for (Session* s : sessions_) s->sock.close(ignored);
  }

  void maybe_finish() {
    if (!stopping_ || !sessions_.empty()) return;
    drain_timer_.cancel();
    boost::system::error_code ignored;
    signals_.cancel(ignored);
  }

  net::io_context& io_;
  Store& store_;
  const ServerOptions& opt_;
  blockpool::Pool* pool_;
  blockpool::Handle scans_;  // the pool's scan lane (blockpool mode)
  net::thread_pool* fixed_;
  tcp::acceptor acceptor_;
  net::signal_set signals_;
  net::steady_timer drain_timer_;
  std::set<Session*> sessions_;
  bool stopping_ = false;
  int stop_signal_ = 0;
  std::uint64_t requests_ = 0;
  std::uint64_t in_flight_ = 0;
  std::uint64_t client_cancels_ = 0;
  std::uint64_t errors_5xx_ = 0;
  std::uint64_t rejected_ = 0;  // 503s from a full queue
  std::atomic<std::uint64_t> fixed_queued_{0};
  Holds holds_;
};

}  // namespace

int run_server(const ServerOptions& opt) {
  std::optional<Store> store;
  try {
    store.emplace(opt.db);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvserver: %s\n", e.what());
    return 1;
  }

  // Declared before the io_context, so they outlive it.
  std::optional<blockpool::Pool> pool;
  std::optional<net::thread_pool> fixed;
  if (opt.mode == Mode::blockpool) {
    // One pool. Scans are long and CPU-bound: they run in a lane of their
    // own, at most scan_threads at once (4, what the fixed mode gives all the
    // work), so a burst of them waits in its lane instead of taking every
    // thread, while point queries get threads as they need them. They run at
    // background priority: on a machine with few CPUs, a scan on a CPU
    // otherwise makes a point query (or the event loop) wait for the
    // scheduler's time slice. Admission control bounds what waits: a full
    // queue is a quick 503.
    blockpool::Builder b;
    b.max_threads(opt.max_threads).thread_name("kv-db").max_queued(opt.max_queued);
    b.lane("scan",
           {.max_running = opt.scan_threads, .max_queued = opt.max_queued, .background = opt.background_scans});
    if (opt.slow_ms > 0) {
      b.on_slow_task(std::chrono::milliseconds(opt.slow_ms), [](const blockpool::SlowTask& t) {
        std::fprintf(stderr, "kvserver: slow task %.*s (lane \"%.*s\") running for %lld ms on %.*s\n",
                     static_cast<int>(t.name.size()), t.name.data(), static_cast<int>(t.lane.size()), t.lane.data(),
                     static_cast<long long>(t.running_for.count() / 1'000'000), static_cast<int>(t.thread_name.size()),
                     t.thread_name.data());
      });
    }
    pool.emplace(b.build());
  }
  if (opt.mode == Mode::fixed) fixed.emplace(opt.fixed_threads);

  net::io_context io(1);
  Server server(io, *store, opt, pool ? &*pool : nullptr, fixed ? &*fixed : nullptr);
  std::uint16_t port = 0;
  try {
    port = server.listen();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvserver: cannot listen on %s:%u: %s\n", opt.host.c_str(),
                 static_cast<unsigned>(opt.port), e.what());
    return 1;
  }
  server.start();
  std::printf("listening on %s:%u\n", opt.host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);

  io.run();  // until a signal, and every connection has closed

  const auto t0 = SteadyClock::now();
  bool clean = true;
  std::uint64_t peak = opt.mode == Mode::fixed ? opt.fixed_threads : 0;
  if (pool) {
    clean = pool->shutdown(opt.shutdown_timeout);
    peak = pool->metrics().peak_threads;
  }
  if (fixed) fixed->join();
  const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  const int sig = server.stop_signal();
  std::fprintf(stderr,
               "kvserver: %s: stopped (%s); %llu requests, %llu cancelled by their client, "
               "%llu scans run, peak pool threads %llu; pool shut down in %.1f ms%s\n",
               mode_name(opt.mode), sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "?",
               static_cast<unsigned long long>(server.requests()),
               static_cast<unsigned long long>(server.client_cancels()),
               static_cast<unsigned long long>(store->scans_started()),
               static_cast<unsigned long long>(peak), ms, clean ? "" : " (timed out: threads left running)");
  std::fflush(stderr);
  if (!clean) {
    // A task outlived the timeout. Every write that was answered is committed
    // (in the WAL), so leave without waiting for it (the Pool's destructor
    // would wait without limit).
    std::_Exit(0);
  }
  return 0;
}

}  // namespace kv
