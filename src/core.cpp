// src/core.cpp: spawning, shutdown, metrics and abort bookkeeping.
// See core.hpp for the locking rules; worker.cpp for the thread loops.
#include "core.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <cerrno>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "cpu_limit.hpp"

namespace blockpool::detail {

namespace {
thread_local Core* tls_pool_core = nullptr;

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

// The clock a WakePolicy decision reads when it needs the time.
std::chrono::steady_clock::time_point steady_now() noexcept { return std::chrono::steady_clock::now(); }

void* worker_entry(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  w->core->run_worker(w);
  return nullptr;
}

void* controller_entry(void* arg) {
  std::unique_ptr<std::shared_ptr<Core>> core(static_cast<std::shared_ptr<Core>*>(arg));
  (*core)->run_controller();
  return nullptr;
}
}  // namespace

Core* current_pool_core() noexcept { return tls_pool_core; }
void set_current_pool_core(Core* core) noexcept { tls_pool_core = core; }

namespace {
// A small file's contents (a /proc or cgroup file), or nothing.
std::optional<std::string> read_small_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string contents;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0 || contents.size() > (1u << 20)) break;
    contents.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return contents;
}
}  // namespace

std::size_t usable_cpus() noexcept {
  // The CPUs this process may run on (a container's cpuset, taskset), which
  // can be fewer than the machine's; hardware_concurrency() if unknown...
  std::size_t affinity = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) affinity = static_cast<std::size_t>(n);
  }
  // ...and no more than its cgroups' CPU quota keeps busy (a container limited
  // to 2 CPUs on a 64-core host is 2 CPUs). An unreadable quota is no limit.
  std::size_t quota = 0;
  try {
    quota = cpu_limit::quota_cpus(read_small_file);
  } catch (...) {  // std::bad_alloc reading the files
  }
  return cpu_limit::usable(affinity, quota);
}

std::shared_ptr<Core> Core::create(Config config) {
  auto core = std::make_shared<Core>(std::move(config));
  if (!core->clock_->is_real_time()) core->clock_->add_observer(core.get());
  return core;
}

namespace {
bool any_bound(const Config& c) {
  if (c.max_queued != kUnbounded) return true;
  for (const auto& lane : c.lanes)
    if (lane.second.max_queued != kUnbounded) return true;
  return false;
}
}  // namespace

Core::Core(Config config)
    : config_(std::move(config)),
      clock_(config_.clock ? config_.clock : system_clock()),
      cpus_(usable_cpus()),
      wake_(cpus_),
      bounded_(any_bound(config_)),
      record_latency_(config_.record_latency),
      watch_(static_cast<bool>(config_.on_slow_task)) {
  lanes_.push_back(std::make_unique<Lane>(std::string(), LaneOptions{}));
  for (const auto& [name, options] : config_.lanes) lanes_.push_back(std::make_unique<Lane>(name, options));
  if (watch_) {
    // The threshold in ticks of the latency clock (its first calibration
    // takes about a millisecond, here rather than on a worker).
    const double ticks = static_cast<double>(config_.slow_threshold.count()) / ns_per_tick();
    watch_threshold_ticks_ = ticks >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(ticks);
  }
}

unsigned Core::lane_index(const std::string& name) const {
  // The default lane (index 0) is not declared, so not found by name: its
  // handle is Pool::handle().
  for (std::size_t i = 1; i < lanes_.size(); ++i)
    if (lanes_[i]->name == name) return static_cast<unsigned>(i);
  throw std::invalid_argument("blockpool: no lane named \"" + name + "\" (declare it with Builder::lane)");
}

Core::~Core() {
  if (!clock_->is_real_time()) clock_->remove_observer(this);
  // Every worker and the controller hold a reference, so none is running
  // code of ours now; at most one exited thread is left to join. It is the
  // calling thread itself when the last reference is dropped by a pool
  // thread on its way out (pool destroyed from inside a task): detach then.
  if (has_last_exited_) {
    if (pthread_equal(last_exited_, pthread_self()))
      pthread_detach(last_exited_);
    else
      pthread_join(last_exited_, nullptr);
  }
}

growth::Snapshot Core::snapshot_locked() const noexcept {
  growth::Snapshot s;
  // Held tasks wait for their lane's room, not for a thread.
  const std::uint64_t depth = queue_depth();
  s.queued = static_cast<std::size_t>(depth > held_total_ ? depth - held_total_ : 0);
  s.threads = threads_;
  s.starting = starting_;
  s.idle = idle_count_;
  s.max_threads = config_.max_threads;
  s.cpus = cpus_;
  return s;
}

