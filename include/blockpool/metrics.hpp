// blockpool/metrics.hpp: a snapshot of a pool's counters, gauges and latency
// histograms.
//
// Pool::metrics() and Handle::metrics() return a Metrics value. Each field is
// read atomically but the fields are not read as one transaction: a snapshot
// taken while tasks run may, for instance, show a task in `completed` whose
// thread has not yet gone back to `idle_threads`.
//
// Ordering guarantee (the one tests and users rely on): a counter is updated
// no later than the event it counts becomes visible. A task's counter
// (`completed`, `failed`, `cancelled`, `rejected`) is incremented before its
// JoinHandle reports the end; `threads_started` before the thread runs its
// first task; `threads_retired` before `threads` drops for that thread.
//
// Within any snapshot, even while tasks spawn more tasks:
//   completed + failed + cancelled + rejected <= spawned  and  queue_depth <= spawned.
// Once a pool is quiet (no task queued or running), every spawned task has
// been counted exactly once:  spawned == completed + failed + cancelled + rejected.
// The same holds for each lane's counters.
//
// Latency: queue_wait (from spawn to start) and run_time (from start to end)
// of every task that started, as Histograms (histogram.hpp), for the pool and
// per lane. to_prometheus (prometheus.hpp) renders a snapshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blockpool/histogram.hpp"

namespace blockpool {

struct LaneMetrics {
  std::string name;                // "" for the default lane
  std::uint64_t running = 0;       // its tasks running now
  std::uint64_t queue_depth = 0;   // its tasks waiting to start
  std::uint64_t spawned = 0;
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t rejected = 0;      // spawns refused by a full queue
  Histogram queue_wait;
  Histogram run_time;
};

struct Metrics {
  // Gauges.
  std::uint64_t threads = 0;       // worker threads alive (started, not yet exited)
  std::uint64_t idle_threads = 0;  // alive and parked, waiting for work
  std::uint64_t queue_depth = 0;   // tasks waiting for a thread (aborted ones leave at once)
  std::uint64_t admission_waiting = 0;  // Asio operations waiting for room in a full queue

  // Counters since the pool was built.
  std::uint64_t spawned = 0;          // every spawn call, including ones cancelled or rejected at once
  std::uint64_t completed = 0;        // the callable returned
  std::uint64_t failed = 0;           // the callable threw, or no thread could run it
  std::uint64_t cancelled = 0;        // aborted, dropped by shutdown, spawned after shutdown
  std::uint64_t rejected = 0;         // refused by a full queue (Builder::max_queued, a lane's)
  std::uint64_t threads_started = 0;  // worker threads that began running
  // Worker threads that exited while the pool ran: after keep_alive idle, or
  // after a background task when they could not take their priority back
  // (LaneOptions::background).
  std::uint64_t threads_retired = 0;
  std::uint64_t spawn_failures = 0;   // times the OS refused to create a thread
  std::uint64_t peak_threads = 0;     // highest `threads` seen
  std::uint64_t hook_errors = 0;      // exceptions caught from thread hooks, the name function, on_slow_task
  std::uint64_t slow_tasks = 0;       // tasks reported to on_slow_task

  // Latency of every task that started (all lanes).
  Histogram queue_wait;
  Histogram run_time;

  // One entry per lane, the default lane first (named "").
  std::vector<LaneMetrics> lanes;
};

}  // namespace blockpool
