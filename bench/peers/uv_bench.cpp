// libuv peer: tasks go to libuv's threadpool with uv_queue_work (default size
// 4, UV_THREADPOOL_SIZE left unset); results come back through libuv's own
// loop, in the after_work callback, which runs on the thread running uv_run.
//
// uv_queue_work may only be called on the loop thread, so in "contended" the
// spawner threads hand task ids to the loop through a mutex-protected vector
// and uv_async_send, and the loop queues the work: that is how a libuv
// program spawns from foreign threads.
//
// The loop always waits in epoll (uv_run): --loop cv|epoll is accepted, and
// reported, but changes nothing here.
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "measure.hpp"
#include "scenarios.hpp"

namespace {

using namespace bench;

class UvDriver {
 public:
  UvDriver(std::string scenario, const Params& p) : scenario_(std::move(scenario)), p_(p),
                                                    out_("libuv", scenario_) {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &timer_);
    uv_timer_init(&loop_, &timer2_);
    timer_.data = timer2_.data = this;
  }
  ~UvDriver() {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer2_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  int run() {
    loop_tid_ = std::this_thread::get_id();
    out_.str("libuv", uv_version_string());
    describe(out_, scenario_, p_);
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
      std::fprintf(stderr, "usage: uv_bench %s\n", kUsage);
      return 2;
    }
    out_.print();
    return 0;
  }

 private:
  struct Work {
    uv_work_t req;
    UvDriver* self;
    std::uint64_t i, ms, v;
    bool timed;
    Clock::time_point ts;
  };

  void expect(std::uint64_t n) {
    target_ = n;
    count_ = sum_ = offloop_ = 0;
    // Room for every latency, written once so its pages are faulted in now:
    // growing the vector on the loop (a copy of up to 128 KiB into freshly
    // mapped pages) took 100-200 us, and showed as a slow tick in the paced
    // mix's p99 whatever the pool.
    lat_ns_.assign(n, 0);
    lat_ns_.clear();
  }

  void spawn(std::uint64_t i, std::uint64_t ms, bool timed) {
    auto* w = new Work{{}, this, i, ms, 0, timed, Clock::now()};
    w->req.data = w;
    uv_queue_work(
        &loop_, &w->req,
        [](uv_work_t* r) {
          auto* w = static_cast<Work*>(r->data);
          if (w->ms != 0) std::this_thread::sleep_for(std::chrono::milliseconds(w->ms));
          w->v = task_value(w->i);
        },
        [](uv_work_t* r, int) {
          auto* w = static_cast<Work*>(r->data);
          w->self->on_complete(*w);
          delete w;
        });
  }

  void on_complete(const Work& w) {
    if (w.timed) lat_ns_.push_back(nanos(Clock::now() - w.ts));
    if (std::this_thread::get_id() != loop_tid_) ++offloop_;
    ++count_;
    sum_ += w.v;
    if (after_each_) after_each_();
    if (count_ == target_) end_ = Clock::now();
  }