void Core::arm_controller_locked(Actions& a) noexcept {
  controller_armed_ = true;
  if (controller_running_) {
    a.wake_controller = true;
  } else {
    controller_running_ = true;
    ++live_os_threads_;
    a.start_controller = true;
  }
}

namespace {
// Ends a task that never reached a queue (spawned after shutdown, or through
// an empty Handle): cancelled, callable destroyed on this thread.
void cancel_unqueued(TaskBase* task) noexcept {
  task->ops_->drop(task, {JoinError::Kind::kCancelled, JoinError::Reason::kSpawnAfterShutdown, {}});
  task->end_for_pool(kCancelled);
}
}  // namespace

void Core::submit(TaskBase* task, bool wait) noexcept {
  // Its queue wait starts now (before the lock: contention is queue wait).
  if (record_latency_) task->spawn_ticks_ = ticks();
  Actions a;
  enum class Outcome { kQueued, kHeld, kWaiting, kCancelled, kRejected } outcome = Outcome::kQueued;
  const unsigned li = task->lane();
  {
    MutexGuard lk(mu_);
    spawned_.store(spawned_.load(kRelaxed) + 1, kRelaxed);  // only under mu_
    if (li != 0) lanes_[li]->spawned.fetch_add(1, kRelaxed);
    if (shutdown_) {
      outcome = Outcome::kCancelled;
    } else if (bounded_ && !task->mandatory() && lane_max_queued(li) != kUnbounded) {
      // Admission control. A waiter queues behind earlier waiters even if
      // room has just appeared: waiters are let in in the order they came.
      Lane& lane = *lanes_[li];
      Lane::Locked& ls = locked(lane);
      const bool waiters = ls.waiting > lane.waiter_tombstones.load(kRelaxed);
      const bool full = lane_depth_locked(li) >= lane_max_queued(li);
      if (full || (wait && waiters)) {
        if (!wait) {
          outcome = Outcome::kRejected;
        } else if (task->begin_admission_wait()) {
          ls.waiters.push(task);
          ++ls.waiting;
          outcome = Outcome::kWaiting;
        }
        // else: aborted before it could wait; it goes in as a tombstone,
        // as note_aborted counted it.
      }
    }
    if (outcome == Outcome::kQueued && li != 0 && lane_full_locked(li)) {
      // Its lane runs (or has queued) as many tasks as it may run: it waits
      // in the lane's held list, where no thread is woken or grown for it.
      hold_locked(*lanes_[li], task);
      count_entry_locked(task);
      outcome = Outcome::kHeld;
    }
    if (outcome == Outcome::kQueued) {
      queue_push_locked(task);
      // Trust a worker on its way, wake an idle one, or ask the growth policy
      // (WakePolicy::on_spawn). sched_getcpu() makes no syscall: glibc reads
      // the rseq area (or the vDSO); the clock is read only with an idle
      // worker to wake.
      const WakePolicy::Decision d = wake_.on_spawn(
          sched_getcpu(), idle_head_ != nullptr, [this] { return queue_depth() > 0; }, steady_now);
      if (d.wake == WakePolicy::Wake::kWakeIdle) {
        wake_idle_locked(a, d.now);
      } else if (d.wake == WakePolicy::Wake::kAskGrowth) {
        ask_growth_locked(a);
      }
    }
  }
  switch (outcome) {
    case Outcome::kQueued:
      perform(a);
      return;
    case Outcome::kHeld:     // started later, by a worker when its lane has room
    case Outcome::kWaiting:  // let in (or cancelled) later, by whoever makes room (or shuts down)
      return;
    case Outcome::kCancelled:
      count_end(li, kCancelled);  // before the handle ends; see metrics()
      cancel_unqueued(task);
      return;
    case Outcome::kRejected:
      lanes_[li]->rejected.fetch_add(1, std::memory_order_release);  // see metrics()
      task->ops_->drop(task, {JoinError::Kind::kRejected, JoinError::Reason::kQueueFull, {}});
      task->end_for_pool(kCancelled);
      return;
  }
}

void Core::reserve_workers_locked(std::size_t n) noexcept {
  threads_ += n;
  starting_ += n;
  live_os_threads_ += n;
}

void Core::ask_growth_locked(Actions& a) noexcept {
  const growth::Snapshot s = snapshot_locked();
  if (growth::spawn_must_start_thread(s)) {
    reserve_first_worker_locked(a);
  } else if (!controller_armed_ && growth::should_watch(s)) {
    arm_controller_locked(a);
  }
}

void Core::reserve_first_worker_locked(Actions& a) noexcept {
  reserve_workers_locked(1);
  a.start_workers = 1;
  if (!controller_running_) {
    controller_running_ = true;
    ++live_os_threads_;
    a.start_controller = true;
  }
}

