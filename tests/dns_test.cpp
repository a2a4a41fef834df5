// dns::async_resolve (<blockpool/dns.hpp>, and blockpool::boost_asio::dns):
// lookups as pool tasks, IP literals without one, errors that name the host,
// cancellation that completes at once while getaddrinfo still runs, lookups
// in parallel, a lane capping them, every completion token. Built once per
// Asio flavour (tests/dns.cmake; see asio_flavour.hpp).
//
// Lookups that must block, fail in a chosen way or run in parallel go
// through the test seam dns_common::g_getaddrinfo_for_testing (a getaddrinfo
// that waits on a gate, then resolves the numeric 127.0.0.1). Real lookups go
// to the system's getaddrinfo: "localhost" from /etc/hosts, and, in a child
// process with a private mount namespace, a name from a temporary hosts file.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "asio_flavour.hpp"
#include "test_util.hpp"

// Suites named per flavour (dns_asio, dns_boost_asio): `ctest -R dns` runs
// both, and each test keeps a name of its own.
#if defined(BLOCKPOOL_TEST_BOOST_ASIO)
namespace bpdns = blockpool::boost_asio::dns;
#define DNS_SUITE dns_boost_asio
#else
#include "blockpool/dns.hpp"
namespace bpdns = blockpool::dns;
#define DNS_SUITE dns_asio
#endif

extern char** environ;

namespace {

using namespace std::chrono_literals;
using bptest::kLongWait;
using bptest::wait_until;
using Endpoints = std::vector<asio::ip::tcp::endpoint>;
namespace dns_common = blockpool::detail::dns_common;

// The state of the gated getaddrinfo: how many lookups entered it, whether
// they may proceed, and how they end.
struct Hook {
  std::mutex m;
  std::condition_variable cv;
  int entered = 0;
  bool open = false;
  int open_at = 0;     // > 0: opens by itself once this many lookups are inside together
  bool timed_out = false;
  int fail_with = 0;   // an EAI_* code to return instead of resolving
  int fail_errno = 0;  // errno left behind with it
};
Hook g_hook;

int gated_getaddrinfo(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  {
    std::unique_lock lk(g_hook.m);
    ++g_hook.entered;
    if (g_hook.open_at > 0 && g_hook.entered >= g_hook.open_at) g_hook.open = true;
    g_hook.cv.notify_all();
    // Bounded, so a failing test never leaves a pool thread blocked for good.
    if (!g_hook.cv.wait_for(lk, kLongWait, [] { return g_hook.open; })) g_hook.timed_out = true;
    if (g_hook.fail_with != 0) {
      errno = g_hook.fail_errno;
      return g_hook.fail_with;
    }
  }
  addrinfo numeric = *hints;
  numeric.ai_flags |= AI_NUMERICHOST;
  return ::getaddrinfo("127.0.0.1", service, &numeric, res);  // no name service involved
}

class DnsTest : public ::testing::Test {
 protected:
  DnsTest() {
    std::lock_guard lk(g_hook.m);
    g_hook.entered = 0;
    g_hook.open = false;
    g_hook.open_at = 0;
    g_hook.timed_out = false;
    g_hook.fail_with = 0;
    g_hook.fail_errno = 0;
  }
  ~DnsTest() override {
    open_gate();  // before any pool goes: its threads may wait in the hook
    dns_common::g_getaddrinfo_for_testing.store(&::getaddrinfo);
  }
  static void use_gated_lookups() { dns_common::g_getaddrinfo_for_testing.store(&gated_getaddrinfo); }
  static void open_gate() {
    std::lock_guard lk(g_hook.m);
    g_hook.open = true;
    g_hook.cv.notify_all();
  }
  [[nodiscard]] static int entered() {
    std::lock_guard lk(g_hook.m);
    return g_hook.entered;
  }
  [[nodiscard]] static bool gate_open() {
    std::lock_guard lk(g_hook.m);
    return g_hook.open;
  }
};

using DNS_SUITE = DnsTest;

// One lookup's outcome, recorded by its handler.
struct Outcome {
  int calls = 0;
  std::exception_ptr error;
  Endpoints endpoints;
  auto handler() {
    return [this](std::exception_ptr e, Endpoints eps) {
      ++calls;
      error = std::move(e);
      endpoints = std::move(eps);
    };
  }
};

// Starts a lookup of the gated getaddrinfo whose handler runs on `io` and
// listens to `signal`. True once `inside` lookups in all are blocked in it.
template <class PoolOrHandle>
[[nodiscard]] bool resolve_cancellable(const PoolOrHandle& pool, const char* host, asio::io_context& io,
                                       asio::cancellation_signal& signal, Outcome& out, int inside) {
  dns_common::g_getaddrinfo_for_testing.store(&gated_getaddrinfo);
  bpdns::async_resolve(pool, host, "80",
                       asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, out.handler())));
  return wait_until([inside] {
    std::lock_guard lk(g_hook.m);
    return g_hook.entered == inside;
  });
}

