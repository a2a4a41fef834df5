// blockpool/clock.hpp: the time source for keep-alive deadlines.
//
// A pool measures one thing on its Clock: how long an idle thread has waited
// for work (keep_alive). Nothing else in the pool waits on it; growth decisions
// use the real monotonic clock, so a clock that never moves cannot stall work.
//
// Two implementations ship:
//   * system_clock(): std::chrono::steady_clock; idle threads wait with a real
//     timeout. This is the default.
//   * testing::ManualClock (<blockpool/testing.hpp>): time moves only when a
//     test calls advance(); idle threads wait without a timeout and the clock
//     wakes them to re-check their deadline whenever it moves.
//
// Thread-safety: now() may be called from any thread at any time, including
// while the pool holds its internal lock, so it must not block and must not
// call back into a pool. add_observer/remove_observer may be called from any
// thread; an observer is never called after remove_observer returns.
#pragma once

#include <chrono>
#include <memory>

namespace blockpool {

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

  // Told when a virtual clock's time moves. Implemented by the pool.
  class Observer {
   public:
    virtual void on_time_advanced() noexcept = 0;

   protected:
    ~Observer() = default;
  };

  virtual ~Clock() = default;

  virtual time_point now() const noexcept = 0;

  // True when now() follows real time, so a pool may wait with a real timeout
  // of (deadline - now()). False for virtual clocks, which must instead call
  // every observer's on_time_advanced() after their time moves.
  virtual bool is_real_time() const noexcept = 0;

  virtual void add_observer(Observer* observer) = 0;
  virtual void remove_observer(Observer* observer) = 0;
};

// The process-wide real clock (steady_clock). Never null.
std::shared_ptr<Clock> system_clock();

}  // namespace blockpool