void Core::pass_baton_locked(Actions& a) noexcept {
  const WakePolicy::Decision d =
      wake_.pass_baton(idle_head_ != nullptr, [this] { return queue_depth() > 0; }, steady_now);
  if (d.wake == WakePolicy::Wake::kWakeIdle) {
    wake_idle_locked(a, d.now);
  } else if (d.wake == WakePolicy::Wake::kAskGrowth && !controller_armed_ &&
             growth::should_watch(snapshot_locked())) {
    arm_controller_locked(a);
  }
}

void Core::wake_idle_locked(Actions& a, std::chrono::steady_clock::time_point now) noexcept {
  Worker* w = pop_idle_near_locked(sched_getcpu());
  mark_notified_locked(w);
  wake_.on_wake_sent(now);
  a.wake = w;
}

void Core::mark_notified_locked(Worker* w) noexcept {
  locked(w).notified = true;
  w->add_ref();
}

void Core::perform(Actions& a) noexcept {
  if (a.wake != nullptr) {
    a.wake->cv.notify_one();
    a.wake->release();
    a.wake = nullptr;
  }
  if (a.wake_controller) ctl_cv_.notify_one();
  if (a.has_join) {
    pthread_join(a.join, nullptr);
    a.has_join = false;
  }
  // Last: a refused creation may end queued tasks (see "Locking" in core.hpp).
  if (a.start_workers > 0 || a.start_controller) start_threads(a.start_workers, a.start_controller);
}

std::size_t Core::start_threads(std::size_t workers, bool controller) noexcept {
  int last_error = 0;
  auto create = [&](void* (*entry)(void*), void* arg) -> int {
    const std::uint64_t attempt = create_attempts_.fetch_add(1, kRelaxed);
    int err = 0;
    if (config_.thread_fault) {
      try {
        err = config_.thread_fault(attempt);
      } catch (...) {
        err = EAGAIN;
      }
    }
    pthread_t tid;
    if (err == 0) err = create_os_thread(config_.stack_size, entry, arg, &tid);
    if (err != 0) last_error = err;
    return err;
  };
  std::shared_ptr<Core> self = shared_from_this();
  // The controller first: workers never run without it (see core.hpp), so if
  // it is refused, the workers reserved with it are not even tried.
  bool controller_failed = false;
  if (controller) {
    auto* arg = new (std::nothrow) std::shared_ptr<Core>(self);
    const int err = arg == nullptr ? ENOMEM : create(&controller_entry, arg);
    if (arg == nullptr) last_error = ENOMEM;
    if (err != 0) {
      delete arg;
      controller_failed = true;
    }
  }
  std::size_t refused = controller_failed ? 1 : 0;  // creations the OS (or memory) refused
  std::size_t failed_workers = 0;                   // workers not started, refused or not tried
  for (std::size_t i = 0; i < workers; ++i) {
    if (controller_failed) {
      ++failed_workers;
      continue;
    }
    auto* w = new (std::nothrow) Worker(self, next_index_.fetch_add(1, kRelaxed));
    const int err = w == nullptr ? ENOMEM : create(&worker_entry, w);
    if (w == nullptr) last_error = ENOMEM;
    if (err != 0) {
      delete w;
      ++failed_workers;
      ++refused;
    }
  }
  if (refused == 0) return 0;

  m_.spawn_failures.fetch_add(refused, kRelaxed);
  TaskChain stranded;
  {
    MutexGuard lk(mu_);
    threads_ -= failed_workers;
    starting_ -= failed_workers;
    live_os_threads_ -= failed_workers + (controller_failed ? 1 : 0);
    if (controller_failed) {
      controller_running_ = false;
      controller_armed_ = false;
    }
    // With no worker at all, nothing could ever run what is queued: end it
    // now with the OS error rather than leave it stranded.
    if (threads_ == 0) take_queued_locked(stranded, false);
    exit_cv_.notify_all();
  }
  end_tasks(stranded, {JoinError::Kind::kSpawnFailure, JoinError::Reason::kSpawnFailed,
                       std::error_code(last_error, std::system_category())});
  return failed_workers;
}

