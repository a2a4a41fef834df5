// src/worker.cpp: the worker loop and the growth controller loop.
//
// Which thread touches what:
//   * A worker thread runs run_worker() for its whole life. Under mu_ it pops
//     tasks, parks on its own condition variable (idle list, most recently
//     idle first) and leaves the pool; it runs tasks and hooks with mu_
//     released.
//   * The controller thread runs run_controller(): it exists only while the
//     pool has workers, sleeps with no timeout unless armed, and when armed
//     checks every interval (real time) whether queued work made progress,
//     adding threads when it did not (policy in growth.hpp).
#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>
#include <new>
#include <utility>

#include <errno.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "core.hpp"

namespace blockpool::detail {

namespace {
constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

template <class Fn>
void run_hook(const Fn& fn, std::atomic<std::uint64_t>& errors) noexcept {
  if (!fn) return;
  try {
    fn();
  } catch (...) {
    errors.fetch_add(1, kRelaxed);
  }
}

// CPU time used by the whole process so far (all its threads).
std::chrono::nanoseconds process_cpu_time() noexcept {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return std::chrono::nanoseconds(0);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// The controller sleeps for grace periods of 50-250 us, and Linux lets a
// normal thread's timed sleep overrun by its timer slack (50 us by default):
// every check, and so every growth step of a burst, would be that much late.
// The controller asks for 1 us while it watches (its checks are few: at most
// one per interval, only while work is queued). A thread inherits its
// creator's slack, so the original is put back while the controller creates
// workers: tasks never run with a slack the application did not choose.
// Evidence: bench/README.md, "Evidence for the policy's constants".
class ControllerTimerSlack {
 public:
  ControllerTimerSlack() noexcept : original_(prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL)) { fine(); }
  ~ControllerTimerSlack() { restore(); }
  ControllerTimerSlack(const ControllerTimerSlack&) = delete;
  ControllerTimerSlack& operator=(const ControllerTimerSlack&) = delete;
  void fine() noexcept { (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL); }
  void restore() noexcept {
    if (original_ > 0) (void)prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(original_), 0UL, 0UL, 0UL);
  }

 private:
  const int original_;  // PR_GET_TIMERSLACK: the slack in ns, or -1
};

// A background task's CPU priority (LaneOptions::background), on the thread
// that runs it. Linux schedules threads, not processes: pid 0 in
// sched_setscheduler and who 0 in getpriority mean the calling thread.
// Touched only by the worker's own thread.
class BackgroundPriority {
 public:
  // Moves the calling thread to SCHED_IDLE, saving its policy, parameters
  // and nice value. Does nothing if the thread is already at SCHED_IDLE or
  // its scheduling cannot be read or changed: the task then runs at the
  // thread's own priority (background is a request, the other lanes' safety
  // is the guarantee).
  void enter() noexcept {
    const int policy = sched_getscheduler(0);
    if (policy < 0 || (policy & ~SCHED_RESET_ON_FORK) == SCHED_IDLE) return;
    if (sched_getparam(0, &param_) != 0) return;
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno != 0) return;
    const sched_param idle{};
    if (sched_setscheduler(0, SCHED_IDLE | (policy & SCHED_RESET_ON_FORK), &idle) != 0) return;
    policy_ = policy;
    nice_ = nice;
    changed_ = true;
    step_aside();
  }
  // Puts back what enter() saved. False when the OS refuses (an
  // unprivileged thread leaves SCHED_IDLE only within RLIMIT_NICE): the
  // thread is still at SCHED_IDLE, and must run no other task.
  [[nodiscard]] bool leave() noexcept {
    if (!changed_) return true;
    changed_ = false;
    if (sched_setscheduler(0, policy_, &param_) != 0) return false;
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == nice_) return true;
    return setpriority(PRIO_PROCESS, 0, nice_) == 0;
  }

 private:
  // Gives the CPU to every thread already waiting for it. Linux does not
  // reschedule when a running thread moves itself to SCHED_IDLE (its static
  // priority is unchanged), so a thread queued on this CPU before enter(),
  // such as the event loop this worker just woke with the previous task's
  // result, would otherwise wait behind the background task until the next
  // scheduler tick (4 ms at HZ=250). sched_yield() does not suffice: the
  // scheduler may pick the yielding thread again. A sleep takes the thread
  // off the CPU, and once it wakes at SCHED_IDLE it cannot take the CPU
  // back from a waiting thread. A sleep whose timer fires before the thread
  // reaches the scheduler (the thread was interrupted or its vCPU paused)
  // does not sleep at all, so it is repeated until the thread has been off
  // the CPU (a voluntary context switch), a few times at most. Each sleep is
  // 1 us plus the thread's timer slack (50 us by default): alone on its CPU,
  // a background task starts that much later.
  static void step_aside() noexcept {
    constexpr int kTries = 4;  // bounds the cost if the thread never sleeps
    rusage before{};
    if (getrusage(RUSAGE_THREAD, &before) != 0) return;
    for (int i = 0; i < kTries; ++i) {
      const timespec one_us{0, 1000};
      (void)nanosleep(&one_us, nullptr);
      rusage after{};
      if (getrusage(RUSAGE_THREAD, &after) != 0 || after.ru_nvcsw != before.ru_nvcsw) return;
    }
  }

  bool changed_ = false;  // enter() moved the thread; leave() owes the move back
  int policy_ = 0;        // sched_getscheduler's result, SCHED_RESET_ON_FORK included
  sched_param param_{};
  int nice_ = 0;
};

