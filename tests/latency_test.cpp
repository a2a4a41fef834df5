// Latency histograms (queue wait, run time), their Prometheus rendering, and
// the slow-task watchdog.
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "blockpool/detail/ticks.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using blockpool::Histogram;
using bptest::BusyThreads;
using bptest::Gate;
using bptest::kLongWait;
using bptest::wait_until;

// ---- Histogram arithmetic ----------------------------------------------------

TEST(Histogram, BucketsCoverEveryTickCountWithinSixPercent) {
  for (std::uint64_t v = 0; v < 100000; v = v < 64 ? v + 1 : v + v / 7 + 1) {
    const std::size_t b = Histogram::bucket_of(v);
    ASSERT_LT(b, Histogram::kBuckets);
    const std::uint64_t upper = Histogram::bucket_upper_ticks(b);
    EXPECT_GE(upper, v);
    EXPECT_LE(static_cast<double>(upper), static_cast<double>(v) * 1.0625 + 1) << v;
    if (b > 0) {
      EXPECT_LT(Histogram::bucket_upper_ticks(b - 1), v) << v;  // buckets are contiguous
    }
  }
  EXPECT_EQ(Histogram::bucket_of(UINT64_MAX), Histogram::kBuckets - 1);
}

// percentile(p) is an upper bound of the exact p-th percentile, within 10%,
// for any p, on a few shapes of distribution.
TEST(Histogram, PercentileIsAnUpperBoundWithinTenPercent) {
  std::mt19937_64 rng(42);
  const std::vector<std::string> shapes = {"uniform", "lognormal", "bimodal", "constant"};
  for (const auto& shape : shapes) {
    std::vector<std::uint64_t> v(20000);
    std::uniform_int_distribution<std::uint64_t> uni(1, 5'000'000);
    std::lognormal_distribution<double> logn(10.0, 2.0);
    for (auto& x : v) {
      if (shape == "uniform") x = uni(rng);
      if (shape == "lognormal") x = 1 + static_cast<std::uint64_t>(std::min(logn(rng), 1e15));
      if (shape == "bimodal") x = (rng() % 10 == 0) ? 50'000'000 + rng() % 1000 : 2'000 + rng() % 100;
      if (shape == "constant") x = 123'456;
    }
    std::vector<std::uint64_t> counts(Histogram::kBuckets);
    std::uint64_t sum = 0;
    for (auto x : v) {
      ++counts[Histogram::bucket_of(x)];
      sum += x;
    }
    const Histogram h = Histogram::from_ticks(counts.data(), sum, 1.0);  // ticks are ns here
    std::sort(v.begin(), v.end());
    EXPECT_EQ(h.count(), v.size());
    EXPECT_EQ(h.sum().count(), static_cast<std::int64_t>(sum));
    for (double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
      const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(p / 100.0 * v.size())));
      const double exact = static_cast<double>(v[rank - 1]);
      const double got = static_cast<double>(h.percentile(p).count());
      EXPECT_GE(got, exact) << shape << " p" << p;
      EXPECT_LE(got, exact * 1.10) << shape << " p" << p;
    }
  }
  EXPECT_EQ(Histogram{}.percentile(50).count(), 0);
}

// ---- The pool records every task -------------------------------------------------

TEST(Latency, QueueWaitAndRunTimeOfEveryTask) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  {
    BusyThreads busy(pool, 1);  // the next tasks wait behind it for a while
    std::vector<blockpool::JoinHandle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(pool.spawn_blocking([] { std::this_thread::sleep_for(2ms); }));
    std::this_thread::sleep_for(20ms);  // a queue wait to measure (not synchronisation)
    busy.release();
    for (auto& h : hs) ASSERT_TRUE(h.wait_for(kLongWait));
  }
  const auto m = pool.metrics();
  EXPECT_EQ(m.run_time.count(), 11u);
  EXPECT_EQ(m.queue_wait.count(), 11u);
  EXPECT_GE(m.run_time.percentile(50), 2ms);
  EXPECT_LE(m.run_time.percentile(50), 1s);
  EXPECT_GE(m.queue_wait.percentile(90), 20ms) << "the tasks waited behind the busy thread";
  EXPECT_GE(m.run_time.sum(), 20ms);
  ASSERT_EQ(m.lanes.size(), 1u);
  EXPECT_EQ(m.lanes[0].run_time.count(), 11u);
}

