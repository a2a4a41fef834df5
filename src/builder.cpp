// src/builder.cpp: configuration validation.
#include <set>
#include <stdexcept>
#include <string>

#include "blockpool/builder.hpp"
#include "blockpool/pool.hpp"

namespace blockpool {

namespace detail {
void validate_config(const Config& config) {
  if (config.max_threads == 0)
    throw std::invalid_argument("blockpool: max_threads must be at least 1 (got 0)");
  if (config.keep_alive < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("blockpool: keep_alive must not be negative");
  if (config.thread_name.empty() && !config.thread_name_fn)
    throw std::invalid_argument("blockpool: thread_name must not be empty");
  if (config.max_queued == 0) throw std::invalid_argument("blockpool: max_queued must be at least 1 (got 0)");
  if (config.lanes.size() > kMaxLanes - 1)
    throw std::invalid_argument("blockpool: too many lanes (at most " + std::to_string(kMaxLanes - 1) + ")");
  std::set<std::string> names;
  for (const auto& [name, options] : config.lanes) {
    if (name.empty()) throw std::invalid_argument("blockpool: a lane's name must not be empty");
    if (!names.insert(name).second)
      throw std::invalid_argument("blockpool: lane \"" + name + "\" is declared twice");
    if (options.max_running == 0)
      throw std::invalid_argument("blockpool: lane \"" + name + "\": max_running must be at least 1 (got 0)");
    if (options.max_queued == 0)
      throw std::invalid_argument("blockpool: lane \"" + name + "\": max_queued must be at least 1 (got 0)");
  }
  if (config.on_slow_task && config.slow_threshold < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("blockpool: on_slow_task's threshold must not be negative");
}
}  // namespace detail

Config Builder::validated_config() const {
  // keep_alive() clamps a negative duration (so a chain never throws) and
  // remembers it; report it here in the order the settings are checked.
  if (config_.max_threads != 0 && keep_alive_negative_)
    throw std::invalid_argument("blockpool: keep_alive must not be negative");
  detail::validate_config(config_);
  if (clock_set_ && !config_.clock) throw std::invalid_argument("blockpool: clock must not be null");
  Config c = config_;
  if (!c.clock) c.clock = system_clock();
  return c;
}

Pool Builder::build() const { return Pool(validated_config()); }

}  // namespace blockpool
