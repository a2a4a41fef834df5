// src/task.cpp: ending a task and waiting for it (Linux futex on the state word).
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>

#include "blockpool/detail/task.hpp"
#include "core.hpp"

namespace blockpool::detail {

namespace {
Continuation* const kDone = reinterpret_cast<Continuation*>(static_cast<std::uintptr_t>(1));

// std::atomic<std::uint32_t> has the size and alignment of std::uint32_t on
// every platform we build for; the kernel reads the word, we never write it
// through this pointer.
std::uint32_t* futex_word(std::atomic<std::uint32_t>& a) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(&a);
}

void futex_wake_all(std::atomic<std::uint32_t>& a) noexcept {
  syscall(SYS_futex, futex_word(a), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// Sleeps while the word equals `expected`, until woken or (when `abs` is not
// null) the CLOCK_MONOTONIC time *abs. Spurious returns are fine: callers loop.
void futex_wait(std::atomic<std::uint32_t>& a, std::uint32_t expected, const timespec* abs) noexcept {
  syscall(SYS_futex, futex_word(a), FUTEX_WAIT_BITSET_PRIVATE, expected, abs, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}
}  // namespace

void TaskBase::finish(std::uint32_t final_state) noexcept {
  // acq_rel: release publishes the stored result to every reader that
  // acquires the state; acquire orders us after a waiter's bit-setting CAS.
  // The mandatory bit is immutable, so reading it apart from the exchange is safe.
  const std::uint32_t keep = state_.load(std::memory_order_relaxed) & kFixedBits;
  if ((keep & kHandOffBit) != 0) {
    // Only the pool ends a hand-off task, once: nobody waits on it (no
    // JoinHandle) and its continuation was set before it was shared. Release
    // publishes the result with the state; the continuation hands the block
    // to whoever reads them, and this thread must not touch it after.
    Continuation* c = cont_.load(std::memory_order_relaxed);
    state_.store(final_state | keep, std::memory_order_release);
    c->fn(c);
    return;
  }
  const std::uint32_t prev = state_.exchange(final_state | keep, std::memory_order_acq_rel);
  if ((prev & kWaiterBit) != 0) futex_wake_all(state_);
  // acq_rel: acquire sees the continuation's fields written before it was
  // published; release lets a later set_continuation (which fails) see the
  // result.
  Continuation* c = cont_.exchange(kDone, std::memory_order_acq_rel);
  if (c != nullptr && c != kDone) c->fn(c);
}

namespace {
// Before sleeping on the futex, poll for a short while: a short task often
// ends within microseconds, and waking a sleeping thread (and its CPU) costs
// tens of microseconds on a VM. Bounded, so a long task costs its waiter at
// most this much CPU.
constexpr std::int64_t kWaitSpinNs = 20000;

std::int64_t monotonic_ns() noexcept {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

bool spin_until_final(const std::atomic<std::uint32_t>& state) noexcept {
  const std::int64_t until = monotonic_ns() + kWaitSpinNs;
  for (unsigned i = 1;; ++i) {
    if (is_final(state.load(std::memory_order_acquire))) return true;
    if ((i & 63) == 0 && monotonic_ns() > until) return false;
    cpu_relax();
  }
}
}  // namespace

void TaskBase::wait() noexcept {
  // Polling pays only if the task can end meanwhile: when the process may
  // use one CPU, the thread that runs the task needs the one the poller
  // holds (as for a worker's poll, WakePolicy::poll_before_parking).
  static const bool may_poll = usable_cpus() > 1;
  if (!may_poll || !spin_until_final(state_)) (void)sleep_until_final(kNoDeadline);
}

bool TaskBase::wait_until_ns(std::int64_t steady_deadline_ns) noexcept {
  if (steady_deadline_ns == kNoDeadline) {
    wait();
    return true;
  }
  return sleep_until_final(steady_deadline_ns);
}

bool TaskBase::sleep_until_final(std::int64_t steady_deadline_ns) noexcept {
  const bool timed = steady_deadline_ns != kNoDeadline;
  // A deadline before the clock's epoch (time_point::min(), say) has passed.
  const std::int64_t deadline = steady_deadline_ns < 0 ? 0 : steady_deadline_ns;
  timespec abs{};
  abs.tv_sec = static_cast<time_t>(deadline / 1000000000);
  abs.tv_nsec = static_cast<long>(deadline % 1000000000);
  std::uint32_t s = state_.load(std::memory_order_acquire);
  while (!is_final(s)) {
    if (timed && monotonic_ns() >= deadline) return false;
    if ((s & kWaiterBit) == 0) {
      if (!state_.compare_exchange_weak(s, s | kWaiterBit, std::memory_order_acquire,
                                        std::memory_order_acquire))
        continue;
      s |= kWaiterBit;
    }
    futex_wait(state_, s, timed ? &abs : nullptr);
    s = state_.load(std::memory_order_acquire);
  }
  return true;
}

bool TaskBase::cancel_if_queued() noexcept {
  std::uint32_t prev = 0;
  if (!claim_from_queued(kAborting, &prev)) return false;
  // Still in the queue, a lane's held list or the admission waiters (or
  // about to be popped): this thread ends it. The Core is alive: a queued
  // task keeps its pool's threads from exiting, and whoever unlinks us waits
  // until we leave kAborting (just below).
  if (core_ != nullptr) core_->note_aborted(this, (prev & kAdmissionWaitBit) != 0);
  leave_aborting();  // from here on this thread does not touch the Core
  ops_->drop(this, {JoinError::Kind::kCancelled, JoinError::Reason::kAborted, {}});
  finish(kCancelled);
  return true;
}

bool TaskBase::abort() noexcept {
  if (cancel_if_queued()) return true;
  const std::uint32_t s = state();
  if (s == kRunning) {
    request_stop();
    return false;
  }
  return s == kCancelled || s == kCancelling || s == kAborting;
}

}  // namespace blockpool::detail
