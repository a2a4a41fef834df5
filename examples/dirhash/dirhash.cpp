// dirhash: print the SHA-256 of every regular file under a directory, in the
// format of `sha256sum` (so `sha256sum -c` checks the output), reading and
// hashing each file on a blockpool pool driven from an Asio event loop.
//
//   dirhash [--jobs N] [--inline] [DIR]      (DIR defaults to /usr/include)
//
// * Directories are listed (blockpool::fs::async_read_dir) and files read
//   (blockpool::fs::async_read_file) through blockpool::fs; classifying the
//   entries and hashing run as blockpool tasks too. At most N files are in
//   flight (default 64), each held in memory whole while it is hashed; the
//   event loop only schedules work and prints.
// * A 1 ms ticker on the loop measures the loop's lag (how late each tick
//   fires). --inline does the same work on the loop thread instead, to show
//   what blocking calls do to the loop.
// * Output is sorted by path (byte order). Symlinks to regular files are
//   hashed (as sha256sum would, reading through them); symlinks to
//   directories are not followed. Dangling symlinks, special files (fifos,
//   sockets, devices: the walk skips them, so no read waits on a fifo),
//   unreadable files and directories, and files that vanish during the run
//   are reported on stderr and skipped.
// * Exit status: 0 every file hashed, 1 some were skipped, 2 usage error.
#include <openssl/evp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <blockpool/asio.hpp>
#include <blockpool/blockpool.hpp>
#include <blockpool/fs.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ---- Hashing (runs on a blocking thread, or inline with --inline) ---------

struct FileResult {
  bool ok = false;
  std::string digest;  // lowercase hex
  std::uint64_t bytes = 0;
  std::string error;   // when !ok
};

struct EvpCtxDeleter {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

// The SHA-256 of `data`.
FileResult digest(const std::string& data) {
  FileResult r;
  std::unique_ptr<EVP_MD_CTX, EvpCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    r.error = "OpenSSL: cannot initialise SHA-256";
    return r;
  }
  if (EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1) {
    r.error = "OpenSSL: digest update failed";
    return r;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &md_len) != 1) {
    r.error = "OpenSSL: digest final failed";
    return r;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  r.digest.reserve(2 * md_len);
  for (unsigned int i = 0; i < md_len; ++i) {
    r.digest.push_back(kHex[md[i] >> 4]);
    r.digest.push_back(kHex[md[i] & 0xf]);
  }
  r.bytes = data.size();
  r.ok = true;
  return r;
}

// --inline's whole-file read, on the loop thread; throws as
// blockpool::fs::async_read_file does.
std::string read_file_inline(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fs::filesystem_error("read", path, std::error_code(errno, std::generic_category()));
  std::ostringstream data;
  data << in.rdbuf();
  return std::move(data).str();
}

// ---- Walking the tree -------------------------------------------------------

struct Walk {
  std::vector<std::string> files;    // sorted, byte order
  std::vector<std::string> skipped;  // "path: reason", in walk order
};

// What one directory's entries are: subdirectories to walk, files to hash,
// entries to skip. Blocking (a symlink's target is stat'ed).
struct Sorted {
  std::vector<fs::path> dirs;
  std::vector<std::string> files;
  std::vector<std::string> skipped;
};

Sorted sort_entries(const std::vector<fs::directory_entry>& entries) {
  Sorted out;
  for (const fs::directory_entry& e : entries) {
    std::error_code sec;
    const fs::file_status ls = e.symlink_status(sec);
    if (sec) {
      out.skipped.push_back(e.path().string() + ": " + sec.message());
      continue;
    }
    if (fs::is_directory(ls)) {
      out.dirs.push_back(e.path());
    } else if (fs::is_regular_file(ls)) {
      out.files.push_back(e.path().string());
    } else if (fs::is_symlink(ls)) {
      const fs::file_status ts = e.status(sec);
      if (sec || !fs::exists(ts)) {
        out.skipped.push_back(e.path().string() + ": dangling symbolic link");
      } else if (fs::is_regular_file(ts)) {
        out.files.push_back(e.path().string());
      } else if (!fs::is_directory(ts)) {
        out.skipped.push_back(e.path().string() + ": symbolic link to a special file");
      }  // symlinks to directories are not followed (no cycles)
    } else {
      out.skipped.push_back(e.path().string() + ": special file (fifo, socket or device)");
    }
  }
  return out;
}