bool is_cancelled(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const blockpool::JoinError& j) {
    return j.is_cancelled();
  } catch (...) {
  }
  return false;
}

std::system_error system_error_of(const std::exception_ptr& e) {
  if (!e) {
    ADD_FAILURE() << "no error";
    return std::system_error(std::error_code());
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& s) {
    return s;
  } catch (const std::exception& other) {
    ADD_FAILURE() << "not a std::system_error: " << other.what();
  }
  return std::system_error(std::error_code());
}

blockpool::LaneMetrics lane_metrics(const blockpool::Metrics& m, const std::string& name) {
  for (const auto& l : m.lanes)
    if (l.name == name) return l;
  throw std::logic_error("no lane " + name);
}

TEST_F(DNS_SUITE, LocalhostResolvesToLoopbackEndpointsWithThePort) {
  blockpool::Pool pool;
  asio::io_context io(1);
  Outcome out;
  bpdns::async_resolve(pool, "localhost", "8080", asio::bind_executor(io, out.handler()));
  io.run();
  ASSERT_EQ(out.calls, 1);
  ASSERT_FALSE(out.error) << "localhost must resolve from /etc/hosts";
  ASSERT_FALSE(out.endpoints.empty());
  for (const auto& ep : out.endpoints) {
    EXPECT_TRUE(ep.address().is_loopback()) << ep.address().to_string();
    EXPECT_EQ(ep.port(), 8080);
  }
  EXPECT_EQ(pool.metrics().spawned, 1u) << "a name is looked up by a pool task";
}

TEST_F(DNS_SUITE, IpLiteralsAreParsedWithoutATaskAndCompleteThroughTheExecutor) {
  blockpool::Pool pool;
  asio::io_context io(1);
  struct Case {
    const char* host;
    const char* service;
    const char* address;
    unsigned short port;
  };
  const Case cases[] = {{"127.0.0.1", "80", "127.0.0.1", 80},
                        {"::1", "443", "::1", 443},
                        {"2001:db8::7", "65535", "2001:db8::7", 65535},
                        {"192.0.2.1", "", "192.0.2.1", 0}};
  std::vector<Outcome> outs(std::size(cases));
  bool initiated = false;
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    bpdns::async_resolve(pool, cases[i].host, cases[i].service,
                         asio::bind_executor(io, [&, i](std::exception_ptr e, Endpoints eps) {
                           EXPECT_TRUE(initiated) << "completed inside the initiating call";
                           EXPECT_TRUE(io.get_executor().running_in_this_thread());
                           outs[i].handler()(std::move(e), std::move(eps));
                         }));
  }
  initiated = true;
  io.run();
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(cases[i].host);
    ASSERT_EQ(outs[i].calls, 1);
    ASSERT_FALSE(outs[i].error);
    ASSERT_EQ(outs[i].endpoints.size(), 1u);
    EXPECT_EQ(outs[i].endpoints[0].address(), asio::ip::make_address(cases[i].address));
    EXPECT_EQ(outs[i].endpoints[0].port(), cases[i].port);
  }
  EXPECT_EQ(pool.metrics().spawned, 0u) << "an IP literal needs no task";
  EXPECT_EQ(pool.metrics().threads_started, 0u);
}

