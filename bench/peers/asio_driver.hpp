// bench/peers/asio_driver.hpp: the scenarios for peers whose results come back
// to an asio::io_context (blockpool, asio::thread_pool, std::async).
//
// The io_context runs on the main thread: that is "the loop". Every task is
//   [..] { maybe sleep; v = task_value(i); asio::post(io, on_complete(i, v)); }
// handed to the peer's submit(id, task). on_complete runs on the loop, checks
// the thread, counts, sums the values and records latency where the scenario
// wants it. A peer provides:
//
//   struct Peer {
//     static constexpr const char* name;
//     static constexpr bool kHasKeepAlive;   // built with Params::keep_alive_ms for idle
//     Peer(const bench::Params&, bool idle_scenario);
//     void reserve(std::uint64_t ids);                  // before a scenario
//     template <class F> void submit(std::uint64_t id, F&& f);  // any thread
//     void completed(std::uint64_t id);                 // on the loop
//     void report(bench::Out&);                         // extra fields
//   };
//
// A peer whose library returns results to a loop itself (blockpool's
// async_spawn_blocking) provides instead of submit()
//
//     template <class W, class D>
//     void submit_returning(asio::io_context& io, std::uint64_t id, W work, D done);
//
// which runs `v = work()` on its threads and then `done(v)` on `io`: the same
// task and the same on_complete, with the library's own way back.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "measure.hpp"
#include "scenarios.hpp"

namespace bench {

template <class Peer>
class AsioDriver {
 public:
  AsioDriver(std::string scenario, const Params& p)
      : scenario_(std::move(scenario)),
        p_(p),
        peer_(p_, scenario_ == "idle"),
        out_(Peer::name, scenario_) {
    // --loop epoll: an I/O object makes the io_context run its reactor, so
    // the idle loop waits in epoll_wait instead of on its condition variable.
    if (p_.loop == LoopWait::epoll) epoll_timer_.emplace(io_);
    describe(out_, scenario_, p_);
  }

  int run() {
    loop_tid_ = std::this_thread::get_id();
    if (scenario_ == "flood") {
      flood_or_burst(p_.flood_n, 0, true);
    } else if (scenario_ == "burst") {
      flood_or_burst(p_.burst_n, p_.burst_sleep_ms, false);
    } else if (scenario_ == "roundtrip") {
      roundtrip();
    } else if (scenario_ == "contended") {
      contended();
    } else if (scenario_ == "paced") {
      paced();
    } else if (scenario_ == "idle") {
      idle();
    } else {
      std::fprintf(stderr, "usage: %s %s\n", Peer::name, kUsage);
      return 2;
    }
    peer_.report(out_);
    out_.print();
    return 0;
  }

 private:
  // ---- task plumbing -------------------------------------------------------
  void expect(std::uint64_t n) {
    target_ = n;
    count_ = sum_ = offloop_ = 0;
    // Room for every latency, written once so its pages are faulted in now:
    // growing the vector on the loop (a copy of up to 128 KiB into freshly
    // mapped pages) took 100-200 us, and showed as a slow tick in the paced
    // mix's p99 whatever the pool.
    lat_ns_.assign(n, 0);
    lat_ns_.clear();
    peer_.reserve(n);
  }

