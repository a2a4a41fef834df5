// blockpool/detail/ticks.hpp: the cheap clock latency is measured on. Not a
// public header.
//
// Every task's queue wait and run time is measured, so the clock is read on
// the spawn path and by workers once per task. steady_clock costs 20-120 ns
// per read on a VM (the paravirtual clock); the CPU's time-stamp counter a
// fraction of that, and on x86 with an invariant TSC (constant_tsc and
// nonstop_tsc, as every x86 server CPU of the last decade has) it counts at a
// fixed rate on every core. Durations are kept in ticks and converted to
// nanoseconds when read (ns_per_tick(), calibrated against steady_clock over
// the process's life). Elsewhere, and if the TSC is not invariant, ticks are
// steady_clock nanoseconds.
#pragma once

#include <cstdint>

namespace blockpool::detail {

// Whether ticks() reads the TSC: decided once, on first use, and the same
// for the whole process afterwards (mixing the two would corrupt durations).
bool ticks_are_tsc() noexcept;

// steady_clock nanoseconds, the fallback.
std::uint64_t steady_ticks() noexcept;

// Ticks of the latency clock. Monotonic on every thread.
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static const bool tsc = ticks_are_tsc();
  if (tsc) {
    std::uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (std::uint64_t{hi} << 32) | lo;
  }
#endif
  return steady_ticks();
}

// Nanoseconds per tick (1.0 when ticks are nanoseconds). Calibrated against
// steady_clock since the first call; the estimate sharpens as time passes
// (the first call spends about a millisecond to get a first one).
double ns_per_tick() noexcept;

}  // namespace blockpool::detail
