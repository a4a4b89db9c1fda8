// SPDX-License-Identifier: BSL-1.0
#include "concur/detail/sync_wait.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <string>

#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

void WaitList::push_back(SyncNode& n) noexcept {
  n.prev = tail_;
  n.next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = &n;
  } else {
    head_ = &n;
  }
  tail_ = &n;
  n.queued = true;
  ++size_;
}

void WaitList::remove(SyncNode& n) noexcept {
  if (n.prev != nullptr) {
    n.prev->next = n.next;
  } else {
    head_ = n.next;
  }
  if (n.next != nullptr) {
    n.next->prev = n.prev;
  } else {
    tail_ = n.prev;
  }
  n.prev = n.next = nullptr;
  n.queued = false;
  --size_;
}

bool WaitList::any_parked() noexcept {
  // A wait a cancel or timeout claimed is on its way out; dropping it here
  // keeps it from making a newcomer queue behind nobody.
  while (head_ != nullptr &&
         head_->waiter.state.load(std::memory_order_acquire) != Waiter::parked) {
    remove(*head_);
  }
  return head_ != nullptr;
}

SyncNode* WaitList::claim_first() noexcept {
  while (SyncNode* n = head_) {
    remove(*n);
    if (n->waiter.try_wake(Waiter::notified)) return n;
  }
  return nullptr;
}

void WaitList::resume(SyncNode& n) noexcept { n.waiter.driver->unpark(n.waiter); }

bool SyncAwait::await_ready() {
  ctx_ = current_context();
  if (ctx_ == nullptr) throw UsageError(std::string(messages::kNoExecutor));
  if (cancellable_ && ctx_->stop_requested()) return true;  // await_resume throws
  std::lock_guard lock(lock_);
  done_ = try_now_(self_, *this);
  return done_;
}

bool SyncAwait::await_suspend(std::coroutine_handle<> h) {
  Driver& d = require_driver();
  SyncNode& n = *::new (static_cast<void*>(node_)) SyncNode;
  n.op = this;
  parked_ = true;  // from here the destructor ends the node's life
  Waiter& w = n.waiter;
  w.handle = h;
  w.ctx = ctx_;
  w.driver = &d;
  w.deadline = cancellable_ ? std::min(until_, ctx_->deadline()) : until_;
  d.prepare(w);
  w.state.store(Waiter::parked, std::memory_order_release);
  {
    // Checked again now that a wake-up could find us: a release between
    // await_ready and here must not be missed.
    std::lock_guard lock(lock_);
    if (try_now_(self_, *this)) {
      w.state.store(Waiter::idle, std::memory_order_release);
      done_ = true;
      return false;
    }
    list_.push_back(n);
  }
  if (cancellable_ && !ctx_->attach(w)) wake(w, Waiter::cancelled);
  if (trace::detail::enabled()) trace::detail::wait_begin(w.ctx);
  return d.park(w);
}

bool SyncAwait::await_resume() {
  if (done_) return true;  // completed without waiting (maybe after making the node)
  if (!parked_) std::rethrow_exception(ctx_->stop_exception());  // stopped before trying
  SyncNode& n = node();
  Waiter& w = n.waiter;
  if (trace::detail::enabled()) trace::detail::wait_end(w.ctx);
  if (cancellable_) ctx_->detach(w);
  w.driver->finish(w);
  bool completed;
  {
    // Also orders us after the waker: it may still be inside resume().
    std::lock_guard lock(lock_);
    if (n.queued) list_.remove(n);
    completed = w.state.load(std::memory_order_acquire) == Waiter::notified;
  }
  if (completed) return true;
  if (cancellable_ && ctx_->stop_requested()) std::rethrow_exception(ctx_->stop_exception());
  return false;  // our own time limit passed
}

}  // namespace concur::detail
