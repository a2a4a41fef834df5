// kvbench: an open-loop HTTP load client for kvserver.
//
//   kvbench --port N [--get-rate R] [--scan-rate R] [--duration S] [options]
//   kvbench --port N --stats          (prints the server's GET /stats and exits)
//
// Open loop: every request has a send time fixed in advance by the schedule
// (GETs at --get-rate per second, scans at --scan-rate, evenly spaced, or in
// groups of --scan-burst sent at the same instant), and
// its latency is measured from that *scheduled* time to the end of its
// response. A server that stalls cannot hide it by slowing the client down
// (no coordinated omission): a request that could not even be sent on time,
// because every connection was busy, counts the wait too. Connections are
// opened as needed (up to --max-conns; past that, requests wait for one).
//
// Prints a summary on stderr and, with --tsv, one tab-separated line on
// stdout (see kTsvHeader; cpu_s is the client's own CPU time). Latencies of
// requests scheduled in the first --warmup seconds are not recorded (they
// are sent all the same).
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kTsvHeader =
    "label\tget_n\tget_p50_ms\tget_p99_ms\tget_p999_ms\tget_max_ms\tscan_n\tscan_p50_ms\tscan_p99_ms\t"
    "rps\terrors\tpeak_conns\tcpu_s\tget_sent_p50_ms\tget_sent_p99_ms\tget_sent_p999_ms";

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  double get_rate = 2000;
  double scan_rate = 20;
  std::uint64_t scan_burst = 1;  // scans scheduled together, in groups of this many
  double duration = 20;
  double warmup = 1;
  std::uint64_t keys = 100'000;  // GETs pick key00000000..key{keys-1}
  std::size_t max_conns = 512;
  double drain = 10;  // seconds to wait for the last responses
  std::string label = "run";
  bool tsv = false;
  bool tsv_header = false;
  bool stats = false;
};

enum class Kind { get, scan };

struct Job {
  Kind kind;
  Clock::time_point scheduled;
  Clock::time_point sent{};  // when its write began: later than scheduled if the client ran late
  bool waited = false;       // it waited for a free connection (max_conns busy): the server's doing
  std::string target;
};

class Bench {
 public:
  Bench(net::io_context& io, Options opt) : io_(io), opt_(std::move(opt)), timer_(io), rng_(42) {
    endpoint_ = tcp::endpoint(net::ip::make_address(opt_.host), opt_.port);
  }

  void run() {
    start_ = Clock::now() + std::chrono::milliseconds(50);
    end_ = start_ + secs(opt_.duration);
    record_from_ = start_ + secs(opt_.warmup);
    next_get_ = opt_.get_rate > 0 ? start_ : Clock::time_point::max();
    next_scan_ = opt_.scan_rate > 0 ? start_ : Clock::time_point::max();
    schedule();
    io_.run();
  }

