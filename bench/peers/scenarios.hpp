// bench/peers/scenarios.hpp: the workload parameters shared by every C++ peer.
//
// bench/tokio/src/main.rs mirrors these numbers by hand (search for
// "scenarios.hpp" there); change both together.
//
// Every peer runs one scenario per process:  <peer> <scenario> [--quick]
// and prints one JSON line. --quick shrinks the sizes (a smoke run of the
// harness, not a measurement).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace bench {

struct Params {
  // flood: N empty tasks spawned from the loop in one go, all awaited there.
  std::uint64_t flood_n = 200'000;
  // round trip: N sequential spawn-and-await from the loop.
  std::uint64_t rt_n = 20'000;
  // burst: N tasks that each sleep burst_sleep_ms.
  std::uint64_t burst_n = 256;
  std::uint64_t burst_sleep_ms = 20;
  // contended: cont_threads spawner threads, cont_per tasks each, released at once.
  std::uint64_t cont_threads = 4;
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
  // idle: a burst (burst_n x burst_sleep_ms), then idle_ms of idle during which
  // CPU time and context switches are measured; the live thread count is read
  // at idle_check_ms. Growing pools are built with keep_alive_ms for this
  // scenario only (fixed pools have no keep-alive).
  std::uint64_t idle_ms = 2'000;
  std::uint64_t idle_check_ms = 1'500;
  std::uint64_t keep_alive_ms = 1'000;
};

inline Params params(bool quick) {
  Params p;
  if (quick) {
    p.flood_n = 20'000;
    p.rt_n = 2'000;
    p.burst_n = 64;
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
