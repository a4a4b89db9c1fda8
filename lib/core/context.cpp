// SPDX-License-Identifier: BSL-1.0
#include "concur/detail/context.hpp"

#include <fmt/format.h>

#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

constinit thread_local Context* tl_current_context = nullptr;
constinit thread_local Driver* tl_current_driver = nullptr;

namespace {
long long whole_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
}  // namespace

void wake(Waiter& w, Waiter::State how) noexcept {
  if (w.try_wake(how)) w.driver->unpark(w);
}

void Context::apply_budget(std::chrono::nanoseconds budget, StopReason budget_kind) noexcept {
  if (budget.count() < 0) {
    // A batch deadline computed as already past fails the batch rather than
    // meaning "none"; a negative per-task timeout still means no timeout.
    if (budget_kind != StopReason::deadline) return;
    deadline_ = TimePoint::min();
    deadline_kind_ = budget_kind;
    budget_ = budget;
    return;
  }
  const TimePoint now = Clock::now();
  // Saturate: nanoseconds::max() means "practically never", and now + budget
  // would overflow into the past and fail the task at once.
  if (budget >= kNever - now) return;
  const TimePoint own = now + budget;
  if (own < deadline_) {
    deadline_ = own;
    deadline_kind_ = budget_kind;
    budget_ = budget;
  }
}

std::chrono::nanoseconds Context::hand_off_timeout() noexcept {
  const TimePoint inherited = parent_ != nullptr ? parent_->deadline_ : kNever;
  if (deadline_kind_ != StopReason::timeout || deadline_ == inherited) {
    return std::chrono::nanoseconds(0);
  }
  const std::chrono::nanoseconds own = budget_;
  deadline_ = inherited;
  deadline_kind_ = parent_ != nullptr ? parent_->deadline_kind_ : StopReason::none;
  budget_ = parent_ != nullptr ? parent_->budget_ : std::chrono::nanoseconds(0);
  return own;
}

bool Context::deadline_passed() noexcept {
  if (Clock::now() < deadline_) return false;
  cancel(deadline_kind_);
  return true;
}

std::exception_ptr Context::stop_exception() const {
  switch (stopped_.load(std::memory_order_acquire)) {
    case StopReason::timeout:
      return std::make_exception_ptr(TimeoutError(
          fmt::format("{} {} ms (in '{}')", messages::kTimedOut, whole_ms(budget_), name())));
    case StopReason::deadline:
      return std::make_exception_ptr(DeadlineExceeded(
          fmt::format("{} {} ms", messages::kDeadlineExceeded, whole_ms(budget_))));
    default:
      return std::make_exception_ptr(Cancelled());
  }
}

void Context::cancel(StopReason why) noexcept {
  std::lock_guard lock(mutex_);
  cancel_locked(why);
}

// Lock order is always parent before child, so pushing the stop down while
// holding each node's lock cannot deadlock, and keeps children from
// unlinking (and being destroyed) under our feet.
void Context::cancel_locked(StopReason why) noexcept {
  StopReason expected = StopReason::none;
  if (!stopped_.compare_exchange_strong(expected, why, std::memory_order_acq_rel)) return;
  if (waiter_ != nullptr) wake(*waiter_, Waiter::cancelled);
  for (Context* c = first_child_; c != nullptr; c = c->next_sibling_) {
    std::lock_guard child_lock(c->mutex_);
    c->cancel_locked(why == StopReason::none ? StopReason::cancelled : why);
  }
}

bool Context::adopt(Context& child) noexcept {
  std::lock_guard lock(mutex_);
  if (stopped_.load(std::memory_order_relaxed) != StopReason::none) return false;
  adopt_locked(child);
  return true;
}

void Context::release(Context& child) noexcept {
  std::lock_guard lock(mutex_);
  release_locked(child);
}

bool Context::attach(Waiter& w) noexcept {
  std::lock_guard lock(mutex_);
  if (stopped_.load(std::memory_order_relaxed) != StopReason::none) return false;
  waiter_ = &w;
  return true;
}

void Context::detach(Waiter& w) noexcept {
  std::lock_guard lock(mutex_);
  if (waiter_ == &w) waiter_ = nullptr;
}

Driver& require_driver() {
  Driver* d = tl_current_driver;
  if (d == nullptr) throw UsageError(std::string(messages::kNoExecutor));
  return *d;
}

bool park_current(Waiter& w, std::coroutine_handle<> h, Context* attach_to) {
  Driver& d = require_driver();
  w.handle = h;
  w.ctx = tl_current_context;
  w.driver = &d;
  d.prepare(w);
  w.state.store(Waiter::parked, std::memory_order_release);
  // Already stopped: claim the wake-up ourselves. Either way the driver decides
  // how the coroutine goes on, so a wake racing with us is never doubled.
  if (attach_to != nullptr && !attach_to->attach(w)) wake(w, Waiter::cancelled);
  if (trace::detail::enabled()) trace::detail::wait_begin(w.ctx);
  return d.park(w);
}

void end_park(Waiter& w, Context* attach_to) noexcept {
  if (trace::detail::enabled()) trace::detail::wait_end(w.ctx);
  if (attach_to != nullptr) attach_to->detach(w);
  if (w.driver != nullptr) w.driver->finish(w);
}

}  // namespace concur::detail
