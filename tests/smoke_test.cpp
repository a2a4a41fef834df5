#include "blockpool/blockpool.hpp"

#include <gtest/gtest.h>

TEST(Smoke, SpawnReturnsValue) {
  blockpool::Pool pool;
  auto h = pool.spawn_blocking([] { return 6 * 7; });
  EXPECT_EQ(h.get(), 42);
}
