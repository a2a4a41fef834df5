// src/core.hpp: the pool's shared state and mechanism (not a public header).
//
// Core is shared (std::shared_ptr) by the Pool, every Handle and every thread
// the pool runs, so it outlives all of them. Its parts:
//   core.cpp    spawning, shutdown, metrics, abort bookkeeping
//   worker.cpp  the worker loop, the growth controller loop, thread start/exit
//   thread.cpp  OS thread creation (pthread), naming
//   growth.hpp  the growth policy (how many threads to add, when)
//   wake_policy.hpp  the wake-up policy (who is woken, when a worker polls)
//
// Locking: one mutex, mu_, guards the queue, the idle list, the thread
// accounting and the shutdown state: every field marked GUARDED_BY(mu_), and
// the Lane::Locked and Worker::Locked/Watched fields (reached through
// locked() and watched(), which require mu_). A function named *_locked
// requires mu_ held (REQUIRES(mu_)); one that takes mu_ itself is marked
// EXCLUDES(mu_). Clang checks all of this at compile time (-Wthread-safety,
// src/thread_annotations.hpp; scripts/thread_safety.sh builds with it).
// Rules:
//   * Decide under mu_, act after: threads are created, woken, joined, and
//     tasks ended (continuations run, stop callbacks fired, callables
//     destroyed) only after mu_ is released. The Actions struct collects what
//     to do.
//   * Nothing calls user code while holding mu_.
//   * Tasks are ended last: a thread that ends tasks (shutdown cancelling the
//     queue, a spawn failure, an abort) does so after every state change and
//     every wake-up, stop request and thread start it decided on. Ending a
//     task runs code of the user's (a continuation resumes a coroutine, a
//     callable's or result's destructor runs), and that code may call back
//     into the pool: shut it down again, wait for another task, spawn. It
//     must find the pool in its final state for the step, with every thread
//     that should run already told to.
//   * The growth controller exists whenever the pool has a worker: it is
//     created before the first worker (Actions::start_controller goes with
//     start_workers when threads_ goes from 0), and exits only once the last
//     worker has. So a thread creation refused while workers run is always
//     retried, by the controller, with its backoff; a pool whose controller
//     cannot be created has no worker, and its queued tasks end as spawn
//     failures.
//   * Clock::now() may be called under mu_; ManualClock::advance() calls
//     on_time_advanced(), which takes mu_, while holding the clock's own
//     mutex: so the pool never calls add/remove_observer under mu_.
// The counters in m_ are atomics updated with relaxed order; each is
// incremented before the event it counts is published (a task's state
// release-store, mu_ unlock for thread counts), which gives the "counter no
// later than the event" guarantee of metrics.hpp.
#pragma once

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "blockpool/detail/ticks.hpp"

#include "blockpool/builder.hpp"
#include "blockpool/clock.hpp"
#include "blockpool/detail/spin.hpp"
#include "blockpool/detail/task.hpp"
#include "blockpool/metrics.hpp"
#include "growth.hpp"
#include "lane.hpp"
#include "task_chain.hpp"
#include "thread_annotations.hpp"
#include "wake_policy.hpp"


namespace blockpool::detail {

class Core;

// One per worker thread. Owned jointly (refs_) by the thread itself and by
// any waker that holds it across an unlock, so notifying a worker after
// releasing mu_ never touches freed memory.
struct Worker {
  explicit Worker(std::shared_ptr<Core> c, std::uint64_t i) : core(std::move(c)), index(i) {}
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::shared_ptr<Core> core;  // immutable; keeps the Core alive while the thread runs
  const std::uint64_t index;   // immutable; the N of "name-N"
  std::atomic<std::uint32_t> refs{1};
  std::condition_variable cv;  // waited on with Core::mu_

