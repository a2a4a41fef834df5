// std::async peer: one std::async(std::launch::async, ...) per task, i.e. one
// new thread per task (libstdc++). The task posts its result to the
// io_context; the future is destroyed (its thread joined) by whichever of the
// submitter and the loop's completion handler comes second, so finished
// threads are reclaimed promptly.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <future>
#include <memory>
#include <utility>

#include "asio_driver.hpp"

namespace {

struct StdAsyncPeer {
  static constexpr bool kHasKeepAlive = false;
  static constexpr const char* name = "std_async";
  StdAsyncPeer(const bench::Params&, bool) {}

  struct Slot {
    std::future<void> future;
    std::atomic<int> state{0};  // 1: submitter stored the future; 2: loop saw completion
  };

  void reserve(std::uint64_t n) { slots = std::make_unique<Slot[]>(n); }
  template <class F>
  void submit(std::uint64_t id, F&& f) {
    Slot& s = slots[id];
    try {
      s.future = std::async(std::launch::async, std::forward<F>(f));
    } catch (const std::system_error& e) {
      // The OS refused another thread (in "flood" the loop spawns everything
      // before it can reap a single finished thread): report and give up.
      std::printf("{\"peer\":\"std_async\",\"ok\":false,\"error\":\"std::async threw '%s' "
                  "at task %llu\"}\n",
                  e.what(), static_cast<unsigned long long>(id));
      std::fflush(stdout);
      std::_Exit(3);
    }
    if (s.state.exchange(1, std::memory_order_acq_rel) == 2) s.future = {};
  }
  void completed(std::uint64_t id) {
    Slot& s = slots[id];
    if (s.state.exchange(2, std::memory_order_acq_rel) == 1) s.future = {};
  }
  void report(bench::Out&) {}

  std::unique_ptr<Slot[]> slots;
};

}  // namespace

int main(int argc, char** argv) { return bench::main_for<StdAsyncPeer>(argc, argv); }
