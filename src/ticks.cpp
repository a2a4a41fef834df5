// src/ticks.cpp: the latency clock (see blockpool/detail/ticks.hpp) and the
// Histogram value type's arithmetic.
#include "blockpool/detail/ticks.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "blockpool/histogram.hpp"
#include "thread_annotations.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace blockpool::detail {

namespace {
std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

bool ticks_are_tsc() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  // CPUID 0x80000007, EDX bit 8: the TSC runs at a constant rate in every
  // C-, P- and T-state, and is synchronised across cores.
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(0x80000007, &a, &b, &c, &d) != 0 && ((d >> 8) & 1u) != 0;
#else
  return false;
#endif
}

std::uint64_t steady_ticks() noexcept { return static_cast<std::uint64_t>(steady_now_ns()); }

namespace {
// Calibration: the (ticks, steady ns) pair at the first call, and the rate
// measured from it. Refined whenever the interval has doubled since the last
// estimate, so that it converges (a 1 ms first interval is good to ~0.1%,
// one of seconds to a few parts per million).
struct Calibration {
  Mutex mu;
  bool started BLOCKPOOL_GUARDED_BY(mu) = false;
  std::uint64_t t0 BLOCKPOOL_GUARDED_BY(mu) = 0;
  std::int64_t n0 BLOCKPOOL_GUARDED_BY(mu) = 0;
  std::int64_t last_span BLOCKPOOL_GUARDED_BY(mu) = 0;  // the interval of the current estimate
  std::atomic<double> rate{0.0};  // ns per tick; 0 until the first estimate
};
Calibration& calibration() {
  static Calibration* c = new Calibration;  // never destroyed: used by pool threads at exit
  return *c;
}
}  // namespace

double ns_per_tick() noexcept {
  static const bool tsc = [] {
    (void)ticks();  // the same decision as ticks()
    return ticks_are_tsc();
  }();
  if (!tsc) return 1.0;
  Calibration& c = calibration();
  MutexGuard lk(c.mu);
  if (!c.started) {
    c.started = true;
    c.t0 = ticks();
    c.n0 = steady_now_ns();
  }
  std::int64_t span = steady_now_ns() - c.n0;
  if (c.last_span == 0 && span < 1'000'000) {
    // First estimate: wait for a millisecond of real time.
    while ((span = steady_now_ns() - c.n0) < 1'000'000) std::this_thread::yield();
  }
  if (span >= 2 * c.last_span) {
    const std::uint64_t dt = ticks() - c.t0;
    span = steady_now_ns() - c.n0;
    if (dt > 0) c.rate.store(static_cast<double>(span) / static_cast<double>(dt), std::memory_order_relaxed);
    c.last_span = span;
  }
  return c.rate.load(std::memory_order_relaxed);
}

}  // namespace blockpool::detail

namespace blockpool {

std::chrono::nanoseconds Histogram::sum() const noexcept {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(static_cast<double>(tick_sum_) * ns_per_tick_)));
}

std::chrono::nanoseconds Histogram::percentile(double p) const noexcept {
  if (count_ == 0) return std::chrono::nanoseconds(0);
  if (!(p >= 0.0)) p = 0.0;  // NaN too
  if (p > 100.0) p = 100.0;
  // The rank of the p-th percentile: the smallest value with at least p% of
  // the values at or below it (at least the first one).
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::chrono::nanoseconds(
          static_cast<std::int64_t>(std::ceil(static_cast<double>(bucket_upper_ticks(i)) * ns_per_tick_)));
    }
  }
  return std::chrono::nanoseconds(
      static_cast<std::int64_t>(std::ceil(static_cast<double>(bucket_upper_ticks(kBuckets - 1)) * ns_per_tick_)));
}

std::vector<Histogram::Bucket> Histogram::buckets() const {
  std::vector<Bucket> out;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    out.push_back(Bucket{std::chrono::nanoseconds(static_cast<std::int64_t>(
                             std::ceil(static_cast<double>(bucket_upper_ticks(i)) * ns_per_tick_))),
                         counts_[i]});
  }
  return out;
}

std::uint64_t Histogram::cumulative(std::chrono::nanoseconds le) const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    const double upper_ns = static_cast<double>(bucket_upper_ticks(i)) * ns_per_tick_;
    if (upper_ns > static_cast<double>(le.count())) break;
    n += counts_[i];
  }
  return n;
}

Histogram& Histogram::operator+=(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  tick_sum_ += other.tick_sum_;
  if (other.count_ > 0) ns_per_tick_ = other.ns_per_tick_;
  return *this;
}

Histogram Histogram::from_ticks(const std::uint64_t* counts, std::uint64_t tick_sum, double ns_per_tick) noexcept {
  Histogram h;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    h.counts_[i] = counts[i];
    h.count_ += counts[i];
  }
  h.tick_sum_ = tick_sum;
  h.ns_per_tick_ = ns_per_tick;
  return h;
}

}  // namespace blockpool