// EAI_* codes come in blockpool's dns category; EAI_SYSTEM brings errno.
TEST_F(DNS_SUITE, FailedLookupIsASystemErrorNamingTheHost) {
  use_gated_lookups();
  open_gate();
  struct Case {
    int eai;
    int err;
    std::error_code expected;
  };
  const Case cases[] = {{EAI_NONAME, 0, std::error_code(EAI_NONAME, bpdns::category())},
                        {EAI_SYSTEM, EMFILE, std::error_code(EMFILE, std::system_category())}};
  blockpool::Pool pool;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected.message());
    {
      std::lock_guard lk(g_hook.m);
      g_hook.fail_with = c.eai;
      g_hook.fail_errno = c.err;
    }
    asio::io_context io(1);
    Outcome out;
    bpdns::async_resolve(pool, "nowhere.test", "80", asio::bind_executor(io, out.handler()));
    io.run();
    ASSERT_EQ(out.calls, 1);
    EXPECT_TRUE(out.endpoints.empty());
    const std::system_error e = system_error_of(out.error);
    EXPECT_EQ(e.code(), c.expected);
    EXPECT_NE(std::string(e.what()).find("\"nowhere.test\" (service \"80\")"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.expected.message()), std::string::npos) << e.what();
  }
}

TEST_F(DNS_SUITE, CancellingARunningLookupCompletesAtOnceAndDiscardsItsResult) {
  blockpool::Pool pool;
  asio::io_context io(1);
  asio::cancellation_signal signal;
  Outcome out;
  ASSERT_TRUE(resolve_cancellable(pool, "blocked.test", io, signal, out, 1)) << "the lookup never started";
  asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
  // Returns once the handler ran: a cancelled lookup holds no work on the
  // io_context even though its getaddrinfo still blocks.
  io.run();
  ASSERT_EQ(out.calls, 1);
  EXPECT_TRUE(is_cancelled(out.error));
  EXPECT_TRUE(out.endpoints.empty());
  EXPECT_FALSE(gate_open()) << "completed only after getaddrinfo returned";
  EXPECT_EQ(pool.metrics().completed, 0u) << "the lookup is still running";

  open_gate();
  ASSERT_TRUE(wait_until([&] { return pool.metrics().completed == 1; }));
  io.restart();
  io.poll();
  EXPECT_EQ(out.calls, 1) << "the discarded result reached the handler";
  signal.emit(asio::cancellation_type::terminal);  // the slot was cleared: reaches nothing
  EXPECT_EQ(out.calls, 1);
}

TEST_F(DNS_SUITE, CancellingAQueuedLookupCompletesAtOnceAndItNeverRuns) {
  use_gated_lookups();
  blockpool::Pool pool = blockpool::Builder{}.lane("dns", {.max_running = 1}).build();
  blockpool::Handle lane = pool.lane("dns");
  asio::io_context io(1);
  asio::cancellation_signal signal;
  Outcome first, second;
  bpdns::async_resolve(lane, "first.test", "80", asio::bind_executor(io, first.handler()));
  ASSERT_TRUE(wait_until([] { return entered() == 1; }));
  ASSERT_TRUE(resolve_cancellable(lane, "second.test", io, signal, second, 1));
  EXPECT_EQ(lane_metrics(pool.metrics(), "dns").queue_depth, 1u);
  asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
  while (second.calls == 0 && io.run_one_for(kLongWait) != 0) {
  }
  ASSERT_EQ(second.calls, 1);
  EXPECT_TRUE(is_cancelled(second.error));
  EXPECT_EQ(first.calls, 0);

  open_gate();
  io.run();
  ASSERT_EQ(first.calls, 1);
  EXPECT_FALSE(first.error);
  EXPECT_EQ(second.calls, 1);
  EXPECT_EQ(entered(), 1) << "the cancelled lookup ran after all";
  EXPECT_EQ(lane_metrics(pool.metrics(), "dns").cancelled, 1u);
}

