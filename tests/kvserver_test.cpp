// End-to-end tests of examples/kvserver: the real binary, started on a free
// port, driven over HTTP/1.1 by a small blocking client, and its database
// checked with SQLite afterwards.
//   * every endpoint, in each mode (blockpool, inline, fixed);
//   * a client that disconnects cancels its queued scan, which never runs;
//   * SIGTERM in the middle of 10,000 PUTs: the server exits 0 and every PUT
//     that got its 204 is in the database.
// No sleeps: the server's first stdout line says it listens, waits are
// bounded (poll with a deadline), and the server's state is read from
// GET /stats.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef BLOCKPOOL_KVSERVER_BIN
#error "BLOCKPOOL_KVSERVER_BIN must name the kvserver binary"
#endif

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Sanitizer builds run several times slower: every wait is bounded, but
// generously.
constexpr auto kWait = 30s;

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kvserver-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

// ---- The server process ----------------------------------------------------

class Server {
 public:
  Server(const fs::path& dir, std::vector<std::string> args) : err_path_(dir / "stderr.txt") {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    std::vector<std::string> argv{BLOCKPOOL_KVSERVER_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) ::dup2(err, 2);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    // The first line says where it listens.
    const auto deadline = Clock::now() + kWait;
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0) break;
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    const std::string prefix = "listening on 127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) {
      kill_now();
      throw std::runtime_error("kvserver did not start: stdout '" + line + "', stderr '" + stderr_text() + "'");
    }
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(prefix.size())));
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() {
    kill_now();
    if (out_ >= 0) ::close(out_);
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Waits (bounded) for the process to exit; its exit status, or -1 if it
  // did not exit in time or died of a signal.
  int wait_exit(std::chrono::milliseconds timeout = kWait) {
    if (exited_) return status_;
    pollfd p{pidfd_, POLLIN, 0};
    if (pidfd_ >= 0 && ::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
    int st = 0;
    if (::waitpid(pid_, &st, 0) != pid_) return -1;
    exited_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return status_;
  }

  std::string stderr_text() const {
    std::ifstream in(err_path_);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void kill_now() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      exited_ = true;
      status_ = -1;
    }
  }

  fs::path err_path_;
  pid_t pid_ = -1;
  int out_ = -1;
  int pidfd_ = -1;
  std::uint16_t port_ = 0;
  bool exited_ = false;
  int status_ = -1;
};

