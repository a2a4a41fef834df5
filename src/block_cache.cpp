// src/block_cache.cpp: recycling of task blocks between threads.
//
// Why: a task block is allocated by the spawning thread and freed by a pool
// thread (the one that drops the last reference, usually the worker that ran
// it). With glibc that is the worst pattern there is: each free takes the
// spawner's arena lock, contending with the spawner's next malloc, and the
// spawner's heap keeps growing (mprotect, page faults) because what the
// workers free lands in their own caches or the arena's bins, not back where
// the spawner allocates. Under the contended benchmark (4 spawning threads)
// that was a quarter of the process's time.
//
// What: blocks of up to kClassSize[k] bytes (two size classes, 128 and 256
// bytes, which cover callables capturing up to about 200 bytes) are kept on
// free lists instead of being freed:
//   * each thread has a small list per class (thread_local, no locking);
//   * a thread whose list grows past 2 * kBatch blocks moves kBatch of them,
//     as one batch, to a process-wide shelf (one mutex, taken once per kBatch
//     blocks); a thread whose list is empty takes a batch from the shelf.
// So the blocks a worker frees come back to the spawners in batches.
//
// Bounds: the shelf holds at most kBusyBatches batches per class (16 MiB and
// 32 MiB); beyond that blocks go back to operator delete. While tasks are
// spawned faster than they end, blocks pile up in the queue and come back in
// waves; a shelf that can hold a wave hands the whole of it back to the
// spawners, where operator delete would return most of it to glibc, whose
// frees into another thread's arena and fresh pages cost more than the rest
// of a spawn. Once a pool thread retires for idleness (keep_alive), the
// process is taken to be no longer busy: trim_task_block_cache() gives back
// every batch beyond kIdleBatches (256 KiB and 512 KiB), which is what stays
// for good. (With several pools, another pool's retiring thread may trim a
// busy pool's wave: that costs it allocations, never correctness.) A
// thread's own lists hold at most 2 * kBatch blocks per class and are handed
// to the shelf (or freed) when the thread exits, so a pool's retiring
// threads take no memory with them.
//
// Memory ordering: a block moves between threads only through the shelf's
// mutex (or through the task's own reference count, before it is freed), so
// its reuse happens after everything done to it by its previous owner.
//
// Off under AddressSanitizer (a reused block would hide use-after-free) and
// when a test turns it off (testing::set_task_block_cache): then every block
// comes from ::operator new and goes back to ::operator delete.
#include <atomic>
#include <cstddef>
#include <new>

#include "blockpool/detail/task.hpp"
#include "blockpool/testing.hpp"
#include "thread_annotations.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define BLOCKPOOL_BLOCK_CACHE_DEFAULT false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLOCKPOOL_BLOCK_CACHE_DEFAULT false
#endif
#endif
#ifndef BLOCKPOOL_BLOCK_CACHE_DEFAULT
#define BLOCKPOOL_BLOCK_CACHE_DEFAULT true
#endif