  // Runs `fn` from the loop (a zero timeout timer), then the loop until idle.
  void run_with(std::function<void()> fn) {
    start_fn_ = std::move(fn);
    uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<UvDriver*>(t->data)->start_fn_(); }, 0, 0);
    uv_run(&loop_, UV_RUN_DEFAULT);
  }

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

  void flood_or_burst(std::uint64_t n, std::uint64_t ms, bool rate) {
    expect(n);
    Sampler s;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    run_with([this, n, ms] {
      for (std::uint64_t i = 0; i < n; ++i) spawn(i, ms, false);
    });
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
    run_with([this] { spawn(0, 0, true); });
    const Usage u1 = usage();
    after_each_ = nullptr;
    finish(t0, u0, u1, s, 2);
    latencies();
  }

  void contended() {
    const std::uint64_t per = p_.cont_per, nt = p_.cont_threads;
    expect(per * nt);
    uv_async_t async;
    async.data = this;
    uv_async_init(&loop_, &async, [](uv_async_t* a) {
      auto* self = static_cast<UvDriver*>(a->data);
      std::vector<std::uint64_t> ids;
      {
        std::lock_guard lk(self->inbox_mu_);
        ids.swap(self->inbox_);
      }
      for (std::uint64_t i : ids) self->spawn(i, 0, false);
    });
    after_each_ = [&] {
      if (count_ == target_) uv_stop(&loop_);
    };
    // Spawner threads stay alive until the loop is done, so the harness's own
    // thread count is constant (loop + sampler + spawners) while sampling.
    std::latch go(static_cast<std::ptrdiff_t>(nt + 1)), finished(1);
    std::vector<std::thread> spawners;
    for (std::uint64_t t = 0; t < nt; ++t) {
      spawners.emplace_back([this, &go, &finished, &async, t, per] {
        go.arrive_and_wait();
        for (std::uint64_t k = 0; k < per; ++k) {
          {
            std::lock_guard lk(inbox_mu_);
            inbox_.push_back(t * per + k);
          }
          uv_async_send(&async);
        }
        finished.wait();
      });
    }
    Sampler s;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    go.arrive_and_wait();
    uv_run(&loop_, UV_RUN_DEFAULT);
    const Usage u1 = usage();
    after_each_ = nullptr;
    s.stop();
    finished.count_down();
    for (auto& th : spawners) th.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&async), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    finish(t0, u0, u1, s, 2 + static_cast<long>(nt));
    out_.num("rate", static_cast<double>(per * nt) / secs(end_ - t0));
  }

  void paced() {
    expect(p_.paced_ticks * p_.paced_tiny + paced_longs(p_));
    plan_.reserve(p_.paced_tiny + p_.paced_long_n);
    tick_ = std::chrono::microseconds(p_.paced_tick_us);
    issued_ = id_ = 0;
    Sampler s;
    const Usage u0 = usage();
    t0_ = Clock::now();
    uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<UvDriver*>(t->data)->on_tick(); }, 0, 0);
    uv_run(&loop_, UV_RUN_DEFAULT);
    const Usage u1 = usage();
    finish(t0_, u0, u1, s, 2);
    out_.integer("tiny", static_cast<long long>(lat_ns_.size()));
    latencies();
  }

  void on_tick() {
    const auto now = Clock::now();
    // Issue every tick that is due (tick k is due at t0 + k*tick).
    while (issued_ < p_.paced_ticks && t0_ + tick_ * static_cast<std::int64_t>(issued_) <= now) {
      tick_plan(p_, issued_, plan_);
      for (const std::uint8_t is_long : plan_)
        spawn(id_++, is_long ? p_.paced_long_ms : 0, /*timed=*/!is_long);
      ++issued_;
    }
    if (issued_ < p_.paced_ticks) {
      // libuv timers have millisecond resolution: round the wait up.
      const auto wait = t0_ + tick_ * static_cast<std::int64_t>(issued_) - Clock::now();
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
      uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<UvDriver*>(t->data)->on_tick(); },
                     ms < 0 ? 0 : static_cast<std::uint64_t>(ms), 0);
    }
  }

  void idle() {
    expect(p_.burst_n);
    Sampler s;
    const Usage ub = usage();
    const auto tb = Clock::now();
    run_with([this] {
      for (std::uint64_t i = 0; i < p_.burst_n; ++i) spawn(i, p_.burst_sleep_ms, false);
    });
    const auto burst_end = end_;
    s.stop();
    const Usage ube = usage();
    // The idle window: no sampler; the loop waits on two timers.
    const long threads_after = proc_threads() - 1;
    const Usage u0 = usage();
    const auto t0 = Clock::now();
    uv_update_time(&loop_);
    threads_check_ = 0;
    uv_timer_start(&timer_, [](uv_timer_t* t) {
      static_cast<UvDriver*>(t->data)->threads_check_ = proc_threads() - 1;
    }, p_.idle_check_ms, 0);
    uv_timer_start(&timer2_, [](uv_timer_t*) {}, p_.idle_ms, 0);
    uv_run(&loop_, UV_RUN_DEFAULT);
    const Usage u1 = usage();
    end_ = Clock::now();
    finish(t0, u0, u1, s, 2, /*sampled_window=*/false);
    out_.num("burst_wall_s", secs(burst_end - tb));
    out_.num("burst_cpu_s", std::max(0.0, ube.cpu_s - ub.cpu_s - s.cpu_s()));
    out_.integer("threads_after_burst", threads_after);
    out_.integer("threads_left", threads_check_);
    out_.integer("threads_end", proc_threads() - 1);
    out_.integer("keep_alive_ms", -1);  // fixed pool
  }

  std::string scenario_;
  Params p_;
  Out out_;
  uv_loop_t loop_{};
  uv_timer_t timer_{}, timer2_{};
  std::function<void()> start_fn_;

  std::thread::id loop_tid_;
  std::uint64_t target_ = 0, count_ = 0, sum_ = 0, offloop_ = 0;
  std::vector<std::uint64_t> lat_ns_;
  std::function<void()> after_each_;
  Clock::time_point end_{}, t0_{};
  std::chrono::microseconds tick_{};
  std::uint64_t issued_ = 0, id_ = 0;
  std::vector<std::uint8_t> plan_;
  long threads_check_ = 0;

  std::mutex inbox_mu_;
  std::vector<std::uint64_t> inbox_;
};

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (!a.error.empty()) {
    std::fprintf(stderr, "uv_bench: %s\nusage: uv_bench %s\n", a.error.c_str(), kUsage);
    return 2;
  }
  UvDriver d(a.scenario, a.p);
  return d.run();
}