TEST_F(DNS_SUITE, TotalCancellationLeavesARunningLookupToComplete) {
  blockpool::Pool pool;
  asio::io_context io(1);
  asio::cancellation_signal signal;
  Outcome out;
  ASSERT_TRUE(resolve_cancellable(pool, "total.test", io, signal, out, 1));
  asio::post(io, [&] {
    signal.emit(asio::cancellation_type::total);
    open_gate();
  });
  io.run();
  ASSERT_EQ(out.calls, 1);
  EXPECT_FALSE(out.error);
  ASSERT_EQ(out.endpoints.size(), 1u);
  EXPECT_EQ(out.endpoints[0].port(), 80);
}

// One lookup running, one queued behind it in a lane of one: destroying the
// context destroys both handlers unrun, the queued lookup never runs, the
// running one finishes unobserved.
TEST_F(DNS_SUITE, ContextDestroyedWithLookupsRunningAndQueuedDestroysTheirHandlersUnrun) {
  use_gated_lookups();
  blockpool::Pool pool = blockpool::Builder{}.lane("dns", {.max_running = 1}).build();
  auto io = std::make_unique<asio::io_context>(1);
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> watch = sentinel;
  for (const char* host : {"running.test", "queued.test"}) {
    bpdns::async_resolve(pool.lane("dns"), host, "80",
                         asio::bind_executor(*io, [sentinel](std::exception_ptr, Endpoints) {
                           ADD_FAILURE() << "ran after its context was destroyed";
                         }));
  }
  sentinel.reset();
  ASSERT_TRUE(wait_until([] { return entered() == 1; }));
  io.reset();
  EXPECT_TRUE(watch.expired()) << "a handler outlived its context";
  EXPECT_EQ(lane_metrics(pool.metrics(), "dns").cancelled, 1u) << "the queued lookup was not withdrawn";
  open_gate();
  ASSERT_TRUE(wait_until([&] { return lane_metrics(pool.metrics(), "dns").completed == 1; }));
  EXPECT_EQ(entered(), 1) << "the queued lookup ran for nobody";
}

// A coroutine racing a lookup against a timer (terminal cancellation from
// awaitable_operators): the timer wins while the lookup is queued or blocked
// in getaddrinfo, the coroutine goes on, and run() returns without waiting
// for the lookup.
asio::awaitable<std::size_t> resolve_or_time_out(blockpool::Pool& pool) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::steady_clock::duration::zero());
  auto winner = co_await (bpdns::async_resolve(pool, "slow.test", "80", asio::use_awaitable) ||
                          timer.async_wait(asio::use_awaitable));
  co_return winner.index();
}

TEST_F(DNS_SUITE, ATimerRacingALookupInACoroutineWinsWhileTheLookupIsPending) {
  use_gated_lookups();
  blockpool::Pool pool;
  asio::io_context io(1);
  std::size_t winner = 99;
  asio::co_spawn(io, resolve_or_time_out(pool), [&](std::exception_ptr e, std::size_t w) {
    EXPECT_FALSE(e);
    winner = w;
  });
  io.run();
  EXPECT_EQ(winner, 1u) << "the lookup won although its getaddrinfo never returned";
  EXPECT_FALSE(gate_open());
  open_gate();
  ASSERT_TRUE(wait_until([&] {
    const blockpool::Metrics m = pool.metrics();
    return m.completed + m.cancelled == m.spawned;
  }));
}