void Core::take_queued_locked(TaskChain& out, bool keep_mandatory) noexcept {
  // Claims every startable task of `chain` onto `out`, or keeps it (a
  // mandatory one, with keep_mandatory) through `keep`.
  auto sort = [&](TaskBase* t, auto&& keep) BLOCKPOOL_REQUIRES(mu_) {
    while (t != nullptr) {
      TaskBase* next = t->next_;
      t->next_ = nullptr;
      if (keep_mandatory && t->mandatory() && t->state() == kQueued) {
        keep(t);
      } else if (t->claim_from_queued(kAborting)) {
        out.push(t);
      } else {
        reap_tombstone(t);
      }
      t = next;
    }
  };
  sort(queue_take_all_locked(), [&](TaskBase* t) BLOCKPOOL_REQUIRES(mu_) { queue_push_locked(t); });
  for (std::size_t li = 1; li < lanes_.size(); ++li) {
    Lane& lane = *lanes_[li];
    TaskBase* held = take_held_locked(lane);
    for (TaskBase* t = held; t != nullptr; t = t->next_) leave_queue_locked(t);
    sort(held, [&](TaskBase* t) BLOCKPOOL_REQUIRES(mu_) {
      count_entry_locked(t);
      hold_locked(lane, t);
    });
  }
  // Admission waiters are never mandatory: all of them go.
  for (auto& lane_ptr : lanes_) {
    Lane::Locked& ls = locked(*lane_ptr);
    TaskBase* t = ls.waiters.take_all();
    ls.waiting = 0;
    while (t != nullptr) {
      TaskBase* next = t->next_;
      t->next_ = nullptr;
      if (t->claim_from_queued(kAborting)) {
        out.push(t);
      } else {
        reap_waiter_tombstone(t);
      }
      t = next;
    }
  }
}

void Core::count_end(unsigned li, std::uint32_t final_state) noexcept {
  // release: before the handle ends, see metrics() (ended counts never
  // exceed spawned).
  std::atomic<std::uint64_t>& pool = final_state == kCancelled ? m_.cancelled : m_.failed;
  pool.fetch_add(1, std::memory_order_release);
  if (li != 0) (final_state == kCancelled ? lanes_[li]->cancelled : lanes_[li]->failed).fetch_add(1, std::memory_order_release);
}

void Core::end_tasks(TaskChain& tasks, const JoinErrorInfo& e) noexcept {
  const std::uint32_t final_state = e.kind == JoinError::Kind::kSpawnFailure ? kFailed : kCancelled;
  TaskBase* t = tasks.head;
  tasks.head = tasks.tail = nullptr;
  while (t != nullptr) {
    TaskBase* next = t->next_;
    t->next_ = nullptr;
    count_end(t->lane(), final_state);
    t->ops_->drop(t, e);
    t->end_for_pool(final_state);
    t = next;
  }
}

bool Core::start_popped_locked(TaskBase* t) noexcept {
  if (!t->start_from_queued()) {
    reap_tombstone(t);
    return false;
  }
  ++started_tasks_;
  ++running_tasks_;
  const unsigned li = t->lane();
  if (li != 0) ++locked(*lanes_[li]).running;
  return true;
}

TaskBase* Core::pop_locked() noexcept {
  // Lanes keep, for each: running + (its tasks in the queue) <= max_running.
  // A task spawned beyond that waits in its lane's held list (lane_full_locked),
  // so every task in the queue can start when a thread reaches it, and a held
  // task starts once its lane has room, before newer ones of its lane.
  for (;;) {
    if (held_total_ > 0) {
      for (std::size_t li = 1; li < lanes_.size(); ++li) {
        Lane& lane = *lanes_[li];
        Lane::Locked& ls = locked(lane);
        while (!ls.held.empty() && ls.running + (ls.queued - ls.held_count) < lane.max_running) {
          TaskBase* t = ls.held.pop();
          --ls.held_count;
          --held_total_;
          leave_queue_locked(t);
          const bool started = start_popped_locked(t);
          if (bounded_) admit_waiters_locked(static_cast<unsigned>(li));
          if (started) return t;
        }
      }
    }
    if (queue_.empty()) return nullptr;
    TaskBase* t = queue_.pop();
    const unsigned li = t->lane();
    if (li != 0 && locked(*lanes_[li]).running >= lanes_[li]->max_running && t->state() == kQueued) {
      // Not expected (see above); if it happens, the lane's cap still holds.
      hold_locked(*lanes_[li], t);
      continue;
    }
    leave_queue_locked(t);
    const bool started = start_popped_locked(t);
    if (bounded_) admit_waiters_locked(li);
    if (started) return t;
    // A tombstone left the queue: a held task of its lane may start now.
  }
}

void Core::task_ended_locked(unsigned li) noexcept {
  --running_tasks_;
  if (li != 0) --locked(*lanes_[li]).running;  // a held task of the lane may start now: pop_locked looks
}

bool Core::lane_full_locked(unsigned li) const noexcept {
  const Lane& lane = *lanes_[li];
  const Lane::Locked& ls = locked(lane);
  // Its tasks running, plus those in the pool's queue (which will start as
  // soon as a thread reaches them), against its cap; or older ones held.
  const std::size_t in_queue = ls.queued - ls.held_count;
  return !ls.held.empty() || ls.running + in_queue >= lane.max_running;
}

