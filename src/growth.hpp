// src/growth.hpp: the growth policy, the one place that decides how many
// threads a pool adds. Pure functions of a snapshot: no locks, no clocks, so
// the policy is unit-testable and can change without touching the mechanism
// (core.cpp, worker.cpp).
//
// The rule, and why (measured on 2 cores; see README "Performance"):
//   * A spawn never starts a thread because no thread is idle at that
//     instant (Tokio's rule): under a flood of short tasks that starts
//     hundreds of threads that only contend. The one exception is an empty
//     pool: with no thread at all nobody could ever run the task.
//   * While work is queued and no thread is idle, a controller thread checks
//     every `grace` whether any queued task has started. If none has, the
//     running tasks are blocking: it adds threads, doubling the pool each
//     stalled interval (never more than the queued tasks need, never past the
//     cap), so a burst of 256 blocking tasks is spread over 256 threads within
//     a few milliseconds, while a false alarm costs at most a doubling.
//   * A stall is believed at once if the controller itself woke on time and
//     the process did not keep the CPUs busy over the interval: when it wakes
//     late or the CPUs are saturated, the workers are more likely preempted
//     than blocked, so adding threads would only add contention. A stall that persists for kLateStallChecks checks in a row
//     is believed anyway: tasks that wait on queued tasks must get threads
//     eventually, however loaded the machine.
//   * Once a stall has been believed, the next watches (for kStallMemory)
//     use a shorter grace: the pool is known to run blocking work.
//   * When tasks do start, the work is short: no growth, unless the backlog
//     keeps growing, and then only up to one thread per CPU; and the check
//     interval backs off (up to max_interval) so a long flood costs the
//     controller only a few hundred wake-ups a second.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace blockpool::detail::growth {

inline constexpr std::chrono::microseconds kGrace{250};
inline constexpr std::chrono::microseconds kMaxInterval{2000};
// While the pool is known to run blocking work (a stall was believed less
// than kStallMemory ago), a new watch uses kShortGrace: the work that took
// the threads blocks, so waiting the full grace only delays what queues
// behind it. Measured on the paced mix (README): tiny tasks that found every
// thread taken by newly started 50 ms tasks waited ~450 us with the full
// grace. A flood of short tasks never has a believed stall, so it keeps the
// full grace.
inline constexpr std::chrono::microseconds kShortGrace{50};
inline constexpr std::chrono::milliseconds kStallMemory{100};

struct Snapshot {
  std::size_t queued = 0;    // tasks waiting (logical queue depth)
  std::size_t threads = 0;   // threads alive or being created
  std::size_t starting = 0;  // created or being created, not yet taking work
  std::size_t idle = 0;      // parked threads
  std::size_t max_threads = 0;
  std::size_t cpus = 1;      // CPUs the process may run on (its affinity mask)
};

// A spawn found no idle thread: must it create one itself, right now?
// Only when the pool has no thread at all (someone must run the task).
inline bool spawn_must_start_thread(const Snapshot& s) { return s.threads == 0 && s.max_threads > 0; }

// Should the controller watch this pool: work queued beyond what threads
// still starting will take, nobody idle, room to grow? (Every thread that
// takes a task re-asks this, so growth resumes if the work outlasts them.)
inline bool should_watch(const Snapshot& s) {
  return s.queued > s.starting && s.idle == 0 && s.threads < s.max_threads;
}

// The controller saw no queued task start for a whole interval. How many
// threads to add: as many as are already running (doubling), but no more than
// the queued tasks not already covered by a thread that is still starting,
// and within the cap.
inline std::size_t threads_to_add_on_stall(const Snapshot& s) {
  if (s.queued <= s.starting || s.threads >= s.max_threads) return 0;
  const std::size_t running = s.threads - s.starting;
  return std::min({s.queued - s.starting, s.max_threads - s.threads, std::max<std::size_t>(running, 1)});
}

// Queued tasks do start, so they are short, but the backlog still grew by
// more than kBacklogGrowth over the interval: the workers cannot keep up with
// the spawners. Add one thread, up to one per CPU (short tasks gain nothing
// from more threads than CPUs, only contention). Measured on the contended
// benchmark (4 spawning threads): one worker moves 3.0 M tasks/s, two 3.6 M.
inline constexpr std::size_t kBacklogGrowth = 64;
inline std::size_t threads_to_add_on_backlog(const Snapshot& s, std::size_t queued_before) {
  if (s.queued <= queued_before + kBacklogGrowth || s.queued <= s.starting) return 0;
  return s.threads < std::min(s.cpus, s.max_threads) ? 1 : 0;
}

inline constexpr unsigned kLateStallChecks = 4;

// A worker whose previous idle spell was shorter than this polls the queue
// for up to this long before parking (see worker.cpp).
inline constexpr std::chrono::microseconds kSpinWindow{50};