  int report() {
    const double secs_run = std::chrono::duration<double>(last_done_ - start_).count();
    const std::uint64_t ok = ok_;
    const double rps = secs_run > 0 ? static_cast<double>(ok) / secs_run : 0.0;
    std::sort(get_lat_.begin(), get_lat_.end());
    std::sort(scan_lat_.begin(), scan_lat_.end());
    std::vector<double> get_sent_lat;
    get_sent_lat.reserve(get_parts_.size());
    for (const Parts& p : get_parts_) get_sent_lat.push_back(p.from_send_ms);
    std::sort(get_sent_lat.begin(), get_sent_lat.end());
    auto pct = [](const std::vector<double>& v, double p) {
      if (v.empty()) return 0.0;
      const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
      return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    std::fprintf(stderr,
                 "kvbench %s: offered %.0f GET/s + %.0f scans/s for %.0f s; %llu sent, %llu ok, "
                 "%llu errors, %.0f req/s, %zu connections at most\n",
                 opt_.label.c_str(), opt_.get_rate, opt_.scan_rate, opt_.duration,
                 static_cast<unsigned long long>(sent_), static_cast<unsigned long long>(ok),
                 static_cast<unsigned long long>(errors_), rps, peak_conns_);
    std::fprintf(stderr, "kvbench %s: GET  p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (%zu)\n",
                 opt_.label.c_str(), pct(get_lat_, 50), pct(get_lat_, 99), pct(get_lat_, 99.9),
                 get_lat_.empty() ? 0.0 : get_lat_.back(), get_lat_.size());
    std::fprintf(stderr, "kvbench %s: GET from its send: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
                 opt_.label.c_str(), pct(get_sent_lat, 50), pct(get_sent_lat, 99), pct(get_sent_lat, 99.9));
    if (!get_parts_.empty()) {
      // Where the slowest 1% of GETs spent their time, on average: was the
      // client late, the server's loop, the pool, or the way back?
      std::sort(get_parts_.begin(), get_parts_.end(),
                [](const Parts& a, const Parts& b) { return a.total_ms > b.total_ms; });
      const std::size_t n = std::max<std::size_t>(1, get_parts_.size() / 100);
      Parts sum{0, 0, 0};
      std::size_t timed = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const Parts& p = get_parts_[i];
        sum.total_ms += p.total_ms;
        sum.late_ms += p.late_ms;
        if (!p.server_timed) continue;
        ++timed;
        sum.arrive_ms += p.arrive_ms;
        sum.queue_ms += p.queue_ms;
        sum.run_ms += p.run_ms;
        sum.resume_ms += p.resume_ms;
      }
      const auto dn = static_cast<double>(n);
      if (timed == n) {
        const double back = sum.total_ms - sum.late_ms - sum.arrive_ms - sum.queue_ms - sum.run_ms - sum.resume_ms;
        std::fprintf(stderr,
                     "kvbench %s: slowest 1%% of GETs (%zu), mean ms: total %.3f = client late %.3f + arrive %.3f"
                     " + queue %.3f + run %.3f + resume %.3f + back %.3f\n",
                     opt_.label.c_str(), n, sum.total_ms / dn, sum.late_ms / dn, sum.arrive_ms / dn,
                     sum.queue_ms / dn, sum.run_ms / dn, sum.resume_ms / dn, back / dn);
      } else {
        std::fprintf(stderr, "kvbench %s: slowest 1%% of GETs (%zu), mean ms: total %.3f, client late %.3f\n",
                     opt_.label.c_str(), n, sum.total_ms / dn, sum.late_ms / dn);
      }
    }
    if (!scan_lat_.empty())
      std::fprintf(stderr, "kvbench %s: scan p50 %.3f ms, p99 %.3f ms, max %.3f ms (%zu)\n",
                   opt_.label.c_str(), pct(scan_lat_, 50), pct(scan_lat_, 99), scan_lat_.back(),
                   scan_lat_.size());
    if (!first_error_.empty())
      std::fprintf(stderr, "kvbench %s: first error: %s\n", opt_.label.c_str(), first_error_.c_str());
    if (opt_.tsv_header) std::printf("%s\n", kTsvHeader);
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    if (opt_.tsv)
      std::printf("%s\t%zu\t%.3f\t%.3f\t%.3f\t%.3f\t%zu\t%.3f\t%.3f\t%.1f\t%llu\t%zu\t%.3f\t%.3f\t%.3f\t%.3f\n",
                  opt_.label.c_str(), get_lat_.size(), pct(get_lat_, 50), pct(get_lat_, 99),
                  pct(get_lat_, 99.9), get_lat_.empty() ? 0.0 : get_lat_.back(), scan_lat_.size(),
                  pct(scan_lat_, 50), pct(scan_lat_, 99), rps, static_cast<unsigned long long>(errors_),
                  peak_conns_, cpu, pct(get_sent_lat, 50), pct(get_sent_lat, 99), pct(get_sent_lat, 99.9));
    std::fflush(stdout);
    return 0;
  }