TEST_F(DNS_SUITE, ContextDestroyedAfterAnEarlyCancellationBeforeItsCompletionRan) {
  use_gated_lookups();
  blockpool::Pool pool;
  auto io = std::make_unique<asio::io_context>(1);
  asio::cancellation_signal signal;
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> watch = sentinel;
  bpdns::async_resolve(pool, "orphan.test", "80",
                       asio::bind_cancellation_slot(
                           signal.slot(), asio::bind_executor(*io, [s = std::move(sentinel)](std::exception_ptr,
                                                                                              Endpoints) {
                             ADD_FAILURE() << "ran after its context was destroyed";
                           })));
  ASSERT_TRUE(wait_until([] { return entered() == 1; }));
  signal.emit(asio::cancellation_type::terminal);  // nothing runs the context: this thread is its executor
  io.reset();                                      // the posted completion is destroyed unrun
  EXPECT_TRUE(watch.expired());
  open_gate();
  ASSERT_TRUE(wait_until([&] { return pool.metrics().completed == 1; }));
}

TEST_F(DNS_SUITE, LookupsRunInParallel) {
  use_gated_lookups();
  constexpr int kLookups = 4;
  {
    std::lock_guard lk(g_hook.m);
    g_hook.open_at = kLookups;  // each lookup waits until all are inside getaddrinfo together
  }
  blockpool::Pool pool;
  asio::io_context io(1);
  std::vector<Outcome> outs(kLookups);
  for (auto& o : outs) bpdns::async_resolve(pool, "parallel.test", "80", asio::bind_executor(io, o.handler()));
  io.run();
  std::lock_guard lk(g_hook.m);
  EXPECT_FALSE(g_hook.timed_out) << "the lookups did not run at the same time";
  for (auto& o : outs) {
    ASSERT_EQ(o.calls, 1);
    EXPECT_FALSE(o.error);
  }
}

TEST_F(DNS_SUITE, ALaneHandleCapsConcurrentLookups) {
  use_gated_lookups();
  blockpool::Pool pool = blockpool::Builder{}.lane("dns", {.max_running = 2}).build();
  asio::io_context io(1);
  std::vector<Outcome> outs(5);
  for (auto& o : outs) bpdns::async_resolve(pool.lane("dns"), "capped.test", "80", asio::bind_executor(io, o.handler()));
  ASSERT_TRUE(wait_until([] { return entered() == 2; }));
  EXPECT_TRUE(bptest::stays_false([] { return entered() > 2; })) << "more lookups ran than the lane allows";
  const blockpool::LaneMetrics lane = lane_metrics(pool.metrics(), "dns");
  EXPECT_EQ(lane.running, 2u);
  EXPECT_EQ(lane.queue_depth, 3u);
  open_gate();
  io.run();
  for (auto& o : outs) {
    ASSERT_EQ(o.calls, 1);
    EXPECT_FALSE(o.error);
  }
  EXPECT_EQ(entered(), 5);
  EXPECT_EQ(lane_metrics(pool.metrics(), "dns").completed, 5u);
}

asio::awaitable<Endpoints> resolve_in_coroutine(blockpool::Pool& pool, std::string host) {
  co_return co_await bpdns::async_resolve(pool, std::move(host), "8080", asio::use_awaitable);
}

TEST_F(DNS_SUITE, WorksWithUseAwaitableUseFutureAndDeferred) {
  blockpool::Pool pool;
  asio::io_context io(1);
  Endpoints from_coroutine;
  std::exception_ptr coroutine_error;
  asio::co_spawn(io, resolve_in_coroutine(pool, "localhost"), [&](std::exception_ptr e, Endpoints eps) {
    coroutine_error = e;
    from_coroutine = std::move(eps);
  });
  Outcome deferred_out;
  auto deferred_op = bpdns::async_resolve(pool, "127.0.0.1", "7", asio::experimental::deferred);
  std::move(deferred_op)(asio::bind_executor(io, deferred_out.handler()));
  io.run();
  ASSERT_FALSE(coroutine_error);
  ASSERT_FALSE(from_coroutine.empty());
  EXPECT_EQ(from_coroutine[0].port(), 8080);
  ASSERT_EQ(deferred_out.calls, 1);
  ASSERT_EQ(deferred_out.endpoints.size(), 1u);
  EXPECT_EQ(deferred_out.endpoints[0].port(), 7);

  std::future<Endpoints> f = bpdns::async_resolve(pool.handle(), "localhost", "22", asio::use_future);
  Endpoints eps = f.get();
  ASSERT_FALSE(eps.empty());
  EXPECT_EQ(eps[0].port(), 22);
}