// ---- A small blocking HTTP/1.1 client -------------------------------------

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void send(const std::string& method, const std::string& target, const std::string& body = {},
            bool keep_alive = true) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty() || method == "PUT") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (!keep_alive) req += "Connection: close\r\n";
    req += "\r\n" + body;
    send_raw(req);
  }

  void send_raw(const std::string& req) {
    std::size_t off = 0;
    while (off < req.size()) {
      const ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }

  // The next response, or nullopt if the connection closed (or the wait ran
  // out) before a whole one arrived.
  std::optional<Response> receive(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    std::size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    Response r;
    std::istringstream head(buf_.substr(0, head_end));
    std::string line;
    std::getline(head, line);
    if (line.rfind("HTTP/1.1 ", 0) != 0) return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[name] = value;
    }
    std::size_t len = 0;
    if (auto it = r.headers.find("content-length"); it != r.headers.end()) len = std::stoul(it->second);
    const std::size_t body_start = head_end + 4;
    while (buf_.size() < body_start + len)
      if (!fill(deadline)) return std::nullopt;
    r.body = buf_.substr(body_start, len);
    buf_.erase(0, body_start + len);
    return r;
  }

  // True once the server has closed the connection (EOF), within the wait.
  bool closed_by_peer(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

  Response request(const std::string& method, const std::string& target, const std::string& body = {}) {
    send(method, target, body);
    std::optional<Response> r = receive();
    if (!r) throw std::runtime_error("no response to " + method + " " + target);
    return *r;
  }

 private:
  bool fill(Clock::time_point deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0) return false;
    char buf[64 * 1024];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

// GET /stats as a map of name -> value.
std::map<std::string, std::string> stats(std::uint16_t port) {
  Client c(port);
  const Response r = c.request("GET", "/stats");
  std::map<std::string, std::string> m;
  std::istringstream in(r.body);
  std::string name, value;
  while (in >> name >> value) m[name] = value;
  return m;
}

std::uint64_t stat(std::uint16_t port, const std::string& name) {
  const auto m = stats(port);
  const auto it = m.find(name);
  if (it == m.end()) throw std::runtime_error("no " + name + " in /stats");
  return std::stoull(it->second);
}

// Polls /stats (each poll a full round trip, no sleep) until pred holds or
// the wait runs out.
template <class Pred>
bool wait_for_stats(std::uint16_t port, Pred pred) {
  const auto deadline = Clock::now() + kWait;
  while (Clock::now() < deadline)
    if (pred(stats(port))) return true;
  return false;
}

// The documented scan checksum: FNV-1a 64 over key, NUL, value, summed
// (mod 2^64) over the matching rows.
std::uint64_t row_hash(const std::string& key, const std::string& value) {
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

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Reads every row of the database with SQLite itself.
std::map<std::string, std::string> read_db(const fs::path& db) {
  sqlite3* h = nullptr;
  std::map<std::string, std::string> rows;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    throw std::runtime_error("cannot open the database");
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(h, "SELECT key, value FROM kv", -1, &s, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    throw std::runtime_error("cannot read the database");
  }
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto col = [s](int i) {
      const void* p = sqlite3_column_blob(s, i);
      return std::string(static_cast<const char*>(p), p ? static_cast<std::size_t>(sqlite3_column_bytes(s, i)) : 0);
    };
    rows[col(0)] = col(1);
  }
  sqlite3_finalize(s);
  sqlite3_close(h);
  return rows;
}

// ---- Each endpoint, in each mode --------------------------------------------

class KvServerModes : public ::testing::TestWithParam<const char*> {};

TEST_P(KvServerModes, EveryEndpoint) {
  TempDir dir;
  const fs::path db = dir.path / "kv.db";
  Server server(dir.path, {"--db", db.string(), "--port", "0", "--mode", GetParam()});
  Client c(server.port());  // one keep-alive connection for all of it

  EXPECT_EQ(c.request("GET", "/kv/alpha").status, 404);
  EXPECT_EQ(c.request("PUT", "/kv/alpha", "one").status, 204);
  Response r = c.request("GET", "/kv/alpha");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "one");
  EXPECT_EQ(c.request("PUT", "/kv/alpha", "two").status, 204);  // overwrite
  EXPECT_EQ(c.request("GET", "/kv/alpha").body, "two");

  // Keys are percent-decoded; values are bytes (NUL included).
  const std::string binary("a\0b\xff", 4);
  EXPECT_EQ(c.request("PUT", "/kv/with%20space", binary).status, 204);
  r = c.request("GET", "/kv/with%20space");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, binary);
  EXPECT_EQ(c.request("PUT", "/kv/empty-value", "").status, 204);
  r = c.request("GET", "/kv/empty-value");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");

  // Server-Timing (what kvbench's breakdown of slow GETs reads): only for
  // a client that sends its send time, with the four parts in order.
  EXPECT_EQ(r.headers.count("server-timing"), 0u);
  const auto sent_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now().time_since_epoch()).count();
  c.send_raw("GET /kv/alpha HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Sent-Ns: " + std::to_string(sent_ns) + "\r\n\r\n");
  std::optional<Response> timed = c.receive();
  ASSERT_TRUE(timed);
  EXPECT_EQ(timed->body, "two");
  const std::string timing = timed->headers["server-timing"];
  const std::size_t arrive = timing.find("arrive;dur="), queue = timing.find("queue;dur="),
                    run = timing.find("run;dur="), resume = timing.find("resume;dur=");
  EXPECT_TRUE(arrive == 0 && arrive < queue && queue < run && run < resume && resume != std::string::npos)
      << timing;

  EXPECT_EQ(c.request("DELETE", "/kv/alpha").status, 204);
  EXPECT_EQ(c.request("GET", "/kv/alpha").status, 404);
  EXPECT_EQ(c.request("DELETE", "/kv/alpha").status, 404);

  // Scan: count and checksum of the keys with the prefix, and of all keys.
  std::uint64_t sum = 0, all = row_hash("with space", binary) + row_hash("empty-value", "");
  for (int i = 0; i < 50; ++i) {
    const std::string key = "pre" + std::to_string(i), value = "value " + std::to_string(i * 7);
    ASSERT_EQ(c.request("PUT", "/kv/" + key, value).status, 204);
    sum += row_hash(key, value);
  }
  all += sum;
  r = c.request("GET", "/scan?prefix=pre");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "count 50\nchecksum " + hex64(sum) + "\n");
  r = c.request("GET", "/scan?prefix=%70re4");  // "pre4": pre4, pre40..pre49
  EXPECT_EQ(r.body.substr(0, 9), "count 11\n");
  r = c.request("GET", "/scan");
  EXPECT_EQ(r.body, "count 52\nchecksum " + hex64(all) + "\n");
  EXPECT_EQ(c.request("GET", "/scan?prefix=zzz").body, "count 0\nchecksum 0000000000000000\n");

  // Expect: 100-continue (curl sends it for bodies over 1 KiB): the interim
  // answer comes first, then the body is read.
  const std::string big(70'000, 'x');
  c.send_raw("PUT /kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n"
             "Expect: 100-continue\r\n\r\n");
  std::optional<Response> interim = c.receive();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.send_raw(big);
  std::optional<Response> done = c.receive();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 204);
  EXPECT_EQ(c.request("GET", "/kv/big").body, big);
  EXPECT_EQ(c.request("DELETE", "/kv/big").status, 204);

  // Refusals.
  EXPECT_EQ(c.request("GET", "/nowhere").status, 404);
  EXPECT_EQ(c.request("POST", "/kv/alpha", "x").status, 405);
  EXPECT_EQ(c.request("GET", "/kv/").status, 400);
  EXPECT_EQ(c.request("GET", "/kv/%zz").status, 400);
  EXPECT_EQ(c.request("POST", "/debug/release").status, 404);  // test hooks are off

  const auto st = stats(server.port());
  EXPECT_EQ(st.at("mode"), GetParam());
  EXPECT_EQ(st.at("scans_started"), "4");
  EXPECT_EQ(st.at("errors_5xx"), "0");

  // Connection: close is honoured.
  Client once(server.port());
  once.send("GET", "/kv/pre1", {}, /*keep_alive=*/false);
  r = *once.receive();
  EXPECT_EQ(r.body, "value 7");
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_TRUE(once.closed_by_peer());

  // SIGTERM with an idle keep-alive connection open: it is closed, exit 0.
  server.signal(SIGTERM);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(server.wait_exit(), 0) << server.stderr_text();
  EXPECT_NE(server.stderr_text().find("stopped (SIGTERM)"), std::string::npos) << server.stderr_text();

  const auto rows = read_db(db);
  EXPECT_EQ(rows.size(), 52u);
  EXPECT_EQ(rows.at("with space"), binary);
  EXPECT_EQ(rows.count("alpha"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, KvServerModes, ::testing::Values("blockpool", "inline", "fixed"),
                         [](const auto& info) { return std::string(info.param); });

// ---- A client that disconnects cancels its queued work ---------------------

TEST(KvServer, DisconnectCancelsQueuedScanWhichNeverRuns) {
  TempDir dir;
  const fs::path db = dir.path / "kv.db";
  // Scans run in a lane of their own; one at a time here.
  Server server(dir.path, {"--db", db.string(), "--port", "0", "--scan-threads", "1", "--test-hooks"});
  const std::uint16_t port = server.port();
  {
    Client w(port);
    ASSERT_EQ(w.request("PUT", "/kv/k", "v").status, 204);
  }

  // Hold the scan lane's only slot.
  Client holder(port);
  holder.send("POST", "/debug/hold?pool=scan");
  ASSERT_TRUE(wait_for_stats(port, [](const auto& m) { return m.at("holds_running") == "1"; }));

  // A scan is queued behind it...
  Client quitter(port);
  quitter.send("GET", "/scan?prefix=k");
  ASSERT_TRUE(wait_for_stats(port, [](const auto& m) { return m.at("pool_queue_depth") == "1"; }));
  // ...meanwhile point queries are not held up (the scan lane holds back only its own).
  {
    Client reader(port);
    EXPECT_EQ(reader.request("GET", "/kv/k").body, "v");
  }
  // ...and its client goes away: the server sees EOF and cancels the task.
  quitter.close();
  ASSERT_TRUE(wait_for_stats(port, [](const auto& m) {
    return m.at("client_cancels") == "1" && m.at("pool_queue_depth") == "0" && m.at("pool_cancelled") == "1";
  }));

  // Let the held thread go; the cancelled scan never ran.
  {
    Client releaser(port);
    EXPECT_EQ(releaser.request("POST", "/debug/release").status, 204);
  }
  const std::optional<Response> held = holder.receive();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->status, 200);
  EXPECT_EQ(stat(port, "scans_started"), 0u);

  // The counter does count: a scan whose client waits runs, and answers.
  Client c(port);
  EXPECT_EQ(c.request("GET", "/scan?prefix=k").body.substr(0, 8), "count 1\n");
  EXPECT_EQ(stat(port, "scans_started"), 1u);

  server.signal(SIGINT);
  EXPECT_EQ(server.wait_exit(), 0) << server.stderr_text();
}