  // Guarded by Core::mu_ (Core::locked(w)).
  struct Locked {
    bool idle = false;            // on the idle list
    bool notified = false;        // woken by a spawner or shutdown (and taken off the idle list)
    int park_cpu = -1;            // the CPU it parked on (sched_getcpu), -1 if unknown
    Worker* idle_prev = nullptr;  // idle list links (most recently idle at the head)
    Worker* idle_next = nullptr;
    Worker* all_prev = nullptr;   // list of all live workers
    Worker* all_next = nullptr;
    TaskBase* current = nullptr;  // the task being run (holds the pool's reference)
  };
  GuardedBy<Locked> locked;
  // Its idle spells, for WakePolicy::poll_before_parking. Touched only by
  // the worker's own thread.
  WakePolicy::IdleSpells spells;
  // Written and read only by the thread that begins shutdown (once), to
  // chain the workers it wakes after releasing mu_.
  Worker* wake_next = nullptr;
  // The thread's OS name; written by the worker before it joins the list of
  // all workers (under mu_), then read-only (the watchdog reports it).
  std::string name;
  // The task it runs, for the slow-task watchdog (only when the pool has
  // one). Guarded by Core::mu_ (Core::watched(w)): set when the task is
  // popped, `running` cleared when the worker next takes the lock.
  struct Watched {
    bool running = false;
    bool slow_reported = false;      // reported to on_slow_task already
    std::uint64_t run_start = 0;     // ticks (detail/ticks.hpp)
    const char* run_name = nullptr;  // TaskOptions::name
    unsigned run_lane = 0;
  };
  GuardedBy<Watched> watched;
};

// What to do once mu_ is released.
struct Actions {
  Worker* wake = nullptr;       // notify this worker (a reference is held)
  bool wake_controller = false;
  std::size_t start_workers = 0;  // reserved in threads_/starting_ already
  bool start_controller = false;  // reserved in controller_running_ already
  pthread_t join{};               // an exited thread to join
  bool has_join = false;
};

class Core final : public std::enable_shared_from_this<Core>, private Clock::Observer {
 public:
  static std::shared_ptr<Core> create(Config config);
  explicit Core(Config config);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // ---- core.cpp ----
  // Queues a task (see detail::submit). With `wait`, a full queue keeps the
  // task waiting for room instead of rejecting it (detail::submit_or_wait).
  void submit(TaskBase* task, bool wait) noexcept BLOCKPOOL_EXCLUDES(mu_);
  [[nodiscard]] Metrics metrics() const BLOCKPOOL_EXCLUDES(mu_);
  // The index of the lane `name` (0: ""); throws std::invalid_argument.
  [[nodiscard]] unsigned lane_index(const std::string& name) const;
  // Begins shutdown (first call only), then waits up to `timeout` for every
  // thread (but the caller's own) to exit, and joins them.
  bool shutdown(std::chrono::nanoseconds timeout) BLOCKPOOL_EXCLUDES(mu_);
  void shutdown_background() noexcept BLOCKPOOL_EXCLUDES(mu_);
  // TaskBase::abort() moved queued `task` to kAborting: count it, and when
  // aborted tasks have come to fill at least half the queue, unlink them
  // (task included) so that their memory is freed now rather than when a
  // worker reaches them. Must not block on mu_ (a worker or shutdown may
  // hold it while it waits for `task` to leave kAborting): it only tries it.
  // `was_waiting`: it was waiting for room (admission), not queued.
  void note_aborted(TaskBase* task, bool was_waiting) noexcept BLOCKPOOL_EXCLUDES(mu_);

  // ---- worker.cpp ----
  void run_worker(Worker* w) noexcept BLOCKPOOL_EXCLUDES(mu_);
  void run_controller() noexcept BLOCKPOOL_EXCLUDES(mu_);

