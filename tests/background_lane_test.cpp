// Background lanes (LaneOptions::background): their tasks run at SCHED_IDLE;
// no task of another lane ever does, whether or not the thread can take its
// own priority back; a thread that cannot, exits after the task and the pool
// still runs everything queued behind it.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <linux/capability.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_util.hpp"

using bptest::Gate;
using bptest::kLongWait;
using bptest::wait_until;

namespace {

struct Sched {
  int policy = -1;  // without SCHED_RESET_ON_FORK
  int nice = 0;
  pid_t tid = 0;
};

Sched current_sched() {
  Sched s;
  s.policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
  errno = 0;
  s.nice = getpriority(PRIO_PROCESS, 0);
  s.tid = static_cast<pid_t>(::syscall(SYS_gettid));
  return s;
}

// Whether a thread of this process may leave SCHED_IDLE for its nice value
// (`nice`): asks the kernel on a scratch thread.
bool can_leave_idle(int nice) {
  bool ok = false;
  std::thread([&] {
    if (setpriority(PRIO_PROCESS, 0, nice) != 0) return;
    const sched_param p{};
    if (sched_setscheduler(0, SCHED_IDLE, &p) != 0) return;
    ok = sched_setscheduler(0, SCHED_OTHER, &p) == 0;
  }).join();
  return ok;
}

// Drops CAP_SYS_NICE from the calling thread's effective set (capabilities
// are per thread on Linux): with RLIMIT_NICE at 0 the thread can no longer
// leave SCHED_IDLE, as any unprivileged thread.
bool drop_sys_nice_here() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  data[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
  return ::syscall(SYS_capset, &hdr, data) == 0;
}

// Sets RLIMIT_NICE's soft limit for the test's duration (process-wide).
class NiceLimit {
 public:
  explicit NiceLimit(rlim_t soft) {
    ok_ = getrlimit(RLIMIT_NICE, &saved_) == 0;
    rlimit r = saved_;
    r.rlim_cur = soft;
    ok_ = ok_ && setrlimit(RLIMIT_NICE, &r) == 0;
  }
  ~NiceLimit() { (void)setrlimit(RLIMIT_NICE, &saved_); }
  NiceLimit(const NiceLimit&) = delete;
  NiceLimit& operator=(const NiceLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

}  // namespace

// The background lane's task runs at SCHED_IDLE; tasks of the default lane
// and of a plain lane, before and after it on the same thread, run at the
// thread's own policy and nice value (5, set by on_thread_start: what an
// application's hook may do). Where the kernel lets the thread go back
// (root, or an RLIMIT_NICE that allows nice 5), it is the same thread: no
// thread is spent on the background task.
TEST(BackgroundLane, TasksRunAtSchedIdleAndOtherLanesAtTheThreadsOwnPriority) {
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(1)
                             .on_thread_start([] { (void)setpriority(PRIO_PROCESS, 0, 5); })
                             .lane("bg", {.background = true})
                             .lane("plain", {.max_running = 1})
                             .build();
  const Sched before = pool.spawn_blocking(current_sched).get();
  const Sched bg = pool.lane("bg").spawn_blocking(current_sched).get();
  const Sched after = pool.spawn_blocking(current_sched).get();
  const Sched plain = pool.lane("plain").spawn_blocking(current_sched).get();

  EXPECT_EQ(before.policy, SCHED_OTHER);
  EXPECT_EQ(before.nice, 5);
  EXPECT_EQ(bg.policy, SCHED_IDLE);
  for (const Sched& s : {after, plain}) {
    EXPECT_EQ(s.policy, SCHED_OTHER);
    EXPECT_EQ(s.nice, 5);
  }
  if (can_leave_idle(5)) {
    EXPECT_EQ(bg.tid, before.tid);
    EXPECT_EQ(after.tid, before.tid);
    EXPECT_EQ(pool.metrics().threads_retired, 0u);
  }
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

// A thread that cannot leave SCHED_IDLE (an unprivileged process with
// RLIMIT_NICE 0, made here by dropping CAP_SYS_NICE on the pool's threads)
// runs no other task: it exits after the background task, counted as
// retired. With max_threads(1), the tasks queued behind it meanwhile still
// all run, on a new thread at the normal policy: nothing is stranded by the
// exit.
TEST(BackgroundLane, AThreadStuckAtIdleExitsAndTheTasksQueuedBehindItRun) {
  NiceLimit limit(0);
  ASSERT_TRUE(limit.ok());
  std::atomic<int> drops_failed{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(1)
                             .on_thread_start([&] {
                               if (!drop_sys_nice_here()) drops_failed.fetch_add(1);
                             })
                             .lane("bg", {.background = true})
                             .build();
  Gate release;
  std::atomic<bool> bg_running{false};
  auto bg = pool.lane("bg").spawn_blocking([&] {
    bg_running = true;
    release.wait();
    return current_sched();
  });
  ASSERT_TRUE(wait_until([&] { return bg_running.load(); }));
  std::vector<blockpool::JoinHandle<Sched>> queued;
  for (int i = 0; i < 4; ++i) queued.push_back(pool.spawn_blocking(current_sched));
  release.open();

  const Sched b = bg.get();
  ASSERT_EQ(drops_failed.load(), 0);
  EXPECT_EQ(b.policy, SCHED_IDLE);
  for (auto& h : queued) {
    ASSERT_TRUE(h.wait_for(kLongWait));
    const Sched s = h.get();
    EXPECT_EQ(s.policy, SCHED_OTHER);
    EXPECT_NE(s.tid, b.tid);
  }
  ASSERT_TRUE(wait_until([&] { return pool.metrics().threads_retired == 1; }));
  const blockpool::Metrics m = pool.metrics();
  EXPECT_EQ(m.threads_started, 2u);
  EXPECT_EQ(m.completed, 5u);
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

// A lane capped at one: its second task waits in the lane (held) while the
// first runs. The thread that ran the first cannot leave SCHED_IDLE and
// exits; the held task must still start, on the idle worker the exiting
// thread wakes (max_threads 2, both started before), and then on a thread
// the controller starts for it (max_threads 1: the exiting thread must not
// start its successor itself, or the successor would inherit SCHED_IDLE).
TEST(BackgroundLane, AHeldTaskStartsAfterItsLanesThreadExits) {
  NiceLimit limit(0);
  ASSERT_TRUE(limit.ok());
  for (const std::size_t max_threads : {2u, 1u}) {
    SCOPED_TRACE(max_threads);
    blockpool::Pool pool = blockpool::Builder{}
                               .max_threads(max_threads)
                               .on_thread_start([] { (void)drop_sys_nice_here(); })
                               .lane("bg", {.max_running = 1, .background = true})
                               .build();
    if (max_threads == 2) {
      bptest::BusyThreads both(pool, 2);
      ASSERT_TRUE(both.release_and_wait());
      ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == 2; }));
    }
    Gate release;
    std::atomic<bool> first_running{false};
    auto first = pool.lane("bg").spawn_blocking([&] {
      first_running = true;
      release.wait();
      return current_sched();
    });
    ASSERT_TRUE(wait_until([&] { return first_running.load(); }));
    auto second = pool.lane("bg").spawn_blocking(current_sched);
    release.open();
    ASSERT_TRUE(second.wait_for(kLongWait));
    const Sched a = first.get();
    const Sched b = second.get();
    EXPECT_EQ(a.policy, SCHED_IDLE);
    EXPECT_EQ(b.policy, SCHED_IDLE);
    EXPECT_NE(a.tid, b.tid);
    // The thread that ran the second task is at SCHED_IDLE too, and exits.
    ASSERT_TRUE(wait_until([&] { return pool.metrics().threads_retired == 2; }));
    EXPECT_EQ(pool.metrics().threads_started, 2u);  // no thread started for anything else
    // The pool still serves at the normal policy.
    EXPECT_EQ(pool.spawn_blocking(current_sched).get().policy, SCHED_OTHER);
    EXPECT_TRUE(pool.shutdown(kLongWait));
  }
}

// A task that throws or is cancelled in a background lane leaves the thread
// at its own priority all the same.
TEST(BackgroundLane, AThrowingTaskGivesThePriorityBackToo) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).lane("bg", {.background = true}).build();
  auto h = pool.lane("bg").spawn_blocking([]() -> int { throw std::runtime_error("boom"); });
  ASSERT_TRUE(h.wait_for(kLongWait));
  EXPECT_THROW(h.get(), std::runtime_error);
  EXPECT_EQ(pool.spawn_blocking(current_sched).get().policy, SCHED_OTHER);
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

namespace {

// Whether thread `tid` of this process is asleep (blocked, not runnable).
bool asleep(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* paren = std::strrchr(buf, ')');  // the name may hold spaces
  return n > 0 && paren != nullptr && paren[1] == ' ' && paren[2] == 'S';
}

}  // namespace

// A thread already waiting for the CPU when a background task starts there,
// such as the event loop that the worker just woke with the previous task's
// result, runs before the background task does. Linux does not reschedule
// when a thread moves itself to SCHED_IDLE (its static priority is the
// same), so unless the pool steps aside then, the waiter waits behind the
// background task until the next scheduler tick. The worker and the waiter
// are pinned to one CPU; the worker wakes the waiter in one task and starts
// the background task right after, without parking in between. (Without the
// step aside this fails about one run in two; sched_yield() instead fails
// one run in three.)
TEST(BackgroundLane, AThreadWaitingForTheCpuRunsBeforeTheBackgroundTaskDoes) {
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof mask, &mask), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &mask)) ++cpu;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);

  std::atomic<int> go{0};
  std::atomic<bool> waiter_ran{false};
  std::atomic<pid_t> waiter_tid{0};
  std::thread waiter([&] {
    (void)sched_setaffinity(0, sizeof one, &one);
    waiter_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
    go.wait(0);
    waiter_ran.store(true);
  });
  ASSERT_TRUE(wait_until([&] { return waiter_tid.load() != 0 && asleep(waiter_tid.load()); }));

  blockpool::Pool pool = blockpool::Builder{}
                             .max_threads(1)
                             .on_thread_start([&] { (void)sched_setaffinity(0, sizeof one, &one); })
                             .lane("bg", {.background = true})
                             .build();
  Gate gate;  // holds the one worker until both tasks are queued behind it
  auto hold = pool.spawn_blocking([&] { gate.wait(); });
  auto wake = pool.spawn_blocking([&] {
    go.store(1);
    go.notify_one();
  });
  auto bg = pool.lane("bg").spawn_blocking([&] { return waiter_ran.load(); });
  gate.open();
  ASSERT_TRUE(bg.wait_for(kLongWait));
  EXPECT_TRUE(bg.get()) << "the background task started before the thread waiting for its CPU ran";
  waiter.join();
  EXPECT_TRUE(pool.shutdown(kLongWait));
}
