// Durations and time points at their limits (issue 16, point 10). Every
// duration or time point that enters the library saturates instead of
// overflowing, whatever its type: min, max, zero and negative values are
// swept through every entry point (Builder::keep_alive, Pool::shutdown,
// JoinHandle::wait_for / wait_until, ManualClock::advance). Run under UBSan in
// CI, where an overflow is an error.
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <thread>

#include "blockpool/testing.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using bptest::Gate;
using bptest::kLongWait;
using bptest::wait_until;
using blockpool::detail::saturating_ns;
using std::chrono::nanoseconds;

TEST(Durations, SaturatingConversion) {
  EXPECT_EQ(saturating_ns(std::chrono::seconds::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::hours::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::milliseconds::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::microseconds::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(nanoseconds::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::seconds::min()), nanoseconds::min());
  EXPECT_EQ(saturating_ns(std::chrono::hours::min()), nanoseconds::min());
  EXPECT_EQ(saturating_ns(std::chrono::seconds(-1)), nanoseconds(-1'000'000'000));
  EXPECT_EQ(saturating_ns(std::chrono::seconds(0)), nanoseconds(0));
  EXPECT_EQ(saturating_ns(std::chrono::duration<int, std::milli>(100)), 100ms);
  EXPECT_EQ(saturating_ns(std::chrono::duration<int, std::milli>::max()),
            std::chrono::milliseconds(std::numeric_limits<int>::max()));
  EXPECT_EQ(saturating_ns(std::chrono::duration<unsigned long long, std::milli>::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::duration<unsigned>(3)), 3s);
  EXPECT_EQ(saturating_ns(std::chrono::duration<long long, std::pico>::max()),
            nanoseconds(std::numeric_limits<long long>::max() / 1000));
  EXPECT_EQ(saturating_ns(std::chrono::duration<long long, std::pico>(-1500)), nanoseconds(-1));
  EXPECT_EQ(saturating_ns(std::chrono::duration<long long, std::ratio<1, 3>>(4)), nanoseconds(1'333'333'333));
  EXPECT_EQ(saturating_ns(std::chrono::duration<long long, std::ratio<1, 3>>::max()), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(1.5)), 1500ms);
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(1e300)), nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(-1e300)), nanoseconds::min());
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(std::numeric_limits<double>::infinity())),
            nanoseconds::max());
  EXPECT_EQ(saturating_ns(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())),
            nanoseconds(0));
}

// The same checks for every duration type a user may pass.
template <class D>
class DurationLimits : public ::testing::Test {};
using DurationTypes =
    ::testing::Types<std::chrono::nanoseconds, std::chrono::microseconds, std::chrono::milliseconds,
                     std::chrono::seconds, std::chrono::minutes, std::chrono::hours,
                     std::chrono::duration<int, std::milli>, std::chrono::duration<short>,
                     std::chrono::duration<unsigned long long, std::milli>, std::chrono::duration<double>,
                     std::chrono::duration<float, std::milli>>;
TYPED_TEST_SUITE(DurationLimits, DurationTypes);

namespace {
template <class D>
bool negative_representable() {
  return D::min() < D::zero();
}
}  // namespace

TYPED_TEST(DurationLimits, KeepAlive) {
  using D = TypeParam;
  // Negative: an error at build(), never at the setter.
  if (negative_representable<D>()) {
    EXPECT_THROW((void)blockpool::Builder{}.keep_alive(D::min()).build(), std::invalid_argument);
    EXPECT_THROW((void)blockpool::Builder{}.keep_alive(D(-1)).build(), std::invalid_argument);
  }
  // Zero: accepted; an idle thread retires as soon as it finds no work.
  {
    blockpool::Pool pool = blockpool::Builder{}.keep_alive(D::zero()).build();
    EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
    EXPECT_TRUE(wait_until([&] { return pool.metrics().threads == 0; }));
  }
  // Max: accepted. Beyond what nanoseconds can hold it means "never retire",
  // however far a clock moves; otherwise it is an ordinary (long) keep-alive.
  {
    auto clock = std::make_shared<blockpool::testing::ManualClock>();
    blockpool::Pool pool = blockpool::Builder{}.keep_alive(D::max()).clock(clock).build();
    ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(pool, 1));
    if (saturating_ns(D::max()) == nanoseconds::max()) {
      clock->advance(std::chrono::hours(24 * 365 * 200));
      clock->advance(D::max());
      clock->advance(std::chrono::hours::max());
      EXPECT_TRUE(bptest::stays_false([&] { return pool.metrics().threads_retired != 0; }));
      EXPECT_EQ(pool.metrics().idle_threads, 1u);
    } else {
      clock->advance(saturating_ns(D::max()) - nanoseconds(1));
      EXPECT_TRUE(bptest::stays_false([&] { return pool.metrics().threads_retired != 0; }));
      clock->advance(nanoseconds(1));
      EXPECT_TRUE(wait_until([&] { return pool.metrics().threads_retired == 1; }));
    }
  }
}

