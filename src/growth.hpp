// src/growth.hpp: the growth policy, the one place that decides how many
// threads a pool adds: whether a spawn starts a thread, when the controller
// watches the queue, and how many threads it adds on a controller tick.
// Pure functions of a snapshot: no locks, no clocks, so the policy is
// unit-testable and can change without touching the mechanism (core.cpp,
// worker.cpp). Who is woken, and when a worker polls instead of parking, is
// the wake-up policy's: src/wake_policy.hpp. The evidence behind the
// constants is in bench/README.md, "Evidence for the policy's constants".
//
// The rule, and why:
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
//     than blocked, so adding threads would only add contention. A stall
//     that persists for kLateStallChecks checks in a row is believed anyway:
//     tasks that wait on queued tasks must get threads eventually, however
//     loaded the machine.
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

// A watch checks for a stall this long after it is armed, and again this
// long after a stall: no growth comes sooner than kGrace (or kShortGrace).
inline constexpr std::chrono::microseconds kGrace{250};
// The check interval, doubled after each interval with progress, stops at
// this: a long flood costs the controller about 1 / kMaxInterval wake-ups a
// second, and a stall that follows it is seen within kMaxInterval (both but
// while the OS refuses threads, when the creation backoff is longer).
inline constexpr std::chrono::microseconds kMaxInterval{2000};
// The grace of a watch within kStallMemory of a believed stall: below kGrace.
// The pool is then known to run blocking work, so waiting the full grace
// only delays what queues behind it; a flood of short tasks never has a
// believed stall, so it keeps the full grace.
inline constexpr std::chrono::microseconds kShortGrace{50};
// How long after a believed stall new watches use kShortGrace.
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

// Queued tasks do start, so they are short, but the backlog still grew over
// the interval: the workers cannot keep up with the spawners. Add one
// thread, up to one per CPU (short tasks gain nothing from more threads than
// CPUs, only contention).
// Invariant: short tasks add a thread only when the backlog grew in an
// interval, at most one per interval, and never past one thread per CPU.
inline std::size_t threads_to_add_on_backlog(const Snapshot& s, std::size_t queued_before) {
  if (s.queued <= queued_before || s.queued <= s.starting) return 0;
  return s.threads < std::min(s.cpus, s.max_threads) ? 1 : 0;
}

// A stall the controller saw late, or with the CPUs saturated, is believed
// once it lasts this many checks in a row: nested work always gets threads.
inline constexpr unsigned kLateStallChecks = 4;

// Whether the process kept the CPUs busy over an interval: it used at least
// three quarters of every CPU. Then workers that started nothing were more
// likely waiting for a CPU than blocked, and more threads would only contend.
// Invariant: a process below 3/4 of its CPUs is never called saturated, so a
// stall seen on time there is believed at once.
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
