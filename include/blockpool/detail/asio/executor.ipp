// blockpool/detail/asio/executor.ipp: what an operation learns from its
// handler's executor (work to hold on it, its context's service, whether it
// is an io_context's own), and the cancellation slot's handler. Not a public
// header; no include guard: included once per Asio flavour (see common.hpp),
// after service.ipp.
namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL {

namespace net = BLOCKPOOL_ASIO_NET;

// Outstanding work on `ex` for as long as the returned object lives.
template <class Ex>
auto track_work(const Ex& ex) {
  if constexpr (net::execution::is_executor<Ex>::value) {
    return net::prefer(ex, net::execution::outstanding_work.tracked);
  } else {
    return net::executor_work_guard<Ex>(ex);
  }
}

// The service of the execution context an executor runs handlers on, or null
// for an executor that cannot say (an executor with no context property).
template <class Ex>
ContextService* service_for(const Ex& ex) {
  if constexpr (net::can_query<const Ex&, net::execution::context_t>::value) {
    net::execution_context& ctx = net::query(ex, net::execution::context);
    return &service_of(ctx);
  } else {
    return nullptr;
  }
}

// The io_context whose own executor `ex` is (directly, or wrapped in an
// any_io_executor), or null: only then does a completion run on that
// io_context exactly as a posted function would. target_type() first:
// Asio 1.22's target<T>() does not check the type it casts to.
template <class Ex>
net::io_context* io_context_of(const Ex& ex) noexcept {
  using IoEx = net::io_context::executor_type;
  if constexpr (std::is_same_v<Ex, IoEx>) {
    return &ex.context();
  } else if constexpr (std::is_same_v<Ex, net::any_io_executor>) {
    return ex.target_type() == typeid(IoEx) ? &ex.template target<IoEx>()->context() : nullptr;
  } else {
    (void)ex;
    return nullptr;
  }
}

// Whether completions of handlers on `ex` are batched by `svc` (see
// service.ipp: an io_context's own executor, the io_context run by one thread).
template <class Ex>
bool batched_on(ContextService* svc, const Ex& ex) noexcept {
  net::io_context* io = io_context_of(ex);
  return svc != nullptr && io != nullptr && svc->batches_for(*io);
}

// Forwards a cancellation request to the task. Lives in the slot's own
// storage; the operation clears the slot before it goes away.
struct CancelHandler {
  TaskBase* task;
  void operator()(net::cancellation_type_t type) const noexcept {
    const auto wanted = net::cancellation_type::terminal | net::cancellation_type::partial;
    if ((type & wanted) != net::cancellation_type::none) {
      task->abort();  // not started: never runs; running: stop requested
    } else if ((type & net::cancellation_type::total) != net::cancellation_type::none) {
      (void)task->cancel_if_queued();  // only if that leaves no observable effect
    }
  }
};

// Whether moving a handler cannot throw. executor_binder does not declare
// its move constructor noexcept, but it only moves its executor and its
// target: it cannot throw when neither can.
template <class H>
struct NothrowMovable : std::is_nothrow_move_constructible<H> {};
template <class T, class Ex>
struct NothrowMovable<net::executor_binder<T, Ex>>
    : std::bool_constant<NothrowMovable<T>::value && std::is_nothrow_move_constructible_v<Ex>> {};

}  // namespace blockpool::detail::BLOCKPOOL_ASIO_IMPL