 private:
  // core.cpp
  void perform(Actions& a) noexcept BLOCKPOOL_EXCLUDES(mu_);
  // Creates `workers` workers and maybe the controller, all already reserved
  // in the counts. Returns how many creations failed.
  std::size_t start_threads(std::size_t workers, bool controller) noexcept BLOCKPOOL_EXCLUDES(mu_);
  // Unlinks every queued task, claims the startable ones onto `out` (a chain
  // through TaskBase::next_, so no allocation under the lock) and reaps the
  // tombstones. With keep_mandatory, mandatory tasks not yet claimed stay
  // queued, in order (shutdown runs them).
  void take_queued_locked(TaskChain& out, bool keep_mandatory) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Ends every task of the chain with `e` (after mu_ is released).
  void end_tasks(TaskChain& tasks, const JoinErrorInfo& e) noexcept BLOCKPOOL_EXCLUDES(mu_);
  // The next startable task (kQueued -> kRunning), or null: the oldest held
  // task of a lane that has room, else the first in the queue whose lane has
  // room (tasks of a lane at its cap go to its held list on the way).
  TaskBase* pop_locked() noexcept BLOCKPOOL_REQUIRES(mu_);
  // A task popped to start: the accounting of its start. False if it had
  // been aborted (it is reaped).
  bool start_popped_locked(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // An aborted task leaving the queue or a held list (unlinked by the
  // caller): waits for its aborter to finish, uncounts it, releases it.
  void reap_tombstone(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Whether a new task of lane `li` must wait in its held list.
  [[nodiscard]] bool lane_full_locked(unsigned li) const noexcept BLOCKPOOL_REQUIRES(mu_);
  // Appends `t` to `lane`'s held list (its entry counts are the caller's).
  void hold_locked(Lane& lane, TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Empties `lane`'s held list: returns its chain, oldest first, taken out
  // of held_total_ and the lane's held_count (its entry counts, as for
  // hold_locked, are the caller's).
  TaskBase* take_held_locked(Lane& lane) noexcept BLOCKPOOL_REQUIRES(mu_);
  // A task of lane `li` ended on a worker (which holds mu_ again).
  void task_ended_locked(unsigned li) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Tasks of lane `li` waiting to start (queued or held, not aborted).
  [[nodiscard]] std::uint64_t lane_depth_locked(unsigned li) const noexcept BLOCKPOOL_REQUIRES(mu_);
  [[nodiscard]] std::size_t lane_max_queued(unsigned li) const noexcept {
    return li == 0 ? config_.max_queued : lanes_[li]->max_queued;
  }
  // Lets admission waiters of lane `li` into the queue while it has room.
  void admit_waiters_locked(unsigned li) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Counts a task of lane `li` ending with `final_state` (kCompleted,
  // kFailed, kCancelled; rejected tasks are counted apart), release order.
  void count_end(unsigned li, std::uint32_t final_state) noexcept;
  // The slow-task watchdog, on the controller thread (mu_ held on entry and
  // return; released while the callback runs). Reports the tasks running for
  // the threshold and sets watch_deadline_ to the next one due.
  void watch_slow_tasks() noexcept BLOCKPOOL_REQUIRES(mu_);
  // watch_deadline_ as a steady_clock time (max if none).
  [[nodiscard]] std::chrono::steady_clock::time_point watch_deadline_locked() const noexcept BLOCKPOOL_REQUIRES(mu_);
  // Unlinks the aborted tasks (tombstones) from the queue and releases the
  // pool's references to them, but for those still in kAborting (their
  // aborters are mid-way; a later sweep or pop takes them) and `self`, which
  // the caller (its aborter) unlinks and accounts for itself.
  void sweep_tombstones_locked(TaskBase* self) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Counts `n` workers as alive and starting before whoever reserved them
  // starts them after unlocking (threads_, starting_, live_os_threads_).
  void reserve_workers_locked(std::size_t n) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Reserves the first worker (threads_ was 0) and, if none runs, the
  // controller that must exist beside it (see "Locking" above).
  void reserve_first_worker_locked(Actions& a) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Queued work with no worker idle or on its way: the growth policy's
  // turn. Reserves the first worker if the pool has none, else arms the
  // controller if the queue needs watching (growth::should_watch).
  // pass_baton_locked is its arm-only form, for a caller that is a worker.
  void ask_growth_locked(Actions& a) noexcept BLOCKPOOL_REQUIRES(mu_);
  void queue_push_locked(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // The pool's entry counts (queued_, a lane's `queued`): an entry added to
  // the queue or a held list, or leaving it.
  void count_entry_locked(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  void leave_queue_locked(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // An admission waiter found aborted (as reap_tombstone, for waiters).
  void reap_waiter_tombstone(TaskBase* t) noexcept BLOCKPOOL_REQUIRES(mu_);
  // As sweep_tombstones_locked, for a lane's admission waiters.
  void sweep_waiters_locked(Lane& lane, TaskBase* self) noexcept BLOCKPOOL_REQUIRES(mu_);
  TaskBase* queue_take_all_locked() noexcept BLOCKPOOL_REQUIRES(mu_);  // the whole chain, oldest first
  // Logical queue depth: queued tasks not aborted. Exact under mu_.
  [[nodiscard]] std::uint64_t queue_depth() const noexcept;
  void push_idle_locked(Worker* w) noexcept BLOCKPOOL_REQUIRES(mu_);
  Worker* pop_idle_locked() noexcept BLOCKPOOL_REQUIRES(mu_);
  // The idle worker to wake for work made on CPU `cpu` (-1 if unknown), as
  // WakePolicy::pick_idle picks it from the most recently idle. Taken off the
  // idle list.
  // Precondition: idle_head_.
  Worker* pop_idle_near_locked(int cpu) noexcept BLOCKPOOL_REQUIRES(mu_);
  void remove_idle_locked(Worker* w) noexcept BLOCKPOOL_REQUIRES(mu_);
  void on_time_advanced() noexcept override BLOCKPOOL_EXCLUDES(mu_);
  // This thread leaves the pool: it parks its own id in the join chain and
  // collects the previous one to join after unlocking.
  void leave_join_chain_locked(Actions& a) noexcept BLOCKPOOL_REQUIRES(mu_);
  [[nodiscard]] growth::Snapshot snapshot_locked() const noexcept BLOCKPOOL_REQUIRES(mu_);
  void arm_controller_locked(Actions& a) noexcept BLOCKPOOL_REQUIRES(mu_);
  // A worker popped a task with more queued behind it: wakes (after unlock,
  // through `a`) an idle worker unless one is on its way, or, with none
  // idle, arms the controller if the queue needs watching
  // (WakePolicy::pass_baton). Precondition: a.wake == nullptr.
  void pass_baton_locked(Actions& a) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Takes an idle worker off the idle list (pop_idle_near_locked, for the
  // calling thread's CPU), stamps the hand-off with `now` and has `a` notify
  // it. Preconditions: idle_head_ != nullptr, a.wake == nullptr.
  void wake_idle_locked(Actions& a, std::chrono::steady_clock::time_point now) noexcept BLOCKPOOL_REQUIRES(mu_);
  // Marks `w`, just taken off the idle list, as notified, and takes a
  // reference for the waker to notify it after unlocking. The caller tells
  // wake_ (on_wake_sent / on_shutdown_wake_sent).
  void mark_notified_locked(Worker* w) noexcept BLOCKPOOL_REQUIRES(mu_);
  // The controller has nothing left to grow for: shutting down, with no
  // (mandatory) task left queued.
  [[nodiscard]] bool nothing_to_grow_for_locked() const noexcept BLOCKPOOL_REQUIRES(mu_) {
    return shutdown_ && queue_depth() == 0;
  }
  // The fields of a Lane and of a Worker that mu_ guards.
  Lane::Locked& locked(Lane& lane) noexcept BLOCKPOOL_REQUIRES(mu_) { return lane.locked.get(mu_); }
  const Lane::Locked& locked(const Lane& lane) const noexcept BLOCKPOOL_REQUIRES(mu_) {
    return lane.locked.get(mu_);
  }
  Worker::Locked& locked(Worker* w) noexcept BLOCKPOOL_REQUIRES(mu_) { return w->locked.get(mu_); }
  Worker::Watched& watched(Worker* w) noexcept BLOCKPOOL_REQUIRES(mu_) { return w->watched.get(mu_); }

  friend struct CoreTestAccess;

  const Config config_;        // immutable after construction
  const std::shared_ptr<Clock> clock_;  // immutable; never null
  const std::size_t cpus_;              // immutable: CPUs this process may use (at least 1)

  // ---- guarded by mu_ ----
  // The spawn/pop hot path touches two cache lines of the Core, both already
  // owned by whoever holds mu_: line one is the mutex, the queue and its
  // length; line two the fields every spawn reads or writes. The counters a
  // spawn and a pop update (queued_, spawned_) are written only under mu_,
  // with plain load + store rather than locked read-modify-writes, and read
  // without it (relaxed) by metrics() and polling workers.
  alignas(64) mutable Mutex mu_;
  TaskChain queue_ BLOCKPOOL_GUARDED_BY(mu_);  // FIFO of queued tasks (and tombstones)
  std::atomic<std::uint64_t> queued_{0};  // entries in queue_, tombstones included; written under mu_

  alignas(64) std::atomic<std::uint64_t> spawned_{0};  // written under mu_
  std::uint64_t started_tasks_ BLOCKPOOL_GUARDED_BY(mu_) = 0;  // progress, for the controller
  // Workers on their way, the latest hand-off and spawner's CPU: what every
  // spawn's wake-up decision reads (src/wake_policy.hpp).
  WakePolicy wake_ BLOCKPOOL_GUARDED_BY(mu_);
  bool shutdown_ BLOCKPOOL_GUARDED_BY(mu_) = false;
  bool controller_armed_ BLOCKPOOL_GUARDED_BY(mu_) = false;
  // shutdown() callers that have taken the last exited thread off the join
  // chain and are joining it: the others wait for them before they report
  // every thread joined.
  std::size_t joining_ BLOCKPOOL_GUARDED_BY(mu_) = 0;
  Worker* idle_head_ BLOCKPOOL_GUARDED_BY(mu_) = nullptr;  // most recently idle first
  std::size_t idle_count_ BLOCKPOOL_GUARDED_BY(mu_) = 0;
  Worker* all_head_ BLOCKPOOL_GUARDED_BY(mu_) = nullptr;
  std::size_t threads_ BLOCKPOOL_GUARDED_BY(mu_) = 0;   // workers alive or being created
  std::size_t starting_ BLOCKPOOL_GUARDED_BY(mu_) = 0;  // of those, not yet in the loop
  std::size_t live_os_threads_ BLOCKPOOL_GUARDED_BY(mu_) = 0;  // workers + controller
  std::atomic<std::uint64_t> next_index_{0};  // worker names; relaxed (only uniqueness matters)
  std::atomic<std::uint64_t> create_attempts_{0};  // fault-injection index; relaxed (a count)
  bool controller_running_ BLOCKPOOL_GUARDED_BY(mu_) = false;
  // Workers reserved (in threads_, starting_, live_os_threads_) for the
  // controller to start: one that a worker stuck at background priority
  // could not start itself (LaneOptions::background; see run_worker).
  std::size_t controller_starts_ BLOCKPOOL_GUARDED_BY(mu_) = 0;
  // When a controller last believed a stall and added threads (the clock's
  // epoch, i.e. long ago, at first): later watches use a shorter grace.
  std::chrono::steady_clock::time_point last_stall_ BLOCKPOOL_GUARDED_BY(mu_){};
  bool has_last_exited_ BLOCKPOOL_GUARDED_BY(mu_) = false;  // the join chain
  pthread_t last_exited_ BLOCKPOOL_GUARDED_BY(mu_){};
  std::condition_variable exit_cv_;  // signalled when live_os_threads_ drops
  std::condition_variable ctl_cv_;   // wakes the controller
  // Queued tasks that abort() (no lock) has claimed, still linked in queue_
  // until a worker, shutdown or a sweep unlinks them. queue depth = queued_ -
  // this. Incremented by the aborter in kAborting; decremented under mu_ by
  // whoever unlinks the task.
  alignas(64) std::atomic<std::uint64_t> tombstones_{0};

  // ---- lanes and admission control ----
  // One per lane, the default lane (index 0, named "") first. Built in the
  // constructor and never changed: a Lane lives as long as the Core.
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::size_t held_total_ BLOCKPOOL_GUARDED_BY(mu_) = 0;  // tasks in the lanes' held lists
  std::size_t running_tasks_ BLOCKPOOL_GUARDED_BY(mu_) = 0;  // tasks started and not yet ended
  // Whether any lane has a queue bound: without one, spawns skip admission.
  const bool bounded_;

  // ---- latency and the slow-task watchdog ----
  const bool record_latency_;  // immutable: Config::record_latency
  const bool watch_;           // immutable: an on_slow_task callback is set
  std::uint64_t watch_threshold_ticks_ = 0;  // immutable after construction
  // The start (ticks) + threshold of the earliest running task not yet
  // reported; UINT64_MAX when none is watched.
  std::uint64_t watch_deadline_ BLOCKPOOL_GUARDED_BY(mu_) = UINT64_MAX;
  std::atomic<std::uint64_t> slow_tasks_{0};

  // ---- metrics: atomics, relaxed (see header comment) ----
  // On their own cache lines, away from the spawn path. (Tasks that ran are
  // counted in run_shards_ below.)
  struct Counters {
    // Spawn failures (tasks the pool ended because no thread could start).
    alignas(64) std::atomic<std::uint64_t> failed{0};
    alignas(64) std::atomic<std::uint64_t> threads{0};
    std::atomic<std::uint64_t> idle{0};
    std::atomic<std::uint64_t> cancelled{0};
    std::atomic<std::uint64_t> threads_started{0};
    std::atomic<std::uint64_t> threads_retired{0};
    std::atomic<std::uint64_t> spawn_failures{0};
    std::atomic<std::uint64_t> peak_threads{0};
    std::atomic<std::uint64_t> hook_errors{0};
  };
  Counters m_;

  // Tasks that ran, counted by the workers that ran them. Sharded by worker
  // index, a cache line per shard: with one shared counter, two workers
  // ending short tasks on two CPUs moved its line between them on every
  // task. metrics() sums the shards. Incremented with release before the
  // task's end is published (see metrics()).
  struct alignas(64) RunShard {
    std::atomic<std::uint64_t> completed{0};
    std::atomic<std::uint64_t> failed{0};
  };
  static constexpr std::size_t kRunShards = 8;
  RunShard run_shards_[kRunShards];
};

// CPUs the calling process may use: its affinity mask's, lowered to its
// cgroups' CPU quota (src/cpu_limit.hpp); at least 1.
std::size_t usable_cpus() noexcept;

// The Core whose worker is the calling thread, or null (thread-local).
Core* current_pool_core() noexcept;
void set_current_pool_core(Core* core) noexcept;

// thread.cpp: creates a detached-from-nothing joinable OS thread.
// Returns 0 or an errno value.
int create_os_thread(std::size_t stack_size, void* (*entry)(void*), void* arg, pthread_t* out) noexcept;
// Sets the calling thread's OS name, cut to the platform limit.
void set_current_thread_name(const std::string& name) noexcept;
// "<base>-<index>", with base cut so the whole fits in 15 bytes.
std::string indexed_thread_name(const std::string& base, std::uint64_t index);
// "<base><suffix>", with base cut so the whole fits in 15 bytes.
std::string suffixed_thread_name(const std::string& base, const std::string& suffix);

}  // namespace blockpool::detail