namespace blockpool::detail {
namespace {

constexpr std::size_t kClasses = 2;
// Request sizes whose malloc chunks (size + 8, rounded to 16) are exactly 128
// and 256 bytes: 128 is also the largest chunk glibc keeps on its fast bins.
constexpr std::size_t kClassSize[kClasses] = {120, 248};
constexpr unsigned kBatch = 32;
// What the shelf keeps once the process has been idle (see Bounds above).
constexpr unsigned kIdleBatches = 64;
// What it may hold while busy: a wave of 131,072 blocks a class.
constexpr unsigned kBusyBatches = 4096;
static_assert(kIdleBatches <= kBusyBatches);

struct FreeBlock {
  FreeBlock* next;
};

// Relaxed: a switch for tests, flipped while no pool is running tasks; a
// block allocated while it was on and freed while it is off simply goes to
// operator delete (both paths allocate with ::operator new(class size)).
std::atomic<bool> g_enabled{BLOCKPOOL_BLOCK_CACHE_DEFAULT};

// The process-wide shelf. Never destroyed: pool threads may free blocks while
// static objects are being destroyed at exit.
// The batches are kept in arrays, not linked through their blocks: taking
// one then reads no block under the lock (a block freed on another CPU is
// cold here, and a miss would lengthen every critical section).
struct Shelf {
  Mutex mu;
  FreeBlock* batches[kClasses][kBusyBatches] BLOCKPOOL_GUARDED_BY(mu) = {};  // a stack per class
  unsigned count[kClasses] BLOCKPOOL_GUARDED_BY(mu) = {};
};
Shelf& shelf() {
  static Shelf* s = new Shelf;
  return *s;
}

void delete_chain(FreeBlock* b) noexcept {
  while (b != nullptr) {
    FreeBlock* next = b->next;
    ::operator delete(b);
    b = next;
  }
}

// Ends the chain at `head` after its first kBatch blocks (it has at least
// that many) and returns the rest.
FreeBlock* split_after_batch(FreeBlock* head) noexcept {
  FreeBlock* last = head;
  for (unsigned i = 1; i < kBatch; ++i) last = last->next;
  FreeBlock* rest = last->next;
  last->next = nullptr;
  return rest;
}

// Offers a batch (kBatch blocks linked by next) to the shelf; frees it if
// the shelf is full.
void shelve(std::size_t k, FreeBlock* batch) noexcept {
  {
    Shelf& s = shelf();
    MutexGuard lk(s.mu);
    if (s.count[k] < kBusyBatches) {
      s.batches[k][s.count[k]++] = batch;
      return;
    }
  }
  delete_chain(batch);
}

FreeBlock* unshelve(std::size_t k) noexcept {
  Shelf& s = shelf();
  MutexGuard lk(s.mu);
  return s.count[k] == 0 ? nullptr : s.batches[k][--s.count[k]];
}

// This thread's lists. Trivially destructible, so they can be used at any
// point of the thread's life; `state` says whether the Flusher below (which
// empties them at thread exit) is registered, or has already run.
enum class TlsState : unsigned char { kUnused, kActive, kGone };
struct ThreadLists {
  FreeBlock* head[kClasses] = {};
  unsigned count[kClasses] = {};
  TlsState state = TlsState::kUnused;
};
thread_local ThreadLists t_lists;

struct Flusher {
  ~Flusher() {
    ThreadLists& t = t_lists;
    t.state = TlsState::kGone;  // from now on, this thread bypasses the cache
    for (std::size_t k = 0; k < kClasses; ++k) {
      // Whole batches go to the shelf, the remainder is freed.
      while (t.count[k] >= kBatch) {
        FreeBlock* batch = t.head[k];
        t.head[k] = split_after_batch(batch);
        t.count[k] -= kBatch;
        shelve(k, batch);
      }
      delete_chain(t.head[k]);
      t.head[k] = nullptr;
      t.count[k] = 0;
    }
  }
};

// The thread's lists, ready for use, or null if this thread must bypass the
// cache (it is exiting, or the cache is off).
ThreadLists* lists() noexcept {
  ThreadLists& t = t_lists;
  if (t.state == TlsState::kActive) return &t;
  if (t.state == TlsState::kGone) return nullptr;
  // First use in this thread: register the flusher (constructing a
  // thread_local with a destructor cannot fail).
  static thread_local Flusher flusher;
  (void)flusher;
  t.state = TlsState::kActive;
  return &t;
}

constexpr std::size_t class_of(std::size_t n) noexcept {
  return n <= kClassSize[0] ? 0 : n <= kClassSize[1] ? 1 : kClasses;
}

}  // namespace

void* allocate_task_block(std::size_t n) {
  const std::size_t k = class_of(n);
  if (k == kClasses) return ::operator new(n);
  if (g_enabled.load(std::memory_order_relaxed)) {
    if (ThreadLists* t = lists()) {
      if (t->head[k] == nullptr) {
        if (FreeBlock* batch = unshelve(k)) {
          t->head[k] = batch;
          t->count[k] = kBatch;
        }
      }
      if (FreeBlock* b = t->head[k]) {
        t->head[k] = b->next;
        --t->count[k];
        return b;
      }
    }
  }
  return ::operator new(kClassSize[k]);
}

void free_task_block(void* p, std::size_t n) noexcept {
  const std::size_t k = class_of(n);
  if (k == kClasses) {
    ::operator delete(p);
    return;
  }
  ThreadLists* t = g_enabled.load(std::memory_order_relaxed) ? lists() : nullptr;
  if (t == nullptr) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = t->head[k];
  t->head[k] = b;
  if (++t->count[k] < 2 * kBatch) return;
  // Keep the most recently freed kBatch (warm in this cache), shelve the rest.
  t->count[k] = kBatch;
  shelve(k, split_after_batch(b));
}

void trim_task_block_cache() noexcept {
  // The batches beyond kIdleBatches, a few at a time: moved out under the
  // lock, freed after it (the caller's stack may be small).
  constexpr unsigned kChunk = 16;
  for (std::size_t k = 0; k < kClasses; ++k) {
    for (;;) {
      FreeBlock* spare[kChunk];
      unsigned n = 0;
      {
        Shelf& s = shelf();
        MutexGuard lk(s.mu);
        while (n < kChunk && s.count[k] > kIdleBatches) spare[n++] = s.batches[k][--s.count[k]];
      }
      if (n == 0) break;
      for (unsigned i = 0; i < n; ++i) delete_chain(spare[i]);
    }
  }
}

std::size_t task_block_cache_shelved() noexcept {
  Shelf& s = shelf();
  MutexGuard lk(s.mu);
  std::size_t n = 0;
  for (std::size_t k = 0; k < kClasses; ++k) n += std::size_t{s.count[k]} * kBatch;
  return n;
}

}  // namespace blockpool::detail

namespace blockpool::testing {
void set_task_block_cache(bool enabled) noexcept {
  detail::g_enabled.store(enabled && BLOCKPOOL_BLOCK_CACHE_DEFAULT, std::memory_order_relaxed);
}
}  // namespace blockpool::testing