Clock::time_point saturating_add(Clock::time_point t, std::chrono::nanoseconds d) noexcept {
  if (t.time_since_epoch().count() > std::numeric_limits<std::int64_t>::max() - d.count())
    return Clock::time_point::max();
  return t + d;
}
}  // namespace

void Core::run_worker(Worker* w) noexcept {
  set_current_pool_core(this);
  std::string name;
  if (config_.thread_name_fn) {
    try {
      name = config_.thread_name_fn();
    } catch (...) {
      m_.hook_errors.fetch_add(1, kRelaxed);
      name = indexed_thread_name(config_.thread_name, w->index);
    }
  } else {
    name = indexed_thread_name(config_.thread_name, w->index);
  }
  set_current_thread_name(name);

  m_.threads_started.fetch_add(1, kRelaxed);
  const std::uint64_t alive = m_.threads.fetch_add(1, kRelaxed) + 1;
  std::uint64_t peak = m_.peak_threads.load(kRelaxed);
  while (peak < alive && !m_.peak_threads.compare_exchange_weak(peak, alive, kRelaxed)) {
  }
  run_hook(config_.on_thread_start, m_.hook_errors);

  RunShard& shard = run_shards_[w->index % kRunShards];
  const std::size_t latency_shard = w->index % kLatencyShards;
  MutexLock lk(mu_);
  w->name = std::move(name);  // before the watchdog can see us
  --starting_;
  locked(w).all_prev = nullptr;
  locked(w).all_next = all_head_;
  if (all_head_ != nullptr) locked(all_head_).all_prev = w;
  all_head_ = w;

  // Set when a background task left this thread at SCHED_IDLE: it takes no
  // other task and exits (LaneOptions::background).
  bool stuck_in_background = false;
  // Set when this thread leaves because it stayed idle for keep_alive.
  bool retired_idle = false;
  for (;;) {
    if (TaskBase* t = stuck_in_background ? nullptr : pop_locked()) {
      TaskBase* finished = locked(w).current;
      // Only a task with a stop token is published in w->current: shutdown
      // looks there (under mu_) to trigger it, taking a reference of its own.
      // The worker keeps its reference to such a task until it clears
      // w->current under mu_ (the next time it takes the lock), so shutdown
      // never references a freed block. Any other task is the worker's alone
      // to end and release right after it runs.
      const bool published = t->stoppable();
      locked(w).current = published ? t : nullptr;
      // More work queued behind this task, which may block: pass the baton
      // to an idle worker before running it, or, with none idle, make sure
      // the controller watches the queue (spawns that found a worker already
      // on its way left both to us).
      Actions a;
      if (queue_depth() > 0) pass_baton_locked(a);
      const unsigned li = t->lane();
      std::uint64_t start = 0;
      if (watch_) {
        // Published for the watchdog; the first running task it watches
        // gives it a deadline (it sleeps without one while nothing runs).
        start = ticks();
        Worker::Watched& ww = watched(w);
        ww.running = true;
        ww.slow_reported = false;
        ww.run_start = start;
        ww.run_name = t->name_;
        ww.run_lane = li;
        if (watch_deadline_ == UINT64_MAX) {
          watch_deadline_ = start + std::min(watch_threshold_ticks_, UINT64_MAX - start);
          a.wake_controller = true;
        }
      }
      lk.unlock();
      perform(a);
      if (finished != nullptr) finished->release();
      const std::uint64_t spawned_at = t->spawn_ticks_;  // read now: the block may go when it ends
      if (record_latency_ && start == 0) start = ticks();
      BackgroundPriority background;
      if (lanes_[li]->background) background.enter();
      const std::uint32_t outcome = t->ops_->run(t);
      // Back to the thread's own priority before the end is published: the
      // hand-back to the waiting thread is not to wait for an idle CPU.
      stuck_in_background = !background.leave();
      if (record_latency_) {
        // Recorded before the end is published, as the counters are.
        LatencyShard& ls = lanes_[li]->latency[latency_shard];
        ls.queue_wait.record(start > spawned_at ? start - spawned_at : 0);
        const std::uint64_t end = ticks();
        ls.run_time.record(end > start ? end - start : 0);
      }
      // release: see Core::metrics() (ended counts never exceed spawned).
      if (outcome == kCancelled) {
        count_end(li, kCancelled);  // dropped unrun (see TaskBase::Ops)
      } else {
        (outcome == kCompleted ? shard.completed : shard.failed).fetch_add(1, std::memory_order_release);
        if (li != 0)
          (outcome == kCompleted ? lanes_[li]->completed : lanes_[li]->failed).fetch_add(1, std::memory_order_release);
      }
      if (published) {
        t->finish(outcome);
      } else if (t->sole_owner() && !t->hands_off()) {
        // No handle is left (a detached task, or one dropped while it ran):
        // nobody can wait for, await or read this task any more, so there is
        // no end to publish. Destroy it without finish()'s two
        // read-modify-writes.
        t->ops_->destroy(t);
      } else {
        t->end_for_pool(outcome);
      }
      lk.lock();
      task_ended_locked(li);
      watched(w).running = false;
      continue;
    }
    if (locked(w).current != nullptr) {
      // Drop our reference to the last task outside the lock (it may destroy
      // a detached result), then look at the queue again.
      TaskBase* finished = locked(w).current;
      locked(w).current = nullptr;
      lk.unlock();
      finished->release();
      lk.lock();
      continue;
    }
    if (shutdown_) break;
    if (stuck_in_background) {
      m_.threads_retired.fetch_add(1, kRelaxed);
      break;
    }

    // Poll the queue before parking when work arrives back to back, but not
    // on the CPU the latest spawn came from (WakePolicy::poll_before_parking
    // says why). Spawners see the poller on its way and skip the wake-up.
    const auto idle_start = std::chrono::steady_clock::now();
    if (wake_.poll_before_parking(w->spells, sched_getcpu())) {
      wake_.begin_poll(idle_start);
      lk.unlock();
      for (unsigned i = 1;; ++i) {
        // Relaxed: only a hint; the queue itself is read under mu_ below.
        if (queued_.load(kRelaxed) > 0) break;
        if ((i & 63) == 0) {
          if (WakePolicy::poll_over(std::chrono::steady_clock::now() - idle_start)) break;
          // Give the CPU to any thread that is waiting for it (returns at
          // once if none is): the scheduler often puts a woken worker on its
          // waker's CPU, and then a spinner would keep the very thread that
          // spawns (or takes the results) off it.
          sched_yield();
        }
        cpu_relax();
      }
      lk.lock();
      wake_.end_poll();
      if (!queue_.empty()) {
        w->spells.note(std::chrono::steady_clock::now() - idle_start);
        continue;
      }
    }

    // Park. The deadline is fixed when we go idle: spurious wake-ups and
    // clock notifications do not extend it. It is read before the thread
    // shows as idle (push_idle_locked bumps idle_threads): a test that waits
    // for idle_threads and then advances a ManualClock by keep_alive must
    // retire the thread, so the deadline cannot come from the advanced time.
    // A keep-alive of nanoseconds::max() (any duration too long for
    // nanoseconds saturates to it) means "never retire", even once a manual
    // clock has reached its end.
    const Clock::time_point deadline = saturating_add(clock_->now(), config_.keep_alive);
    locked(w).park_cpu = sched_getcpu();
    push_idle_locked(w);
    bool retire = false;
    for (;;) {
      if (locked(w).notified) {  // the waker took us off the idle list
        locked(w).notified = false;
        wake_.on_woken();  // older hand-offs still in flight lose the spawns' trust
        w->spells.note(std::chrono::steady_clock::now() - idle_start);
        break;
      }
      if (shutdown_) {
        remove_idle_locked(w);
        break;
      }
      if (config_.keep_alive != std::chrono::nanoseconds::max() && clock_->now() >= deadline) {
        remove_idle_locked(w);
        retire = true;
        break;
      }
      if (clock_->is_real_time() && deadline != Clock::time_point::max()) {
        w->cv.wait_until(lk.native(), std::chrono::time_point_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::time_point<std::chrono::steady_clock, Clock::duration>(
                                     deadline.time_since_epoch())));
      } else {
        w->cv.wait(lk.native());
      }
    }
    if (retire) {
      m_.threads_retired.fetch_add(1, kRelaxed);
      retired_idle = true;
      break;
    }
  }

  lk.unlock();
  // Idle for keep_alive: the process is no longer spawning in waves, so the
  // free blocks kept for the next wave go back (src/block_cache.cpp).
  if (retired_idle) trim_task_block_cache();
  run_hook(config_.on_thread_stop, m_.hook_errors);
  lk.lock();
  Worker::Locked& wl = locked(w);
  if (wl.all_prev != nullptr)
    locked(wl.all_prev).all_next = wl.all_next;
  else
    all_head_ = wl.all_next;
  if (wl.all_next != nullptr) locked(wl.all_next).all_prev = wl.all_prev;
  --threads_;
  --live_os_threads_;
  m_.threads.fetch_sub(1, kRelaxed);
  Actions a;
  // A spawn that came while this thread was leaving (after its retire or
  // shutdown decision, during on_thread_stop) still counted it as alive, so
  // at the cap it neither started a thread nor armed the controller. Now that
  // it is gone, make sure someone will run what is queued (during shutdown:
  // mandatory tasks), or the task would be stranded.
  if (queue_depth() > 0 && stuck_in_background) {
    // This thread is still at SCHED_IDLE, and a thread it created would be
    // too, for good (threads inherit their creator's policy). Its successor
    // is an idle worker, or one the controller starts: the controller runs
    // while any worker does, and this one counted until just now.
    if (idle_head_ != nullptr) {
      pass_baton_locked(a);  // an idle worker exists: woken unless one is on its way
    } else if (controller_running_) {
      reserve_workers_locked(1);
      ++controller_starts_;
      a.wake_controller = true;
    } else {
      reserve_first_worker_locked(a);  // not expected: better a slow thread than a stranded task
    }
  } else if (queue_depth() > 0 && idle_count_ == 0) {
    ask_growth_locked(a);
  }
  leave_join_chain_locked(a);
  exit_cv_.notify_all();
  if (threads_ == 0) ctl_cv_.notify_all();  // the controller exits with the last worker
  lk.unlock();
  perform(a);  // start a replacement / wake the controller, then join the previous exiter
  set_current_pool_core(nullptr);
  w->release();  // may drop the last reference to this Core
}

