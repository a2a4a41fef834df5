// blockpool/detail/fs_common.hpp: the parts of blockpool::fs that do not
// depend on which Asio serves them: the blocking calls the tasks make, and
// the state a File shares with its background tasks. Not a public header;
// <blockpool/fs.hpp> is the contract.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "blockpool/join_error.hpp"
#include "blockpool/pool.hpp"

namespace blockpool::detail::fs_common {

namespace stdfs = std::filesystem;

// How File::async_open opens a file (bit flags; combine with |).
enum class OpenMode : unsigned {
  read = 1u << 0,      // reading allowed
  write = 1u << 1,     // writing allowed
  create = 1u << 2,    // create the file (mode 0666 & ~umask) if it does not exist
  truncate = 1u << 3,  // cut an existing file to length 0
  append = 1u << 4,    // every write goes to the end of the file (implies write)
};
constexpr OpenMode operator|(OpenMode a, OpenMode b) noexcept {
  return static_cast<OpenMode>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr OpenMode operator&(OpenMode a, OpenMode b) noexcept {
  return static_cast<OpenMode>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
constexpr OpenMode& operator|=(OpenMode& a, OpenMode b) noexcept { return a = a | b; }
constexpr bool has(OpenMode set, OpenMode flag) noexcept { return (set & flag) == flag; }

// What an operation runs on: a Pool or a Handle (a lane's too), taken by
// implicit conversion so every function needs one signature. It owns a
// Handle, so an operation started later (use_awaitable, deferred) never
// refers to the Pool object.
class PoolRef {
 public:
  PoolRef(const Pool& pool) : handle_(pool.handle()) {}  // NOLINT(google-explicit-constructor)
  PoolRef(const Handle& handle) : handle_(handle) {}     // NOLINT(google-explicit-constructor)
  [[nodiscard]] const Handle& handle() const noexcept { return handle_; }

 private:
  Handle handle_;
};

// The size of one read(2) in async_read_file and of one batch of
// async_read_dir: a task checks its stop token, and async_read_dir its
// cancellation, between two of them.
inline constexpr std::size_t kReadChunk = 256 * 1024;
inline constexpr std::size_t kDirBatch = 512;

[[noreturn]] inline void throw_errno(const char* op, const stdfs::path& path, int err) {
  throw stdfs::filesystem_error(op, path, std::error_code(err, std::generic_category()));
}

[[noreturn]] inline void throw_stopped() {
  throw std::system_error(std::make_error_code(std::errc::operation_canceled), "blockpool::fs: stopped");
}

// Closes the descriptor it holds when it goes.
class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) (void)::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  // Closes now; returns the errno of close(2), 0 on success.
  int close() noexcept {
    const int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

// Writes all of [data, data + size) at the descriptor's offset, through
// short writes and EINTR. Returns 0, or the errno of the write that failed.
inline int write_all(int fd, const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

// One read(2) of at most `n` bytes, through EINTR. Returns the byte count, or
// -1 with errno set.
inline ssize_t read_once(int fd, char* buf, std::size_t n) noexcept {
  for (;;) {
    const ssize_t r = ::read(fd, buf, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

// The whole file. A regular file is read into a buffer of its size; anything
// else (a pipe, a /proc file) grows as it comes. Stops between two chunks if
// `stop` is requested.
inline std::string read_file(const stdfs::path& path, const std::stop_token& stop) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) throw_errno("async_read_file", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("async_read_file", path, errno);
  std::string out;
  // One byte more than the size: the read that finds the end needs no growth.
  out.resize(S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) + 1 : kReadChunk);
  std::size_t filled = 0;
  for (;;) {
    if (stop.stop_requested()) throw_stopped();
    if (filled == out.size()) out.resize(out.size() + std::max(out.size(), kReadChunk));
    const ssize_t n = read_once(fd.get(), out.data() + filled, std::min(out.size() - filled, kReadChunk));
    if (n < 0) throw_errno("async_read_file", path, errno);
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  out.resize(filled);
  return out;
}

// Creates or truncates the file and writes `data`; a close(2) error counts.
inline void write_file(const stdfs::path& path, const std::string& data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666));
  if (fd.get() < 0) throw_errno("async_write_file", path, errno);
  if (const int err = write_all(fd.get(), data.data(), data.size()); err != 0)
    throw_errno("async_write_file", path, err);
  if (const int err = fd.close(); err != 0) throw_errno("async_write_file", path, err);
}

// async_read_dir's progress, handed from one batch task to the next: the
// open iterator (null before the first batch) and the entries so far.
struct DirListing {
  std::shared_ptr<stdfs::directory_iterator> it;
  std::vector<stdfs::directory_entry> entries;
  bool done = false;
};

// Lists up to kDirBatch more entries of `dir` (opening it on the first call).
inline DirListing read_dir_batch(const stdfs::path& dir, DirListing listing) {
  if (!listing.it) listing.it = std::make_shared<stdfs::directory_iterator>(dir);  // throws with the path
  stdfs::directory_iterator& it = *listing.it;
  const stdfs::directory_iterator end;
  for (std::size_t i = 0; i < kDirBatch && it != end; ++i) {
    listing.entries.push_back(*it);
    std::error_code ec;
    it.increment(ec);
    if (ec) throw stdfs::filesystem_error("async_read_dir", dir, ec);
  }
  listing.done = it == end;
  return listing;
}

// Opens `path` as File::async_open does; returns the descriptor.
inline int open_file(const stdfs::path& path, OpenMode mode) {
  const bool rd = has(mode, OpenMode::read);
  const bool wr = has(mode, OpenMode::write) || has(mode, OpenMode::append);
  if (!rd && !wr) throw_errno("async_open", path, EINVAL);
  int flags = (rd && wr ? O_RDWR : wr ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY;
  if (has(mode, OpenMode::create)) flags |= O_CREAT;
  if (has(mode, OpenMode::truncate)) flags |= O_TRUNC;
  if (has(mode, OpenMode::append)) flags |= O_APPEND;
  const int fd = ::open(path.c_str(), flags, 0666);
  if (fd < 0) throw_errno("async_open", path, errno);
  return fd;
}

// The state a File shares with the pool tasks that work on it: the File
// holds one reference and every task spawned for it another, so the
// descriptor stays open until the File is gone and its last task has ended;
// the last reference closes it.
//
// Invariants (m_ guards pending_, drain_scheduled_ and error_):
//   * Bytes reach the descriptor only through drain_locked(), called with io_
//     held; it takes pending_ whole under m_ and writes it before taking
//     more. So writes hit the file in the order their async_write was
//     initiated, and no read, flush or sync overlaps a write.
//   * pending_ is non-empty only while a drain task is scheduled
//     (drain_scheduled_: spawned as a mandatory task, not yet started) or a
//     task in drain_locked() has yet to find pending_ empty under m_. enqueue
//     schedules a drain task whenever none is, and a task clears
//     drain_scheduled_ only once it holds io_ and is about to drain; so data
//     an async_write acknowledged is written even if the pool shuts down
//     (mandatory tasks still run) and even if the File is destroyed.
//   * A task waits for io_ only while another task holds it, and a holder is
//     running, never queued: no task waits for a task that has not started,
//     so a pool or lane of one thread cannot deadlock.
//   * error_ is the first error of a background write (or of a drain task the
//     pool refused) not yet reported; while it is set, pending_ is empty (the
//     data after a failed write is dropped, never written out of order). The
//     next operation takes it and fails with it; then the File works again.
class FileState {
 public:
  FileState(Handle pool, int fd, OpenMode mode, stdfs::path path) noexcept
      : pool_(std::move(pool)), fd_(fd), mode_(mode), path_(std::move(path)) {}
  FileState(const FileState&) = delete;
  FileState& operator=(const FileState&) = delete;
  ~FileState() { (void)::close(fd_); }  // unreported errors die with the File

  [[nodiscard]] const Handle& pool() const noexcept { return pool_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool writable() const noexcept {
    return has(mode_, OpenMode::write) || has(mode_, OpenMode::append);
  }
  [[nodiscard]] const stdfs::path& path() const noexcept { return path_; }

  // Queues `data` behind the writes before it. Returns the pending error
  // instead (the data is then dropped). Sets `spawn_drain` when the caller
  // must spawn a DrainTask: it then owns drain_scheduled_.
  std::exception_ptr enqueue(std::string&& data, bool& spawn_drain) {
    spawn_drain = false;
    std::lock_guard<std::mutex> lock(m_);
    if (error_) return std::exchange(error_, nullptr);
    if (data.empty()) return nullptr;
    if (pending_.empty()) {
      pending_ = std::move(data);
    } else {
      pending_.append(data);
    }
    if (!drain_scheduled_) spawn_drain = drain_scheduled_ = true;
    return nullptr;
  }

  // The unreported error, if any, now reported.
  std::exception_ptr take_error() {
    std::lock_guard<std::mutex> lock(m_);
    return std::exchange(error_, nullptr);
  }

  // A drain task's body.
  void drain_task() {
    std::lock_guard<std::mutex> io(io_);
    {
      std::lock_guard<std::mutex> lock(m_);
      drain_scheduled_ = false;
    }
    drain_locked();
  }

  // A drain task that will never run (the pool refused it or could not start
  // it): what it would have written is lost, which the next operation reports.
  void drain_refused() noexcept {
    std::lock_guard<std::mutex> lock(m_);
    drain_scheduled_ = false;
    if (pending_.empty()) return;
    pending_.clear();
    if (!error_)
      error_ = std::make_exception_ptr(JoinError(JoinError::Kind::kCancelled, JoinError::Reason::kSpawnAfterShutdown));
  }

  // async_flush: everything queued so far written to the descriptor, or the
  // error of a write that failed.
  void flush() {
    std::lock_guard<std::mutex> io(io_);
    drain_locked();
    rethrow_error();
  }

  // async_sync: flush(), then fsync(2).
  void sync() {
    std::lock_guard<std::mutex> io(io_);
    drain_locked();
    rethrow_error();
    if (::fsync(fd_) != 0) throw_errno("async_sync", path_, errno);
  }

  // async_read_some: pending writes first (a read sees them), then one read.
  std::string read_some(std::size_t n) {
    std::lock_guard<std::mutex> io(io_);
    drain_locked();
    rethrow_error();
    std::string out(n, '\0');
    const ssize_t got = read_once(fd_, out.data(), n);
    if (got < 0) throw_errno("async_read_some", path_, errno);
    out.resize(static_cast<std::size_t>(got));
    return out;
  }

 private:
  void rethrow_error() {
    if (std::exception_ptr e = take_error()) std::rethrow_exception(e);
  }

  // Writes pending_ until it is empty; io_ is held.
  void drain_locked() {
    for (;;) {
      std::string chunk;
      {
        std::lock_guard<std::mutex> lock(m_);
        if (pending_.empty()) return;
        chunk.swap(pending_);
      }
      if (const int err = write_all(fd_, chunk.data(), chunk.size()); err != 0) {
        std::lock_guard<std::mutex> lock(m_);
        pending_.clear();
        if (!error_)
          error_ = std::make_exception_ptr(
              stdfs::filesystem_error("async_write", path_, std::error_code(err, std::generic_category())));
        return;
      }
    }
  }

  const Handle pool_;  // where the File's tasks run (a lane's handle, maybe)
  const int fd_;
  const OpenMode mode_;
  const stdfs::path path_;  // for error messages
  std::mutex io_;           // held by the one task using fd_; taken before m_
  std::mutex m_;
  std::string pending_;     // acknowledged writes not yet taken by a drain
  bool drain_scheduled_ = false;
  std::exception_ptr error_;
};

// The mandatory task that writes a File's queued data. If the pool never
// runs it, its destruction reports that (FileState::drain_refused); a
// moved-from or run task reports nothing.
class DrainTask {
 public:
  explicit DrainTask(std::shared_ptr<FileState> state) noexcept : state_(std::move(state)) {}
  DrainTask(DrainTask&& other) noexcept : state_(std::move(other.state_)) {}
  DrainTask& operator=(DrainTask&&) = delete;
  ~DrainTask() {
    if (state_) state_->drain_refused();
  }
  void operator()() {
    const std::shared_ptr<FileState> state = std::move(state_);
    state->drain_task();
  }

 private:
  std::shared_ptr<FileState> state_;
};

// Queues `data` on `state` and makes sure a drain task will write it.
// Returns the error the async_write completes with (null: acknowledged).
inline std::exception_ptr write_behind(const std::shared_ptr<FileState>& state, std::string&& data) {
  bool spawn = false;
  if (std::exception_ptr e = state->enqueue(std::move(data), spawn)) return e;
  if (!spawn) return nullptr;
  // Outside m_: a refused task is destroyed inside this call and takes m_.
  JoinHandle<void> drain = state->pool().spawn_mandatory_blocking(DrainTask(state));
  if (!drain.is_finished()) return nullptr;
  try {
    drain.get();  // it already ran: whatever it met is the next operation's to report
    return nullptr;
  } catch (const JoinError&) {
    // Refused (the pool is shutting down or gone): the drain was destroyed,
    // dropping this write's data; fail this write with what that recorded.
    std::exception_ptr e = state->take_error();
    return e ? e : std::current_exception();
  }
}

}  // namespace blockpool::detail::fs_common
