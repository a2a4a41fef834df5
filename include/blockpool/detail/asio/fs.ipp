// blockpool/detail/asio/fs.ipp: blockpool::fs, files through the pool, for
// one Asio flavour. Not a public header; no include guard: included once per
// flavour (see common.hpp), after initiation.ipp, with the flavour's
// <compose.hpp> and <post.hpp> included. <blockpool/fs.hpp> is the contract.
#include "blockpool/detail/fs_common.hpp"

namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL::fs {

namespace net = BLOCKPOOL_ASIO_NET;
namespace stdfs = std::filesystem;
// This flavour's layer, named in every call: unqualified, argument-dependent
// lookup would also find the other flavour's async_spawn_blocking.
namespace impl = ::blockpool::detail::BLOCKPOOL_ASIO_IMPL;
using fs_common::OpenMode;
using fs_common::PoolRef;

// Completes a handler with `args` without running a task: posted to its
// associated executor (never inline), with work held there until it runs.
template <class Handler, class... Args>
void post_completion(Handler&& handler, Args... args) {
  auto ex = net::get_associated_executor(handler);
  net::post(ex, [h = std::forward<Handler>(handler), ... a = std::move(args)]() mutable { std::move(h)(std::move(a)...); });
}

// The initiation of an operation that fails at once with `error` (an
// operation on a File that is not open).
template <class... Values>
struct FailNow {
  std::exception_ptr error;
  template <class Handler>
  void operator()(Handler&& handler) const {
    post_completion(std::forward<Handler>(handler), error, Values{}...);
  }
};

inline std::exception_ptr not_open() {
  return std::make_exception_ptr(std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                                                   "blockpool::fs::File: not open"));
}

// ---- Whole-file and path operations: one task each ------------------------

