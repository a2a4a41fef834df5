// fuzz/pool_ops_fuzzer.cpp: libFuzzer harness. The input is read as a
// program of pool operations on a small pool (max_threads 1-4, ManualClock,
// fault-injectable thread creation); invariants are checked after each
// operation and, after a final shutdown, exactly-once and the counters.
//
// Byte 0 configures the pool; then each operation is one byte (op = b % 16,
// arg = b / 16) sometimes followed by an argument byte. Tasks never block
// forever: "gated" tasks wait on a gate the harness opens before any blocking
// wait and before the final shutdown; waits are bounded (a hang is a crash).
// The operation sequence is deterministic for a given input; thread timing is
// not, but every invariant checked must hold under any timing.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <vector>

#include "blockpool/blockpool.hpp"

using namespace std::chrono_literals;

namespace {

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "pool_ops_fuzzer: invariant failed: %s (line %d)\n", #cond, \
                   __LINE__);                                                         \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

std::atomic<long> g_live{0};
struct Tracker {
  Tracker() { g_live.fetch_add(1); }
  Tracker(const Tracker&) { g_live.fetch_add(1); }
  ~Tracker() { g_live.fetch_sub(1); }
};

struct Gate {
  std::mutex mu;
  std::condition_variable_any cv;
  bool open = false;
  void wait(std::stop_token st) {
    std::unique_lock lk(mu);
    cv.wait(lk, st, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lk(mu);
      open = true;
    }
    cv.notify_all();
  }
};

enum class Kind : std::uint8_t { kShort, kThrow, kGated, kStoppable, kNested };

struct Rec {
  int id = 0;
  Kind kind = Kind::kShort;
  bool mandatory = false;
  bool abort_true = false;
  std::atomic<int> runs{0};
  std::optional<blockpool::JoinHandle<int>> h;
};

struct Harness {
  std::shared_ptr<blockpool::testing::ManualClock> clock =
      std::make_shared<blockpool::testing::ManualClock>();
  std::atomic<bool> refuse{false};
  std::atomic<long> starts{0}, stops{0};
  std::atomic<long> inner_spawned{0}, inner_ran{0};
  std::size_t cap = 1;
  std::vector<std::unique_ptr<Rec>> recs;
  std::vector<std::shared_ptr<Gate>> gates;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  std::optional<blockpool::Pool> pool;

  void release_gates() {
    gate->release();
    gates.push_back(gate);
    gate = std::make_shared<Gate>();
  }

  Rec* slot(std::uint8_t arg) {
    if (recs.empty()) return nullptr;
    return recs[arg % recs.size()].get();
  }

  void spawn(Kind kind, bool mandatory) {
    if (recs.size() >= 64) return;
    auto rec = std::make_unique<Rec>();
    Rec* r = rec.get();
    r->id = static_cast<int>(recs.size());
    r->kind = kind;
    r->mandatory = mandatory;
    recs.push_back(std::move(rec));
    blockpool::Handle h = pool->handle();
    auto go = [&](auto f) {
      r->h = mandatory ? h.spawn_mandatory_blocking(std::move(f)) : h.spawn_blocking(std::move(f));
    };
    switch (kind) {
      case Kind::kShort:
        go([r, t = Tracker{}] { return r->runs.fetch_add(1), r->id; });
        break;
      case Kind::kThrow:
        go([r, t = Tracker{}]() -> int {
          r->runs.fetch_add(1);
          throw r->id;
        });
        break;
      case Kind::kGated:
      case Kind::kStoppable:
        go([r, t = Tracker{}, g = gate](std::stop_token st) {
          r->runs.fetch_add(1);
          if (r->kind == Kind::kGated) st = std::stop_token{};  // ignores stop requests
          g->wait(st);
          return r->id;
        });
        break;
      case Kind::kNested:
        go([r, t = Tracker{}, h, this] {
          r->runs.fetch_add(1);
          inner_spawned.fetch_add(1);
          (void)h.spawn_blocking([this, t2 = Tracker{}] { inner_ran.fetch_add(1); });
          return r->id;
        });
        break;
    }
  }

  // Checks what a finished handle says against what ran.
  void check_outcome(Rec* r) {
    FUZZ_CHECK(r->h->is_finished());
    const int runs = r->runs.load();
    FUZZ_CHECK(runs <= 1);
    try {
      FUZZ_CHECK(r->h->get() == r->id);
      FUZZ_CHECK(runs == 1 && r->kind != Kind::kThrow);
    } catch (const blockpool::JoinError& e) {
      FUZZ_CHECK(runs == 0);
      FUZZ_CHECK(e.is_cancelled() || e.is_spawn_failure());
    } catch (int id) {
      FUZZ_CHECK(id == r->id && runs == 1 && r->kind == Kind::kThrow);
    }
    r->h.reset();
  }

