// store.hpp: the key-value store on SQLite that kvserver serves. No Asio here:
// every function blocks, and the server decides on which thread it runs (a
// blockpool task, a fixed thread pool, or the event loop itself).
//
// * One SQLite connection per thread, opened lazily the first time a thread
//   calls into the store and closed when that thread exits (a thread_local):
//   a pool thread that retires after its keep-alive takes its connection
//   with it. Connections are opened with SQLITE_OPEN_NOMUTEX, which is safe
//   because a connection never leaves its thread.
// * The database is in WAL mode (readers never wait for the writer) with
//   synchronous=NORMAL: a commit that has returned survives the process
//   exiting or being killed (it is in the WAL file); it may be lost only if
//   the machine itself loses power before the next checkpoint.
// * Writes (put, erase) take a process-wide mutex, so this process's
//   connections never wait on each other's write locks through SQLite's
//   sleeping busy handler; another process writing is handled by
//   busy_timeout (5 s).
// * Errors are thrown as StoreError (the server answers 500).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kv {

struct Connection;  // one thread's SQLite connection (store.cpp)

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What GET /scan answers: how many rows matched, and a checksum of them.
struct ScanResult {
  std::uint64_t count = 0;
  // Sum (mod 2^64) over the matching rows of row_hash(key, value): it does
  // not depend on the order the rows are visited in.
  std::uint64_t checksum = 0;
  bool stopped = false;  // the scan saw a stop request and returned early
};

// FNV-1a (64 bits) over key, one NUL byte, then value.
std::uint64_t row_hash(std::string_view key, std::string_view value) noexcept;

class Store {
 public:
  // Creates the database file and its table if missing, and switches the file
  // to WAL mode (a property of the file: every later connection uses it).
  // Uses a connection of its own, closed before returning.
  explicit Store(std::string path);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::string& path() const noexcept { return path_; }

  std::optional<std::string> get(std::string_view key);
  // Returns once the row is committed.
  void put(std::string_view key, std::string_view value);
  // True if a row was deleted.
  bool erase(std::string_view key);
  // The deliberately slow query: a full table scan (the prefix test is a
  // function call SQLite cannot answer from the primary key's index). Checks
  // `stop` every few hundred rows and returns early, stopped = true, when it
  // is triggered.
  ScanResult scan(std::string_view prefix, std::stop_token stop = {});

  // Fills the table with keys "key00000000".."key{n-1}" (zero-padded to 8
  // digits) and values of `value_size` pseudo-random printable bytes (a
  // fixed seed: the same n and size give the same data), in one
  // transaction. Rows already there are replaced.
  void populate(std::uint64_t n, std::size_t value_size);
  std::uint64_t count();

  // Scans that started running (whether or not they were stopped early).
  std::uint64_t scans_started() const noexcept { return scans_started_.load(std::memory_order_relaxed); }
  // Connections this store has opened so far (one per thread that used it).
  std::uint64_t connections_opened() const noexcept {
    return connections_opened_.load(std::memory_order_relaxed);
  }

 private:
  Connection& connection();

  std::string path_;
  std::uint64_t id_;  // tells this store's thread_local connections from another's
  std::mutex write_mutex_;
  std::atomic<std::uint64_t> scans_started_{0};
  std::atomic<std::uint64_t> connections_opened_{0};
};

}  // namespace kv