TEST_F(DNS_SUITE, ALookupAfterThePoolIsGoneCompletesCancelled) {
  blockpool::Handle handle;
  {
    blockpool::Pool pool;
    handle = pool.handle();
  }
  asio::io_context io(1);
  Outcome out;
  bpdns::async_resolve(handle, "localhost", "80", asio::bind_executor(io, out.handler()));
  io.run();
  ASSERT_EQ(out.calls, 1);
  EXPECT_TRUE(is_cancelled(out.error));
}

// ---- a name from a hosts file ------------------------------------------------
//
// The lookup must go through the system's real getaddrinfo and name service
// configuration. A child process (this test binary, re-executed to run only
// DISABLED_InPrivateHostsFile) gets a private mount namespace in which a
// temporary hosts file is bind-mounted over /etc/hosts and an nsswitch.conf
// that says "hosts: files" over /etc/nsswitch.conf: deterministic, and no
// network (no DNS server) is ever asked, so "nonexistent.invalid" fails at
// once with EAI_NONAME. As root the namespace needs nothing else; otherwise
// an unprivileged user namespace.

constexpr const char* kChildEnv = "BLOCKPOOL_DNS_TEST_CHILD_RESULT";
constexpr const char* kHostsName = "blockpool-dns-test.example";

bool write_all(const char* path, const char* text) {  // async-signal-safe
  const int fd = ::open(path, O_WRONLY);
  if (fd < 0) return false;
  std::size_t n = 0;
  while (text[n] != '\0') ++n;
  const bool ok = ::write(fd, text, n) == static_cast<ssize_t>(n);
  ::close(fd);
  return ok;
}

