// blockpool/detail/spin.hpp: polling helpers. Not a public header.
#pragma once

#include <atomic>
#include <thread>

namespace blockpool::detail {

// A hint to the CPU that we are polling (lets the sibling hyperthread run).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A lock for sections of a few instructions, where a blocking mutex's futex
// calls would cost more than the section (contended by a loop thread and the
// pool's threads at millions of operations a second). Spins, then yields the
// CPU every 64 polls: a holder preempted on a loaded machine gets it back.
// Meets Lockable (std::lock_guard).
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned i = 1;; ++i) {
      // Relaxed test first, so waiters share the line until it is free;
      // acquire on the exchange that takes it.
      if (!locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire)) return;
      if ((i & 63) == 0) std::this_thread::yield();
      cpu_relax();
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace blockpool::detail
