// bench/peers/scenarios.hpp: the workload parameters shared by every C++ peer.
//
// bench/tokio/src/main.rs mirrors these numbers by hand (search for
// "scenarios.hpp" there); change both together.
//
// Every peer runs one scenario per process and prints one JSON line:
//
//   <peer> <scenario> [--quick] [variant options]
//
// --quick shrinks the sizes (a smoke run of the harness, not a measurement).
// The variant options (bench/matrix.py's cells) change one parameter each;
// without them every scenario is the one bench/run.sh measures:
//
//   --loop cv|epoll        how the loop thread waits (every scenario). cv (the
//                          default): the Asio loop has no I/O object, so an idle
//                          io_context waits on its condition variable; Tokio's
//                          runtime has its timer but no I/O driver (it parks on a
//                          condition variable). epoll: the Asio loop has a
//                          steady_timer armed (far in the future) while it runs,
//                          so it waits in epoll_wait and is woken through its
//                          eventfd; Tokio enables its I/O driver (mio, epoll).
//                          libuv always waits in epoll (uv_run): the option
//                          changes nothing there. The paced mix's Asio loop
//                          waits in epoll either way (its tick timer).
//   --spawners N           contended: N spawner threads share the same total
//                          (cont_total tasks, cont_total / N each).
//   --order after|before|random
//                          paced: where a tick's long tasks are spawned: after
//                          its tiny ones (the default), before them, or at
//                          random places among them (a seeded shuffle per tick,
//                          the same for every peer: tick_plan below).
//   --long-ms N            paced: how long a long task sleeps (default 50).
//   --long-every N         paced: long tasks every N-th tick (default 10).
//   --ticks N              paced: number of 1 ms ticks (default 2000).
//   --seed N               paced: the seed of --order random (default 1).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

enum class Order { after, before, random };
enum class LoopWait { cv, epoll };

inline const char* name(Order o) {
  return o == Order::before ? "before" : o == Order::random ? "random" : "after";
}
inline const char* name(LoopWait w) { return w == LoopWait::epoll ? "epoll" : "cv"; }

struct Params {
  // flood: N empty tasks spawned from the loop in one go, all awaited there.
  std::uint64_t flood_n = 200'000;
  // round trip: N sequential spawn-and-await from the loop.
  std::uint64_t rt_n = 20'000;
  // burst: N tasks that each sleep burst_sleep_ms.
  std::uint64_t burst_n = 256;
  std::uint64_t burst_sleep_ms = 20;
  // contended: cont_threads spawner threads, cont_per = cont_total /
  // cont_threads tasks each, released at once.
  std::uint64_t cont_threads = 4;
  std::uint64_t cont_total = 200'000;
  std::uint64_t cont_per = 50'000;
  // paced mix: paced_ticks ticks of 1 ms; each tick spawns paced_tiny empty
  // tasks, every paced_long_every-th tick also paced_long_n tasks that sleep
  // paced_long_ms (about 10 long tasks in flight).
  std::uint64_t paced_ticks = 2'000;
  std::uint64_t paced_tick_us = 1'000;
  std::uint64_t paced_tiny = 10;
  std::uint64_t paced_long_every = 10;
  std::uint64_t paced_long_n = 2;
  std::uint64_t paced_long_ms = 50;
  // Where a tick's long tasks go among its tiny ones; the seed of Order::random.
  Order paced_order = Order::after;
  std::uint64_t paced_seed = 1;
  // idle: a burst (burst_n x burst_sleep_ms), then idle_ms of idle during which
  // CPU time and context switches are measured; the live thread count is read
  // at idle_check_ms. Growing pools are built with keep_alive_ms for this
  // scenario only (fixed pools have no keep-alive).
  std::uint64_t idle_ms = 2'000;
  std::uint64_t idle_check_ms = 1'500;
  std::uint64_t keep_alive_ms = 1'000;
  // How the loop thread waits for work (see the options above).
  LoopWait loop = LoopWait::cv;
};

inline Params params(bool quick) {
  Params p;
  if (quick) {
    p.flood_n = 20'000;
    p.rt_n = 2'000;
    p.burst_n = 64;
    p.cont_total = 20'000;
    p.cont_per = 5'000;
    p.paced_ticks = 300;
    p.idle_ms = 600;
    p.idle_check_ms = 450;
    p.keep_alive_ms = 300;
  }
  return p;
}

inline constexpr std::string_view kScenarios[] = {"flood", "roundtrip", "burst",
                                                   "contended", "paced", "idle"};