TaskBase* Core::take_held_locked(Lane& lane) noexcept {
  Lane::Locked& ls = locked(lane);
  held_total_ -= ls.held_count;
  ls.held_count = 0;
  return ls.held.take_all();
}

void Core::hold_locked(Lane& lane, TaskBase* t) noexcept {
  Lane::Locked& ls = locked(lane);
  ls.held.push(t);
  ++ls.held_count;
  ++held_total_;
}

std::uint64_t Core::lane_depth_locked(unsigned li) const noexcept {
  if (li != 0) {
    const Lane& lane = *lanes_[li];
    const std::uint64_t queued = locked(lane).queued;
    const std::uint64_t dead = lane.tombstones.load(kRelaxed);
    return queued > dead ? queued - dead : 0;
  }
  std::uint64_t depth = queue_depth();
  for (std::size_t i = 1; i < lanes_.size(); ++i) {
    const std::uint64_t d = lane_depth_locked(static_cast<unsigned>(i));
    depth = depth > d ? depth - d : 0;
  }
  return depth;
}

void Core::admit_waiters_locked(unsigned li) noexcept {
  Lane::Locked& ls = locked(*lanes_[li]);
  while (!ls.waiters.empty() && lane_depth_locked(li) < lane_max_queued(li)) {
    TaskBase* t = ls.waiters.pop();
    --ls.waiting;
    if (t->end_admission_wait()) {
      queue_push_locked(t);  // a worker is about to look at the queue (our caller)
    } else {
      reap_waiter_tombstone(t);
    }
  }
}

void Core::reap_tombstone(TaskBase* t) noexcept {
  // An aborting thread is between its claim and finish(): it is updating our
  // counters. Wait for it (a few instructions) so that it is done with this
  // Core before we can let the Core go. It never takes mu_, so waiting here
  // under mu_ cannot deadlock.
  while (t->state() == kAborting) sched_yield();
  tombstones_.fetch_sub(1, kRelaxed);  // counted by note_aborted, in kAborting
  if (const unsigned li = t->lane(); li != 0) lanes_[li]->tombstones.fetch_sub(1, kRelaxed);
  t->release();
}

void Core::reap_waiter_tombstone(TaskBase* t) noexcept {
  while (t->state() == kAborting) sched_yield();  // as in reap_tombstone
  lanes_[t->lane()]->waiter_tombstones.fetch_sub(1, kRelaxed);
  t->release();
}

void Core::note_aborted(TaskBase* task, bool was_waiting) noexcept {
  const unsigned li = task->lane();
  count_end(li, kCancelled);
  constexpr std::uint64_t kSweepMin = 64;  // see below
  if (was_waiting) {
    // The same rule for admission waiters: a full queue whose waiters are
    // cancelled one after another must not keep them all.
    Lane& lane = *lanes_[li];
    const std::uint64_t dead = lane.waiter_tombstones.fetch_add(1, kRelaxed) + 1;
    if (dead < kSweepMin || !mu_.try_lock()) return;
    if (dead * 2 >= locked(lane).waiting) sweep_waiters_locked(lane, task);
    mu_.unlock();
    return;
  }
  if (li != 0) lanes_[li]->tombstones.fetch_add(1, kRelaxed);
  const std::uint64_t dead = tombstones_.fetch_add(1, kRelaxed) + 1;
  // Aborted tasks stay linked (and allocated) until something unlinks them.
  // Once they are at least kSweepMin and half of the queue's entries, unlink
  // them all: each sweep is paid for by as many aborts as it removes, and
  // the queue never holds more dead entries than max(kSweepMin, live ones).
  // Only try the lock: whoever holds it may be waiting for `task` to leave
  // kAborting (see reap_tombstone); the next abort, pop or sweep then does it.
  if (dead < kSweepMin || dead * 2 < queued_.load(kRelaxed) || !mu_.try_lock()) return;
  sweep_tombstones_locked(task);
  mu_.unlock();
}

