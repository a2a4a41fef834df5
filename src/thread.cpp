// src/thread.cpp: OS threads (pthreads) and their names.
#include <pthread.h>
#include <signal.h>

#include <climits>
#include <string>

#include "core.hpp"

namespace blockpool::detail {

namespace {
// Linux: 16 bytes including the terminating NUL.
constexpr std::size_t kMaxThreadName = 15;

// Cuts s to at most n bytes without splitting a UTF-8 sequence.
std::string cut_utf8(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}
}  // namespace

int create_os_thread(std::size_t stack_size, void* (*entry)(void*), void* arg,
                     pthread_t* out) noexcept {
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err != 0) return err;
  if (stack_size != 0) {
    const auto min = static_cast<std::size_t>(PTHREAD_STACK_MIN);
    const std::size_t size = stack_size < min ? min : stack_size;
    err = pthread_attr_setstacksize(&attr, size);
  }
  if (err == 0) {
    // Pool threads start with every asynchronous signal blocked, so signals
    // meant for the application (SIGINT, SIGTERM, SIGCHLD...) are delivered
    // to its own threads, never to a thread busy in someone's blocking call.
    // The synchronous ones stay open: a fault raised by a task (SIGSEGV,
    // SIGBUS on a truncated mmap'ed file, SIGFPE, SIGILL, SIGTRAP, SIGSYS)
    // must reach the program's handlers (crash reporters, sanitizers, SIGBUS
    // recovery) as on any thread. Blocked, Linux would kill the process with
    // the default action instead, whatever handler is installed.
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&all, sig);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(out, &attr, entry, arg);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  pthread_attr_destroy(&attr);
  return err;
}

void set_current_thread_name(const std::string& name) noexcept {
  try {
    const std::string cut = cut_utf8(name, kMaxThreadName);
    (void)pthread_setname_np(pthread_self(), cut.c_str());  // a name is never worth an error
  } catch (...) {
  }
}

std::string suffixed_thread_name(const std::string& base, const std::string& suffix) {
  if (suffix.size() >= kMaxThreadName) return cut_utf8(suffix, kMaxThreadName);
  std::string name = cut_utf8(base, kMaxThreadName - suffix.size());
  name.append(suffix);
  return name;
}

std::string indexed_thread_name(const std::string& base, std::uint64_t index) {
  std::string suffix = "-";
  suffix.append(std::to_string(index));
  return suffixed_thread_name(base, suffix);
}

}  // namespace blockpool::detail