// ---- Overload: a quick 503, and the metrics ---------------------------------

TEST(KvServer, FullQueueAnswers503AtOnceAndMetricsShowIt) {
  TempDir dir;
  const fs::path db = dir.path / "kv.db";
  Server server(dir.path, {"--db", db.string(), "--port", "0", "--threads", "1", "--max-queued", "1",
                           "--test-hooks"});
  const std::uint16_t port = server.port();
  {
    Client w(port);
    ASSERT_EQ(w.request("PUT", "/kv/k", "v").status, 204);
  }
  // The pool's only thread is held; one read waits in the queue (its bound).
  Client holder(port);
  holder.send("POST", "/debug/hold");
  ASSERT_TRUE(wait_for_stats(port, [](const auto& m) { return m.at("holds_running") == "1"; }));
  Client queued(port);
  queued.send("GET", "/kv/k");
  ASSERT_TRUE(wait_for_stats(port, [](const auto& m) { return m.at("pool_queue_depth") == "1"; }));
  // The next read is shed at once: 503 with Retry-After, not a wait.
  {
    Client shed(port);
    const auto t0 = Clock::now();
    const Response r = shed.request("GET", "/kv/k");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.headers.count("retry-after"), 1u);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5)) << "a full queue must answer at once";
  }
  EXPECT_EQ(stat(port, "rejected_503"), 1u);
  EXPECT_EQ(stat(port, "pool_rejected"), 1u);
  {
    Client releaser(port);
    EXPECT_EQ(releaser.request("POST", "/debug/release").status, 204);
  }
  const std::optional<Response> got = queued.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "v");
  ASSERT_TRUE(holder.receive());

  // GET /metrics: the pool's Prometheus text, with the rejection counted.
  Client m(port);
  const Response metrics = m.request("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("blockpool_tasks_rejected_total{server=\"kvserver\",lane=\"\"} 1"), std::string::npos)
      << metrics.body.substr(0, 2000);
  EXPECT_NE(metrics.body.find("blockpool_queue_wait_seconds_count{server=\"kvserver\",lane=\"scan\"}"),
            std::string::npos);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(), 0) << server.stderr_text();
}

