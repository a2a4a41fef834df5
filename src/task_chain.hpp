// src/task_chain.hpp: a FIFO of tasks linked through TaskBase::next_ (not a
// public header). Used for the pool's queue, a lane's held tasks and
// admission waiters, and for tasks collected under the pool's lock to be
// ended after it: linking never allocates.
#pragma once

#include "blockpool/detail/task.hpp"

namespace blockpool::detail {

// A singly linked chain of tasks through TaskBase::next_, for tasks taken off
// the queue under mu_ and ended after it (collecting them never allocates).
// The pool's queue is one too.
struct TaskChain {
  TaskBase* head = nullptr;
  TaskBase* tail = nullptr;
  [[nodiscard]] bool empty() const noexcept { return head == nullptr; }
  void push(TaskBase* t) noexcept {
    t->next_ = nullptr;
    if (tail != nullptr)
      tail->next_ = t;
    else
      head = t;
    tail = t;
  }
  void push_front(TaskBase* t) noexcept {
    t->next_ = head;
    head = t;
    if (tail == nullptr) tail = t;
  }
  TaskBase* pop() noexcept {  // precondition: !empty()
    TaskBase* t = head;
    head = t->next_;
    if (head == nullptr) tail = nullptr;
    t->next_ = nullptr;
    return t;
  }
  // Empties the chain and returns its first task (the rest linked by next_).
  TaskBase* take_all() noexcept {
    TaskBase* t = head;
    head = tail = nullptr;
    return t;
  }
};

}  // namespace blockpool::detail