 private:
  struct Conn {
    explicit Conn(net::io_context& io) : sock(io) {}
    tcp::socket sock;
    beast::flat_buffer buf;
    http::request<http::empty_body> req;
    std::optional<http::response_parser<http::string_body>> parser;
    std::optional<Job> job;
  };
  using ConnPtr = std::shared_ptr<Conn>;

  static Clock::duration secs(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  // Issues every request whose time has come, then sleeps until the next.
  void schedule() {
    const auto now = Clock::now();
    while (true) {
      const bool get_first = next_get_ <= next_scan_;
      const Clock::time_point t = get_first ? next_get_ : next_scan_;
      if (t >= end_ || t > now) break;
      Job job;
      job.kind = get_first ? Kind::get : Kind::scan;
      job.scheduled = t;
      char target[64];
      if (get_first) {
        std::snprintf(target, sizeof target, "/kv/key%08llu",
                      static_cast<unsigned long long>(rng_() % std::max<std::uint64_t>(1, opt_.keys)));
        next_get_ = start_ + secs(static_cast<double>(++gets_) / opt_.get_rate);
      } else {
        std::snprintf(target, sizeof target, "/scan?prefix=key0000%u", static_cast<unsigned>(rng_() % 10));
        ++scans_;
        const std::uint64_t group = scans_ / opt_.scan_burst * opt_.scan_burst;
        next_scan_ = start_ + secs(static_cast<double>(group) / opt_.scan_rate);
      }
      job.target = target;
      dispatch(std::move(job));
    }
    const Clock::time_point next = std::min(next_get_, next_scan_);
    if (next >= end_) {
      scheduling_done_ = true;
      drain_deadline_ = Clock::now() + secs(opt_.drain);
      timer_.expires_at(drain_deadline_);
      timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) give_up();
      });
      maybe_finish();
      return;
    }
    timer_.expires_at(next);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) schedule();
    });
  }

  void dispatch(Job job) {
    ++sent_;
    ++outstanding_;
    if (!idle_.empty()) {
      ConnPtr c = std::move(idle_.back());
      idle_.pop_back();
      send(std::move(c), std::move(job));
    } else if (conns_ < opt_.max_conns) {
      open(std::move(job));
    } else {
      job.waited = true;
      backlog_.push_back(std::move(job));
    }
  }

  void open(Job job) {
    ++conns_;
    peak_conns_ = std::max(peak_conns_, conns_);
    auto c = std::make_shared<Conn>(io_);
    c->job = std::move(job);
    c->sock.async_connect(endpoint_, [this, c](boost::system::error_code ec) {
      if (ec) return fail(c, "connect: " + ec.message());
      c->sock.set_option(tcp::no_delay(true), ec);
      Job j = std::move(*c->job);
      send(c, std::move(j));
    });
  }

  void send(ConnPtr c, Job job) {
    c->req = {};
    c->req.method(http::verb::get);
    c->req.target(job.target);
    c->req.version(11);
    c->req.set(http::field::host, opt_.host);
    c->job = std::move(job);
    c->job->sent = Clock::now();
    if (c->job->kind == Kind::get)  // asks for a Server-Timing header (kvserver's server.cpp)
      c->req.set("X-Sent-Ns", std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  c->job->sent.time_since_epoch()).count()));
    http::async_write(c->sock, c->req, [this, c](boost::system::error_code ec, std::size_t) {
      if (ec) return fail(c, "write: " + ec.message());
      c->parser.emplace();
      c->parser->body_limit(1 << 20);
      http::async_read(c->sock, c->buf, *c->parser, [this, c](boost::system::error_code rec, std::size_t) {
        if (rec) return fail(c, "read: " + rec.message());
        done(c);
      });
    });
  }

  void done(const ConnPtr& c) {
    const auto now = Clock::now();
    last_done_ = now;
    const Job& job = *c->job;
    const auto& res = c->parser->get();
    if (res.result() != http::status::ok) {
      note_error("HTTP " + std::to_string(res.result_int()) + " for " + job.target);
      ++errors_;
    } else {
      ++ok_;
      if (job.scheduled >= record_from_) {
        const double ms = std::chrono::duration<double, std::milli>(now - job.scheduled).count();
        (job.kind == Kind::get ? get_lat_ : scan_lat_).push_back(ms);
        if (job.kind == Kind::get) {
          const Clock::time_point from = job.waited ? job.scheduled : job.sent;
          Parts p{ms, std::chrono::duration<double, std::milli>(job.sent - job.scheduled).count(),
                  std::chrono::duration<double, std::milli>(now - from).count()};
          if (const auto st = res.find("Server-Timing"); st != res.end())
            p.server_timed = parse_server_timing(std::string_view(st->value().data(), st->value().size()), p);
          get_parts_.push_back(p);
        }
      }
    }
    const bool keep = res.keep_alive();
    c->job.reset();
    --outstanding_;
    if (!keep) {
      boost::system::error_code ignored;
      c->sock.close(ignored);
      --conns_;
      if (!backlog_.empty()) {
        Job j = std::move(backlog_.front());
        backlog_.pop_front();
        open(std::move(j));
      }
    } else if (!backlog_.empty()) {
      Job j = std::move(backlog_.front());
      backlog_.pop_front();
      send(c, std::move(j));
    } else {
      idle_.push_back(c);
    }
    maybe_finish();
  }

  void fail(const ConnPtr& c, const std::string& what) {
    if (finished_) return;
    last_done_ = Clock::now();
    note_error(what);
    ++errors_;
    --outstanding_;
    c->job.reset();
    boost::system::error_code ignored;
    c->sock.close(ignored);
    --conns_;
    if (!backlog_.empty()) {
      Job j = std::move(backlog_.front());
      backlog_.pop_front();
      open(std::move(j));
    }
    maybe_finish();
  }

  void note_error(const std::string& what) {
    if (first_error_.empty()) first_error_ = what;
  }

  void maybe_finish() {
    if (!scheduling_done_ || outstanding_ > 0 || finished_) return;
    finished_ = true;
    timer_.cancel();
    close_all();
  }

  // The drain deadline passed: whatever is still unanswered is an error.
  void give_up() {
    if (finished_) return;
    note_error(std::to_string(outstanding_) + " requests unanswered after the drain deadline");
    errors_ += outstanding_;
    outstanding_ = 0;
    finished_ = true;
    close_all();
    io_.stop();
  }

  void close_all() {
    boost::system::error_code ignored;
    for (auto& c : idle_) c->sock.close(ignored);
    idle_.clear();
  }

  net::io_context& io_;
  Options opt_;
  net::steady_timer timer_;
  std::mt19937_64 rng_;
  tcp::endpoint endpoint_;
  Clock::time_point start_, end_, record_from_, next_get_, next_scan_, drain_deadline_;
  Clock::time_point last_done_{};
  std::uint64_t gets_ = 0, scans_ = 0, sent_ = 0, ok_ = 0, errors_ = 0, outstanding_ = 0;
  std::size_t conns_ = 0, peak_conns_ = 0;
  bool scheduling_done_ = false, finished_ = false;
  std::vector<ConnPtr> idle_;
  std::deque<Job> backlog_;
  std::vector<double> get_lat_, scan_lat_;
  // Where one GET's time went: the client's part, and the server's from its
  // Server-Timing header (see kvserver's server.cpp); the rest of total_ms is
  // the way back (the response written, delivered, read by this client).
  struct Parts {
    double total_ms;
    double late_ms;  // scheduled -> sent: this client ran late (or, if `waited`, no connection was free)
    // From when it was sent (from when it was scheduled if it had to wait for
    // a connection): the server's latency without this client's own
    // lateness, which on a machine it shares with the server is the
    // scheduler's and the host's doing, not the server's.
    double from_send_ms;
    bool server_timed = false;
    double arrive_ms = 0, queue_ms = 0, run_ms = 0, resume_ms = 0;
  };
  std::vector<Parts> get_parts_;

  // "arrive;dur=0.052, queue;dur=0.004, ..." -> p; false if a part is missing.
  static bool parse_server_timing(std::string_view v, Parts& p) {
    int found = 0;
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      std::string_view item = v.substr(0, comma);
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      const std::size_t semi = item.find(";dur=");
      if (semi == std::string_view::npos) continue;
      const std::string_view name = item.substr(0, semi);
      const std::string num(item.substr(semi + 5));
      const double d = std::strtod(num.c_str(), nullptr);
      double* slot = name == "arrive" ? &p.arrive_ms : name == "queue" ? &p.queue_ms
                   : name == "run"    ? &p.run_ms    : name == "resume" ? &p.resume_ms : nullptr;
      if (slot) {
        *slot = d;
        ++found;
      }
    }
    return found == 4;
  }
  std::string first_error_;
};

