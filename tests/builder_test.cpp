// Builder: configuration validation and that settings take effect.
#include <stdexcept>

#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {
// Expects build() to throw std::invalid_argument whose what() names `setting`.
template <class B>
void expect_invalid(const B& builder, const std::string& setting) {
  try {
    (void)builder.build();
    ADD_FAILURE() << "build() accepted a bad " << setting;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(setting), std::string::npos) << e.what();
  } catch (...) {
    ADD_FAILURE() << "build() threw something other than std::invalid_argument for " << setting;
  }
}
}  // namespace

TEST(Builder, MaxThreadsZeroIsError) { expect_invalid(blockpool::Builder{}.max_threads(0), "max_threads"); }

TEST(Builder, NegativeKeepAliveIsError) {
  expect_invalid(blockpool::Builder{}.keep_alive(-1s), "keep_alive");
  expect_invalid(blockpool::Builder{}.keep_alive(std::chrono::nanoseconds(-1)), "keep_alive");
  expect_invalid(blockpool::Builder{}.keep_alive(std::chrono::duration<double>(-0.5)), "keep_alive");  // duration<double>
}

TEST(Builder, EmptyThreadNameIsError) { expect_invalid(blockpool::Builder{}.thread_name(""), "thread_name"); }

TEST(Builder, NullClockIsError) { expect_invalid(blockpool::Builder{}.clock(nullptr), "clock"); }

TEST(Builder, ValidatedConfigThrowsLikeBuild) {
  EXPECT_THROW((void)blockpool::Builder{}.max_threads(0).validated_config(), std::invalid_argument);
}

TEST(Builder, PoolFromBadConfigDirectlyIsError) {
  blockpool::Config c;
  c.max_threads = 0;
  EXPECT_THROW(blockpool::Pool{c}, std::invalid_argument);
}

TEST(Builder, LastBadSettingCanBeFixed) {
  // Setters never throw; a later valid value replaces a bad one.
  auto pool = blockpool::Builder{}.keep_alive(-1s).keep_alive(1s).max_threads(0).max_threads(1).build();
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
}

TEST(Builder, Defaults) {
  const blockpool::Config c = blockpool::Builder{}.validated_config();
  EXPECT_EQ(c.max_threads, 512u);
  EXPECT_EQ(c.keep_alive, std::chrono::seconds(10));
  EXPECT_EQ(c.thread_name, "blockpool");
  EXPECT_EQ(c.stack_size, 0u);
  EXPECT_NE(c.clock, nullptr);
  EXPECT_TRUE(c.clock->is_real_time());
}

TEST(Builder, FullChainBuilds) {
  auto clock = std::make_shared<blockpool::testing::ManualClock>();
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  {
    blockpool::Pool pool = blockpool::Builder{}
                               .max_threads(3)
                               .keep_alive(std::chrono::milliseconds(1500))
                               .thread_name("chain")
                               .stack_size(1 << 20)
                               .on_thread_start([&] { starts++; })
                               .on_thread_stop([&] { stops++; })
                               .clock(clock)
                               .build();
    EXPECT_EQ(pool.spawn_blocking([] { return bptest::thread_name(); }).get(), "chain-0");
  }
  EXPECT_EQ(starts.load(), 1);
  EXPECT_EQ(stops.load(), 1);
}

TEST(Builder, MaxThreadsOneIsHonoured) {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bptest::Gate gate;
  std::atomic<int> running{0};
  std::vector<blockpool::JoinHandle<void>> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(pool.spawn_blocking([&] {
      running++;
      gate.wait();
    }));
  ASSERT_TRUE(bptest::wait_until([&] { return running.load() == 1; }));
  EXPECT_TRUE(bptest::stays_false([&] { return running.load() > 1; }));
  gate.open();
  for (auto& h : hs) h.get();
  EXPECT_EQ(pool.metrics().peak_threads, 1u);
}

TEST(Builder, DefaultPoolWorks) {
  blockpool::Pool pool;
  EXPECT_EQ(pool.spawn_blocking([] { return 1; }).get(), 1);
}

TEST(Builder, MovedFromPoolThrowsLogicError) {
  blockpool::Pool a;
  blockpool::Pool b = std::move(a);
  EXPECT_THROW((void)a.metrics(), std::logic_error);  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)a.spawn_blocking([] {}), std::logic_error);
  EXPECT_EQ(b.spawn_blocking([] { return 2; }).get(), 2);
}
