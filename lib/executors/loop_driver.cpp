// SPDX-License-Identifier: BSL-1.0
#include "executors/loop_driver.hpp"

namespace concur::executors {

bool LoopDriver::park(detail::Waiter& w) {
  // Someone already claimed the wake-up: unpark() has queued the resume.
  if (w.state.load(std::memory_order_acquire) != detail::Waiter::parked) return true;
  if (w.deadline != detail::kNever) engine_.add_timer(w);
  return true;
}

void LoopDriver::unpark(detail::Waiter& w) noexcept {
  Ready r{w.handle, w.ctx};
  if (std::this_thread::get_id() == loop_thread_) {
    ready_.push_back(r);
  } else {
    engine_.post([this, r] { ready_.push_back(r); });
  }
}

void LoopDriver::resume_timed(std::coroutine_handle<> h, detail::Context* ctx) {
  detail::Context* outer = detail::current_context();
  detail::set_current_context(ctx);
  if (stall_threshold_.count() == 0) {
    h.resume();
  } else {
    // coarse_now(): a few ns; its ~4 ms resolution is plenty for a stall
    // threshold measured in tens of milliseconds.
    const detail::CallName name = ctx->call_name();
    const auto saved_nested = nested_;
    const detail::CallName outer_name = leg_name_;
    const bool outer_leg = in_leg_;
    nested_ = std::chrono::nanoseconds(0);
    const auto start = coarse_now();
    leg_name_ = name;
    in_leg_ = true;
    watch_.begin_leg(name, start);
    h.resume();
    const auto end = coarse_now();
    // A child started eagerly has returned: the watchdog watches its parent again.
    leg_name_ = outer_name;
    in_leg_ = outer_leg;
    if (outer_leg) {
      watch_.begin_leg(outer_name, end);
    } else {
      watch_.end_leg();
    }
    const auto held = end - start;
    const auto own = held - nested_;
    nested_ = saved_nested + held;
    if (own > stall_threshold_) on_stall(name(), own);
  }
  detail::set_current_context(outer);
}

}  // namespace concur::executors
