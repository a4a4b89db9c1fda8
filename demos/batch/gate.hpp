// SPDX-License-Identifier: BSL-1.0
// An awaitable counting semaphore whose size may change while tasks wait: the
// adaptive concurrency limit of concur-batch. A task that finds no permit
// parks through the current executor's driver (the same mechanism as every
// library wait, DESIGN §4): suspended on event_loop and fibers, blocked on
// thread_pool and sequential, and woken by the task that frees a permit.
// Waiting is a cancellation point like any library wait.
#pragma once

#include <concur/detail/driver.hpp>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <mutex>

namespace concur::batch {

class Gate {
 public:
  explicit Gate(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}

  class Acquire {
   public:
    explicit Acquire(Gate& g) : gate_(g) {}
    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    Gate& gate_;
    detail::Context* ctx_ = nullptr;
    detail::Waiter waiter_;
    bool parked_ = false;
  };

  /// co_await gate.acquire(): takes a permit, waiting for one if none is free.
  Acquire acquire() { return Acquire(*this); }
  /// Gives a permit back (hands it to the oldest waiter, if the limit allows).
  void release();
  /// Changes how many permits exist (at least 1); waiters get the new ones.
  void set_limit(std::size_t limit);
  std::size_t limit() const;
  std::size_t in_use() const;

 private:
  void hand_out_locked(std::unique_lock<std::mutex>& lock);
  mutable std::mutex mutex_;
  std::size_t limit_;
  std::size_t in_use_ = 0;
  std::deque<detail::Waiter*> waiters_;
};

/// Releases a permit when it goes out of scope.
class Permit {
 public:
  explicit Permit(Gate& g) : gate_(&g) {}
  ~Permit() {
    if (gate_ != nullptr) gate_->release();
  }
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;

 private:
  Gate* gate_;
};

}  // namespace concur::batch