TYPED_TEST(DurationLimits, ShutdownTimeout) {
  using D = TypeParam;
  std::vector<D> at_once = {D::zero()};
  if (negative_representable<D>()) {
    at_once.push_back(D::min());
    at_once.push_back(D(-1));
  }
  for (D d : at_once) {
    // With a task still running, a timeout of zero or less returns at once.
    blockpool::Pool pool;
    bptest::BusyThreads busy(pool, 1);
    EXPECT_FALSE(pool.shutdown(d));
    busy.release();
    EXPECT_TRUE(pool.shutdown(kLongWait));
  }
  // Max waits without a limit: it returns only when the task has ended.
  {
    blockpool::Pool pool;
    bptest::BusyThreads busy(pool, 1);
    auto done = std::async(std::launch::async, [&] { return pool.shutdown(D::max()); });
    EXPECT_EQ(done.wait_for(50ms), std::future_status::timeout) << "shutdown(max) gave up early";
    busy.release();
    ASSERT_EQ(done.wait_for(kLongWait), std::future_status::ready);
    EXPECT_TRUE(done.get());
  }
}

TYPED_TEST(DurationLimits, JoinHandleWaits) {
  using D = TypeParam;
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] {
    gate.wait();
    return 5;
  });
  EXPECT_FALSE(h.wait_for(D::zero()));
  if (negative_representable<D>()) {
    EXPECT_FALSE(h.wait_for(D::min()));
    EXPECT_FALSE(h.wait_for(D(-1)));
  }
  using TP = std::chrono::time_point<std::chrono::steady_clock, D>;
  EXPECT_FALSE(h.wait_until(TP::min()));
  EXPECT_FALSE(h.wait_until(TP(D::zero())));
  // Max waits until the task ends.
  auto waited = std::async(std::launch::async, [&] { return h.wait_for(D::max()); });
  EXPECT_EQ(waited.wait_for(50ms), std::future_status::timeout) << "wait_for(max) gave up early";
  gate.open();
  ASSERT_EQ(waited.wait_for(kLongWait), std::future_status::ready);
  EXPECT_TRUE(waited.get());
  EXPECT_TRUE(h.wait_until(TP::max()));
  EXPECT_TRUE(h.wait_for(D::zero()));
  EXPECT_EQ(h.get(), 5);
}

TEST(Durations, WaitUntilMaxWaitsForTheTask) {
  blockpool::Pool pool;
  Gate gate;
  auto h = pool.spawn_blocking([&] { gate.wait(); });
  auto waited = std::async(std::launch::async,
                           [&] { return h.wait_until(std::chrono::steady_clock::time_point::max()); });
  EXPECT_EQ(waited.wait_for(50ms), std::future_status::timeout);
  gate.open();
  ASSERT_EQ(waited.wait_for(kLongWait), std::future_status::ready);
  EXPECT_TRUE(waited.get());
}

TEST(Durations, ShortIntTimeoutTimesOut) {
  // duration<int, milli>(100) must mean 100 ms (it was once taken for "no limit").
  blockpool::Pool pool;
  bptest::BusyThreads busy(pool, 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(pool.shutdown(std::chrono::duration<int, std::milli>(100)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  busy.release();
  EXPECT_TRUE(pool.shutdown(kLongWait));
}

TEST(Durations, ManualClockSaturates) {
  blockpool::testing::ManualClock clock;
  clock.advance(std::chrono::hours::max());
  EXPECT_EQ(clock.now(), blockpool::Clock::time_point::max());
  clock.advance(1s);
  EXPECT_EQ(clock.now(), blockpool::Clock::time_point::max());
  clock.advance(std::chrono::seconds::min());  // negative: ignored
  EXPECT_EQ(clock.now(), blockpool::Clock::time_point::max());
}

// A finite keep-alive on a clock that reaches its end retires idle threads
// (the deadline saturates at the clock's end, and the clock reaches it).
TEST(Durations, KeepAliveDeadlineSaturatesAtTheClocksEnd) {
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  blockpool::Pool pool = blockpool::Builder{}.keep_alive(1h).clock(clock).build();
  clock->advance(nanoseconds::max() - nanoseconds(1));
  ASSERT_NO_FATAL_FAILURE(bptest::start_idle_workers(pool, 1));
  clock->advance(2h);
  EXPECT_TRUE(wait_until([&] { return pool.metrics().threads_retired == 1; }));
}
