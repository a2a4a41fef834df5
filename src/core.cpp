// src/core.cpp: spawning, shutdown, metrics and abort bookkeeping.
// See core.hpp for the locking rules; worker.cpp for the thread loops.
#include "core.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <thread>

#include "cpu_limit.hpp"

namespace blockpool::detail {

namespace {
thread_local Core* tls_pool_core = nullptr;

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

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

Core::Core(Config config)
    : config_(std::move(config)),
      clock_(config_.clock ? config_.clock : system_clock()),
      cpus_(usable_cpus()) {}

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
  s.queued = static_cast<std::size_t>(queue_depth());
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

void Core::submit(TaskBase* task) noexcept {
  Actions a;
  bool rejected = false;
  {
    std::lock_guard lk(mu_);
    spawned_.store(spawned_.load(kRelaxed) + 1, kRelaxed);  // only under mu_
    if (shutdown_) {
      rejected = true;
    } else {
      queue_push_locked(task);
      last_spawn_cpu_ = sched_getcpu();  // no syscall: glibc reads the rseq area (or the vDSO)
      if (spinners_ + waking_ > 0) {
        // A worker is already on its way (woken, or polling before it parks):
        // it takes this task, and wakes the next idle worker itself if more
        // work is queued by then (see run_worker). One wake-up in flight at a
        // time: a spawn burst does not wake a thread per task, only to find
        // the work already taken. Unless that worker is overdue: then it is
        // not running, and would hold up this task for as long as its CPU
        // stays taken, so wake another (growth.hpp, kHandOffTrust). The clock
        // is read only here, with an idle worker to wake.
        if (idle_head_ != nullptr) {
          const auto now = std::chrono::steady_clock::now();
          if (growth::hand_off_overdue(hand_off_at_, now)) wake_idle_locked(a, now);
        }
      } else if (idle_head_ != nullptr) {
        maybe_wake_idle_locked(a);
      } else {
        growth::Snapshot s = snapshot_locked();
        if (growth::spawn_must_start_thread(s)) {
          reserve_first_worker_locked(a);
        } else if (!controller_armed_ && growth::should_watch(s)) {
          arm_controller_locked(a);
        }
      }
    }
  }
  if (rejected) {
    m_.cancelled.fetch_add(1, std::memory_order_release);  // before the handle ends; see metrics()
    cancel_unqueued(task);
    return;
  }
  perform(a);
}

void Core::reserve_first_worker_locked(Actions& a) noexcept {
  ++threads_;
  ++starting_;
  ++live_os_threads_;
  a.start_workers = 1;
  if (!controller_running_) {
    controller_running_ = true;
    ++live_os_threads_;
    a.start_controller = true;
  }
}

void Core::maybe_wake_idle_locked(Actions& a) noexcept {
  if (a.wake != nullptr || idle_head_ == nullptr || spinners_ + waking_ > 0 || queue_depth() == 0)
    return;
  wake_idle_locked(a, std::chrono::steady_clock::now());
}

void Core::wake_idle_locked(Actions& a, std::chrono::steady_clock::time_point now) noexcept {
  Worker* w = pop_idle_near_locked(sched_getcpu());
  mark_notified_locked(w);
  hand_off_at_ = now;
  a.wake = w;
}

void Core::mark_notified_locked(Worker* w) noexcept {
  w->notified = true;
  ++waking_;
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
    std::lock_guard lk(mu_);
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
  TaskBase* t = queue_take_all_locked();
  while (t != nullptr) {
    TaskBase* next = t->next_;
    t->next_ = nullptr;
    if (keep_mandatory && t->mandatory() && t->state() == kQueued) {
      queue_push_locked(t);
    } else if (t->claim_from_queued(kAborting)) {
      out.push(t);
    } else {
      reap_tombstone(t);
    }
    t = next;
  }
}

void Core::end_tasks(TaskChain& tasks, const JoinErrorInfo& e) noexcept {
  const bool spawn_failure = e.kind == JoinError::Kind::kSpawnFailure;
  TaskBase* t = tasks.head;
  tasks.head = tasks.tail = nullptr;
  while (t != nullptr) {
    TaskBase* next = t->next_;
    t->next_ = nullptr;
    (spawn_failure ? m_.failed : m_.cancelled).fetch_add(1, std::memory_order_release);
    t->ops_->drop(t, e);
    t->end_for_pool(spawn_failure ? kFailed : kCancelled);
    t = next;
  }
}

TaskBase* Core::pop_locked() noexcept {
  while (!queue_.empty()) {
    TaskBase* t = queue_pop_locked();
    if (t->start_from_queued()) {
      ++started_tasks_;
      return t;
    }
    reap_tombstone(t);
  }
  return nullptr;
}

void Core::reap_tombstone(TaskBase* t) noexcept {
  // An aborting thread is between its claim and finish(): it is updating our
  // counters. Wait for it (a few instructions) so that it is done with this
  // Core before we can let the Core go. It never takes mu_, so waiting here
  // under mu_ cannot deadlock.
  while (t->state() == kAborting) sched_yield();
  tombstones_.fetch_sub(1, kRelaxed);  // counted by note_aborted, in kAborting
  t->release();
}

void Core::note_aborted(TaskBase* task) noexcept {
  const std::uint64_t dead = tombstones_.fetch_add(1, kRelaxed) + 1;
  m_.cancelled.fetch_add(1, std::memory_order_release);  // see metrics()
  // Aborted tasks stay linked (and allocated) until something unlinks them.
  // Once they are at least kSweepMin and half of the queue's entries, unlink
  // them all: each sweep is paid for by as many aborts as it removes, and
  // the queue never holds more dead entries than max(kSweepMin, live ones).
  // Only try the lock: whoever holds it may be waiting for `task` to leave
  // kAborting (see reap_tombstone); the next abort, pop or sweep then does it.
  constexpr std::uint64_t kSweepMin = 64;
  if (dead < kSweepMin || dead * 2 < queued_.load(kRelaxed)) return;
  std::unique_lock lk(mu_, std::try_to_lock);
  if (lk.owns_lock()) sweep_tombstones_locked(task);
}

void Core::sweep_tombstones_locked(TaskBase* self) noexcept {
  TaskBase* t = queue_take_all_locked();
  while (t != nullptr) {
    TaskBase* next = t->next_;
    t->next_ = nullptr;
    const std::uint32_t st = t->state();
    if (t == self) {
      // Our caller's own task: it holds a reference of its own (a handle's
      // or an operation's), so dropping the pool's cannot free the block.
      tombstones_.fetch_sub(1, kRelaxed);
      t->release();
    } else if (st == kQueued || st == kAborting) {
      queue_push_locked(t);  // alive, or its aborter is still counting it
    } else {
      reap_tombstone(t);  // done with the pool: no wait
    }
    t = next;
  }
}

void Core::queue_push_locked(TaskBase* t) noexcept {
  queue_.push(t);
  // Only under mu_. release: the spawn's spawned_ store comes first (see metrics()).
  queued_.store(queued_.load(kRelaxed) + 1, std::memory_order_release);
}

TaskBase* Core::queue_pop_locked() noexcept {
  queued_.store(queued_.load(kRelaxed) - 1, kRelaxed);
  return queue_.pop();
}

TaskBase* Core::queue_take_all_locked() noexcept {
  queued_.store(0, kRelaxed);
  return queue_.take_all();
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
  w->idle = true;
  w->idle_prev = nullptr;
  w->idle_next = idle_head_;
  if (idle_head_ != nullptr) idle_head_->idle_prev = w;
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
  Worker* w = idle_head_;
  if (cpu >= 0) {
    Worker* c = idle_head_;
    for (std::size_t i = 0; c != nullptr && i < growth::kWakeScan; ++i, c = c->idle_next) {
      if (c->park_cpu == cpu) {
        w = c;
        break;
      }
    }
  }
  remove_idle_locked(w);
  return w;
}

void Core::remove_idle_locked(Worker* w) noexcept {
  if (!w->idle) return;
  if (w->idle_prev != nullptr)
    w->idle_prev->idle_next = w->idle_next;
  else
    idle_head_ = w->idle_next;
  if (w->idle_next != nullptr) w->idle_next->idle_prev = w->idle_prev;
  w->idle_prev = w->idle_next = nullptr;
  w->idle = false;
  --idle_count_;
  m_.idle.fetch_sub(1, kRelaxed);
}

void Core::on_time_advanced() noexcept {
  // Called by a virtual clock (its own mutex held). Idle workers re-check
  // their deadlines; they cannot leave the idle list while we hold mu_, so
  // notifying under mu_ is safe (and this path is for tests only).
  std::lock_guard lk(mu_);
  for (Worker* w = idle_head_; w != nullptr; w = w->idle_next) w->cv.notify_one();
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
  std::unique_lock lk(mu_);
  if (!shutdown_) {
    shutdown_ = true;
    // Queued tasks: cancel the non-mandatory ones at once, keep the rest.
    take_queued_locked(cancelled, true);
    // Running tasks: trigger the stop tokens of the non-mandatory ones.
    for (Worker* w = all_head_; w != nullptr; w = w->all_next) {
      TaskBase* cur = w->current;
      if (cur != nullptr && !cur->mandatory() && cur->stoppable() && !cur->is_done()) {
        cur->add_ref();
        to_stop.push(cur);
      }
    }
    while (idle_head_ != nullptr) {
      Worker* w = pop_idle_locked();
      mark_notified_locked(w);
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
    timed_out = exit_cv_.wait_until(lk, deadline) == std::cv_status::timeout;
  }
}

Metrics Core::metrics() const noexcept {
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
  r.queue_depth = queue_depth();
  r.spawned = spawned_.load(kRelaxed);
  r.threads = m_.threads.load(kRelaxed);
  r.idle_threads = m_.idle.load(kRelaxed);
  r.threads_started = m_.threads_started.load(kRelaxed);
  r.threads_retired = m_.threads_retired.load(kRelaxed);
  r.spawn_failures = m_.spawn_failures.load(kRelaxed);
  r.peak_threads = m_.peak_threads.load(kRelaxed);
  r.hook_errors = m_.hook_errors.load(kRelaxed);
  return r;
}

void submit(Core* core, TaskBase* task) noexcept {
  if (core == nullptr) {  // empty Handle: as if the pool were gone
    cancel_unqueued(task);
    return;
  }
  core->submit(task);
}

Metrics metrics(const Core* core) noexcept { return core == nullptr ? Metrics{} : core->metrics(); }

}  // namespace blockpool::detail