// Whether a worker that found the queue empty polls it before parking:
//   * only if its last idle spell was shorter than kSpinWindow: work arrives
//     back to back (a loop doing spawn-and-await), and a parked thread costs
//     a futex wake, often of a sleeping CPU, per task. Work that comes
//     further apart never makes a worker poll, so a lightly loaded pool
//     burns no CPU;
//   * only if no other worker polls, so polling never takes more than one CPU;
//   * on the CPU the latest spawn came from, only once work has come back to
//     back for kStreamGaps idle spells in a row. A poller there sees new work
//     only when the spawner lets it run, which for a loop that spawns a few
//     tasks and goes back to sleep is when it sleeps; the tasks then end
//     after their spawner slept, and their results have to wake it, which
//     the OS does on another CPU (on a VM, often a halted vCPU: tens of
//     microseconds). Parked instead, the worker is woken by the next spawn on
//     this very CPU, usually runs at once, and hands the result back while
//     the spawner is still awake. A spawner that keeps spawning (a flood)
//     would then wake, and be preempted by, the worker every few tasks; after
//     kStreamGaps short spells in a row the worker polls again, and takes the
//     stream in batches while the spawner runs.
//   Measured (bench/README.md, same-process A/B): paced mix p99 56.0 -> 46.9
//   and 59.2 -> 53.4 us (24 runs each), p50 24 -> 19-20 us, CPU 154-157 ->
//   109-112 ms; flood, contended and round trip unchanged within noise.
//   Without the kStreamGaps exception, floods fell from 4.6 to 3.4 M/s.
// A loop's burst of spawns (the paced mix: 10-12 per tick) stays below this.
inline constexpr unsigned kStreamGaps = 16;
inline bool poll_before_parking(std::chrono::nanoseconds last_gap, std::size_t pollers,
                                bool on_latest_spawners_cpu, unsigned short_gaps_in_a_row) {
  return last_gap < kSpinWindow && pollers == 0 &&
         (!on_latest_spawners_cpu || short_gaps_in_a_row >= kStreamGaps);
}

// A spawn that finds a worker already on its way (woken and not yet back, or
// polling before it parks) trusts that worker with its task and wakes no one
// (see Core::submit). The trust is bounded: once the latest such hand-off is
// older than this, the worker is evidently not running (its CPU was taken:
// on a VM, a halted vCPU the host did not run again for milliseconds), and
// the spawn wakes another idle worker. Measured on the paced mix in a slow VM
// phase (bench/README.md): a woken worker or a spinner that did not run for
// 1-4 ms held up every tick spawned meanwhile, and those ticks were most of
// the slowest 1%. Far above a normal wake-up (3-70 us on this VM), so a pool
// that is merely busy does not double its wake-ups; and at most one extra
// wake-up per period, since each one is a fresh hand-off.
inline constexpr std::chrono::microseconds kHandOffTrust{250};

// Whether a hand-off made at `since` has outlived kHandOffTrust at `now`.
inline bool hand_off_overdue(std::chrono::steady_clock::time_point since,
                             std::chrono::steady_clock::time_point now) {
  return now - since > kHandOffTrust;
}

// Which idle worker a wake-up takes: the scheduler runs a woken thread on its
// previous CPU if that CPU is idle, so waking a worker that parked on another,
// idle CPU makes the OS wake that CPU (on a VM, a halted vCPU: 0.1-2 ms at
// times), while one that parked on the waker's CPU runs there as soon as the
// waker yields it. So a wake-up prefers, among the kWakeScan most recently
// idle workers, one that parked on the waker's CPU. Measured on the paced
// mix: in steady state 98% of wake-ups already stay on the waker's CPU (LIFO
// reuse), but while the pool grows 30-70% went to the other vCPU, with p90
// up to 335 us. A bounded scan keeps the choice O(1) and the most recently
// idle (so the keep-alive order) nearly intact.
inline constexpr std::size_t kWakeScan = 8;

// Whether the process kept the CPUs busy over an interval: it used at least
// three quarters of every CPU. Then workers that started nothing were more
// likely waiting for a CPU than blocked, and more threads would only contend.
inline bool cpus_saturated(std::chrono::nanoseconds process_cpu, std::chrono::nanoseconds elapsed,
                           std::size_t cpus) {
  return process_cpu.count() * 4 >= elapsed.count() * 3 * static_cast<std::int64_t>(cpus);
}

// Whether to act on a stall (no queued task started during the interval):
// at once if the controller woke on time and the CPUs were not saturated
// (the workers are blocked, not preempted); otherwise only once it persisted.
inline bool believe_stall(bool on_time, bool saturated, unsigned stalls_in_a_row) {
  return (on_time && !saturated) || stalls_in_a_row >= kLateStallChecks;
}

// Whether a check that was due after `interval` but happened after `elapsed`
// woke on time (see "believed only if" above).
inline bool woke_on_time(std::chrono::nanoseconds elapsed, std::chrono::microseconds interval) {
  return elapsed <= 2 * interval + std::chrono::microseconds(500);
}

// The grace of a watch, given the time since the last believed stall.
inline std::chrono::microseconds grace_for(std::chrono::nanoseconds since_last_stall) {
  return since_last_stall < kStallMemory ? kShortGrace : kGrace;
}

// Next check interval: back to `grace` after a stall, doubled (to a cap)
// after an interval in which tasks made progress.
inline std::chrono::microseconds next_interval(std::chrono::microseconds current, bool progressed,
                                               std::chrono::microseconds grace = kGrace) {
  if (!progressed) return grace;
  return std::min(current * 2, kMaxInterval);
}

}  // namespace blockpool::detail::growth