// GET /stats, synchronously; prints the body.
int print_stats(const Options& opt) {
  try {
    net::io_context io;
    tcp::socket sock(io);
    sock.connect(tcp::endpoint(net::ip::make_address(opt.host), opt.port));
    http::request<http::empty_body> req{http::verb::get, "/stats", 11};
    req.set(http::field::host, opt.host);
    req.keep_alive(false);
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    std::fputs(res.body().c_str(), stdout);
    return res.result() == http::status::ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvbench: /stats: %s\n", e.what());
    return 1;
  }
}

void usage(std::FILE* to) {
  std::fputs(
      "usage: kvbench --port N [--host A] [--get-rate R] [--scan-rate R] [--scan-burst N]\n"
      "               [--duration S]\n"
      "               [--warmup S] [--keys N] [--max-conns N] [--drain S] [--label L]\n"
      "               [--tsv] [--tsv-header]\n"
      "       kvbench --port N --stats\n"
      "  Open-loop load: GET /kv/key%08d (random key below --keys) at --get-rate per\n"
      "  second (default 2000) and GET /scan at --scan-rate (default 20) for --duration\n"
      "  seconds (default 20); latency from each request's scheduled send time.\n"
      "  --scan-burst N: the scans are scheduled N at a time (same average rate).\n"
      "  Defaults: --warmup 1, --keys 100000, --max-conns 512, --drain 10.\n",
      to);
}