void Core::run_controller() noexcept {
  // A task the controller ends (a spawn failure) may shut the pool down from
  // here: shutdown must not wait for this thread.
  set_current_pool_core(this);
  set_current_thread_name(suffixed_thread_name(config_.thread_name, "-ctl"));
  ControllerTimerSlack slack;
  using std::chrono::steady_clock;
  MutexLock lk(mu_);
  std::chrono::microseconds interval = growth::grace_for(steady_clock::now() - last_stall_);
  std::chrono::microseconds backoff{0};
  unsigned stalls_in_a_row = 0;
  // Work is left to grow for while the pool runs, and during shutdown while
  // mandatory tasks are queued (spawns are refused then: the queue only
  // shrinks): nothing_to_grow_for_locked().
  for (;;) {
    if (controller_starts_ > 0) {
      // Workers reserved for this thread to start (see run_worker's exit).
      const std::size_t n = std::exchange(controller_starts_, 0);
      lk.unlock();
      slack.restore();
      (void)start_threads(n, false);  // a refusal ends or re-queues work as for any start
      slack.fine();
      lk.lock();
      continue;
    }
    if (nothing_to_grow_for_locked()) break;
    if (!controller_armed_) {
      // Exits with the last worker (see core.hpp); the next first worker
      // brings a new controller. Sleeps without a timeout unless the
      // watchdog has a running task to check on.
      if (threads_ == 0) break;
      if (watch_deadline_ == UINT64_MAX) {
        ctl_cv_.wait(lk.native());
      } else {
        ctl_cv_.wait_until(lk.native(), watch_deadline_locked());
      }
      if (watch_) watch_slow_tasks();
      interval = std::max(growth::grace_for(steady_clock::now() - last_stall_), backoff);
      continue;
    }
    const std::uint64_t seen = started_tasks_;
    const std::size_t queued_before = static_cast<std::size_t>(queue_depth());
    const auto began = steady_clock::now();
    const std::chrono::nanoseconds cpu_began = process_cpu_time();
    const auto until = began + interval;
    while (!nothing_to_grow_for_locked() && controller_starts_ == 0 && steady_clock::now() < until) {
      ctl_cv_.wait_until(lk.native(), std::min(until, watch_deadline_locked()));
      if (watch_) watch_slow_tasks();
    }
    if (controller_starts_ > 0) continue;
    if (nothing_to_grow_for_locked()) break;
    const auto woke = steady_clock::now();
    const auto elapsed = woke - began;
    const bool on_time = growth::woke_on_time(elapsed, interval);
    const bool saturated = growth::cpus_saturated(process_cpu_time() - cpu_began, elapsed, cpus_);
    const growth::Snapshot s = snapshot_locked();
    if (!growth::should_watch(s)) {
      controller_armed_ = false;
      continue;
    }
    const bool progressed = started_tasks_ != seen;
    const auto grace = growth::grace_for(woke - last_stall_);
    interval = std::max(growth::next_interval(interval, progressed, grace), backoff);
    std::size_t n = 0;
    if (progressed) {
      // Short tasks: grow only if the backlog still grew (see growth.hpp).
      stalls_in_a_row = 0;
      n = growth::threads_to_add_on_backlog(s, queued_before);
      if (n == 0) continue;
    } else {
      // A stall seen by a late controller is believed once it persists:
      // work that waits on other queued work (nested spawns) must always get
      // its threads, however oversubscribed the machine. "Persists" means
      // kLateStallChecks checks of at least the full grace each, never the
      // short one: preemption on a busy machine easily lasts 200 us.
      if (!growth::believe_stall(on_time, saturated, ++stalls_in_a_row)) {
        interval = std::max(interval, growth::kGrace);
        continue;
      }
      stalls_in_a_row = 0;
      n = growth::threads_to_add_on_stall(s);
      if (n == 0) continue;
      last_stall_ = woke;
      interval = std::max(growth::kShortGrace, backoff);
    }
    reserve_workers_locked(n);
    lk.unlock();
    slack.restore();  // new threads inherit their creator's slack: give them the original
    const std::size_t failed = start_threads(n, false);
    slack.fine();
    lk.lock();
    // While the OS refuses threads, retry with a backoff (1 ms doubling to
    // 1 s) instead of every grace period.
    using std::chrono::microseconds;
    backoff = failed == 0 ? microseconds(0)
                          : std::clamp<microseconds>(backoff * 2, std::chrono::milliseconds(1),
                                                     std::chrono::seconds(1));
    interval = std::max(interval, backoff);
  }
  controller_running_ = false;
  controller_armed_ = false;
  --live_os_threads_;
  Actions a;
  leave_join_chain_locked(a);
  exit_cv_.notify_all();
  lk.unlock();
  if (a.has_join) pthread_join(a.join, nullptr);
  set_current_pool_core(nullptr);
}

