// blockpool/task_options.hpp: per-spawn options, and what the slow-task
// watchdog reports.
//
//   auto h = pool.spawn_blocking(f, blockpool::TaskOptions{.name = "db.query"});
#pragma once

#include <chrono>
#include <string_view>

namespace blockpool {

struct TaskOptions {
  // A name for the task in slow-task reports. Must point to a string that
  // outlives the task (a string literal): it is not copied.
  const char* name = nullptr;
  // async_spawn_blocking only: on a full queue (Builder::max_queued, a
  // lane's), complete at once with a rejected JoinError instead of waiting
  // for room, as spawn_blocking always does. For a server that answers 503
  // rather than queue requests it cannot serve soon.
  bool reject_when_full = false;
};

// What Builder::on_slow_task's callback receives about a task still running
// `threshold` after it started. The views are valid during the call only.
struct SlowTask {
  std::string_view name;         // TaskOptions::name, "" if none
  std::string_view lane;         // the lane's name, "" for the default lane
  std::chrono::nanoseconds running_for;
  std::string_view thread_name;  // the OS name of the thread running it
};

}  // namespace blockpool
