// Signals on pool threads (issue 16, point 9). Pool threads block the
// asynchronous signals (SIGINT, SIGTERM, SIGCHLD, ...), which belong to the
// application's own threads; the synchronous ones a task can raise itself
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) stay unblocked, so the
// program's handlers see them as on any thread: crash reporters, sanitizer
// reports, and SIGBUS recovery on a file mapped into memory that shrank.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_util.hpp"

using bptest::kLongWait;

namespace {

// Installs `handler` for `sig` while alive, and puts the old action back.
class ScopedHandler {
 public:
  ScopedHandler(int sig, void (*handler)(int)) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    ok_ = sigaction(sig, &sa, &old_) == 0;
  }
  ~ScopedHandler() {
    if (ok_) sigaction(sig_, &old_, nullptr);
  }
  ScopedHandler(const ScopedHandler&) = delete;
  ScopedHandler& operator=(const ScopedHandler&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  int sig_;
  struct sigaction old_ {};
  bool ok_ = false;
};

thread_local volatile sig_atomic_t t_caught = 0;
void note_signal(int sig) { t_caught = sig; }

}  // namespace

TEST(Signals, AsynchronousSignalsBlockedSynchronousOnesOpen) {
  blockpool::Pool pool;
  auto mask = pool.spawn_blocking([] {
    sigset_t cur;
    sigemptyset(&cur);
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    std::string blocked;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGPIPE, SIGALRM, SIGQUIT})
      if (sigismember(&cur, sig) == 1) blocked += std::to_string(sig) + " ";
    std::string open;
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS})
      if (sigismember(&cur, sig) == 0) open += std::to_string(sig) + " ";
    return blocked + "| " + open;
  });
  const std::string expect_blocked = std::to_string(SIGINT) + " " + std::to_string(SIGTERM) + " " +
                                     std::to_string(SIGHUP) + " " + std::to_string(SIGCHLD) + " " +
                                     std::to_string(SIGUSR1) + " " + std::to_string(SIGPIPE) + " " +
                                     std::to_string(SIGALRM) + " " + std::to_string(SIGQUIT) + " ";
  const std::string expect_open = std::to_string(SIGSEGV) + " " + std::to_string(SIGBUS) + " " +
                                  std::to_string(SIGFPE) + " " + std::to_string(SIGILL) + " " +
                                  std::to_string(SIGTRAP) + " " + std::to_string(SIGSYS) + " ";
  EXPECT_EQ(mask.get(), expect_blocked + "| " + expect_open);
}

// A synchronous signal a task raises reaches the program's handler at once,
// on the task's own thread.
TEST(Signals, SynchronousSignalRaisedByATaskReachesTheHandler) {
  blockpool::Pool pool;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) {
    ScopedHandler h(sig, &note_signal);
    ASSERT_TRUE(h.ok());
    auto caught = pool.spawn_blocking([sig] {
      t_caught = 0;
      raise(sig);  // delivered before raise() returns unless blocked
      return static_cast<int>(t_caught);
    });
    EXPECT_EQ(caught.get(), sig) << "signal " << sig << " did not reach the handler";
  }
}

namespace {
thread_local sigjmp_buf t_recover;
void recover_from_sigbus(int) { siglongjmp(t_recover, 1); }
}  // namespace

// The classic use: a file mapped into memory shrinks under the reader; the
// access beyond its end raises SIGBUS, which the task recovers from.
TEST(Signals, SigbusOnTruncatedMappingIsRecoverableInATask) {
  char path[] = "/tmp/blockpool_sigbus_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const long page = sysconf(_SC_PAGESIZE);
  ASSERT_EQ(ftruncate(fd, 2 * page), 0);
  void* map = mmap(nullptr, static_cast<std::size_t>(2 * page), PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  ASSERT_EQ(ftruncate(fd, 0), 0);  // every page of the mapping is now past the end
  ScopedHandler h(SIGBUS, &recover_from_sigbus);
  ASSERT_TRUE(h.ok());

  blockpool::Pool pool;
  auto read = pool.spawn_blocking([map, page] {
    if (sigsetjmp(t_recover, 1) != 0) return std::string("recovered");
    const volatile char* p = static_cast<const char*>(map);
    const char c = p[page];  // SIGBUS
    return std::string("read ") + std::to_string(c);
  });
  EXPECT_EQ(read.get(), "recovered");
  munmap(map, static_cast<std::size_t>(2 * page));
  close(fd);
  unlink(path);
}

// A task that crashes: the program's own handler runs (here it reports and
// exits with its own code) instead of the default action killing the process
// with SIGSEGV. In a child process (a death test).
TEST(SignalsDeathTest, CrashInATaskRunsTheProgramsHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_handler = [](int) {
          static const char msg[] = "crash handler ran\n";
          (void)!write(2, msg, sizeof msg - 1);
          _exit(42);
        };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        // A real fault, not undefined behaviour a sanitizer would catch
        // first: a write to a page mapped with no access.
        void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        blockpool::Pool pool;
        auto h = pool.spawn_blocking([page] {
          *static_cast<volatile char*>(page) = 1;  // SIGSEGV
        });
        h.wait();
        std::exit(0);
      },
      ::testing::ExitedWithCode(42), "crash handler ran");
}
