// Spawns a task on an installed blockpool and checks its value.
#include <blockpool/blockpool.hpp>

#include <cstdio>

int main() {
  blockpool::Pool pool = blockpool::Builder{}.max_threads(2).thread_name("consumer").build();
  const int v = pool.spawn_blocking([] { return 6 * 7; }).get();
  if (v != 42) {
    std::fprintf(stderr, "consumer: expected 42, got %d\n", v);
    return 1;
  }
  std::printf("consumer ok (blockpool %s)\n", blockpool::kVersion);
  return 0;
}
