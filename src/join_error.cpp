// src/join_error.cpp
#include "blockpool/join_error.hpp"

namespace blockpool {

namespace {
std::string describe(JoinError::Kind kind, JoinError::Reason reason, const std::error_code& code) {
  if (kind == JoinError::Kind::kRejected)
    return "blockpool: task rejected (its queue was full: max_queued)";
  if (kind == JoinError::Kind::kSpawnFailure) {
    std::string s = "blockpool: no thread could be created to run the task";
    if (code) s += ": " + code.message();
    return s;
  }
  switch (reason) {
    case JoinError::Reason::kAborted:
      return "blockpool: task cancelled (aborted before it started)";
    case JoinError::Reason::kShutdown:
      return "blockpool: task cancelled (queued when the pool shut down)";
    case JoinError::Reason::kSpawnAfterShutdown:
      return "blockpool: task cancelled (spawned after the pool shut down)";
    default:
      return "blockpool: task cancelled";
  }
}
}  // namespace

JoinError::JoinError(Kind kind, Reason reason, std::error_code code)
    : kind_(kind), reason_(reason), code_(code) {
  try {
    what_ = describe(kind, reason, code);
  } catch (...) {
  }
}

const char* JoinError::what() const noexcept {
  return what_.empty() ? "blockpool: task did not complete" : what_.c_str();
}

}  // namespace blockpool