std::chrono::steady_clock::time_point Core::watch_deadline_locked() const noexcept {
  using std::chrono::steady_clock;
  if (watch_deadline_ == UINT64_MAX) return steady_clock::time_point::max();
  const std::uint64_t now = ticks();
  const auto now_s = steady_clock::now();
  if (watch_deadline_ <= now) return now_s;
  const double ns = static_cast<double>(watch_deadline_ - now) * ns_per_tick();
  if (ns >= 1e18) return steady_clock::time_point::max();  // centuries: as good as never
  return now_s + std::chrono::nanoseconds(static_cast<std::int64_t>(ns) + 1);
}

void Core::watch_slow_tasks() noexcept {
  if (watch_deadline_ == UINT64_MAX) return;
  const std::uint64_t now = ticks();
  if (now < watch_deadline_) return;
  // The tasks that have run for the threshold and were not reported yet;
  // the next deadline is the earliest among the others.
  struct Due {
    const char* name;
    const Lane* lane;
    std::uint64_t ran;  // ticks
    std::string thread;
  };
  std::vector<Due> due;  // allocates only when a task is slow
  std::uint64_t next = UINT64_MAX;
  for (Worker* w = all_head_; w != nullptr; w = locked(w).all_next) {
    Worker::Watched& ww = watched(w);
    if (!ww.running || ww.slow_reported) continue;
    const std::uint64_t ran = now > ww.run_start ? now - ww.run_start : 0;
    if (ran >= watch_threshold_ticks_) {
      ww.slow_reported = true;
      try {
        due.push_back(Due{ww.run_name, lanes_[ww.run_lane].get(), ran, w->name});
      } catch (...) {
        m_.hook_errors.fetch_add(1, kRelaxed);  // out of memory: this report is lost, counted
      }
    } else {
      next = std::min(next, ww.run_start + std::min(watch_threshold_ticks_, UINT64_MAX - ww.run_start));
    }
  }
  watch_deadline_ = next;
  if (due.empty()) return;
  // The callback runs with mu_ released, on this thread (the controller),
  // which holds mu_ again (as the caller's lock) when this returns.
  mu_.unlock();
  const double ns_per = ns_per_tick();
  for (const Due& d : due) {
    slow_tasks_.fetch_add(1, kRelaxed);
    const SlowTask report{d.name != nullptr ? std::string_view(d.name) : std::string_view(), d.lane->name,
                          std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(d.ran) * ns_per)),
                          d.thread};
    try {
      config_.on_slow_task(report);
    } catch (...) {
      m_.hook_errors.fetch_add(1, kRelaxed);
    }
  }
  mu_.lock();
}

}  // namespace blockpool::detail