TEST(Latency, PerLaneAndOffWhenAsked) {
  blockpool::Pool pool = blockpool::Builder{}.lane("io", {.max_running = 4}).build();
  for (int i = 0; i < 5; ++i) pool.spawn_blocking([] {}).get();
  for (int i = 0; i < 3; ++i) pool.lane("io").spawn_blocking([] {}).get();
  auto m = pool.metrics();
  EXPECT_EQ(m.lanes[0].run_time.count(), 5u);
  EXPECT_EQ(m.lanes[1].run_time.count(), 3u);
  EXPECT_EQ(m.run_time.count(), 8u);

  blockpool::Pool quiet = blockpool::Builder{}.record_latency(false).build();
  quiet.spawn_blocking([] {}).get();
  m = quiet.metrics();
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.run_time.count(), 0u);
  EXPECT_EQ(m.queue_wait.count(), 0u);
}

TEST(Latency, TicksAreCalibratedAgainstTheSteadyClock) {
  const double ns = blockpool::detail::ns_per_tick();
  ASSERT_GT(ns, 0.0);
  const auto t0 = blockpool::detail::ticks();
  const auto s0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(50ms);
  const auto t1 = blockpool::detail::ticks();
  const auto s1 = std::chrono::steady_clock::now();
  const double measured = static_cast<double>(t1 - t0) * blockpool::detail::ns_per_tick();
  const double real = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(s1 - s0).count());
  EXPECT_NEAR(measured / real, 1.0, 0.02);
}

// ---- Prometheus -------------------------------------------------------------------

namespace {
std::string run(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *rc = ::pclose(p);
  return out;
}
}  // namespace

