// src/pool.cpp: the Pool and Handle facades over detail::Core.
#include "blockpool/pool.hpp"

#include <stdexcept>

#include "core.hpp"

namespace blockpool {

Pool::Pool() : Pool(Builder{}.validated_config()) {}

Pool::Pool(Config config) {
  detail::validate_config(config);
  core_ = detail::Core::create(std::move(config));
}

Pool::Pool(Pool&& other) noexcept = default;

Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    if (core_) core_->shutdown(std::chrono::nanoseconds::max());
    core_ = std::move(other.core_);
  }
  return *this;
}

Pool::~Pool() {
  if (core_) core_->shutdown(std::chrono::nanoseconds::max());
}

detail::Core* Pool::core() const {
  if (!core_) throw std::logic_error("blockpool: use of a moved-from Pool");
  return core_.get();
}

Handle Pool::handle() const {
  (void)core();
  return Handle(core_, 0);
}

Handle Pool::lane(const std::string& name) const { return Handle(core_, detail::lane_index(core(), name)); }

bool Pool::shutdown(std::chrono::nanoseconds timeout) { return core()->shutdown(timeout); }

void Pool::shutdown_background() { core()->shutdown_background(); }

detail::Core* Handle::core() const { return core_.get(); }

}  // namespace blockpool
