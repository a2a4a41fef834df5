// blockpool/detail/asio/initiation.ipp: async_spawn_blocking, the initiating
// function. Not a public header; no include guard: included once per Asio
// flavour (see common.hpp), after operation.ipp.
namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL {

namespace net = BLOCKPOOL_ASIO_NET;

// The initiation borrows the caller's Pool or Handle while async_initiate
// runs it in place (callbacks, use_future): the caller's object outlives that
// call, so no reference count is touched. A token that keeps the initiation
// to run later (deferred, use_awaitable) copies or moves it, and a copy owns
// a Handle of its own, so a lazily started operation never depends on the
// Pool object (it completes cancelled if the pool is gone).
class Initiation {
 public:
  Initiation(const Pool& pool, bool mandatory, const TaskOptions& options = {}) noexcept
      : pool_(&pool), mandatory_(mandatory), options_(options) {}
  Initiation(const Handle& handle, bool mandatory, const TaskOptions& options = {}) noexcept
      : handle_(&handle), mandatory_(mandatory), options_(options) {}
  Initiation(const Initiation& other)
      : owned_(other.owned_handle()), mandatory_(other.mandatory_), options_(other.options_) {
    handle_ = &*owned_;
  }
  Initiation(Initiation&& other) : Initiation(static_cast<const Initiation&>(other)) {}
  Initiation& operator=(const Initiation&) = delete;
  Initiation& operator=(Initiation&&) = delete;

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn&> || kTakesStopToken<Fn>,
                  "blockpool: the callable must be invocable with no arguments or with a "
                  "std::stop_token");
    static_assert(std::is_move_constructible_v<Fn>, "blockpool: the callable must be movable");
    Core* core = pool_ != nullptr ? PoolAccess::core(*pool_) : PoolAccess::core(*handle_);
    const unsigned lane = pool_ != nullptr ? 0 : PoolAccess::lane(*handle_);
    OpTask<Fn, spawn_result_t<F>, std::decay_t<Handler>>::start(std::forward<Handler>(handler), core, lane,
                                                                 std::forward<F>(f), mandatory_, options_);
  }

 private:
  Handle owned_handle() const { return pool_ != nullptr ? pool_->handle() : *handle_; }

  const Pool* pool_ = nullptr;      // borrowed, or
  const Handle* handle_ = nullptr;  // borrowed, or pointing at owned_
  std::optional<Handle> owned_;
  bool mandatory_ = false;
  TaskOptions options_;
};

// Runs `f` on `pool`'s blocking threads as an Asio asynchronous operation;
// see <blockpool/asio.hpp> for the completion signature, executor,
// work-tracking, allocator, cancellation and lifetime rules.
template <class F, class CompletionToken>
auto async_spawn_blocking(const Handle& pool, F&& f, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, false), token,
                                                                           std::forward<F>(f));
}
template <class F, class CompletionToken>
auto async_spawn_blocking(const Pool& pool, F&& f, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, false), token,
                                                                           std::forward<F>(f));
}
// With per-task options: a name for slow-task reports, and whether a full
// queue rejects the operation at once instead of making it wait.
template <class F, class CompletionToken>
auto async_spawn_blocking(const Handle& pool, F&& f, const TaskOptions& options, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, false, options),
                                                                           token, std::forward<F>(f));
}
template <class F, class CompletionToken>
auto async_spawn_blocking(const Pool& pool, F&& f, const TaskOptions& options, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, false, options),
                                                                           token, std::forward<F>(f));
}

// The same for a mandatory task (Pool::spawn_mandatory_blocking): once
// queued it runs even if the pool shuts down, or the execution context is
// destroyed, before it starts (its stop token is not triggered by either).
template <class F, class CompletionToken>
auto async_spawn_mandatory_blocking(const Handle& pool, F&& f, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, true), token,
                                                                           std::forward<F>(f));
}
template <class F, class CompletionToken>
auto async_spawn_mandatory_blocking(const Pool& pool, F&& f, CompletionToken&& token) {
  return net::async_initiate<CompletionToken, asio_common::signature_t<F>>(Initiation(pool, true), token,
                                                                           std::forward<F>(f));
}

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL
