// blockpool::fs (<blockpool/fs.hpp>; blockpool::boost_asio::fs with
// BLOCKPOOL_TEST_BOOST_ASIO): whole-file and path operations, directory
// listing in batches, File with write-behind writes that survive shutdown
// and destruction, errors that name the path, cancellation, lanes, and the
// completion tokens (callbacks, use_future, use_awaitable).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <iterator>
#include <string>
#include <vector>

#include "asio_flavour.hpp"
#include "test_util.hpp"

#if defined(BLOCKPOOL_TEST_BOOST_ASIO)
namespace bpfs = blockpool::boost_asio::fs;
#else
#include "blockpool/fs.hpp"
namespace bpfs = blockpool::fs;
#endif

using bptest::BusyThreads;
using OpenMode = bpfs::OpenMode;
namespace stdfs = std::filesystem;

namespace {

// A fresh directory under the system's temporary directory, removed with
// everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (stdfs::temp_directory_path() / "blockpool-fs-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    stdfs::remove_all(root_, ec);
  }
  stdfs::path operator/(const std::string& name) const { return root_ / name; }
  const stdfs::path& path() const { return root_; }

 private:
  stdfs::path root_;
};

std::string slurp(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const stdfs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }

// Bytes that differ from position to position (and include NULs), so a chunk
// out of place or lost shows.
std::string pattern(std::size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Runs `co` on a fresh io_context to its end; rethrows what it threw.
template <class T>
T run_co(asio::awaitable<T> co) {
  asio::io_context io(1);
  std::future<T> f = asio::co_spawn(io, std::move(co), asio::use_future);
  io.run();
  return f.get();
}

// The exception in `e`, classified.
struct Failure {
  std::string kind;  // "ok", "fs", "system", "cancelled", "join", "other"
  std::error_code code;
  stdfs::path path;
};
Failure classify(std::exception_ptr e) {
  if (!e) return {"ok", {}, {}};
  try {
    std::rethrow_exception(e);
  } catch (const stdfs::filesystem_error& f) {
    return {"fs", f.code(), f.path1()};
  } catch (const std::system_error& s) {
    return {"system", s.code(), {}};
  } catch (const blockpool::JoinError& j) {
    return {j.is_cancelled() ? "cancelled" : "join", {}, {}};
  } catch (...) {
    return {"other", {}, {}};
  }
}

// A file's bytes after every task of `pool` that was queued so far has ended,
// on a pool of one thread: a task spawned now starts after them (FIFO).
void wait_for_queued(blockpool::Pool& pool) { pool.spawn_blocking([] {}).get(); }

const blockpool::LaneMetrics* lane_metrics(const blockpool::Metrics& m, const std::string& name) {
  for (const auto& l : m.lanes)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace

TEST(Fs, WholeFileRoundTripWithAwaitable) {
  TempDir dir;
  blockpool::Pool pool;
  const std::string big = pattern(3 * 256 * 1024 + 17);  // several read chunks
  const stdfs::path p = dir / "big.bin";
  auto co = [&]() -> asio::awaitable<std::string> {
    co_await bpfs::async_write_file(pool, p, big, asio::use_awaitable);
    const std::uintmax_t size = co_await bpfs::async_file_size(pool, p, asio::use_awaitable);
    EXPECT_EQ(size, big.size());
    co_return co_await bpfs::async_read_file(pool, p, asio::use_awaitable);
  };
  const std::string back = run_co(co());
  EXPECT_TRUE(back == big) << back.size() << " bytes read back of " << big.size();
  EXPECT_EQ(slurp(p), big);
  // Not a regular file: read until the end all the same.
  EXPECT_FALSE(run_co(bpfs::async_read_file(pool, "/proc/self/status", asio::use_awaitable)).empty());
  // Writing replaces the whole content.
  run_co(bpfs::async_write_file(pool, p, std::string("short"), asio::use_awaitable));
  EXPECT_EQ(slurp(p), "short");
}

TEST(Fs, MissingFileFailsWithFilesystemErrorNamingThePath) {
  TempDir dir;
  blockpool::Pool pool;
  asio::io_context io(1);
  const stdfs::path missing = dir / "no-such-file";
  Failure read, size, list;
  std::string value = "unchanged";
  bpfs::async_read_file(pool, missing, asio::bind_executor(io, [&](std::exception_ptr e, std::string s) {
                          read = classify(e);
                          value = std::move(s);
                        }));
  bpfs::async_file_size(pool, missing,
                        asio::bind_executor(io, [&](std::exception_ptr e, std::uintmax_t) { size = classify(e); }));
  bpfs::async_read_dir(pool, missing,
                       asio::bind_executor(io, [&](std::exception_ptr e, std::vector<stdfs::directory_entry>) {
                         list = classify(e);
                       }));
  io.run();
  for (const Failure* f : {&read, &size, &list}) {
    EXPECT_EQ(f->kind, "fs");
    EXPECT_EQ(f->code, std::errc::no_such_file_or_directory);
    EXPECT_EQ(f->path, missing);
  }
  EXPECT_EQ(value, "");  // the value of a failed operation is empty
}

TEST(Fs, PathOperationsWithUseFuture) {
  TempDir dir;
  blockpool::Pool pool;
  const stdfs::path nested = dir / "a/b/c";
  EXPECT_TRUE(bpfs::async_create_directories(pool, nested, asio::use_future).get());
  EXPECT_TRUE(stdfs::is_directory(nested));
  EXPECT_FALSE(bpfs::async_create_directories(pool, nested, asio::use_future).get());  // already there
  spit(dir / "src", "content");
  EXPECT_TRUE(bpfs::async_copy_file(pool, dir / "src", nested / "copy", asio::use_future).get());
  EXPECT_EQ(slurp(nested / "copy"), "content");
  // An existing target: an error by default, overwritten when asked.
  spit(dir / "src", "newer");
  try {
    bpfs::async_copy_file(pool, dir / "src", nested / "copy", asio::use_future).get();
    ADD_FAILURE() << "copying onto an existing file must fail by default";
  } catch (const stdfs::filesystem_error& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists);
  }
  EXPECT_TRUE(bpfs::async_copy_file(pool, dir / "src", nested / "copy", stdfs::copy_options::overwrite_existing,
                                    asio::use_future)
                  .get());
  EXPECT_EQ(slurp(nested / "copy"), "newer");
  bpfs::async_rename(pool, nested / "copy", dir / "renamed", asio::use_future).get();
  EXPECT_FALSE(stdfs::exists(nested / "copy"));
  EXPECT_EQ(slurp(dir / "renamed"), "newer");
  EXPECT_TRUE(bpfs::async_remove(pool, dir / "renamed", asio::use_future).get());
  EXPECT_FALSE(bpfs::async_remove(pool, dir / "renamed", asio::use_future).get());  // gone already
  EXPECT_FALSE(stdfs::exists(dir / "renamed"));
}

TEST(Fs, ReadDirListsABigDirectoryInBatchesNotPerEntry) {
  TempDir dir;
  constexpr int kFiles = 2500;
  std::set<std::string> expected;
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = "f" + std::to_string(i);
    spit(dir / name, "");
    expected.insert(name);
  }
  stdfs::create_directory(dir / "sub");
  expected.insert("sub");
  blockpool::Pool pool;
  const std::uint64_t before = pool.metrics().spawned;
  const std::vector<stdfs::directory_entry> entries =
      run_co(bpfs::async_read_dir(pool, dir.path(), asio::use_awaitable));
  const std::uint64_t tasks = pool.metrics().spawned - before;
  std::set<std::string> names;
  for (const auto& e : entries) names.insert(e.path().filename().string());
  EXPECT_EQ(entries.size(), expected.size());  // each entry once
  EXPECT_EQ(names, expected);
  EXPECT_GT(tasks, 1u) << "a big directory is listed in several tasks";
  EXPECT_LE(tasks, expected.size() / 256 + 1) << "batches of entries, not a task per entry";
  // An empty directory: no entries.
  EXPECT_TRUE(run_co(bpfs::async_read_dir(pool, dir / "sub", asio::use_awaitable)).empty());
}

TEST(Fs, CancelledBeforeItsTaskStartsHasNoEffect) {
  TempDir dir;
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io(1);
  const stdfs::path p = dir / "never";
  Failure write, list;
  {
    BusyThreads busy(pool, 1);  // every task below stays queued
    asio::cancellation_signal sig_write, sig_list;
    bpfs::async_write_file(pool, p, std::string("data"),
                           asio::bind_cancellation_slot(sig_write.slot(), asio::bind_executor(io, [&](std::exception_ptr e) {
                                                          write = classify(e);
                                                        })));
    bpfs::async_read_dir(pool, dir.path(),
                         asio::bind_cancellation_slot(
                             sig_list.slot(), asio::bind_executor(io, [&](std::exception_ptr e,
                                                                          std::vector<stdfs::directory_entry>) {
                               list = classify(e);
                             })));
    sig_write.emit(asio::cancellation_type::terminal);
    sig_list.emit(asio::cancellation_type::terminal);
    io.run();  // both complete while the only thread is still busy
    EXPECT_EQ(write.kind, "cancelled");
    EXPECT_EQ(list.kind, "cancelled");
  }
  wait_for_queued(pool);
  EXPECT_FALSE(stdfs::exists(p)) << "a cancelled write_file never ran";
}

TEST(Fs, FileWritesBehindInOrderAndReadsBack) {
  TempDir dir;
  blockpool::Pool pool;
  const stdfs::path p = dir / "log";
  auto co = [&]() -> asio::awaitable<std::string> {
    bpfs::File f = co_await bpfs::File::async_open(pool, p, OpenMode::write | OpenMode::create | OpenMode::truncate,
                                                   asio::use_awaitable);
    EXPECT_TRUE(f.is_open());
    std::string all;
    for (int i = 0; i < 100; ++i) {
      std::string line = "line " + std::to_string(i) + "\n";
      all += line;
      co_await f.async_write(std::move(line), asio::use_awaitable);
    }
    co_await f.async_flush(asio::use_awaitable);
    EXPECT_EQ(slurp(p), all) << "flushed: everything written, in order";
    co_await f.async_write(std::string("tail\n"), asio::use_awaitable);
    co_await f.async_sync(asio::use_awaitable);
    co_return all + "tail\n";
  };
  const std::string expected = run_co(co());
  EXPECT_EQ(slurp(p), expected);

  // Append mode: writes go to the end of what is there.
  auto append = [&]() -> asio::awaitable<void> {
    bpfs::File f = co_await bpfs::File::async_open(pool, p, OpenMode::append, asio::use_awaitable);
    co_await f.async_write(std::string("more\n"), asio::use_awaitable);
    co_await f.async_flush(asio::use_awaitable);
  };
  run_co(append());
  EXPECT_EQ(slurp(p), expected + "more\n");
}

TEST(Fs, FileReadSomeInChunksThenEmptyAtEof) {
  TempDir dir;
  blockpool::Pool pool;
  const std::string content = pattern(1024 * 1024 + 5, 7);  // more than one read
  const stdfs::path p = dir / "data";
  spit(p, content);
  auto co = [&]() -> asio::awaitable<std::vector<std::string>> {
    bpfs::File f = co_await bpfs::File::async_open(pool, p, OpenMode::read, asio::use_awaitable);
    std::vector<std::string> chunks;
    for (;;) {
      std::string c = co_await f.async_read_some(300 * 1000, asio::use_awaitable);
      if (c.empty()) break;
      chunks.push_back(std::move(c));
    }
    // At the end it stays empty.
    chunks.push_back(co_await f.async_read_some(10, asio::use_awaitable));
    co_return chunks;
  };
  const std::vector<std::string> chunks = run_co(co());
  ASSERT_GE(chunks.size(), 5u);  // 4 reads of at most 300000 bytes, then the end
  EXPECT_EQ(chunks.back(), "");
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_LE(c.size(), 300u * 1000);
    joined += c;
  }
  EXPECT_TRUE(joined == content);

  // Read-write: a read sees the writes queued before it.
  auto rw = [&]() -> asio::awaitable<std::string> {
    bpfs::File f = co_await bpfs::File::async_open(pool, dir / "rw", OpenMode::read | OpenMode::write | OpenMode::create,
                                                   asio::use_awaitable);
    co_await f.async_write(std::string("abc"), asio::use_awaitable);
    co_return co_await f.async_read_some(10, asio::use_awaitable);  // the offset is at the end
  };
  EXPECT_EQ(run_co(rw()), "");
  EXPECT_EQ(slurp(dir / "rw"), "abc");
}

TEST(Fs, BackgroundWriteErrorIsReportedByTheNextOperationOnce) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bpfs::File f = bpfs::File::async_open(pool, "/dev/full", OpenMode::write, asio::use_future).get();
  // Acknowledged at once: the write happens behind.
  EXPECT_NO_THROW(f.async_write(std::string("x"), asio::use_future).get());
  wait_for_queued(pool);  // the background write has failed by now
  try {
    f.async_write(std::string("y"), asio::use_future).get();
    ADD_FAILURE() << "the next write must report the background error";
  } catch (const stdfs::filesystem_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_space_on_device);
    EXPECT_EQ(e.path1(), "/dev/full");
  }
  // Reported once: the File works again, and async_flush reports the next one.
  EXPECT_NO_THROW(f.async_write(std::string("z"), asio::use_future).get());
  try {
    f.async_flush(asio::use_future).get();
    ADD_FAILURE() << "async_flush must report the failed write";
  } catch (const stdfs::filesystem_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_space_on_device);
  }
  EXPECT_NO_THROW(f.async_flush(asio::use_future).get());  // nothing pending, nothing failed
}

TEST(Fs, AcknowledgedWritesSurviveAShutdownRightAfter) {
  TempDir dir;
  const stdfs::path p = dir / "out";
  std::string expected;
  {
    blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
    auto co = [&]() -> asio::awaitable<void> {
      bpfs::File f = co_await bpfs::File::async_open(pool, p, OpenMode::write | OpenMode::create, asio::use_awaitable);
      BusyThreads busy(pool, 1);  // nothing gets written before shutdown begins
      for (unsigned i = 0; i < 200; ++i) {
        std::string chunk = pattern(4096, i);
        expected += chunk;
        co_await f.async_write(std::move(chunk), asio::use_awaitable);
      }
      pool.shutdown_background();
      EXPECT_EQ(stdfs::file_size(p), 0u);
    };  // busy released, then the File destroyed, with its writes pending
    run_co(co());
  }  // the pool's destructor waits for its mandatory tasks
  EXPECT_TRUE(slurp(p) == expected) << stdfs::file_size(p) << " of " << expected.size() << " bytes";
}

TEST(Fs, WriteAfterShutdownFailsRatherThanBeingLost) {
  TempDir dir;
  const stdfs::path p = dir / "out";
  blockpool::Pool pool;
  bpfs::File f = bpfs::File::async_open(pool, p, OpenMode::write | OpenMode::create, asio::use_future).get();
  f.async_write(std::string("before"), asio::use_future).get();
  pool.shutdown();
  try {
    f.async_write(std::string("after"), asio::use_future).get();
    ADD_FAILURE() << "no task can write it: the write must not be acknowledged";
  } catch (const blockpool::JoinError& e) {
    EXPECT_TRUE(e.is_cancelled());
  }
  EXPECT_EQ(slurp(p), "before");
}

