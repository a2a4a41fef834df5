// src/wake_policy.hpp: the wake-up policy, the one place that decides who
// gets woken and when a worker polls the queue instead of parking:
//   * on a spawn: trust a worker already on its way, wake an idle one, or
//     leave it to the growth policy (WakePolicy::on_spawn);
//   * on a pop with more work queued: pass the baton (WakePolicy::pass_baton);
//   * before parking: poll or not (WakePolicy::poll_before_parking);
//   * which idle worker a wake-up takes (WakePolicy::pick_idle; the walk of
//     the idle list that feeds it is Core::pop_idle_near_locked's).
// How many threads to add, and when the controller watches, is the growth
// policy's: src/growth.hpp. The evidence behind the constants is in
// bench/README.md, "Evidence for the policy's constants".
//
// Which thread touches what: a WakePolicy is the Core's (Core::wake_), and
// every call on it is made with Core::mu_ held (GUARDED_BY, checked by
// clang). It owns no lock and reads no clock: the time comes in as an
// argument, or as a callable that is called only where the decision needs
// it (a spawn reads the clock only with an idle worker to wake). A
// WakePolicy::IdleSpells is one worker's, touched only by that worker's
// thread.
//
// The rules, and why:
//   * One wake-up in flight. A spawn that finds a worker on its way (notified
//     and not yet back in its loop, or polling before it parks) trusts it
//     with the task and wakes no one: that worker takes it, and passes the
//     baton (wakes the next idle worker) if more is queued by then. So a
//     burst of spawns costs one wake-up, not one per task.
//   * The trust is bounded (kHandOffTrust): a worker on its way for longer is
//     evidently not running (its CPU was taken; on a VM, a halted vCPU), and
//     the next spawn wakes another.
//   * A worker polls before parking only when work arrives back to back
//     (kSpinWindow), one at a time, on the CPU the latest spawn came from
//     only within a stream (kStreamGaps), and never in a process that may
//     use only one CPU: see poll_before_parking.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <span>

namespace blockpool::detail {

class WakePolicy {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // A worker polls only after an idle spell shorter than this, and for at
  // most this long: polling never costs more than this per idle spell.
  static constexpr std::chrono::microseconds kSpinWindow{50};
  // On the latest spawner's CPU a worker polls only after this many short
  // idle spells in a row: above a spawn-then-sleep loop's burst of spawns.
  static constexpr unsigned kStreamGaps = 16;
  // A spawn trusts a worker on its way for at most this long, then wakes
  // another: at most one extra wake-up per kHandOffTrust.
  static constexpr std::chrono::microseconds kHandOffTrust{250};
  // A wake-up looks at most this many idle workers (most recently idle
  // first) for one that parked on the waker's CPU: O(1), LIFO order kept.
  static constexpr std::size_t kWakeScan = 8;

  // `cpus`: the CPUs the process may use (affinity and quota), at least 1.
  explicit WakePolicy(std::size_t cpus) noexcept : may_poll_(cpus > 1) {}

  // What a spawn, or a worker that popped a task with more queued behind it,
  // does about waking.
  enum class Wake {
    kNone,       // nothing: a worker on its way takes the work, or none is left
    kWakeIdle,   // wake an idle worker, stamping the hand-off with Decision::now
    kAskGrowth,  // nobody idle: the growth policy decides (growth.hpp)
  };
  struct Decision {
    Wake wake = Wake::kNone;
    time_point now{};  // with kWakeIdle: when the hand-off is made
  };

  // One worker's idle spells (from finding the queue empty to getting work).
  // Touched only by the worker's own thread.
  class IdleSpells {
   public:
    // An idle spell that ended with work after `gap`.
    void note(std::chrono::nanoseconds gap) noexcept {
      last_gap_ = gap;
      short_in_a_row_ = gap >= kSpinWindow ? 0 : std::min(short_in_a_row_ + 1, kStreamGaps);
    }
    // max() before the first spell.
    [[nodiscard]] std::chrono::nanoseconds last_gap() const noexcept { return last_gap_; }
    // Spells shorter than kSpinWindow in a row, up to kStreamGaps.
    [[nodiscard]] unsigned short_in_a_row() const noexcept { return short_in_a_row_; }

   private:
    std::chrono::nanoseconds last_gap_ = std::chrono::nanoseconds::max();
    unsigned short_in_a_row_ = 0;
  };

  // Which idle worker a wake-up for work made on CPU `cpu` (-1 if unknown)
  // takes. `parked_on[i]`: the CPU the i-th most recently idle worker parked
  // on (-1 if unknown); only the first kWakeScan are looked at. Returns the
  // index of the first that parked on `cpu`, else 0 (the most recently idle:
  // the idle list stays LIFO, so the fewest workers stay warm and the rest
  // age out by keep_alive). A worker that parked on the waker's CPU is woken
  // there without an inter-processor interrupt, often on a CPU that is
  // awake. Precondition: !parked_on.empty().
  [[nodiscard]] static std::size_t pick_idle(std::span<const int> parked_on, int cpu) noexcept {
    if (cpu < 0) return 0;
    const std::size_t n = std::min(parked_on.size(), kWakeScan);
    for (std::size_t i = 0; i < n; ++i)
      if (parked_on[i] == cpu) return i;
    return 0;
  }

