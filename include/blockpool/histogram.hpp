// blockpool/histogram.hpp: a latency histogram (queue wait, run time).
//
// A Histogram is a value: Metrics carries two per pool and two per lane
// (metrics.hpp). It counts durations in log-linear buckets: below 16 ticks of
// the pool's clock one bucket per tick, above that sixteen buckets per power
// of two, so every bucket's upper bound is within 6.25% of any value in it.
//
//   std::chrono::nanoseconds p99 = m.queue_wait.percentile(99.0);
//
// Guarantees
//   * count() is the number of durations recorded, sum() their total.
//   * percentile(p), p in [0, 100]: an upper bound of the p-th percentile
//     (the smallest recorded value v such that at least p% of the values are
//     <= v), at most 10% above it (6.25% from the buckets, plus the error of
//     converting clock ticks to nanoseconds, well under 1% once the pool has
//     run a second). 0 for an empty histogram; p outside [0, 100] is clamped.
//   * buckets(): every non-empty bucket, in increasing order, with its upper
//     bound and count, for exporters; cumulative(le) counts the values in the
//     buckets whose upper bound is at most `le` (so a value up to 6.25% below
//     `le` may be left out: exporters with fixed bounds are approximate).
// Thread-safety: a value; copy it freely. Metrics::queue_wait is a snapshot.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace blockpool {

class Histogram {
 public:
  // Bucket layout (in ticks of the pool's clock; see detail/ticks.hpp).
  static constexpr unsigned kSubBits = 4;                      // 16 buckets per power of two
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kMaxExponent = 50;                 // ~5 days at 2.6 GHz; above: last bucket
  static constexpr std::size_t kBuckets = kSub * (kMaxExponent - kSubBits + 2);

  struct Bucket {
    std::chrono::nanoseconds upper_bound;  // every value in the bucket is <= this
    std::uint64_t count;
  };

  Histogram() = default;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::chrono::nanoseconds sum() const noexcept;
  [[nodiscard]] std::chrono::nanoseconds percentile(double p) const noexcept;
  [[nodiscard]] std::vector<Bucket> buckets() const;
  // How many values are in buckets whose upper bound is <= `le`.
  [[nodiscard]] std::uint64_t cumulative(std::chrono::nanoseconds le) const noexcept;

  // Adds another histogram's values (a pool's is the sum of its lanes').
  Histogram& operator+=(const Histogram& other) noexcept;

  // ---- For the pool (src/) -------------------------------------------------
  // The bucket of a duration of `ticks`.
  static constexpr std::size_t bucket_of(std::uint64_t ticks) noexcept {
    if (ticks < kSub) return static_cast<std::size_t>(ticks);
    unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(ticks));  // >= kSubBits
    if (e > kMaxExponent) return kBuckets - 1;
    const auto m = static_cast<std::size_t>((ticks >> (e - kSubBits)) & (kSub - 1));
    return kSub * (e - kSubBits + 1) + m;
  }
  // The largest tick count in bucket `i` (for i < kSub: i itself).
  static constexpr std::uint64_t bucket_upper_ticks(std::size_t i) noexcept {
    if (i < kSub) return i;
    const unsigned e = static_cast<unsigned>(i / kSub) + kSubBits - 1;
    const std::uint64_t m = i % kSub;
    return ((kSub + m + 1) << (e - kSubBits)) - 1;
  }
  // Builds a histogram from raw bucket counts and a tick sum.
  static Histogram from_ticks(const std::uint64_t* counts, std::uint64_t tick_sum, double ns_per_tick) noexcept;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t tick_sum_ = 0;
  double ns_per_tick_ = 1.0;  // of the clock the ticks were counted on
};

}  // namespace blockpool
