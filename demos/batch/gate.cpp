// SPDX-License-Identifier: BSL-1.0
#include "gate.hpp"

#include <algorithm>
#include <concur/errors.hpp>
#include <exception>
#include <string>

namespace concur::batch {

using detail::Waiter;

bool Gate::Acquire::await_ready() {
  ctx_ = detail::current_context();
  if (ctx_ == nullptr) throw UsageError("concur::batch::Gate: acquire() outside a task");
  if (ctx_->stop_requested()) return true;  // await_resume throws
  std::lock_guard lock(gate_.mutex_);
  if (gate_.waiters_.empty() && gate_.in_use_ < gate_.limit_) {
    ++gate_.in_use_;
    return true;
  }
  return false;
}

// Published to the gate (under its lock, already `parked`) before the driver
// parks it, so a release on another thread can always find and wake it.
bool Gate::Acquire::await_suspend(std::coroutine_handle<> h) {
  detail::Driver& d = detail::require_driver();
  waiter_.deadline = ctx_->deadline();
  waiter_.handle = h;
  waiter_.ctx = ctx_;
  waiter_.driver = &d;
  d.prepare(waiter_);
  {
    std::lock_guard lock(gate_.mutex_);
    if (gate_.in_use_ < gate_.limit_ && gate_.waiters_.empty()) {  // freed meanwhile
      ++gate_.in_use_;
      return false;
    }
    waiter_.state.store(Waiter::parked, std::memory_order_release);
    gate_.waiters_.push_back(&waiter_);
  }
  parked_ = true;
  if (!ctx_->attach(waiter_)) {
    // Stopped already: claim the wake-up here (await_resume leaves the queue).
    if (waiter_.try_wake(Waiter::cancelled)) return false;
  }
  return d.park(waiter_);
}

void Gate::Acquire::await_resume() {
  if (parked_) {
    ctx_->detach(waiter_);
    waiter_.driver->finish(waiter_);
    if (waiter_.state.load(std::memory_order_acquire) == Waiter::notified) return;  // got one
    // Cancelled or timed out: leave the queue (a release may have popped us
    // already and found the wake-up taken; it then went on to the next one).
    std::lock_guard lock(gate_.mutex_);
    auto it = std::find(gate_.waiters_.begin(), gate_.waiters_.end(), &waiter_);
    if (it != gate_.waiters_.end()) gate_.waiters_.erase(it);
  } else if (!ctx_->stop_requested()) {
    return;  // took a permit without waiting
  }
  std::rethrow_exception(ctx_->stop_exception());
}

void Gate::hand_out_locked(std::unique_lock<std::mutex>&) {
  while (in_use_ < limit_ && !waiters_.empty()) {
    Waiter* w = waiters_.front();
    waiters_.pop_front();
    if (w->try_wake(Waiter::notified)) {
      ++in_use_;
      w->driver->unpark(*w);
    }
  }
}

void Gate::release() {
  std::unique_lock lock(mutex_);
  if (in_use_ > 0) --in_use_;
  hand_out_locked(lock);
}

void Gate::set_limit(std::size_t limit) {
  std::unique_lock lock(mutex_);
  limit_ = std::max<std::size_t>(1, limit);
  hand_out_locked(lock);
}

std::size_t Gate::limit() const {
  std::lock_guard lock(mutex_);
  return limit_;
}

std::size_t Gate::in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

}  // namespace concur::batch
