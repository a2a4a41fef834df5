// src/builder.cpp: configuration validation.
#include <stdexcept>

#include "blockpool/builder.hpp"
#include "blockpool/pool.hpp"

namespace blockpool {

Config Builder::validated_config() const {
  if (config_.max_threads == 0)
    throw std::invalid_argument("blockpool: max_threads must be at least 1 (got 0)");
  if (keep_alive_negative_) throw std::invalid_argument("blockpool: keep_alive must not be negative");
  if (config_.thread_name.empty() && !config_.thread_name_fn)
    throw std::invalid_argument("blockpool: thread_name must not be empty");
  if (clock_set_ && !config_.clock) throw std::invalid_argument("blockpool: clock must not be null");
  Config c = config_;
  if (!c.clock) c.clock = system_clock();
  return c;
}

Pool Builder::build() const { return Pool(validated_config()); }

}  // namespace blockpool