TEST(Prometheus, TextFormatAcceptedByPromtool) {
  blockpool::Pool pool = blockpool::Builder{}
                             .lane("dns", {.max_running = 2})
                             .lane("we\"ird\\name", {.max_running = 1})
                             .max_queued(100)
                             .build();
  for (int i = 0; i < 20; ++i) pool.spawn_blocking([] {}).get();
  pool.lane("dns").spawn_blocking([] { std::this_thread::sleep_for(1ms); }).get();
  pool.lane("we\"ird\\name").spawn_blocking([] {}).get();
  const std::string text = blockpool::to_prometheus(pool.metrics(), "pool=\"test\"");
  EXPECT_NE(text.find("# TYPE blockpool_queue_wait_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("blockpool_tasks_completed_total{pool=\"test\",lane=\"dns\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("blockpool_tasks_completed_total{pool=\"test\",lane=\"\"} 20"), std::string::npos);
  EXPECT_NE(text.find("lane=\"we\\\"ird\\\\name\""), std::string::npos) << "label values are escaped";
  EXPECT_NE(text.find("blockpool_run_time_seconds_count{pool=\"test\",lane=\"dns\"} 1"), std::string::npos);
  EXPECT_NE(text.find("le=\"+Inf\""), std::string::npos);
  // Every metric name starts with blockpool_.
  std::size_t pos = 0;
  while ((pos = text.find('\n', pos)) != std::string::npos && pos + 1 < text.size()) {
    ++pos;
    if (text[pos] != '#') {
      EXPECT_EQ(text.compare(pos, 10, "blockpool_"), 0) << text.substr(pos, 40);
    }
  }
  int rc = 0;
  (void)run("command -v promtool", &rc);
  if (rc != 0) GTEST_SKIP() << "promtool not installed (Debian's prometheus package)";
  char path[] = "/tmp/blockpool_metrics_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  const std::string out = run(std::string("promtool check metrics < ") + path + " 2>&1", &rc);
  ::unlink(path);
  EXPECT_EQ(rc, 0) << "promtool check metrics:\n" << out << "\n---\n" << text.substr(0, 3000);
  EXPECT_EQ(out, "") << "promtool's lint found something";
}

// ---- The slow-task watchdog -------------------------------------------------------

namespace {
struct Reports {
  std::mutex mu;
  std::vector<blockpool::SlowTask> got;  // views copied into strings below
  std::vector<std::string> names, lanes, threads;
  std::vector<pid_t> reporter_tids;
  void add(const blockpool::SlowTask& t) {
    std::lock_guard lk(mu);
    names.emplace_back(t.name);
    lanes.emplace_back(t.lane);
    threads.emplace_back(t.thread_name);
    got.push_back(blockpool::SlowTask{{}, {}, t.running_for, {}});
    reporter_tids.push_back(static_cast<pid_t>(::syscall(SYS_gettid)));
  }
  std::size_t size() {
    std::lock_guard lk(mu);
    return names.size();
  }
};
}  // namespace

TEST(SlowTask, ReportedOnceFromAThreadOfThePoolsOwn) {
  Reports reports;
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name("wd")
                             .lane("db", {.max_running = 2})
                             .on_slow_task(30ms, [&](const blockpool::SlowTask& t) { reports.add(t); })
                             .build();
  Gate gate;
  std::atomic<pid_t> task_tid{0};
  auto slow = pool.lane("db").spawn_blocking(
      [&] {
        task_tid = static_cast<pid_t>(::syscall(SYS_gettid));
        gate.wait();
      },
      blockpool::TaskOptions{.name = "db.query"});
  // Fast tasks meanwhile: never reported.
  for (int i = 0; i < 50; ++i) pool.spawn_blocking([] {}).get();
  ASSERT_TRUE(wait_until([&] { return reports.size() >= 1; })) << "the slow task was not reported";
  EXPECT_TRUE(bptest::stays_false([&] { return reports.size() > 1; }, 100ms)) << "reported more than once";
  gate.open();
  ASSERT_TRUE(slow.wait_for(kLongWait));
  std::lock_guard lk(reports.mu);
  ASSERT_EQ(reports.names.size(), 1u);
  EXPECT_EQ(reports.names[0], "db.query");
  EXPECT_EQ(reports.lanes[0], "db");
  EXPECT_EQ(reports.threads[0].rfind("wd-", 0), 0u) << reports.threads[0];
  EXPECT_GE(reports.got[0].running_for, 30ms);
  EXPECT_NE(reports.reporter_tids[0], task_tid.load()) << "never on the slow task's own thread";
  EXPECT_EQ(pool.metrics().slow_tasks, 1u);
}

TEST(SlowTask, ThrowingCallbackIsContainedAndCounted) {
  std::atomic<int> calls{0};
  blockpool::Pool pool = blockpool::Builder{}
                             .on_slow_task(std::chrono::milliseconds(5),
                                           [&](const blockpool::SlowTask&) {
                                             ++calls;
                                             throw std::runtime_error("logger down");
                                           })
                             .build();
  Gate gate;
  auto a = pool.spawn_blocking([&] { gate.wait(); });
  auto b = pool.spawn_blocking([&] { gate.wait(); });
  ASSERT_TRUE(wait_until([&] { return calls.load() == 2; }));
  gate.open();
  EXPECT_TRUE(a.wait_for(kLongWait));
  EXPECT_TRUE(b.wait_for(kLongWait));
  EXPECT_GE(pool.metrics().hook_errors, 2u);
  EXPECT_EQ(pool.spawn_blocking([] { return 3; }).get(), 3) << "the pool goes on";
}

TEST(SlowTask, NegativeThresholdIsAnErrorAnyDurationAccepted) {
  EXPECT_THROW((void)blockpool::Builder{}.on_slow_task(std::chrono::seconds(-1), [](const blockpool::SlowTask&) {}).build(),
               std::invalid_argument);
  EXPECT_NO_THROW((void)blockpool::Builder{}.on_slow_task(std::chrono::hours::max(), [](const blockpool::SlowTask&) {}).build());
  EXPECT_NO_THROW((void)blockpool::Builder{}.on_slow_task(std::chrono::seconds(0), [](const blockpool::SlowTask&) {}).build());
}

namespace {
// Context switches of the pool's controller thread (named "<name>-ctl").
long controller_switches(const std::string& ctl_name) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  long total = -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string dir = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(dir + "/comm");
    std::string name;
    if (!std::getline(comm, name) || name != ctl_name) continue;
    std::ifstream status(dir + "/status");
    std::string line;
    total = 0;
    while (std::getline(status, line))
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        total += std::stol(line.substr(line.find(':') + 1));
    break;
  }
  ::closedir(d);
  return total;
}
}  // namespace

// With the watchdog on and no task running, its thread sleeps without a
// timeout: no periodic wake-up at all.
TEST(SlowTask, NoWakeUpWhileNoTaskRuns) {
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name("idlewd")
                             .keep_alive(std::chrono::hours(1))
                             .on_slow_task(1ms, [](const blockpool::SlowTask&) {})
                             .build();
  for (int i = 0; i < 20; ++i) pool.spawn_blocking([] {}).get();
  ASSERT_TRUE(wait_until([&] { return pool.metrics().idle_threads == pool.metrics().threads; }));
  // The watchdog may still be due once, for the last task's deadline (1 ms
  // after it started): wait until its thread has been still for 20 ms.
  long before = controller_switches("idlewd-ctl");
  ASSERT_GE(before, 0) << "controller thread not found";
  ASSERT_TRUE(wait_until([&] {
    const long a = controller_switches("idlewd-ctl");
    std::this_thread::sleep_for(20ms);
    before = controller_switches("idlewd-ctl");
    return a == before;
  }));
  // Then nothing, for a window (a negative assertion, as stays_false).
  EXPECT_TRUE(bptest::stays_false([&] { return controller_switches("idlewd-ctl") != before; }, 300ms))
      << "the watchdog woke while no task ran";
}
