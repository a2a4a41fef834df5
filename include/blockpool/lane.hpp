// blockpool/lane.hpp: lanes, named classes of tasks with their own caps.
//
//   blockpool::Pool pool = blockpool::Builder{}
//       .lane("dns",  {.max_running = 2})
//       .lane("disk", {.max_running = 8, .max_queued = 1000})
//       .lane("scan", {.max_running = 4, .background = true})
//       .build();
//   blockpool::Handle dns = pool.lane("dns");     // std::invalid_argument if undeclared
//   auto h = dns.spawn_blocking([] { return resolve("example.org"); });
//
// A lane caps how many of its tasks run at once (max_running) and,
// optionally, how many wait to start (max_queued, as Builder::max_queued
// does for the pool). It owns no threads: its tasks run on the pool's. A lane
// at its cap holds back its own queued tasks, never another lane's (no
// head-of-line blocking across lanes); within a lane tasks start in the order
// they were spawned, and across lanes in spawn order among those allowed to
// start. Tasks spawned through pool.handle() or Pool::spawn_blocking go to
// the default lane, which is capped by max_threads and Builder::max_queued.
// Declaring a lane twice, an empty name, max_running == 0 or max_queued == 0
// make Builder::build() throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <limits>

namespace blockpool {

struct LaneOptions {
  // Tasks of the lane running at once, at most. Must be at least 1.
  std::size_t max_running = std::numeric_limits<std::size_t>::max();
  // Tasks of the lane waiting to start, at most (see Builder::max_queued for
  // what a full queue does). Must be at least 1; the default is unbounded.
  std::size_t max_queued = std::numeric_limits<std::size_t>::max();
  // Run the lane's tasks at the operating system's lowest CPU priority
  // (Linux: SCHED_IDLE, for the task's duration only): whenever any other
  // thread of any process is ready to run, it takes the CPU from a
  // background task at once. For long CPU-bound work (scans, reports,
  // compression) that must not add latency to the event loop or to other
  // lanes on a machine with few CPUs. Before the task starts, the worker
  // gives its CPU to any thread already waiting for it (Linux would let that
  // thread wait for the next scheduler tick): a sleep of 1 us plus the
  // thread's timer slack, 50 us by default, and a handful of system calls.
  // Meant for tasks of milliseconds or more.
  //
  // Requirements: a background task must not hold a lock that other
  // threads wait for (on a busy machine it may not run for a long time:
  // priority inversion), and on a machine that is never idle it may starve.
  //
  // Guarantees: no task of another lane ever runs at the background
  // priority. After the task the worker thread takes back its own policy
  // and nice value; where Linux refuses that (an unprivileged thread may
  // leave SCHED_IDLE only with an RLIMIT_NICE of 20 or more, or
  // CAP_SYS_NICE), the thread exits after the task instead, counted in
  // Metrics::threads_retired, and the pool starts another when work needs
  // it (a thread start, tens of microseconds, per background task).
  bool background = false;
};

}  // namespace blockpool
