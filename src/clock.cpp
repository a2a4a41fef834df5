// src/clock.cpp: the real clock and testing::ManualClock.
#include <algorithm>

#include "blockpool/clock.hpp"
#include "blockpool/testing.hpp"

namespace blockpool {

namespace {
class SteadyClock final : public Clock {
 public:
  time_point now() const noexcept override {
    return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }
  bool is_real_time() const noexcept override { return true; }
  void add_observer(Observer*) override {}
  void remove_observer(Observer*) override {}
};
}  // namespace

std::shared_ptr<Clock> system_clock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<SteadyClock>();
  return clock;
}

namespace testing {

void ManualClock::advance(duration d) {
  std::lock_guard lk(mu_);
  if (d > duration::zero()) {
    // Only advance() writes now_ns_, under mu_: a plain load and store.
    now_ns_.store(detail::saturating_add(now_ns_.load(std::memory_order_relaxed), d.count()),
                  std::memory_order_relaxed);
  }
  // Told under mu_ so that remove_observer() cannot return while an observer
  // is being called (a pool removes itself before it is destroyed).
  for (Observer* o : observers_) o->on_time_advanced();
}

void ManualClock::add_observer(Observer* observer) {
  std::lock_guard lk(mu_);
  observers_.push_back(observer);
}

void ManualClock::remove_observer(Observer* observer) {
  std::lock_guard lk(mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer), observers_.end());
}

}  // namespace testing
}  // namespace blockpool