  void check_live() const {
    const auto m = pool->metrics();
    FUZZ_CHECK(m.threads <= cap);
    FUZZ_CHECK(m.peak_threads <= cap);
    FUZZ_CHECK(m.completed + m.failed + m.cancelled <= m.spawned);
    FUZZ_CHECK(m.queue_depth <= m.spawned);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 256) return -1;
  Harness H;
  const std::uint8_t cfg = data[0];
  H.cap = 1 + (cfg & 3);
  const std::chrono::nanoseconds keep[] = {0ns, 1ms, 1h, 10ms};
  H.pool.emplace(blockpool::Builder{}
                     .max_threads(H.cap)
                     .clock(H.clock)
                     .keep_alive(keep[(cfg >> 2) & 3])
                     .thread_name("fuzz")
                     .on_thread_start([&H] { H.starts.fetch_add(1); })
                     .on_thread_stop([&H] { H.stops.fetch_add(1); })
                     .thread_creation_fault_for_testing(
                         [&H](std::uint64_t) { return H.refuse.load() ? EAGAIN : 0; })
                     .build());
  for (std::size_t i = 1; i < size; ++i) {
    const std::uint8_t op = data[i] % 16;
    const std::uint8_t arg = data[i] / 16;
    switch (op) {
      case 0:
      case 1:
        H.spawn(Kind::kShort, false);
        break;
      case 2:
        H.spawn(static_cast<Kind>(arg % 5), true);  // mandatory
        break;
      case 3:
        H.spawn(Kind::kThrow, arg & 1);
        break;
      case 4:
        H.spawn(Kind::kGated, false);
        break;
      case 5:
        H.spawn(Kind::kStoppable, arg & 1);
        break;
      case 6:
        H.spawn(Kind::kNested, arg & 1);
        break;
      case 7:
        if (Rec* r = H.slot(arg); r != nullptr && r->h) {
          if (r->h->abort()) r->abort_true = true;
        }
        break;
      case 8:  // get: open the gates first so it cannot wait forever
        if (Rec* r = H.slot(arg); r != nullptr && r->h) {
          H.release_gates();
          FUZZ_CHECK(r->h->wait_for(60s));
          H.check_outcome(r);
        }
        break;
      case 9:
        if (Rec* r = H.slot(arg); r != nullptr && r->h) r->h.reset();  // drop unawaited
        break;
      case 10:
        H.clock->advance(std::chrono::milliseconds(arg));
        break;
      case 11:
        (void)H.pool->shutdown(arg & 1 ? 1ms : 0ns);
        break;
      case 12:  // spawn while the OS refuses threads
        H.refuse.store(true);
        H.spawn(arg & 1 ? Kind::kShort : Kind::kGated, arg & 2);
        H.refuse.store(false);
        break;
      case 13:
        H.release_gates();
        break;
      case 14:
        if (Rec* r = H.slot(arg); r != nullptr && r->h) (void)r->h->is_finished();
        break;
      default:
        H.refuse.store(arg & 1);  // leave refusing on (or off) for a while
        break;
    }
    H.check_live();
  }

  // End: open the gates, shut down, check exactly-once and the counters.
  H.refuse.store(false);
  H.release_gates();
  FUZZ_CHECK(H.pool->shutdown());
  const auto m = H.pool->metrics();
  FUZZ_CHECK(m.threads == 0);
  FUZZ_CHECK(m.idle_threads == 0);
  FUZZ_CHECK(m.queue_depth == 0);
  FUZZ_CHECK(H.starts.load() == H.stops.load());
  FUZZ_CHECK(static_cast<std::uint64_t>(H.starts.load()) == m.threads_started);
  std::uint64_t ran = 0, threw = 0, never = 0;
  for (auto& rp : H.recs) {
    Rec* r = rp.get();
    const int runs = r->runs.load();
    FUZZ_CHECK(runs <= 1);
    if (r->abort_true) FUZZ_CHECK(runs == 0);
    if (runs == 0)
      ++never;
    else if (r->kind == Kind::kThrow)
      ++threw;
    else
      ++ran;
    if (r->h) H.check_outcome(r);
  }
  const auto inner = static_cast<std::uint64_t>(H.inner_spawned.load());
  const auto inner_ran = static_cast<std::uint64_t>(H.inner_ran.load());
  FUZZ_CHECK(inner_ran <= inner);
  FUZZ_CHECK(m.spawned == H.recs.size() + inner);
  FUZZ_CHECK(m.spawned == m.completed + m.failed + m.cancelled);
  FUZZ_CHECK(m.completed == ran + inner_ran);
  // failed = thrown + spawn failures; cancelled + spawn failures = never run.
  FUZZ_CHECK(m.failed >= threw);
  FUZZ_CHECK(m.cancelled + (m.failed - threw) == never + (inner - inner_ran));
  H.pool.reset();
  FUZZ_CHECK(g_live.load() == 0);
  return 0;
}
