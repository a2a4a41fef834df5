// src/thread_annotations.hpp: locking rules the compiler checks (not a
// public header).
//
// Clang's thread-safety analysis (-Wthread-safety) checks, in every function
// it compiles, that a field marked BLOCKPOOL_GUARDED_BY(mu) is touched only
// with mu held, that a function marked BLOCKPOOL_REQUIRES(mu) is called only
// with mu held, and that one marked BLOCKPOOL_EXCLUDES(mu) is not. It knows
// which mutex is held from the annotated Mutex, MutexGuard and MutexLock
// below; std::mutex and std::lock_guard carry no annotations, so state
// guarded by a Mutex is locked through these types. Other compilers see no
// attributes: the macros expand to nothing and the types are inline
// wrappers, compiled to what std::mutex, std::lock_guard and
// std::unique_lock compile to.
//
// scripts/thread_safety.sh builds the library, the Asio layer and the tests
// with clang and -Wthread-safety -Werror.
#pragma once

#include <mutex>

#if defined(__clang__)
#define BLOCKPOOL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define BLOCKPOOL_THREAD_ANNOTATION(x)
#endif

// A type whose objects are a capability (a mutex): `name` appears in warnings.
#define BLOCKPOOL_CAPABILITY(name) BLOCKPOOL_THREAD_ANNOTATION(capability(name))
// A type that holds a capability for its own lifetime (a lock guard).
#define BLOCKPOOL_SCOPED_CAPABILITY BLOCKPOOL_THREAD_ANNOTATION(scoped_lockable)
// A field read or written only with `m` held.
#define BLOCKPOOL_GUARDED_BY(m) BLOCKPOOL_THREAD_ANNOTATION(guarded_by(m))
// A pointer field whose pointee is read or written only with `m` held.
#define BLOCKPOOL_PT_GUARDED_BY(m) BLOCKPOOL_THREAD_ANNOTATION(pt_guarded_by(m))
// A function called only with these held (it does not release them).
#define BLOCKPOOL_REQUIRES(...) BLOCKPOOL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// A function called only without these held (it takes them itself).
#define BLOCKPOOL_EXCLUDES(...) BLOCKPOOL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// A function that returns with these held (none named: the object itself).
#define BLOCKPOOL_ACQUIRE(...) BLOCKPOOL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
// A function that returns with these released (none named: the object itself).
#define BLOCKPOOL_RELEASE(...) BLOCKPOOL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// A function that returns `result` exactly when it acquired the capability.
#define BLOCKPOOL_TRY_ACQUIRE(...) BLOCKPOOL_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// A function that checks (or is known) that the capability is held.
#define BLOCKPOOL_ASSERT_CAPABILITY(m) BLOCKPOOL_THREAD_ANNOTATION(assert_capability(m))
// A function returning a reference to capability `m`.
#define BLOCKPOOL_RETURN_CAPABILITY(m) BLOCKPOOL_THREAD_ANNOTATION(lock_returned(m))
// A function the analysis skips. Every use says why the analysis cannot
// follow the code there.
#define BLOCKPOOL_NO_THREAD_SAFETY_ANALYSIS BLOCKPOOL_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace blockpool::detail {

class MutexLock;

// std::mutex, annotated as a capability. Lockable, so std::lock_guard and
// std::unique_lock accept it, but only MutexGuard, MutexLock (or lock() and
// unlock() themselves) tell the analysis that it is held.
class BLOCKPOOL_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() BLOCKPOOL_ACQUIRE() { mu_.lock(); }
  void unlock() BLOCKPOOL_RELEASE() { mu_.unlock(); }
  [[nodiscard]] bool try_lock() BLOCKPOOL_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// std::lock_guard on a Mutex, annotated as a scoped capability: holds the
// mutex from construction to destruction.
class BLOCKPOOL_SCOPED_CAPABILITY MutexGuard {
 public:
  explicit MutexGuard(Mutex& mu) BLOCKPOOL_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexGuard() BLOCKPOOL_RELEASE() { mu_.unlock(); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;

 private:
  Mutex& mu_;
};

// std::unique_lock<std::mutex> on a Mutex, annotated as a scoped capability:
// holds the mutex from construction to destruction, except between unlock()
// and the next lock() ("decide under the lock, act after it").
class BLOCKPOOL_SCOPED_CAPABILITY MutexLock {
 public:
  // Locks as std::lock_guard does (std::unique_lock's constructor would add
  // checks the compiler cannot always drop).
  explicit MutexLock(Mutex& mu) BLOCKPOOL_ACQUIRE(mu) : lk_(lock_native(mu), std::adopt_lock) {}
  ~MutexLock() BLOCKPOOL_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Precondition: held (unlock) / not held (lock), as for std::unique_lock.
  void unlock() BLOCKPOOL_RELEASE() { lk_.unlock(); }
  void lock() BLOCKPOOL_ACQUIRE() { lk_.lock(); }

  // For std::condition_variable's waits, which release the mutex while
  // they block and hold it again when they return: held before and after,
  // as the analysis assumes. Precondition: held.
  [[nodiscard]] std::unique_lock<std::mutex>& native() noexcept { return lk_; }

 private:
  static std::mutex& lock_native(Mutex& mu) {
    mu.mu_.lock();
    return mu.mu_;
  }
  std::unique_lock<std::mutex> lk_;
};

// A value guarded by a Mutex of another object: a Lane's and a Worker's
// fields are guarded by their Core's mu_, which GUARDED_BY, naming only
// mutexes reachable from the field's own object, cannot express. The value
// is reached only through get(mu), which the analysis checks is called with
// `mu` held. (Which mutex is the owner's is the caller's to get right; the
// Core has a single one.)
template <class T>
class GuardedBy {
 public:
  [[nodiscard]] T& get(const Mutex& mu) BLOCKPOOL_REQUIRES(mu) {
    (void)mu;
    return value_;
  }
  [[nodiscard]] const T& get(const Mutex& mu) const BLOCKPOOL_REQUIRES(mu) {
    (void)mu;
    return value_;
  }

 private:
  T value_{};
};

}  // namespace blockpool::detail