// ---- sha256sum's output format --------------------------------------------

// coreutils (9.1) escapes '\\', '\n' and '\r' in a file name and then starts
// the line with a backslash; `sha256sum -c` undoes it.
void append_line(std::string& out, const std::string& digest, const std::string& name) {
  const bool escape = name.find_first_of("\\\n\r") != std::string::npos;
  if (escape) out.push_back('\\');
  out += digest;
  out += "  ";
  if (!escape) {
    out += name;
  } else {
    for (char c : name) {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        default: out.push_back(c);
      }
    }
  }
  out.push_back('\n');
}

// ---- The event loop --------------------------------------------------------

struct Options {
  std::string root = "/usr/include";
  std::size_t jobs = 64;
  bool inline_mode = false;
};

class App {
 public:
  App(asio::io_context& io, blockpool::Pool& pool, Options opt)
      : io_(io), pool_(pool), opt_(std::move(opt)), ticker_(io), tty_(::isatty(2) == 1) {}

  int run() {
    start_ = Clock::now();
    asio::co_spawn(io_, tick(), [](std::exception_ptr) {});
    asio::co_spawn(io_, main_task(), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "dirhash: %s\n", ex.what());
        }
        failed_ = true;
        done_ = true;
        ticker_.cancel();
      }
    });
    io_.run();
    summary();
    return failed_ ? 2 : (skipped_ > 0 ? 1 : 0);
  }

 private:
  // Runs `f` on the pool, or inline on the loop thread with --inline (then
  // yields once, so the ticker gets to run between steps).
  template <class F>
  asio::awaitable<std::invoke_result_t<F&>> blocking(F f) {
    if (opt_.inline_mode) {
      auto r = f();
      co_await asio::post(io_, asio::use_awaitable);
      co_return r;
    }
    co_return co_await blockpool::async_spawn_blocking(pool_, std::move(f), asio::use_awaitable);
  }

  // A directory's entries: through blockpool::fs, or inline with --inline.
  asio::awaitable<std::vector<fs::directory_entry>> list_dir(fs::path dir) {
    if (opt_.inline_mode) {
      std::vector<fs::directory_entry> entries(fs::directory_iterator(dir), fs::directory_iterator{});
      co_await asio::post(io_, asio::use_awaitable);
      co_return entries;
    }
    co_return co_await blockpool::fs::async_read_dir(pool_, std::move(dir), asio::use_awaitable);
  }

  // A whole file: through blockpool::fs, or inline with --inline.
  asio::awaitable<std::string> read_file(std::string path) {
    if (opt_.inline_mode) {
      std::string data = read_file_inline(path);
      co_await asio::post(io_, asio::use_awaitable);
      co_return data;
    }
    co_return co_await blockpool::fs::async_read_file(pool_, std::move(path), asio::use_awaitable);
  }

  // The tree under `root`, one directory at a time.
  asio::awaitable<Walk> walk_tree(std::string root) {
    Walk w;
    std::vector<fs::path> dirs{fs::path(root)};
    while (!dirs.empty()) {
      const fs::path dir = std::move(dirs.back());
      dirs.pop_back();
      std::vector<fs::directory_entry> entries;
      try {
        entries = co_await list_dir(dir);
      } catch (const fs::filesystem_error& e) {
        w.skipped.push_back(dir.string() + ": cannot read directory: " + e.code().message());
        continue;
      }
      // The callables are named variables, not temporaries in the co_await
      // expression: g++ 12 can destroy such temporaries twice.
      auto sort = [entries = std::move(entries)] { return sort_entries(entries); };
      Sorted sorted = co_await blocking(std::move(sort));
      for (auto& d : sorted.dirs) dirs.push_back(std::move(d));
      for (auto& f : sorted.files) w.files.push_back(std::move(f));
      for (auto& k : sorted.skipped) w.skipped.push_back(std::move(k));
    }
    std::sort(w.files.begin(), w.files.end());
    co_return w;
  }

  asio::awaitable<void> main_task() {
    Walk w = co_await walk_tree(opt_.root);
    for (const auto& s : w.skipped) std::fprintf(stderr, "dirhash: skipped %s\n", s.c_str());
    skipped_ += w.skipped.size();
    files_ = std::move(w.files);
    results_.resize(files_.size());
    const std::size_t workers = opt_.inline_mode ? 1 : std::min(opt_.jobs, files_.size());
    active_ = workers;
    for (std::size_t i = 0; i < workers; ++i)
      asio::co_spawn(io_, worker(), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    if (workers == 0) {
      flush(true);
      done_ = true;
      ticker_.cancel();
    }
  }

  // Each worker keeps one file in flight: `jobs` workers bound the total.
  asio::awaitable<void> worker() {
    while (next_ < files_.size()) {
      const std::size_t i = next_++;
      FileResult r;
      try {
        std::string data = co_await read_file(files_[i]);
        auto hash = [data = std::move(data)] { return digest(data); };
        r = co_await blocking(std::move(hash));
      } catch (const fs::filesystem_error& e) {
        r.error = e.code().message();
      }
      results_[i] = std::move(r);
      flush(false);
    }
    if (--active_ == 0) {
      flush(true);
      done_ = true;
      ticker_.cancel();
    }
  }

  // Prints, in path order, every result whose predecessors are all done.
  void flush(bool final) {
    while (printed_ < results_.size() && results_[printed_]) {
      const FileResult& r = *results_[printed_];
      if (r.ok) {
        append_line(out_, r.digest, files_[printed_]);
        ++hashed_;
        bytes_ += r.bytes;
      } else {
        ++skipped_;
        std::fprintf(stderr, "%sdirhash: skipped %s: %s\n", tty_ ? "\r\033[K" : "",
                     files_[printed_].c_str(), r.error.c_str());
      }
      results_[printed_].reset();
      ++printed_;
    }
    if (out_.size() >= (1u << 16) || (final && !out_.empty())) {
      std::fwrite(out_.data(), 1, out_.size(), stdout);
      out_.clear();
    }
    if (final) std::fflush(stdout);
  }

  asio::awaitable<void> tick() {
    auto due = Clock::now() + std::chrono::milliseconds(1);
    while (!done_) {
      ticker_.expires_at(due);
      try {
        co_await ticker_.async_wait(asio::use_awaitable);
      } catch (const std::system_error&) {
        break;  // cancelled at the end
      }
      const auto now = Clock::now();
      lags_.push_back(now - due);
      due = now + std::chrono::milliseconds(1);
      if (tty_ && lags_.size() % 100 == 0) progress();
    }
    if (tty_) std::fputs("\r\033[K", stderr);
  }

  void progress() const {
    std::fprintf(stderr, "\r\033[K%zu/%zu files, %.1f MB", printed_, files_.size(),
                 static_cast<double>(bytes_) / 1e6);
    std::fflush(stderr);
  }

  static double ms(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  }

  void summary() {
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    const double mb = static_cast<double>(bytes_) / 1e6;
    std::fprintf(stderr, "dirhash: %zu files, %.1f MB in %.3f s (%.1f MB/s), %zu skipped%s\n",
                 hashed_, mb, secs, secs > 0 ? mb / secs : 0.0, skipped_,
                 opt_.inline_mode ? " [--inline]" : "");
    std::sort(lags_.begin(), lags_.end());
    auto pct = [&](double p) {
      if (lags_.empty()) return 0.0;
      auto idx = static_cast<std::size_t>(p * static_cast<double>(lags_.size() - 1));
      return ms(lags_[idx]);
    };
    std::fprintf(stderr, "dirhash: loop lag p50 %.3f ms, p99 %.3f ms, max %.3f ms (%zu ticks)\n",
                 pct(0.50), pct(0.99), lags_.empty() ? 0.0 : ms(lags_.back()), lags_.size());
    const blockpool::Metrics m = pool_.metrics();
    std::fprintf(stderr,
                 "dirhash: pool: peak %llu threads, %llu tasks (%llu failed, %llu cancelled), "
                 "%llu threads retired\n",
                 static_cast<unsigned long long>(m.peak_threads),
                 static_cast<unsigned long long>(m.spawned),
                 static_cast<unsigned long long>(m.failed),
                 static_cast<unsigned long long>(m.cancelled),
                 static_cast<unsigned long long>(m.threads_retired));
    // Every task's queue wait (spawn to start) and run time, as the pool measured them.
    auto pms = [](std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; };
    std::fprintf(stderr,
                 "dirhash: pool: queue wait p50 %.3f ms, p99 %.3f ms; run time p50 %.3f ms, p99 %.3f ms\n",
                 pms(m.queue_wait.percentile(50)), pms(m.queue_wait.percentile(99)), pms(m.run_time.percentile(50)),
                 pms(m.run_time.percentile(99)));
  }

  asio::io_context& io_;
  blockpool::Pool& pool_;
  Options opt_;
  asio::steady_timer ticker_;
  bool tty_;
  bool done_ = false;
  bool failed_ = false;
  Clock::time_point start_;
  std::vector<std::string> files_;
  std::vector<std::optional<FileResult>> results_;
  std::size_t next_ = 0;
  std::size_t printed_ = 0;
  std::size_t active_ = 0;
  std::size_t hashed_ = 0;
  std::size_t skipped_ = 0;
  std::uint64_t bytes_ = 0;
  std::string out_;
  std::vector<Clock::duration> lags_;
};