void Core::sweep_tombstones_locked(TaskBase* self) noexcept {
  // Keeps a live entry (or one whose aborter is still counting it) through
  // `keep`, drops the others.
  auto sweep = [&](TaskBase* t, auto&& keep) BLOCKPOOL_REQUIRES(mu_) {
    while (t != nullptr) {
      TaskBase* next = t->next_;
      t->next_ = nullptr;
      const std::uint32_t st = t->state();
      if (t == self) {
        // Our caller's own task: it holds a reference of its own (a handle's
        // or an operation's), so dropping the pool's cannot free the block.
        leave_queue_locked(t);
        tombstones_.fetch_sub(1, kRelaxed);
        if (const unsigned li = t->lane(); li != 0) lanes_[li]->tombstones.fetch_sub(1, kRelaxed);
        t->release();
      } else if (st == kQueued || st == kAborting) {
        keep(t);
      } else {
        leave_queue_locked(t);
        reap_tombstone(t);  // done with the pool: no wait
      }
      t = next;
    }
  };
  TaskBase* all = queue_.take_all();
  sweep(all, [&](TaskBase* t) BLOCKPOOL_REQUIRES(mu_) { queue_.push(t); });
  for (std::size_t li = 1; li < lanes_.size(); ++li) {
    Lane& lane = *lanes_[li];
    TaskBase* held = take_held_locked(lane);
    sweep(held, [&](TaskBase* t) BLOCKPOOL_REQUIRES(mu_) { hold_locked(lane, t); });
  }
  if (bounded_)
    for (std::size_t li = 0; li < lanes_.size(); ++li) admit_waiters_locked(static_cast<unsigned>(li));
}

void Core::sweep_waiters_locked(Lane& lane, TaskBase* self) noexcept {
  Lane::Locked& ls = locked(lane);
  TaskBase* t = ls.waiters.take_all();
  ls.waiting = 0;
  while (t != nullptr) {
    TaskBase* next = t->next_;
    t->next_ = nullptr;
    const std::uint32_t st = t->state();
    if (t == self) {
      lane.waiter_tombstones.fetch_sub(1, kRelaxed);
      t->release();  // the pool's reference; our caller holds its own
    } else if (st == kQueued || st == kAborting) {
      ls.waiters.push(t);
      ++ls.waiting;
    } else {
      reap_waiter_tombstone(t);
    }
    t = next;
  }
}

void Core::count_entry_locked(TaskBase* t) noexcept {
  // Only under mu_. release: the spawn's spawned_ store comes first (see metrics()).
  queued_.store(queued_.load(kRelaxed) + 1, std::memory_order_release);
  if (const unsigned li = t->lane(); li != 0) ++locked(*lanes_[li]).queued;
}

void Core::leave_queue_locked(TaskBase* t) noexcept {
  queued_.store(queued_.load(kRelaxed) - 1, kRelaxed);
  if (const unsigned li = t->lane(); li != 0) --locked(*lanes_[li]).queued;
}

void Core::queue_push_locked(TaskBase* t) noexcept {
  queue_.push(t);
  count_entry_locked(t);
}

TaskBase* Core::queue_take_all_locked() noexcept {
  TaskBase* all = queue_.take_all();
  for (TaskBase* t = all; t != nullptr; t = t->next_) leave_queue_locked(t);
  return all;
}

std::uint64_t Core::queue_depth() const noexcept {
  // Tombstones first: one counted here is still in queued_ (it leaves both
  // under mu_, tombstones_ last), so the difference cannot wrap below zero
  // for long; clamp the transient.
  const std::uint64_t dead = tombstones_.load(kRelaxed);
  const std::uint64_t all = queued_.load(std::memory_order_acquire);
  return all > dead ? all - dead : 0;
}

void Core::push_idle_locked(Worker* w) noexcept {
  Worker::Locked& wl = locked(w);
  wl.idle = true;
  wl.idle_prev = nullptr;
  wl.idle_next = idle_head_;
  if (idle_head_ != nullptr) locked(idle_head_).idle_prev = w;
  idle_head_ = w;
  ++idle_count_;
  m_.idle.fetch_add(1, kRelaxed);
}

Worker* Core::pop_idle_locked() noexcept {
  Worker* w = idle_head_;
  remove_idle_locked(w);
  return w;
}

Worker* Core::pop_idle_near_locked(int cpu) noexcept {
  if (cpu < 0) return pop_idle_locked();
  // The candidates, most recently idle first, copied out for the policy.
  std::array<Worker*, WakePolicy::kWakeScan> candidate{};
  std::array<int, WakePolicy::kWakeScan> parked_on{};
  std::size_t n = 0;
  for (Worker* c = idle_head_; c != nullptr && n < candidate.size(); c = locked(c).idle_next, ++n) {
    candidate[n] = c;
    parked_on[n] = locked(c).park_cpu;
  }
  Worker* w = candidate[WakePolicy::pick_idle(std::span<const int>(parked_on.data(), n), cpu)];
  remove_idle_locked(w);
  return w;
}

void Core::remove_idle_locked(Worker* w) noexcept {
  Worker::Locked& wl = locked(w);
  if (!wl.idle) return;
  if (wl.idle_prev != nullptr)
    locked(wl.idle_prev).idle_next = wl.idle_next;
  else
    idle_head_ = wl.idle_next;
  if (wl.idle_next != nullptr) locked(wl.idle_next).idle_prev = wl.idle_prev;
  wl.idle_prev = wl.idle_next = nullptr;
  wl.idle = false;
  --idle_count_;
  m_.idle.fetch_sub(1, kRelaxed);
}