template <class CompletionToken>
auto async_read_file(PoolRef on, stdfs::path path, CompletionToken&& token) {
  auto task = [path = std::move(path)](std::stop_token stop) { return fs_common::read_file(path, stop); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_write_file(PoolRef on, stdfs::path path, std::string data, CompletionToken&& token) {
  auto task = [path = std::move(path), data = std::move(data)] { fs_common::write_file(path, data); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_file_size(PoolRef on, stdfs::path path, CompletionToken&& token) {
  auto task = [path = std::move(path)] { return stdfs::file_size(path); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_create_directories(PoolRef on, stdfs::path path, CompletionToken&& token) {
  auto task = [path = std::move(path)] { return stdfs::create_directories(path); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_rename(PoolRef on, stdfs::path from, stdfs::path to, CompletionToken&& token) {
  auto task = [from = std::move(from), to = std::move(to)] { stdfs::rename(from, to); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_remove(PoolRef on, stdfs::path path, CompletionToken&& token) {
  auto task = [path = std::move(path)] { return stdfs::remove(path); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}

template <class CompletionToken>
auto async_copy_file(PoolRef on, stdfs::path from, stdfs::path to, stdfs::copy_options options,
                     CompletionToken&& token) {
  auto task = [from = std::move(from), to = std::move(to), options] { return stdfs::copy_file(from, to, options); };
  return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
}
template <class CompletionToken>
auto async_copy_file(PoolRef on, stdfs::path from, stdfs::path to, CompletionToken&& token) {
  return async_copy_file(std::move(on), std::move(from), std::move(to), stdfs::copy_options::none,
                         std::forward<CompletionToken>(token));
}

// ---- async_read_dir: one task per batch of entries ------------------------

// A composed operation: each step runs one batch task (async_spawn_blocking,
// with this operation as its handler) and, back on the handler's executor,
// starts the next until the directory is done. Cancellation of any type
// reaches the queued batch task (which then never runs) and ends the
// listing before the next batch.
class ReadDirOp {
 public:
  ReadDirOp(Handle pool, stdfs::path dir) : pool_(std::move(pool)), dir_(std::move(dir)) {}

  template <class Self>
  void operator()(Self& self) {
    self.reset_cancellation_state(net::enable_total_cancellation());
    next(self, fs_common::DirListing{});
  }
  template <class Self>
  void operator()(Self& self, std::exception_ptr error, fs_common::DirListing listing) {
    if (error) {
      self.complete(error, std::vector<stdfs::directory_entry>{});
    } else if (listing.done) {
      self.complete(std::exception_ptr(), std::move(listing.entries));
    } else if (self.get_cancellation_state().cancelled() != net::cancellation_type::none) {
      self.complete(std::make_exception_ptr(JoinError(JoinError::Kind::kCancelled, JoinError::Reason::kAborted)),
                    std::vector<stdfs::directory_entry>{});
    } else {
      next(self, std::move(listing));
    }
  }

 private:
  template <class Self>
  void next(Self& self, fs_common::DirListing listing) {
    auto batch = [dir = dir_, listing = std::move(listing)]() mutable {
      return fs_common::read_dir_batch(dir, std::move(listing));
    };
    // Copied first: moving `self` moves this object, and pool_ with it.
    const Handle pool = pool_;
    impl::async_spawn_blocking(pool, std::move(batch), std::move(self));
  }

  Handle pool_;
  stdfs::path dir_;
};

template <class CompletionToken>
auto async_read_dir(PoolRef on, stdfs::path dir, CompletionToken&& token) {
  return net::async_compose<CompletionToken, void(std::exception_ptr, std::vector<stdfs::directory_entry>)>(
      ReadDirOp(on.handle(), std::move(dir)), token);
}

// ---- File -----------------------------------------------------------------

// An open file whose reads and writes run on the pool; see <blockpool/fs.hpp>.
class File {
 public:
  File() noexcept = default;  // not open
  File(File&&) noexcept = default;
  File& operator=(File&& other) noexcept {
    if (this != &other) {
      release();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  // Pending writes still reach the file; the descriptor is closed on a pool
  // thread once they have.
  ~File() { release(); }

  template <class CompletionToken>
  static auto async_open(PoolRef on, stdfs::path path, OpenMode mode, CompletionToken&& token) {
    auto task = [pool = on.handle(), path = std::move(path), mode] {
      const int fd = fs_common::open_file(path, mode);
      return File(std::make_shared<fs_common::FileState>(pool, fd, mode, path));
    };
    return impl::async_spawn_blocking(on.handle(), std::move(task), std::forward<CompletionToken>(token));
  }

  // Write-behind: completes (posted) once `data` is queued for a mandatory
  // task, behind every earlier write; or with the error a background write
  // left, and then `data` is dropped.
  template <class CompletionToken>
  auto async_write(std::string data, CompletionToken&& token) {
    return net::async_initiate<CompletionToken, void(std::exception_ptr)>(WriteInit{state_}, token,
                                                                          std::move(data));
  }

  template <class CompletionToken>
  auto async_flush(CompletionToken&& token) {
    return run<void>([](fs_common::FileState& s) { s.flush(); }, std::forward<CompletionToken>(token));
  }

  template <class CompletionToken>
  auto async_sync(CompletionToken&& token) {
    return run<void>([](fs_common::FileState& s) { s.sync(); }, std::forward<CompletionToken>(token));
  }

  template <class CompletionToken>
  auto async_read_some(std::size_t max_bytes, CompletionToken&& token) {
    return run<std::string>([max_bytes](fs_common::FileState& s) { return s.read_some(max_bytes); },
                            std::forward<CompletionToken>(token));
  }

  [[nodiscard]] bool is_open() const noexcept { return state_ != nullptr; }
  // The descriptor (-1 if not open). It stays the File's: do not close it.
  [[nodiscard]] int native_handle() const noexcept { return state_ ? state_->fd() : -1; }

 private:
  explicit File(std::shared_ptr<fs_common::FileState> state) noexcept : state_(std::move(state)) {}

  struct WriteInit {
    std::shared_ptr<fs_common::FileState> state;
    template <class Handler>
    void operator()(Handler&& handler, std::string data) const {
      std::exception_ptr e;
      if (!state) {
        e = not_open();
      } else if (!state->writable()) {
        e = std::make_exception_ptr(stdfs::filesystem_error(
            "async_write", state->path(), std::make_error_code(std::errc::bad_file_descriptor)));
      } else {
        e = fs_common::write_behind(state, std::move(data));
      }
      post_completion(std::forward<Handler>(handler), e);
    }
  };

  // One task running `op` on the state (which the task keeps alive); on a
  // File that is not open, a posted failure.
  template <class R, class Op>
  struct RunInit {
    std::shared_ptr<fs_common::FileState> state;
    Op op;
    template <class Handler>
    void operator()(Handler&& handler) const {
      if (!state) {
        if constexpr (std::is_void_v<R>) {
          FailNow<>{not_open()}(std::forward<Handler>(handler));
        } else {
          FailNow<R>{not_open()}(std::forward<Handler>(handler));
        }
        return;
      }
      auto task = [state = state, op = op] { return op(*state); };
      impl::async_spawn_blocking(state->pool(), std::move(task), std::forward<Handler>(handler));
    }
  };
  template <class R, class Op, class CompletionToken>
  auto run(Op op, CompletionToken&& token) {
    using Sig = typename asio_common::Signature<R>::type;
    return net::async_initiate<CompletionToken, Sig>(RunInit<R, Op>{state_, std::move(op)}, token);
  }

  // Hands the state to a mandatory task, so its last reference (which closes
  // the descriptor) is dropped on a pool thread, after any drain task.
  void release() noexcept {
    if (!state_) return;
    const Handle pool = state_->pool();
    try {
      (void)pool.spawn_mandatory_blocking([state = std::move(state_)]() mutable { state.reset(); });
    } catch (...) {
      state_.reset();  // no memory for the task: close here
    }
  }

  std::shared_ptr<fs_common::FileState> state_;
};

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL::fs