  // Spawns task `i`; it sleeps `ms` first when ms > 0. `timed`: record its
  // spawn-to-completion latency.
  void spawn(std::uint64_t i, std::uint64_t ms, bool timed) {
    const auto ts = Clock::now();
    if constexpr (kReturnsToLoop) {
      peer_.submit_returning(
          io_, i,
          [i, ms] {
            if (ms != 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return task_value(i);
          },
          [this, i, timed, ts](std::uint64_t v) { on_complete(i, v, timed, ts); });
    } else {
      peer_.submit(i, [this, i, ms, timed, ts] {
        if (ms != 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        const std::uint64_t v = task_value(i);
        asio::post(io_, [this, i, v, timed, ts] { on_complete(i, v, timed, ts); });
      });
    }
  }

  void on_complete(std::uint64_t i, std::uint64_t v, bool timed, Clock::time_point ts) {
    if (timed) lat_ns_.push_back(nanos(Clock::now() - ts));
    if (std::this_thread::get_id() != loop_tid_) ++offloop_;
    ++count_;
    sum_ += v;
    peer_.completed(i);
    if (after_each_) after_each_();
    if (count_ == target_) {
      end_ = Clock::now();
      guard_.reset();
      if (epoll_timer_) epoll_timer_->cancel();
    }
  }

  static constexpr bool kReturnsToLoop = requires(Peer& p, asio::io_context& io) {
    p.submit_returning(io, std::uint64_t{}, [] { return std::uint64_t{}; },
                       [](std::uint64_t) {});
  };

  void run_loop() {
    guard_.emplace(io_.get_executor());
    if (epoll_timer_) {
      // Registered while the loop runs, as a program's pending I/O would be.
      epoll_timer_->expires_after(std::chrono::hours(24));
      epoll_timer_->async_wait([](const std::error_code&) {});
    }
    io_.run();
    io_.restart();
  }

  // Common fields: ok, count, wall, cpu, context switches, peak threads.
  void finish(Clock::time_point t0, Usage u0, Usage u1, Sampler& s, long harness,
              bool sampled_window = true) {
    s.stop();
    const double sampler_cpu = sampled_window ? s.cpu_s() : 0.0;
    const bool ok = count_ == target_ && sum_ == expected_sum(0, target_) && offloop_ == 0;
    out_.boolean("ok", ok);
    out_.integer("count", static_cast<long long>(count_));
    out_.integer("offloop", static_cast<long long>(offloop_));
    out_.num("wall_s", secs(end_ - t0));
    out_.num("cpu_s", std::max(0.0, u1.cpu_s - u0.cpu_s - sampler_cpu));
    out_.integer("csw", u1.csw - u0.csw);
    out_.integer("peak_threads", s.peak() - harness);
  }

  void latencies() {
    std::sort(lat_ns_.begin(), lat_ns_.end());
    out_.num("p50_us", percentile_us(lat_ns_, 0.50));
    out_.num("p99_us", percentile_us(lat_ns_, 0.99));
    out_.num("max_us", percentile_us(lat_ns_, 1.0));
  }

  // ---- scenarios -----------------------------------------------------------
  void flood_or_burst(std::uint64_t n, std::uint64_t ms, bool rate) {
    expect(n);
    Sampler s;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    asio::post(io_, [this, n, ms] {
      for (std::uint64_t i = 0; i < n; ++i) spawn(i, ms, false);
    });
    run_loop();
    const Usage u1 = usage();
    finish(t0, u0, u1, s, 2);
    if (rate) out_.num("rate", static_cast<double>(n) / secs(end_ - t0));
  }

  void roundtrip() {
    const std::uint64_t n = p_.rt_n;
    expect(n);
    std::uint64_t next = 0;
    after_each_ = [&] {
      if (++next < n) spawn(next, 0, true);
    };
    Sampler s;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    asio::post(io_, [this] { spawn(0, 0, true); });
    run_loop();
    const Usage u1 = usage();
    after_each_ = nullptr;
    finish(t0, u0, u1, s, 2);
    latencies();
  }

  void contended() {
    const std::uint64_t per = p_.cont_per, nt = p_.cont_threads;
    expect(per * nt);
    // Spawner threads stay alive until the loop is done, so the harness's own
    // thread count is constant (loop + sampler + spawners) while sampling.
    std::latch go(static_cast<std::ptrdiff_t>(nt + 1)), finished(1);
    std::vector<std::thread> spawners;
    for (std::uint64_t t = 0; t < nt; ++t) {
      spawners.emplace_back([this, &go, &finished, t, per] {
        go.arrive_and_wait();
        for (std::uint64_t k = 0; k < per; ++k) spawn(t * per + k, 0, false);
        finished.wait();
      });
    }
    Sampler s;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    go.arrive_and_wait();
    run_loop();
    const Usage u1 = usage();
    s.stop();
    finished.count_down();
    for (auto& th : spawners) th.join();
    finish(t0, u0, u1, s, 2 + static_cast<long>(nt));
    out_.num("rate", static_cast<double>(per * nt) / secs(end_ - t0));
  }

  void paced() {
    expect(p_.paced_ticks * p_.paced_tiny + paced_longs(p_));
    const auto tick = std::chrono::microseconds(p_.paced_tick_us);
    asio::steady_timer timer(io_);
    std::uint64_t issued = 0, id = 0;
    std::vector<std::uint8_t> plan;
    plan.reserve(p_.paced_tiny + p_.paced_long_n);
    Clock::time_point t0;
    std::function<void()> on_tick = [&] {
      const auto now = Clock::now();
      // Issue every tick that is due (tick k is due at t0 + k*tick).
      while (issued < p_.paced_ticks && t0 + tick * static_cast<std::int64_t>(issued) <= now) {
        tick_plan(p_, issued, plan);
        for (const std::uint8_t is_long : plan)
          spawn(id++, is_long ? p_.paced_long_ms : 0, /*timed=*/!is_long);
        ++issued;
      }
      if (issued < p_.paced_ticks) {
        timer.expires_at(t0 + tick * static_cast<std::int64_t>(issued));
        timer.async_wait([&](const std::error_code&) { on_tick(); });
      }
    };
    Sampler s;
    const Usage u0 = usage();
    t0 = Clock::now();
    asio::post(io_, on_tick);
    run_loop();
    const Usage u1 = usage();
    finish(t0, u0, u1, s, 2);
    out_.integer("tiny", static_cast<long long>(lat_ns_.size()));
    latencies();
  }

  void idle() {
    expect(p_.burst_n);
    Sampler s;
    const Usage ub = usage();
    const auto tb = Clock::now();
    asio::post(io_, [this] {
      for (std::uint64_t i = 0; i < p_.burst_n; ++i) spawn(i, p_.burst_sleep_ms, false);
    });
    run_loop();
    const auto burst_end = end_;
    s.stop();
    const Usage ube = usage();
    // The idle window: no sampler; the loop waits on two timers.
    const long threads_after = proc_threads() - 1;
    long threads_check = 0;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    asio::steady_timer check(io_, t0 + std::chrono::milliseconds(p_.idle_check_ms));
    asio::steady_timer stop(io_, t0 + std::chrono::milliseconds(p_.idle_ms));
    check.async_wait([&](const std::error_code&) { threads_check = proc_threads() - 1; });
    stop.async_wait([&](const std::error_code&) {});
    io_.run();
    const Usage u1 = usage();
    end_ = Clock::now();
    finish(t0, u0, u1, s, 2, /*sampled_window=*/false);
    out_.num("burst_wall_s", secs(burst_end - tb));
    out_.num("burst_cpu_s", std::max(0.0, ube.cpu_s - ub.cpu_s - s.cpu_s()));
    out_.integer("threads_after_burst", threads_after);
    out_.integer("threads_left", threads_check);
    out_.integer("threads_end", proc_threads() - 1);
    if constexpr (Peer::kHasKeepAlive)
      out_.integer("keep_alive_ms", static_cast<long long>(p_.keep_alive_ms));
  }

  std::string scenario_;
  Params p_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::optional<asio::steady_timer> epoll_timer_;  // --loop epoll only
  Peer peer_;
  Out out_;

  std::thread::id loop_tid_;
  std::uint64_t target_ = 0, count_ = 0, sum_ = 0, offloop_ = 0;
  std::vector<std::uint64_t> lat_ns_;
  std::function<void()> after_each_;
  Clock::time_point end_{};
};

template <class Peer>
int main_for(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (!a.error.empty()) {
    std::fprintf(stderr, "%s: %s\nusage: %s %s\n", Peer::name, a.error.c_str(), Peer::name, kUsage);
    return 2;
  }
  AsioDriver<Peer> d(a.scenario, a.p);
  return d.run();
}

}  // namespace bench