template <class T>
bool parse(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if (a == "--tsv") {
      opt.tsv = true;
      continue;
    }
    if (a == "--tsv-header") {
      opt.tsv_header = true;
      continue;
    }
    if (a == "--stats") {
      opt.stats = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    const std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--port") ok = parse(v, opt.port);
    else if (a == "--host") opt.host = std::string(v);
    else if (a == "--get-rate") ok = parse(v, opt.get_rate) && opt.get_rate >= 0;
    else if (a == "--scan-rate") ok = parse(v, opt.scan_rate) && opt.scan_rate >= 0;
    else if (a == "--scan-burst") ok = parse(v, opt.scan_burst) && opt.scan_burst > 0;
    else if (a == "--duration") ok = parse(v, opt.duration) && opt.duration > 0;
    else if (a == "--warmup") ok = parse(v, opt.warmup) && opt.warmup >= 0;
    else if (a == "--keys") ok = parse(v, opt.keys);
    else if (a == "--max-conns") ok = parse(v, opt.max_conns) && opt.max_conns > 0;
    else if (a == "--drain") ok = parse(v, opt.drain) && opt.drain >= 0;
    else if (a == "--label") opt.label = std::string(v);
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "kvbench: bad option %s %s\n", argv[i - 1], argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (opt.port == 0) {
    usage(stderr);
    return 2;
  }
  if (opt.stats) return print_stats(opt);
  net::io_context io(1);
  Bench bench(io, opt);
  bench.run();
  return bench.report();
}
