// blockpool/detail/duration.hpp: durations and time points that saturate.
//
// Not a public header. Every duration or time point that enters the library
// (keep_alive, shutdown timeouts, JoinHandle waits, ManualClock::advance)
// goes through these helpers, so that any value a std::chrono type can hold is
// accepted: values beyond what nanoseconds can represent clamp to
// nanoseconds::max() ("no limit") or nanoseconds::min(), instead of
// overflowing (undefined behaviour for signed integers) or wrapping.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

namespace blockpool::detail {

// `d` in nanoseconds, clamped to [nanoseconds::min(), nanoseconds::max()].
// Floating-point durations round toward zero; NaN is zero.
template <class Rep, class Period>
constexpr std::chrono::nanoseconds saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using std::chrono::nanoseconds;
  using NsRep = nanoseconds::rep;
  constexpr NsRep kMax = std::numeric_limits<NsRep>::max();
  constexpr NsRep kMin = std::numeric_limits<NsRep>::min();
  // Nanoseconds per tick, as a reduced fraction num/den.
  using PerTick = std::ratio_divide<Period, std::nano>;
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double ns = static_cast<long double>(d.count()) * PerTick::num / PerTick::den;
    if (std::isnan(ns)) return nanoseconds(0);
    if (ns >= static_cast<long double>(kMax)) return nanoseconds::max();
    if (ns <= static_cast<long double>(kMin)) return nanoseconds::min();
    return nanoseconds(static_cast<NsRep>(ns));
  } else {
    static_assert(std::is_integral_v<Rep>, "blockpool: durations need an arithmetic Rep");
    const Rep c = d.count();
    if constexpr (PerTick::num == 1) {
      // A tick is at most a nanosecond: dividing cannot overflow, but the
      // count itself may not fit in nanoseconds' rep (an unsigned one, say).
      if constexpr (std::is_unsigned_v<Rep>) {
        const auto q = c / static_cast<std::uintmax_t>(PerTick::den);
        return q > static_cast<std::uintmax_t>(kMax) ? nanoseconds::max() : nanoseconds(static_cast<NsRep>(q));
      } else {
        const auto q = static_cast<std::intmax_t>(c) / PerTick::den;
        if (q > kMax) return nanoseconds::max();
        if (q < kMin) return nanoseconds::min();
        return nanoseconds(static_cast<NsRep>(q));
      }
    } else {
      // Whole ticks first (c / den), each worth num nanoseconds, then the
      // remainder: no intermediate product can overflow unchecked.
      constexpr std::intmax_t num = PerTick::num;
      constexpr std::intmax_t den = PerTick::den;
      if constexpr (std::is_unsigned_v<Rep>) {
        const std::uintmax_t u = c;
        const std::uintmax_t whole = u / static_cast<std::uintmax_t>(den);
        if (whole > static_cast<std::uintmax_t>(kMax / num)) return nanoseconds::max();
        const std::uintmax_t ns = whole * num + (u % static_cast<std::uintmax_t>(den)) * num / den;
        return ns > static_cast<std::uintmax_t>(kMax) ? nanoseconds::max() : nanoseconds(static_cast<NsRep>(ns));
      } else {
        const std::intmax_t s = c;
        const std::intmax_t whole = s / den;  // rounds toward zero
        if (whole > kMax / num) return nanoseconds::max();
        if (whole < kMin / num) return nanoseconds::min();
        const std::intmax_t head = whole * num;
        const std::intmax_t tail = (s % den) * num / den;  // |tail| < num: no overflow
        if (tail > 0 && head > kMax - tail) return nanoseconds::max();
        if (tail < 0 && head < kMin - tail) return nanoseconds::min();
        return nanoseconds(static_cast<NsRep>(head + tail));
      }
    }
  }
}

// a + b for nanosecond counts, clamped instead of overflowing.
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) return std::numeric_limits<std::int64_t>::max();
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b) return std::numeric_limits<std::int64_t>::min();
  return a + b;
}

// `t` as steady_clock nanoseconds since its epoch, clamped.
template <class Duration>
constexpr std::int64_t steady_ns(std::chrono::time_point<std::chrono::steady_clock, Duration> t) noexcept {
  return saturating_ns(t.time_since_epoch()).count();
}

}  // namespace blockpool::detail