  // Whether a hand-off made at `since` has outlived kHandOffTrust at `now`.
  [[nodiscard]] static bool hand_off_overdue(time_point since, time_point now) noexcept {
    return now - since > kHandOffTrust;
  }

  // Whether a worker is on its way to the queue: notified and not yet back,
  // or polling before it parks.
  [[nodiscard]] bool on_its_way() const noexcept { return spinners_ + waking_ > 0; }

  // A spawn on CPU `cpu` (-1 if unknown) has just queued a task. `idle`:
  // an idle worker exists. `has_work()` re-reads whether work is queued (an
  // abort may have taken it); `now()` reads the clock. Each is called only
  // where the decision needs it: now() only with an idle worker to wake.
  //   * A worker on its way is trusted with the task (kNone) unless its
  //     hand-off is overdue and an idle worker can be woken instead.
  //   * Otherwise as a worker that passes the baton (pass_baton).
  template <class HasWork, class Now>
  Decision on_spawn(int cpu, bool idle, HasWork&& has_work, Now&& now) noexcept {
    last_spawn_cpu_ = cpu;
    if (on_its_way()) {
      if (idle) {
        const time_point t = now();
        if (hand_off_overdue(hand_off_at_, t)) return {Wake::kWakeIdle, t};
      }
      return {};
    }
    return pass_baton(idle, has_work, now);
  }

  // A worker popped a task and more work is queued behind it, which its
  // task may hold up: wake an idle worker unless one is on its way already
  // (one wake-up in flight); with nobody idle, the growth policy decides.
  // Arguments as for on_spawn.
  template <class HasWork, class Now>
  [[nodiscard]] Decision pass_baton(bool idle, HasWork&& has_work, Now&& now) const noexcept {
    if (!idle) return {Wake::kAskGrowth, {}};
    if (on_its_way() || !has_work()) return {};
    return {Wake::kWakeIdle, now()};
  }

  // A waker took an idle worker off the idle list and will notify it, for
  // work (stamped `now`: the hand-off the next spawns trust) or for shutdown
  // (no work to trust it with: no stamp).
  void on_wake_sent(time_point now) noexcept {
    ++waking_;
    hand_off_at_ = now;
  }
  void on_shutdown_wake_sent() noexcept { ++waking_; }

  // A notified worker is back in its loop. Hand-offs still in flight are
  // older than its own, most likely the one a spawn already found overdue:
  // they are no longer trusted (the stamp goes back to the epoch).
  void on_woken() noexcept {
    --waking_;
    if (waking_ > 0) hand_off_at_ = {};
  }

  // Whether a worker on CPU `cpu` (-1 if unknown) that found the queue empty
  // polls it before parking:
  //   * never when the process may use only one CPU: whoever makes the next
  //     task (or takes this one's result) needs the CPU the poller holds, so
  //     polling can only delay it (sched_yield() does not reliably hand the
  //     CPU over);
  //   * only if its last idle spell was shorter than kSpinWindow: work
  //     arrives back to back (a loop doing spawn-and-await), and a parked
  //     thread costs a futex wake, often of a sleeping CPU, per task. Work
  //     that comes further apart never makes a worker poll, so a lightly
  //     loaded pool burns no CPU;
  //   * only if no other worker polls, so polling never takes more than one
  //     CPU;
  //   * on the CPU the latest spawn came from, only once work has come back
  //     to back for kStreamGaps idle spells in a row. A poller there sees new
  //     work only when the spawner lets it run, which for a loop that spawns
  //     a few tasks and goes back to sleep is when it sleeps; their results
  //     then have to wake it on another CPU. Parked instead, the worker is
  //     woken by the next spawn on this very CPU, usually runs at once, and
  //     hands the result back while the spawner is still awake. A spawner
  //     that keeps spawning (a flood) would then wake, and be preempted by,
  //     the worker every few tasks; after kStreamGaps short spells in a row
  //     the worker polls again, and takes the stream in batches.
  [[nodiscard]] bool poll_before_parking(const IdleSpells& spells, int cpu) const noexcept {
    const bool on_spawners_cpu = cpu >= 0 && cpu == last_spawn_cpu_;
    return may_poll_ && spells.last_gap() < kSpinWindow && spinners_ == 0 &&
           (!on_spawners_cpu || spells.short_in_a_row() >= kStreamGaps);
  }
  // A worker begins polling at `now` (spawns trust it from then), and ends.
  void begin_poll(time_point now) noexcept {
    ++spinners_;
    hand_off_at_ = now;
  }
  void end_poll() noexcept { --spinners_; }
  // Whether a worker that has polled for `polled` stops and parks.
  [[nodiscard]] static bool poll_over(std::chrono::nanoseconds polled) noexcept { return polled > kSpinWindow; }

 private:
  const bool may_poll_;       // the process may use more than one CPU
  std::size_t spinners_ = 0;  // workers polling for work before parking (at most one)
  std::size_t waking_ = 0;    // workers notified, not yet back in the loop
  // When the latest hand-off was made: a worker notified for work, or one
  // that began to poll. Read only while on_its_way(). Real time, whatever the
  // pool's Clock: it measures the OS scheduler, not the pool's timers.
  time_point hand_off_at_{};
  int last_spawn_cpu_ = -1;  // CPU of the latest spawn, -1 if unknown
};

}  // namespace blockpool::detail