TEST(Fs, DestroyedFileFinishesItsWritesThenClosesItsDescriptor) {
  TempDir dir;
  const stdfs::path p = dir / "out";
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  bpfs::File f =
      bpfs::File::async_open(pool, p, OpenMode::write | OpenMode::create | OpenMode::truncate, asio::use_future).get();
  const int fd = f.native_handle();
  ASSERT_GE(fd, 0);
  std::string expected;
  {
    BusyThreads busy(pool, 1);
    for (unsigned i = 0; i < 50; ++i) {
      std::string chunk = pattern(1000, i);
      expected += chunk;
      f.async_write(std::move(chunk), asio::use_future).get();
    }
    EXPECT_EQ(stdfs::file_size(p), 0u) << "the writes are still pending";
    f = bpfs::File();  // destroys the open File
    EXPECT_FALSE(f.is_open());
  }
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));
  EXPECT_TRUE(slurp(p) == expected);
  errno = 0;
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the descriptor is closed";
  EXPECT_EQ(errno, EBADF);
  // Operations on a File that is not open fail at once.
  try {
    f.async_write(std::string("x"), asio::use_future).get();
    ADD_FAILURE() << "a File that is not open cannot write";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::bad_file_descriptor);
  }
}

TEST(Fs, CancelledFlushLeavesTheWritesToBeWritten) {
  TempDir dir;
  const stdfs::path p = dir / "out";
  blockpool::Pool pool = blockpool::Builder{}.max_threads(1).build();
  asio::io_context io(1);
  bpfs::File f =
      bpfs::File::async_open(pool, p, OpenMode::write | OpenMode::create, asio::use_future).get();
  Failure flush;
  {
    BusyThreads busy(pool, 1);
    f.async_write(std::string("kept"), asio::use_future).get();
    asio::cancellation_signal sig;
    f.async_flush(asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(io, [&](std::exception_ptr e) {
                                                 flush = classify(e);
                                               })));
    sig.emit(asio::cancellation_type::terminal);
    io.run();
    EXPECT_EQ(flush.kind, "cancelled");
  }
  f.async_flush(asio::use_future).get();
  EXPECT_EQ(slurp(p), "kept");
}

TEST(Fs, LaneHandleRunsEveryTaskInTheLane) {
  TempDir dir;
  blockpool::Pool pool = blockpool::Builder{}.lane("disk", {.max_running = 1}).build();
  const blockpool::Handle disk = pool.lane("disk");
  const stdfs::path p = dir / "lane";
  auto co = [&]() -> asio::awaitable<std::string> {
    co_await bpfs::async_write_file(disk, p, std::string("via the lane\n"), asio::use_awaitable);
    bpfs::File f = co_await bpfs::File::async_open(disk, p, OpenMode::append, asio::use_awaitable);
    co_await f.async_write(std::string("and its File\n"), asio::use_awaitable);
    co_await f.async_flush(asio::use_awaitable);
    (void)co_await bpfs::async_read_dir(disk, dir.path(), asio::use_awaitable);
    co_return co_await bpfs::async_read_file(disk, p, asio::use_awaitable);
  };
  EXPECT_EQ(run_co(co()), "via the lane\nand its File\n");
  EXPECT_TRUE(pool.shutdown(bptest::kLongWait));  // the File's closing task has ended too
  const blockpool::Metrics m = pool.metrics();
  const blockpool::LaneMetrics* lane = lane_metrics(m, "disk");
  const blockpool::LaneMetrics* dflt = lane_metrics(m, "");
  ASSERT_NE(lane, nullptr);
  ASSERT_NE(dflt, nullptr);
  EXPECT_GE(lane->completed, 6u);  // write_file, open, drain, flush, read_dir, read_file
  EXPECT_EQ(dflt->spawned, 0u) << "nothing ran outside the lane";
}

TEST(Fs, DeferredOperationStartsWhenLaunched) {
  TempDir dir;
  blockpool::Pool pool;
  const stdfs::path p = dir / "later";
  auto op = bpfs::async_write_file(pool, p, std::string("x"), asio::experimental::deferred);
  EXPECT_FALSE(stdfs::exists(p)) << "nothing happens before the deferred operation is launched";
  std::move(op)(asio::use_future).get();
  EXPECT_EQ(slurp(p), "x");
}
