// tests/failing_new.hpp: a replacement of the global operator new that can be
// told to throw std::bad_alloc on the Nth allocation of the calling thread.
//
// Defines the replaceable allocation functions: include it in exactly one
// translation unit of a test binary. Replacing operator new clashes with the
// sanitizers' own, so such binaries are built only without them.
#pragma once

#include <cstdlib>
#include <new>

namespace failing_new {
// 0: off. Otherwise the allocation that brings it to 0 throws.
inline thread_local long t_fail_countdown = 0;
inline thread_local long t_news = 0;  // operator new calls made by this thread
}  // namespace failing_new

void* operator new(std::size_t n) {
  ++failing_new::t_news;
  if (failing_new::t_fail_countdown > 0 && --failing_new::t_fail_countdown == 0) throw std::bad_alloc();
  if (n == 0) n = 1;
  if (void* p = std::malloc(n)) return p;
  throw std::bad_alloc();
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // new above is malloc-based
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// Every other (unaligned) form goes through the two above, so that all of them
// pair up under valgrind too (it replaces libstdc++'s own forms).
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