// ---- Graceful shutdown keeps every acknowledged write ---------------------

TEST(KvServer, SigtermInTheMiddleOfTenThousandPutsKeepsEveryAcknowledgedOne) {
  TempDir dir;
  const fs::path db = dir.path / "kv.db";
  Server server(dir.path, {"--db", db.string(), "--port", "0"});
  const std::uint16_t port = server.port();

  constexpr int kClients = 4;
  constexpr int kPerClient = 2500;  // 10,000 keys in all
  constexpr int kSignalAfter = 2000;
  std::mutex m;
  std::condition_variable cv;
  int acked_total = 0;
  std::vector<std::vector<int>> acked(kClients);
  std::vector<std::string> errors(kClients);

  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      try {
        auto c = std::make_unique<Client>(port);
        for (int i = 0; i < kPerClient; ++i) {
          const std::string key = "k" + std::to_string(t) + "-" + std::to_string(i);
          c->send("PUT", "/kv/" + key, "v" + std::to_string(i));
          const std::optional<Response> r = c->receive();
          if (!r) return;  // the server closed the connection: stopping
          if (r->status != 204) {
            errors[t] = "status " + std::to_string(r->status) + ": " + r->body;
            return;
          }
          {
            std::lock_guard lock(m);
            acked[t].push_back(i);
            ++acked_total;
          }
          cv.notify_all();
          if (const auto h = r->headers.find("connection"); h != r->headers.end() && h->second == "close") {
            c.reset();
            c = std::make_unique<Client>(port);  // refused once the server stops accepting: ends this client
          }
        }
      } catch (const std::exception&) {
        // connect refused or reset: the server is stopping
      }
    });
  }
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return acked_total >= kSignalAfter; }));
  }
  server.signal(SIGTERM);
  for (auto& th : clients) th.join();
  EXPECT_EQ(server.wait_exit(), 0) << server.stderr_text();
  for (const auto& e : errors) EXPECT_EQ(e, "");

  // The signal came in the middle of the stream.
  EXPECT_GE(acked_total, kSignalAfter);
  EXPECT_LT(acked_total, kClients * kPerClient);

  const auto rows = read_db(db);
  std::size_t missing = 0;
  for (int t = 0; t < kClients; ++t)
    for (int i : acked[t]) {
      const auto it = rows.find("k" + std::to_string(t) + "-" + std::to_string(i));
      if (it == rows.end() || it->second != "v" + std::to_string(i)) ++missing;
    }
  EXPECT_EQ(missing, 0u) << "of " << acked_total << " acknowledged PUTs";
  std::printf("%d of %d PUTs acknowledged before the server stopped; %zu rows in the database\n",
              acked_total, kClients * kPerClient, rows.size());
  EXPECT_GE(rows.size(), static_cast<std::size_t>(acked_total));
}

}  // namespace
