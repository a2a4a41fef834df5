// src/lane.hpp: a lane's state inside the pool, and latency recording (not a
// public header; see blockpool/lane.hpp for what a lane is).
//
// Which thread touches what:
//   * The fields of Lane::Locked belong to Core::mu_: they are reached only
//     through GuardedBy::get(mu_), which the compiler checks is called with
//     mu_ held (thread_annotations.hpp).
//   * The atomics are written by whoever ends, rejects or aborts a task of
//     the lane (relaxed increments, each before the event it counts is
//     published, as for the pool's own counters) and read by metrics().
//   * LatencyShards are written by the workers (a worker records into shard
//     index % kLatencyShards, so workers rarely share one) and read by
//     metrics(); relaxed, since a histogram is a statistic.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "blockpool/histogram.hpp"
#include "blockpool/lane.hpp"
#include "task_chain.hpp"
#include "thread_annotations.hpp"

namespace blockpool::detail {

inline constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

// One histogram, written by several threads.
struct AtomicHistogram {
  std::atomic<std::uint64_t> counts[Histogram::kBuckets] = {};
  std::atomic<std::uint64_t> tick_sum{0};
  void record(std::uint64_t ticks) noexcept {
    counts[Histogram::bucket_of(ticks)].fetch_add(1, std::memory_order_relaxed);
    tick_sum.fetch_add(ticks, std::memory_order_relaxed);
  }
  // Adds this histogram's counts into `counts` / `sum` (a snapshot).
  void add_to(std::uint64_t* out, std::uint64_t& sum) const noexcept {
    for (std::size_t i = 0; i < Histogram::kBuckets; ++i) out[i] += counts[i].load(std::memory_order_relaxed);
    sum += tick_sum.load(std::memory_order_relaxed);
  }
};

// A lane's queue-wait and run-time histograms, sharded by worker so that two
// workers ending short tasks on two CPUs do not pass one cache line back and
// forth for every task.
inline constexpr std::size_t kLatencyShards = 4;
struct alignas(64) LatencyShard {
  AtomicHistogram queue_wait;
  AtomicHistogram run_time;
};

struct Lane {
  Lane(std::string n, const LaneOptions& o)
      : name(std::move(n)), max_running(o.max_running), max_queued(o.max_queued), background(o.background) {}

  const std::string name;         // "" for the default lane
  const std::size_t max_running;  // kUnbounded for the default lane (max_threads caps it)
  const std::size_t max_queued;   // kUnbounded unless bounded
  const bool background;          // its tasks run at SCHED_IDLE (LaneOptions::background)

  // Guarded by Core::mu_ (lane.locked.get(mu_), or Core::locked(lane)).
  struct Locked {
    // ---- non-default lanes only; the default lane's figures are the
    // pool's minus the other lanes' ----
    std::size_t running = 0;  // its tasks running
    // Its entries in the pool's queue and in `held`, aborted ones included.
    std::size_t queued = 0;
    // Its tasks beyond max_running (spawned while as many of its tasks were
    // running or queued, or reached by a worker while it was at its cap):
    // they wait here, oldest first, and start as the lane's running tasks
    // end. Counted in `queued` and queued_, not in the growth policy's queue
    // (they wait for the lane, not for a thread).
    TaskChain held;
    std::size_t held_count = 0;

    // ---- every lane ----
    // Asio operations waiting for room (admission control), oldest first;
    // aborted ones included, counted in waiter_tombstones.
    TaskChain waiters;
    std::size_t waiting = 0;  // entries in `waiters`
  };
  GuardedBy<Locked> locked;

  // ---- atomics ----
  std::atomic<std::uint64_t> tombstones{0};         // aborted while queued or held (non-default lanes)
  std::atomic<std::uint64_t> waiter_tombstones{0};  // aborted while waiting for room
  // Counters (non-default lanes; the default lane's are derived).
  std::atomic<std::uint64_t> spawned{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  // Counted for every lane, the default one included (rejections are rare).
  std::atomic<std::uint64_t> rejected{0};

  LatencyShard latency[kLatencyShards];
};

}  // namespace blockpool::detail
