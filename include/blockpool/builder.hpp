// blockpool/builder.hpp: configuration of a Pool.
//
//   blockpool::Pool pool = blockpool::Builder{}
//       .max_threads(64)
//       .keep_alive(std::chrono::seconds(10))
//       .thread_name("db-io")
//       .build();
//
// Every setter returns *this; build() validates and throws
// std::invalid_argument naming the offending setting. Setters themselves never
// throw for bad values, so a chain always reaches build().
//
// Defaults: max_threads 512, keep_alive 10 s, thread_name "blockpool", the
// platform's stack size, no hooks, system_clock().
//
// Hooks (on_thread_start, on_thread_stop, thread_name_fn) run on the pool's
// own threads, never under the pool's lock. An exception escaping a hook is
// caught: the thread goes on as if the hook had returned (with the default
// name for thread_name_fn), and Metrics::hook_errors counts it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blockpool/clock.hpp"
#include "blockpool/detail/duration.hpp"
#include "blockpool/lane.hpp"
#include "blockpool/task_options.hpp"
#include "blockpool/testing.hpp"

namespace blockpool {

class Pool;

// Plain configuration values; Builder fills one, the pool keeps a copy.
struct Config {
  std::size_t max_threads = 512;
  std::chrono::nanoseconds keep_alive = std::chrono::seconds(10);  // nanoseconds::max(): never retire
  std::string thread_name = "blockpool";
  std::function<std::string()> thread_name_fn;
  std::size_t stack_size = 0;  // 0: platform default
  std::function<void()> on_thread_start;
  std::function<void()> on_thread_stop;
  std::shared_ptr<Clock> clock;  // null: system_clock()
  testing::ThreadFaultInjector thread_fault;  // tests only
  // Admission control: queued tasks of the default lane, at most.
  std::size_t max_queued = std::numeric_limits<std::size_t>::max();
  // Declared lanes, in order (the default lane is not listed).
  std::vector<std::pair<std::string, LaneOptions>> lanes;
  // The slow-task watchdog: off while the callback is empty.
  std::chrono::nanoseconds slow_threshold{0};
  std::function<void(const SlowTask&)> on_slow_task;
  // Whether queue-wait and run-time histograms are recorded.
  bool record_latency = true;
};

namespace detail {
// Lanes a pool may have, the default lane included (a task's lane index is
// kept in 16 bits of its state word).
inline constexpr std::size_t kMaxLanes = 1u << 16;
// Throws std::invalid_argument naming the first bad setting of `config`.
void validate_config(const Config& config);
}  // namespace detail

class Builder {
 public:
  Builder() = default;

  // Upper bound on worker threads. 0 is an error.
  Builder& max_threads(std::size_t n) {
    config_.max_threads = n;
    return *this;
  }
  // How long an idle thread waits for work before it exits. Zero retires a
  // thread as soon as it finds the queue empty. Negative is an error. Any
  // duration type is accepted; one too long for nanoseconds (hours::max(),
  // seconds::max(), ...) saturates to nanoseconds::max(), which means an idle
  // thread never retires.
  template <class Rep, class Period>
  Builder& keep_alive(std::chrono::duration<Rep, Period> d) {
    const std::chrono::nanoseconds ns = detail::saturating_ns(d);
    keep_alive_negative_ = ns < ns.zero();
    config_.keep_alive = keep_alive_negative_ ? std::chrono::nanoseconds(0) : ns;
    return *this;
  }
  // Thread names are "<name>-<N>" cut to the platform limit (15 bytes on
  // Linux), keeping the index. An empty name is an error.
  Builder& thread_name(std::string name) {
    config_.thread_name = std::move(name);
    return *this;
  }
  // Called once per new thread, on that thread, before on_thread_start; the
  // result is used as it is, cut to the platform limit. Overrides thread_name.
  Builder& thread_name_fn(std::function<std::string()> fn) {
    config_.thread_name_fn = std::move(fn);
    return *this;
  }
  // Stack size in bytes for each worker thread; 0 means the platform default.
  // Values below the platform minimum are raised to it. A value the OS refuses
  // (say 1 TiB) is not an error here: thread creation fails, and tasks report
  // JoinError::is_spawn_failure() when no thread can run them.
  Builder& stack_size(std::size_t bytes) {
    config_.stack_size = bytes;
    return *this;
  }
  // Runs on each new thread before it takes any task.
  Builder& on_thread_start(std::function<void()> fn) {
    config_.on_thread_start = std::move(fn);
    return *this;
  }
  // Runs on each exiting thread after its last task, before the thread stops
  // counting as alive: after a complete shutdown every start has its stop.
  Builder& on_thread_stop(std::function<void()> fn) {
    config_.on_thread_stop = std::move(fn);
    return *this;
  }
  // The clock keep-alive is measured on (see clock.hpp). Null is an error.
  Builder& clock(std::shared_ptr<Clock> c) {
    config_.clock = std::move(c);
    clock_set_ = true;
    return *this;
  }
  // Admission control: at most `n` tasks of the default lane wait to start.
  // A spawn that finds the queue full never blocks: spawn_blocking returns a
  // handle that has already ended with a JoinError whose is_rejected() is
  // true (the callable never runs; metrics().rejected counts it);
  // async_spawn_blocking waits, without blocking any thread, until there is
  // room (see asio.hpp). Mandatory spawns are never rejected (they may exceed
  // the bound). 0 is an error; the default is unbounded.
  Builder& max_queued(std::size_t n) {
    config_.max_queued = n;
    return *this;
  }
  // Declares a lane (lane.hpp). A name declared twice, an empty name, or a
  // zero in `options` is an error at build().
  Builder& lane(std::string name, LaneOptions options = {}) {
    config_.lanes.emplace_back(std::move(name), options);
    return *this;
  }
  // The slow-task watchdog: `callback` runs once for each task still running
  // `threshold` after it started, on the pool's own controller thread (never
  // the slow task's, never under the pool's lock), with the task's name,
  // lane, how long it has run and its thread's name. Keep it short (log,
  // count): growth decisions wait while it runs. An exception from it is
  // caught and counted in Metrics::hook_errors. A pool with no slow task pays
  // no periodic wake-up for it: the watchdog sleeps without a timeout while
  // no task runs, and wakes at most once per threshold while tasks do. A
  // negative threshold is an error; any duration type is accepted.
  template <class Rep, class Period>
  Builder& on_slow_task(std::chrono::duration<Rep, Period> threshold, std::function<void(const SlowTask&)> callback) {
    config_.slow_threshold = detail::saturating_ns(threshold);
    config_.on_slow_task = std::move(callback);
    return *this;
  }
  // Whether the pool records queue-wait and run-time histograms (default:
  // yes; they cost a clock read on the spawn path and one per task on the
  // worker). Off, Metrics' histograms stay empty.
  Builder& record_latency(bool on) {
    config_.record_latency = on;
    return *this;
  }
  // Test seam: see testing::ThreadFaultInjector.
  Builder& thread_creation_fault_for_testing(testing::ThreadFaultInjector fault) {
    config_.thread_fault = std::move(fault);
    return *this;
  }

  // Validates the configuration; throws std::invalid_argument naming the
  // setting ("blockpool: max_threads must be at least 1", ...).
  [[nodiscard]] Pool build() const;

  // The validated configuration (throws like build()).
  [[nodiscard]] Config validated_config() const;

 private:
  Config config_;
  bool keep_alive_negative_ = false;
  bool clock_set_ = false;
};

}  // namespace blockpool