void usage(std::FILE* to) {
  std::fputs(
      "usage: dirhash [--jobs N] [--inline] [DIR]\n"
      "  Prints the SHA-256 of every regular file under DIR (default /usr/include)\n"
      "  in sha256sum format. --jobs N: files hashed at once (default 64).\n"
      "  --inline: hash on the event loop thread instead of the pool.\n"
      "  Exit status: 0 all hashed, 1 some files skipped, 2 usage error.\n",
      to);
}

std::optional<Options> parse(int argc, char** argv) {
  Options o;
  bool have_root = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--inline") {
      o.inline_mode = true;
    } else if (a == "--jobs" || a == "-j") {
      if (i + 1 >= argc) return std::nullopt;
      const std::string_view v = argv[++i];
      std::size_t n = 0;
      const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || n == 0) return std::nullopt;
      o.jobs = n;
    } else if (a == "--") {
      if (i + 1 < argc) {
        if (have_root || i + 2 < argc) return std::nullopt;
        o.root = argv[i + 1];
        have_root = true;
      }
      break;
    } else if (!a.empty() && a[0] == '-') {
      return std::nullopt;
    } else {
      if (have_root) return std::nullopt;
      o.root = std::string(a);
      have_root = true;
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      usage(stdout);
      return 0;
    }
  }
  std::optional<Options> opt = parse(argc, argv);
  if (!opt) {
    usage(stderr);
    return 2;
  }
  std::error_code ec;
  if (!fs::is_directory(opt->root, ec)) {
    std::fprintf(stderr, "dirhash: %s: not a directory%s%s\n", opt->root.c_str(),
                 ec ? ": " : "", ec ? ec.message().c_str() : "");
    return 2;
  }
  asio::io_context io(1);
  // Hashing is CPU-bound: on a machine with few cores the pool's threads
  // compete with the loop thread for the CPU. Running them at a lower
  // priority (nice +10, set per thread from on_thread_start) lets the loop
  // win the CPU whenever it wakes, so its lag stays low while they work.
  blockpool::Pool pool = blockpool::Builder{}
                             .thread_name("dirhash")
                             .on_thread_start([] {
                               (void)setpriority(PRIO_PROCESS,
                                                 static_cast<id_t>(syscall(SYS_gettid)), 10);
                             })
                             .build();
  App app(io, pool, std::move(*opt));
  return app.run();
}
