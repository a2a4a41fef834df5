// blockpool/testing.hpp: seams for deterministic tests.
//
//   * ManualClock: a Clock whose time moves only when advance() is called, so
//     a test can retire idle threads after keep_alive without waiting.
//   * ThreadFaultInjector: makes the pool's thread creation fail on demand,
//     as if the OS had refused (EAGAIN by default). Installed with
//     Builder::thread_creation_fault_for_testing(); a pool without one pays
//     nothing (the check is one null test when a thread is created, never on
//     the spawn path).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "blockpool/clock.hpp"
#include "blockpool/detail/duration.hpp"

namespace blockpool::testing {

class ManualClock final : public Clock {
 public:
  ManualClock() = default;
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  time_point now() const noexcept override {
    // Relaxed suffices: the pool reads now() under its own lock after being
    // woken by on_time_advanced(), which is called after the store below and
    // synchronises through that lock.
    return time_point(duration(now_ns_.load(std::memory_order_relaxed)));
  }
  bool is_real_time() const noexcept override { return false; }

  // Moves time forward by d (negative values are ignored; time stops at
  // time_point::max() instead of overflowing) and tells every observing
  // pool, which re-checks its idle threads' deadlines. Returns after the pools
  // have been told, not after threads have retired: wait on metrics() for
  // that. Any duration type is accepted (hours::max() saturates).
  void advance(duration d);
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    advance(detail::saturating_ns(d));
  }

  void add_observer(Observer* observer) override;
  void remove_observer(Observer* observer) override;

 private:
  std::atomic<std::int64_t> now_ns_{0};
  std::mutex mu_;                     // guards observers_; held while notifying
  std::vector<Observer*> observers_;  // guarded by mu_
};

// Decides, for each thread the pool is about to create, whether creation
// "fails". The function receives the 0-based index of the creation attempt in
// this pool and returns 0 to let it proceed or an errno value (EAGAIN, ENOMEM,
// ...) to make it fail exactly as pthread_create would. Called outside the
// pool's lock, possibly from several threads at once.
using ThreadFaultInjector = std::function<int(std::uint64_t attempt)>;

// Turns the recycling of task blocks on or off for the whole process (on by
// default; always off in AddressSanitizer builds, where a recycled block
// would hide a use after free). With it off, every spawn makes
// its one allocation through ::operator new and every task block is freed
// with ::operator delete: for tests that count or fail allocations by
// replacing the global operator new. Call it while no pool runs tasks.
void set_task_block_cache(bool enabled) noexcept;

}  // namespace blockpool::testing
