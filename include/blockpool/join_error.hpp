// blockpool/join_error.hpp: why a task ended without a result of its own.
//
// A task spawned on a blockpool Pool ends exactly once, in one of three ways:
//   * completed: the callable returned; JoinHandle::get() returns its value;
//   * failed:    the callable threw; get() rethrows that exception unchanged, or
//                the pool could not create a thread to run it (JoinError,
//                is_spawn_failure());
//   * cancelled: it never ran: aborted before it started, dropped by shutdown,
//                or spawned after shutdown began (JoinError, is_cancelled());
//   * rejected:  it never ran: spawned while its queue was full
//                (Builder::max_queued, a lane's max_queued; JoinError,
//                is_rejected()).
//
// JoinError is an ordinary value type; copying it is cheap and thread-safe.
#pragma once

#include <exception>
#include <string>
#include <system_error>

namespace blockpool {

class JoinError : public std::exception {
 public:
  enum class Kind {
    kCancelled,     // aborted before start, dropped by shutdown, spawn after shutdown
    kSpawnFailure,  // the OS refused to create a thread and no thread could run it
    kRejected,      // spawned while its queue was full (admission control)
  };

  // Reasons for cancellation, for messages and diagnostics only.
  enum class Reason {
    kAborted,         // JoinHandle::abort() (or an Asio cancellation) before start
    kShutdown,        // queued when shutdown began
    kSpawnAfterShutdown,  // spawned after shutdown began, or after the pool was gone
    kSpawnFailed,     // see Kind::kSpawnFailure
    kQueueFull,       // see Kind::kRejected
  };

  JoinError(Kind kind, Reason reason, std::error_code code = {});

  [[nodiscard]] bool is_cancelled() const noexcept { return kind_ == Kind::kCancelled; }
  [[nodiscard]] bool is_spawn_failure() const noexcept { return kind_ == Kind::kSpawnFailure; }
  [[nodiscard]] bool is_rejected() const noexcept { return kind_ == Kind::kRejected; }
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  [[nodiscard]] Reason reason() const noexcept { return reason_; }
  // The OS error for a spawn failure (for example EAGAIN); empty otherwise.
  [[nodiscard]] std::error_code code() const noexcept { return code_; }

  // Says which: "blockpool: task cancelled (aborted before it started)",
  // "blockpool: no thread could be created to run the task: Resource temporarily
  // unavailable", ...
  [[nodiscard]] const char* what() const noexcept override;

 private:
  Kind kind_;
  Reason reason_;
  std::error_code code_;
  std::string what_;
};

}  // namespace blockpool
