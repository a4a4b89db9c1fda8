// SPDX-License-Identifier: BSL-1.0
#include "executors/blocking_driver.hpp"

#include <condition_variable>
#include <mutex>

#include "concur/detail/trace_hooks.hpp"

namespace concur::executors {

namespace {
struct Parker {
  std::mutex mutex;
  std::condition_variable cv;
};
thread_local Parker tl_parker;
}  // namespace

// The spawning task (a nested gather's parent) waits while its child runs
// inline: the trace draws it waiting then, not running around its child.
void BlockingDriver::spawn(std::coroutine_handle<> h, detail::Context* ctx) {
  // A task's context hangs below its batch; a root context (a top-level
  // gather, no task to draw) has no parent.
  const detail::Context* parent = trace::detail::enabled() ? detail::current_context() : nullptr;
  if (parent != nullptr && parent->parent() == nullptr) parent = nullptr;
  if (parent != nullptr) trace::detail::wait_begin(parent);
  {
    detail::ScopedCurrent scope(this, ctx);
    h.resume();
  }
  if (parent != nullptr && trace::detail::enabled()) trace::detail::wait_end(parent);
}

void BlockingDriver::prepare(detail::Waiter& w) { w.driver_data = &tl_parker; }

bool BlockingDriver::park(detail::Waiter& w) {
  auto* p = static_cast<Parker*>(w.driver_data);
  // A deadline already past (sleep_for(0)) needs no trip through the kernel.
  if (w.deadline != detail::kNever && w.deadline <= detail::Clock::now()) {
    w.try_wake(detail::Waiter::timed_out);
  }
  std::unique_lock lock(p->mutex);
  while (w.state.load(std::memory_order_acquire) == detail::Waiter::parked) {
    if (w.deadline == detail::kNever) {
      p->cv.wait(lock);
    } else if (p->cv.wait_until(lock, w.deadline) == std::cv_status::timeout) {
      w.try_wake(detail::Waiter::timed_out);
    }
  }
  return false;  // the wait is over; the coroutine simply continues
}

void BlockingDriver::unpark(detail::Waiter& w) noexcept {
  auto* p = static_cast<Parker*>(w.driver_data);
  // Taking the parker's lock orders this notify after the parked thread's
  // state check, so the wake-up cannot fall between check and wait.
  std::lock_guard lock(p->mutex);
  p->cv.notify_all();
}

}  // namespace concur::executors