// In the forked child, before exec: only async-signal-safe calls.
// `self` is this binary's path, read in the parent: under valgrind the
// child's /proc/self/exe would be valgrind's own tool.
[[noreturn]] void enter_private_hosts_and_exec(const char* self, const char* hosts, const char* nsswitch,
                                               const char* uid_map, const char* gid_map, char* const argv[],
                                               char* const envp[]) {
  if (::unshare(CLONE_NEWNS) != 0) {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
    if (!write_all("/proc/self/setgroups", "deny") || !write_all("/proc/self/uid_map", uid_map) ||
        !write_all("/proc/self/gid_map", gid_map))
      ::_exit(77);
  }
  // The file system type is ignored for these two kinds of mount; "none"
  // rather than null, which valgrind reports as an unaddressable argument.
  if (::mount("none", "/", "none", MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(78);
  if (::mount(hosts, "/etc/hosts", "none", MS_BIND, nullptr) != 0) ::_exit(78);
  if (::mount(nsswitch, "/etc/nsswitch.conf", "none", MS_BIND, nullptr) != 0) ::_exit(78);
  ::execve(self, argv, envp);
  ::_exit(79);
}

TEST_F(DNS_SUITE, ANameFromTheHostsFileResolves) {
  char dir_template[] = "/tmp/blockpool-dns-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string hosts = dir + "/hosts", nsswitch = dir + "/nsswitch.conf", result = dir + "/result";
  std::ofstream(hosts) << "127.0.0.1 localhost\n10.11.12.13 " << kHostsName << "\n";
  std::ofstream(nsswitch) << "hosts: files\n";
  const std::string uid_map = "0 " + std::to_string(::getuid()) + " 1";
  const std::string gid_map = "0 " + std::to_string(::getgid()) + " 1";

  const std::string filter = "--gtest_filter=" + std::string(::testing::UnitTest::GetInstance()->current_test_suite()->name()) +
                             ".DISABLED_InPrivateHostsFile";
  std::vector<std::string> args = {"dns_test", filter, "--gtest_also_run_disabled_tests"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    // Under valgrind the child runs natively: without valgrind's preloads.
    const std::string_view entry = *e;
    if (entry.rfind("LD_PRELOAD=", 0) == 0 && entry.find("vgpreload") != std::string_view::npos) continue;
    if (entry.rfind("VALGRIND_", 0) == 0) continue;
    env.emplace_back(entry);
  }
  env.push_back(std::string(kChildEnv) + "=" + result);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  char self[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof self - 1), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0)
    enter_private_hosts_and_exec(self, hosts.c_str(), nsswitch.c_str(), uid_map.c_str(), gid_map.c_str(), argv.data(),
                                 envp.data());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  std::string verdict;
  std::getline(std::ifstream(result), verdict);
  for (const auto& f : {hosts, nsswitch, result}) ::unlink(f.c_str());
  ::rmdir(dir.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77)
    GTEST_SKIP() << "needs root (CAP_SYS_ADMIN) or unprivileged user namespaces to give the lookup a "
                    "private /etc/hosts";
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child failed (78: mount, 79: exec, 1: its assertions)";
  EXPECT_EQ(verdict, "ok") << "the child did not run its test";
}

// Runs only in the child started by ANameFromTheHostsFileResolves.
TEST_F(DNS_SUITE, DISABLED_InPrivateHostsFile) {
  const char* result = std::getenv(kChildEnv);
  if (result == nullptr) GTEST_SKIP() << "runs only as the child of ANameFromTheHostsFileResolves";
  blockpool::Pool pool;
  asio::io_context io(1);
  Outcome named, missing;
  bpdns::async_resolve(pool, kHostsName, "443", asio::bind_executor(io, named.handler()));
  bpdns::async_resolve(pool, "nonexistent.invalid", "443", asio::bind_executor(io, missing.handler()));
  io.run();
  ASSERT_EQ(named.calls, 1);
  ASSERT_FALSE(named.error);
  ASSERT_EQ(named.endpoints.size(), 1u);
  EXPECT_EQ(named.endpoints[0], asio::ip::tcp::endpoint(asio::ip::make_address("10.11.12.13"), 443));
  ASSERT_EQ(missing.calls, 1);
  ASSERT_TRUE(missing.error);
  const std::system_error e = system_error_of(missing.error);
  EXPECT_EQ(e.code(), std::error_code(EAI_NONAME, bpdns::category()));
  EXPECT_NE(std::string(e.what()).find("\"nonexistent.invalid\""), std::string::npos) << e.what();
  if (!HasFailure()) std::ofstream(result) << "ok\n";
}

}  // namespace

#if defined(BLOCKPOOL_DNS_TEST_BOTH_FLAVOURS)
// Both flavours' lookups in one translation unit, on one pool.
#include <boost/asio/io_context.hpp>

#include "blockpool/boost_asio.hpp"

TEST(dns_two_flavours, OnePoolResolvesForBothLoops) {
  blockpool::Pool pool;
  asio::io_context io1(1);
  boost::asio::io_context io2(1);
  Endpoints a;
  std::vector<boost::asio::ip::tcp::endpoint> b;
  blockpool::dns::async_resolve(pool, "localhost", "1", asio::bind_executor(io1, [&](std::exception_ptr e, Endpoints eps) {
    EXPECT_FALSE(e);
    a = std::move(eps);
  }));
  blockpool::boost_asio::dns::async_resolve(
      pool, "localhost", "2",
      boost::asio::bind_executor(io2, [&](std::exception_ptr e, std::vector<boost::asio::ip::tcp::endpoint> eps) {
        EXPECT_FALSE(e);
        b = std::move(eps);
      }));
  io1.run();
  io2.run();
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(a[0].port(), 1);
  EXPECT_EQ(b[0].port(), 2);
}
#endif