// A peer's command line: the scenario, --quick and the variant options.
struct Args {
  std::string scenario;
  Params p;
  std::string error;  // non-empty: a bad option (usage error)
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  a.scenario = argc > 1 ? argv[1] : "";
  bool quick = false;
  for (int i = 2; i < argc; ++i) quick = quick || std::strcmp(argv[i], "--quick") == 0;
  a.p = params(quick);
  Params& p = a.p;
  bool spawners_set = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view opt = argv[i];
    if (opt == "--quick") continue;
    if (i + 1 >= argc) {
      a.error = "option " + std::string(opt) + " needs a value";
      return a;
    }
    const std::string_view val = argv[++i];
    char* end = nullptr;
    const unsigned long long n = std::strtoull(argv[i], &end, 10);
    const bool is_num = !val.empty() && end != nullptr && *end == '\0' && val[0] != '-';
    auto number = [&](std::uint64_t& field, std::uint64_t lo, std::uint64_t hi) {
      if (!is_num || n < lo || n > hi)
        a.error = "bad value '" + std::string(val) + "' for " + std::string(opt);
      else
        field = n;
    };
    if (opt == "--loop") {
      if (val == "cv")
        p.loop = LoopWait::cv;
      else if (val == "epoll")
        p.loop = LoopWait::epoll;
      else
        a.error = "--loop takes cv or epoll";
    } else if (opt == "--order") {
      if (val == "after")
        p.paced_order = Order::after;
      else if (val == "before")
        p.paced_order = Order::before;
      else if (val == "random")
        p.paced_order = Order::random;
      else
        a.error = "--order takes after, before or random";
    } else if (opt == "--spawners") {
      number(p.cont_threads, 1, 256);
      spawners_set = true;
    } else if (opt == "--long-ms") {
      number(p.paced_long_ms, 0, 60'000);
    } else if (opt == "--long-every") {
      number(p.paced_long_every, 1, 1'000'000);
    } else if (opt == "--ticks") {
      number(p.paced_ticks, 1, 1'000'000);
    } else if (opt == "--seed") {
      number(p.paced_seed, 0, ~std::uint64_t{0});
    } else {
      a.error = "unknown option " + std::string(opt);
    }
    if (!a.error.empty()) return a;
  }
  if (spawners_set) p.cont_per = p.cont_total / p.cont_threads;
  return a;
}

inline constexpr const char* kUsage =
    "<flood|roundtrip|burst|contended|paced|idle> [--quick] [--loop cv|epoll] "
    "[--spawners N] [--order after|before|random] [--long-ms N] [--long-every N] "
    "[--ticks N] [--seed N]";

// splitmix64: the random order's generator (mirrored in the Tokio peer).
inline constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The paced mix's tick k, in spawn order: 0 for a tiny task, 1 for a long
// one. paced_tiny tiny tasks; paced_long_n long ones on every
// paced_long_every-th tick (k = 0, every, 2 every, ...), placed by
// paced_order. Random: a Fisher-Yates shuffle of [tiny..., long...] driven by
// mix64 from mix64(seed ^ mix64(k)), one draw per step from the last index
// down.
inline void tick_plan(const Params& p, std::uint64_t k, std::vector<std::uint8_t>& kinds) {
  kinds.clear();
  const std::uint64_t longs = k % p.paced_long_every == 0 ? p.paced_long_n : 0;
  if (p.paced_order == Order::before) kinds.insert(kinds.end(), longs, 1);
  kinds.insert(kinds.end(), p.paced_tiny, 0);
  if (p.paced_order != Order::before) kinds.insert(kinds.end(), longs, 1);
  if (p.paced_order == Order::random && longs != 0) {
    std::uint64_t state = mix64(p.paced_seed ^ mix64(k));
    for (std::size_t i = kinds.size() - 1; i > 0; --i) {
      state = mix64(state);
      std::swap(kinds[i], kinds[state % (i + 1)]);
    }
  }
}

// The variant a run measured, as fields of its JSON line (bench::Out).
template <class Out>
void describe(Out& out, std::string_view scenario, const Params& p) {
  out.str("loop", name(p.loop));
  if (scenario == "contended") {
    out.integer("spawners", static_cast<long long>(p.cont_threads));
    out.integer("per_spawner", static_cast<long long>(p.cont_per));
  } else if (scenario == "paced") {
    out.str("order", name(p.paced_order));
    out.integer("long_ms", static_cast<long long>(p.paced_long_ms));
    out.integer("long_every", static_cast<long long>(p.paced_long_every));
    out.integer("ticks", static_cast<long long>(p.paced_ticks));
  }
}

// The number of long tasks of the paced mix.
inline std::uint64_t paced_longs(const Params& p) {
  return (p.paced_ticks + p.paced_long_every - 1) / p.paced_long_every * p.paced_long_n;
}

// The value task i returns; the loop sums them and checks the total.
inline constexpr std::uint64_t task_value(std::uint64_t i) noexcept {
  return (i + 1) * 0x9E3779B97F4A7C15ull >> 7;
}

inline std::uint64_t expected_sum(std::uint64_t first, std::uint64_t count) noexcept {
  std::uint64_t s = 0;
  for (std::uint64_t i = first; i < first + count; ++i) s += task_value(i);
  return s;
}

}  // namespace bench
