// blockpool/metrics.hpp: a snapshot of a pool's counters and gauges.
//
// Pool::metrics() and Handle::metrics() return a Metrics value. Each field is
// read atomically but the fields are not read as one transaction: a snapshot
// taken while tasks run may, for instance, show a task in `completed` whose
// thread has not yet gone back to `idle_threads`.
//
// Ordering guarantee (the one tests and users rely on): a counter is updated
// no later than the event it counts becomes visible. A task's counter
// (`completed`, `failed`, `cancelled`) is incremented before its JoinHandle
// reports the end; `threads_started` before the thread runs its first task;
// `threads_retired` before `threads` drops for that thread.
//
// Within any snapshot, even while tasks spawn more tasks:
//   completed + failed + cancelled <= spawned  and  queue_depth <= spawned.
// Once a pool is quiet (no task queued or running), every spawned task has
// been counted exactly once:  spawned == completed + failed + cancelled.
#pragma once

#include <cstdint>

namespace blockpool {

struct Metrics {
  // Gauges.
  std::uint64_t threads = 0;       // worker threads alive (started, not yet exited)
  std::uint64_t idle_threads = 0;  // alive and parked, waiting for work
  std::uint64_t queue_depth = 0;   // tasks waiting for a thread (aborted ones leave at once)

  // Counters since the pool was built.
  std::uint64_t spawned = 0;          // every spawn call, including ones cancelled at once
  std::uint64_t completed = 0;        // the callable returned
  std::uint64_t failed = 0;           // the callable threw, or no thread could run it
  std::uint64_t cancelled = 0;        // aborted, dropped by shutdown, spawned after shutdown
  std::uint64_t threads_started = 0;  // worker threads that began running
  std::uint64_t threads_retired = 0;  // worker threads that exited after keep_alive idle
  std::uint64_t spawn_failures = 0;   // times the OS refused to create a thread
  std::uint64_t peak_threads = 0;     // highest `threads` seen
  std::uint64_t hook_errors = 0;      // exceptions caught from thread hooks / name function
};

}  // namespace blockpool