void Core::on_time_advanced() noexcept {
  // Called by a virtual clock (its own mutex held). Idle workers re-check
  // their deadlines; they cannot leave the idle list while we hold mu_, so
  // notifying under mu_ is safe (and this path is for tests only).
  MutexGuard lk(mu_);
  for (Worker* w = idle_head_; w != nullptr; w = locked(w).idle_next) w->cv.notify_one();
}

void Core::leave_join_chain_locked(Actions& a) noexcept {
  if (has_last_exited_) {
    a.join = last_exited_;
    a.has_join = true;
  }
  last_exited_ = pthread_self();
  has_last_exited_ = true;
}

void Core::shutdown_background() noexcept { (void)shutdown(std::chrono::nanoseconds(0)); }

bool Core::shutdown(std::chrono::nanoseconds timeout) {
  using std::chrono::steady_clock;
  const auto now = steady_clock::now();
  // Saturates: a timeout beyond the clock's range waits without a limit.
  const auto deadline = timeout >= steady_clock::time_point::max() - now
                            ? steady_clock::time_point::max()
                            : now + std::max(timeout, std::chrono::nanoseconds(0));

  TaskChain cancelled;
  TaskChain to_stop;         // running tasks, chained through next_ (unused while running)
  Worker* to_wake = nullptr;  // idle workers, chained through wake_next
  Actions a;
  MutexLock lk(mu_);
  if (!shutdown_) {
    shutdown_ = true;
    // Queued tasks: cancel the non-mandatory ones at once, keep the rest.
    take_queued_locked(cancelled, true);
    // Running tasks: trigger the stop tokens of the non-mandatory ones.
    for (Worker* w = all_head_; w != nullptr; w = locked(w).all_next) {
      TaskBase* cur = locked(w).current;
      if (cur != nullptr && !cur->mandatory() && cur->stoppable() && !cur->is_done()) {
        cur->add_ref();
        to_stop.push(cur);
      }
    }
    while (idle_head_ != nullptr) {
      Worker* w = pop_idle_locked();
      mark_notified_locked(w);
      wake_.on_shutdown_wake_sent();
      w->wake_next = to_wake;
      to_wake = w;
    }
    // Mandatory tasks still queued must run: growth goes on for them (a
    // running task may be waiting for one).
    if (!controller_armed_ && growth::should_watch(snapshot_locked())) arm_controller_locked(a);
    lk.unlock();
    // Wake-ups and stop requests first, tasks ended last (see core.hpp).
    while (to_wake != nullptr) {
      Worker* w = to_wake;
      to_wake = w->wake_next;
      w->cv.notify_one();
      w->release();
    }
    ctl_cv_.notify_all();
    perform(a);
    for (TaskBase* task = to_stop.head; task != nullptr;) {
      TaskBase* next = task->next_;
      task->next_ = nullptr;
      task->request_stop();
      task->release();
      task = next;
    }
    end_tasks(cancelled, {JoinError::Kind::kCancelled, JoinError::Reason::kShutdown, {}});
    lk.lock();
  }
  // Wait for every thread but the caller's own (a task, or the controller
  // ending a task, may shut its pool down), then join the last to exit. Every
  // caller reports true only once that join is done, whoever made it.
  const std::size_t self = current_pool_core() == this ? 1 : 0;
  const pthread_t me = pthread_self();
  bool timed_out = false;
  for (;;) {
    const bool exited = live_os_threads_ <= self;
    if (exited && has_last_exited_ && !pthread_equal(last_exited_, me)) {
      // It has exited: joining it takes no time, even past the deadline.
      const pthread_t tid = last_exited_;
      has_last_exited_ = false;
      ++joining_;
      lk.unlock();
      pthread_join(tid, nullptr);
      lk.lock();
      --joining_;
      exit_cv_.notify_all();
      continue;
    }
    if (exited && joining_ == 0) return true;
    if (timed_out) return false;
    timed_out = exit_cv_.wait_until(lk.native(), deadline) == std::cv_status::timeout;
  }
}

