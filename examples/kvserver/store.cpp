// store.cpp: see store.hpp.
#include "store.hpp"

#include <sqlite3.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

namespace kv {

namespace {

std::atomic<std::uint64_t> g_next_store_id{1};

[[noreturn]] void fail(sqlite3* db, const char* what) {
  std::string msg = std::string("sqlite: ") + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  throw StoreError(msg);
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = std::string("sqlite: ") + sql + ": " + (err ? err : "error");
    sqlite3_free(err);
    throw StoreError(msg);
  }
}

sqlite3* open_db(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "sqlite: cannot open " + path + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close_v2(db);
    throw StoreError(msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

// A prepared statement, reset (and its bindings cleared) when the guard goes.
class Use {
 public:
  explicit Use(sqlite3_stmt* s) noexcept : s_(s) {}
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  sqlite3_stmt* get() const noexcept { return s_; }

 private:
  sqlite3_stmt* s_;
};

std::string_view column_text(sqlite3_stmt* s, int col) {
  const void* p = sqlite3_column_blob(s, col);
  const int n = sqlite3_column_bytes(s, col);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string_view();
}

void bind(sqlite3* db, sqlite3_stmt* s, int idx, std::string_view v, bool as_blob) {
  const int rc = as_blob ? sqlite3_bind_blob64(s, idx, v.data(), v.size(), SQLITE_STATIC)
                         : sqlite3_bind_text64(s, idx, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK) fail(db, "bind");
}

}  // namespace

// One thread's connection and its prepared statements.
struct Connection {
  Connection(const std::string& path, std::uint64_t owner) : owner(owner), db(open_db(path)) {
    try {
      exec(db, "PRAGMA synchronous=NORMAL");
      get = prepare("SELECT value FROM kv WHERE key = ?1");
      put = prepare("INSERT INTO kv(key, value) VALUES (?1, ?2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      del = prepare("DELETE FROM kv WHERE key = ?1");
      scan = prepare("SELECT key, value FROM kv");
    } catch (...) {
      close();
      throw;
    }
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) fail(db, sql);
    return s;
  }

  void close() noexcept {
    for (sqlite3_stmt* s : {get, put, del, scan}) sqlite3_finalize(s);
    get = put = del = scan = nullptr;
    sqlite3_close_v2(db);
    db = nullptr;
  }

  std::uint64_t owner;
  sqlite3* db;
  sqlite3_stmt* get = nullptr;
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* del = nullptr;
  sqlite3_stmt* scan = nullptr;
};

std::uint64_t row_hash(std::string_view key, std::string_view value) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (char c : key) mix(static_cast<unsigned char>(c));
  mix(0);
  for (char c : value) mix(static_cast<unsigned char>(c));
  return h;
}

Store::Store(std::string path) : path_(std::move(path)), id_(g_next_store_id.fetch_add(1)) {
  sqlite3* db = open_db(path_);
  try {
    // WAL is recorded in the file: every connection opened later uses it.
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) "
             "WITHOUT ROWID");
  } catch (...) {
    sqlite3_close_v2(db);
    throw;
  }
  sqlite3_close_v2(db);
}

Store::~Store() = default;

Connection& Store::connection() {
  // Closed by the thread's exit (thread_local destructor). A thread that used
  // an earlier Store in this process reopens for this one.
  thread_local std::unique_ptr<Connection> conn;
  if (!conn || conn->owner != id_) {
    conn.reset();
    conn = std::make_unique<Connection>(path_, id_);
    connections_opened_.fetch_add(1, std::memory_order_relaxed);
  }
  return *conn;
}

std::optional<std::string> Store::get(std::string_view key) {
  Connection& c = connection();
  Use u(c.get);
  bind(c.db, u.get(), 1, key, false);
  const int rc = sqlite3_step(u.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail(c.db, "get");
  return std::string(column_text(u.get(), 0));
}

void Store::put(std::string_view key, std::string_view value) {
  Connection& c = connection();
  std::lock_guard lock(write_mutex_);
  Use u(c.put);
  bind(c.db, u.get(), 1, key, false);
  bind(c.db, u.get(), 2, value, true);
  // Autocommit: SQLITE_DONE means the transaction is committed.
  if (sqlite3_step(u.get()) != SQLITE_DONE) fail(c.db, "put");
}

bool Store::erase(std::string_view key) {
  Connection& c = connection();
  std::lock_guard lock(write_mutex_);
  Use u(c.del);
  bind(c.db, u.get(), 1, key, false);
  if (sqlite3_step(u.get()) != SQLITE_DONE) fail(c.db, "delete");
  return sqlite3_changes(c.db) > 0;
}

ScanResult Store::scan(std::string_view prefix, std::stop_token stop) {
  Connection& c = connection();
  scans_started_.fetch_add(1, std::memory_order_relaxed);
  ScanResult r;
  Use u(c.scan);
  for (std::uint64_t rows = 0;; ++rows) {
    if ((rows & 255) == 0 && stop.stop_requested()) {
      r.stopped = true;
      break;
    }
    const int rc = sqlite3_step(u.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) fail(c.db, "scan");
    const std::string_view key = column_text(u.get(), 0);
    if (!key.starts_with(prefix)) continue;
    ++r.count;
    r.checksum += row_hash(key, column_text(u.get(), 1));
  }
  return r;
}

void Store::populate(std::uint64_t n, std::size_t value_size) {
  Connection& c = connection();
  std::lock_guard lock(write_mutex_);
  exec(c.db, "BEGIN IMMEDIATE");
  try {
    std::uint64_t state = 0x9e3779b97f4a7c15ull;
    std::string value(value_size, ' ');
    char key[32];
    for (std::uint64_t i = 0; i < n; ++i) {
      for (char& ch : value) {  // xorshift64: printable bytes, fixed seed
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ch = static_cast<char>('!' + state % 94);
      }
      const int len = std::snprintf(key, sizeof key, "key%08llu", static_cast<unsigned long long>(i));
      Use u(c.put);
      bind(c.db, u.get(), 1, std::string_view(key, static_cast<std::size_t>(len)), false);
      bind(c.db, u.get(), 2, value, true);
      if (sqlite3_step(u.get()) != SQLITE_DONE) fail(c.db, "populate");
    }
    exec(c.db, "COMMIT");
  } catch (...) {
    sqlite3_exec(c.db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::uint64_t Store::count() {
  Connection& c = connection();
  sqlite3_stmt* s = c.prepare("SELECT count(*) FROM kv");
  std::uint64_t n = 0;
  if (sqlite3_step(s) == SQLITE_ROW) n = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);
  return n;
}

}  // namespace kv
