// tests/stress_util.hpp: helpers shared by the stress, fault and load tests.
//
// Budget: BLOCKPOOL_STRESS_SECONDS (default 10) is the time the whole stress
// binary may spend; each test takes a share of it. Time only bounds how many
// rounds run, it is never asserted on. Seeds: BLOCKPOOL_STRESS_SEED fixes the
// base seed (otherwise random); every failure message carries it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "blockpool/blockpool.hpp"

namespace stress {

inline double budget_seconds() {
  const char* s = std::getenv("BLOCKPOOL_STRESS_SECONDS");
  if (s == nullptr || *s == '\0') return 10.0;
  const double v = std::strtod(s, nullptr);
  return v > 0 ? v : 10.0;
}

inline std::uint64_t base_seed() {
  static const std::uint64_t seed = [] {
    if (const char* s = std::getenv("BLOCKPOOL_STRESS_SEED"); s != nullptr && *s != '\0')
      return static_cast<std::uint64_t>(std::strtoull(s, nullptr, 0));
    return (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }();
  return seed;
}

// Runs rounds until `share` of the budget is spent (at least min_rounds, at
// most max_rounds). Returns the number of rounds run.
class Deadline {
 public:
  explicit Deadline(double share)
      : end_(std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(budget_seconds() * share))) {}
  bool expired() const { return std::chrono::steady_clock::now() >= end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

// Waits (yielding, never sleeping as synchronisation) until pred() holds or a
// generous real-time bound passes; the bound only turns a hang into a failure.
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds bound = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::yield();
  }
  return true;
}

inline std::string seed_msg(std::uint64_t seed) {
  return "seed=" + std::to_string(seed) + " (rerun with BLOCKPOOL_STRESS_SEED=" +
         std::to_string(seed) + ")";
}

}  // namespace stress