Metrics Core::metrics() const {
  Metrics r;
  // Ended tasks first, then the queue, then spawned: every task counted as
  // ended or queued was counted as spawned before (its spawn's counter store
  // happens before the release that counts it ended or queued, which these
  // acquire loads see), so a snapshot never shows more ended or queued tasks
  // than spawned ones, even while tasks spawn more tasks.
  r.failed = m_.failed.load(std::memory_order_acquire);
  for (const RunShard& s : run_shards_) {
    r.completed += s.completed.load(std::memory_order_acquire);
    r.failed += s.failed.load(std::memory_order_acquire);
  }
  r.cancelled = m_.cancelled.load(std::memory_order_acquire);
  for (const auto& lane : lanes_) r.rejected += lane->rejected.load(std::memory_order_acquire);
  r.queue_depth = queue_depth();
  r.spawned = spawned_.load(kRelaxed);
  r.threads = m_.threads.load(kRelaxed);
  r.idle_threads = m_.idle.load(kRelaxed);
  r.threads_started = m_.threads_started.load(kRelaxed);
  r.threads_retired = m_.threads_retired.load(kRelaxed);
  r.spawn_failures = m_.spawn_failures.load(kRelaxed);
  r.peak_threads = m_.peak_threads.load(kRelaxed);
  r.hook_errors = m_.hook_errors.load(kRelaxed);
  r.slow_tasks = slow_tasks_.load(kRelaxed);

  // Lanes: the declared ones count for themselves; the default lane is the
  // pool minus them. Gauges under mu_, so a lane's running and queued agree.
  const double ns_per = record_latency_ ? ns_per_tick() : 1.0;
  r.lanes.resize(lanes_.size());
  std::uint64_t running_now = 0;
  {
    MutexGuard lk(mu_);
    for (std::size_t li = 0; li < lanes_.size(); ++li) {
      const Lane& lane = *lanes_[li];
      LaneMetrics& m = r.lanes[li];
      m.name = lane.name;
      if (li != 0) {
        m.running = locked(lane).running;
        m.queue_depth = lane_depth_locked(static_cast<unsigned>(li));
      }
      const std::uint64_t waiting = locked(lane).waiting;
      const std::uint64_t dead = lane.waiter_tombstones.load(kRelaxed);
      r.admission_waiting += waiting > dead ? waiting - dead : 0;
    }
    r.lanes[0].queue_depth = lane_depth_locked(0);
    running_now = running_tasks_;
  }
  LaneMetrics& def = r.lanes[0];
  def.spawned = r.spawned;
  def.completed = r.completed;
  def.failed = r.failed;
  def.cancelled = r.cancelled;
  std::uint64_t others_running = 0;
  for (std::size_t li = 1; li < lanes_.size(); ++li) {
    const Lane& lane = *lanes_[li];
    LaneMetrics& m = r.lanes[li];
    m.completed = lane.completed.load(std::memory_order_acquire);
    m.failed = lane.failed.load(std::memory_order_acquire);
    m.cancelled = lane.cancelled.load(std::memory_order_acquire);
    m.spawned = lane.spawned.load(kRelaxed);
    // Clamped: the two reads are not one transaction.
    auto minus = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
    def.spawned = minus(def.spawned, m.spawned);
    def.completed = minus(def.completed, m.completed);
    def.failed = minus(def.failed, m.failed);
    def.cancelled = minus(def.cancelled, m.cancelled);
    others_running += m.running;
  }
  for (std::size_t li = 0; li < lanes_.size(); ++li) r.lanes[li].rejected = lanes_[li]->rejected.load(std::memory_order_acquire);
  def.running = running_now > others_running ? running_now - others_running : 0;

  // Histograms: each lane's shards, and the pool's as their sum.
  std::vector<std::uint64_t> counts(Histogram::kBuckets);
  for (std::size_t li = 0; li < lanes_.size(); ++li) {
    const Lane& lane = *lanes_[li];
    for (const bool wait : {true, false}) {
      std::fill(counts.begin(), counts.end(), 0);
      std::uint64_t sum = 0;
      for (const LatencyShard& shard : lane.latency) (wait ? shard.queue_wait : shard.run_time).add_to(counts.data(), sum);
      Histogram h = Histogram::from_ticks(counts.data(), sum, ns_per);
      (wait ? r.queue_wait : r.run_time) += h;
      (wait ? r.lanes[li].queue_wait : r.lanes[li].run_time) = std::move(h);
    }
  }
  return r;
}

void submit(Core* core, TaskBase* task) noexcept {
  if (core == nullptr) {  // empty Handle: as if the pool were gone
    cancel_unqueued(task);
    return;
  }
  core->submit(task, false);
}

void submit_or_wait(Core* core, TaskBase* task) noexcept {
  if (core == nullptr) {
    cancel_unqueued(task);
    return;
  }
  core->submit(task, true);
}

Metrics metrics(const Core* core) {
  if (core != nullptr) return core->metrics();
  Metrics m;
  m.lanes.resize(1);  // an empty Handle: the default lane, empty
  return m;
}

unsigned lane_index(const Core* core, const std::string& name) { return core->lane_index(name); }

}  // namespace blockpool::detail
