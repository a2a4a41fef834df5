// bench/peers/measure.hpp: measuring helpers shared by the C++ peers.
//
// Rules (bench/tokio/src/main.rs follows the same):
//   * CPU time: getrusage(RUSAGE_SELF) user+sys delta over the scenario (all
//     threads, exited ones included), minus the CPU the sampler thread used.
//   * Context switches: ru_nvcsw + ru_nivcsw delta (all threads).
//   * Peak threads: the "Threads:" line of /proc/self/status, sampled by a
//     sampler thread every ~1 ms (and once at the end), minus the harness's
//     own threads (loop thread, sampler, spawner threads of "contended").
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline std::uint64_t nanos(Clock::duration d) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

inline long proc_threads() {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = std::strstr(buf, "Threads:");
  return p ? std::strtol(p + 8, nullptr, 10) : 0;
}

inline double thread_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Usage {
  double cpu_s = 0;
  long csw = 0;
};

inline Usage usage() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto tv = [](timeval t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return {tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_nvcsw + ru.ru_nivcsw};
}

class Sampler {
 public:
  Sampler() {
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        bump(proc_threads());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      bump(proc_threads());
      cpu_s_ = thread_cpu_s();
    });
    while (peak_.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  ~Sampler() { stop(); }

  void stop() {
    if (thread_.joinable()) {
      stop_.store(true, std::memory_order_relaxed);
      thread_.join();
    }
  }
  long peak() const { return peak_.load(); }
  double cpu_s() const { return cpu_s_; }

 private:
  void bump(long v) {
    long cur = peak_.load(std::memory_order_relaxed);
    while (v > cur && !peak_.compare_exchange_weak(cur, v)) {
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  double cpu_s_ = 0;
  std::thread thread_;
};

inline double percentile_us(const std::vector<std::uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  idx = std::clamp<std::size_t>(idx, 1, sorted.size()) - 1;
  return static_cast<double>(sorted[idx]) / 1000.0;
}

// One JSON object on one line.
class Out {
 public:
  Out(const char* peer, const std::string& scenario) {
    str("peer", peer);
    str("scenario", scenario);
  }
  void str(const char* k, const std::string& v) { add(k, "\"" + v + "\""); }
  void num(const char* k, double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    add(k, b);
  }
  void integer(const char* k, long long v) { add(k, std::to_string(v)); }
  void boolean(const char* k, bool v) { add(k, v ? "true" : "false"); }
  void print() const { std::printf("{%s}\n", body_.c_str()); }

 private:
  void add(const char* k, const std::string& v) {
    if (!body_.empty()) body_ += ",";
    body_ += "\"";
    body_ += k;
    body_ += "\":";
    body_ += v;
  }
  std::string body_;
};

}  // namespace bench
