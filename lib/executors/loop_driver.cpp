#include "executors/loop_driver.hpp"

#include <time.h>

namespace concur::executors {

namespace {

// CLOCK_MONOTONIC_COARSE costs a few ns; its ~4 ms resolution is plenty for a
// stall threshold measured in tens of milliseconds.
std::chrono::nanoseconds coarse_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

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
    const detail::CallName name = ctx->call_name();
    const auto saved_nested = nested_;
    nested_ = std::chrono::nanoseconds(0);
    const auto start = coarse_now();
    h.resume();
    const auto held = coarse_now() - start;
    const auto own = held - nested_;
    nested_ = saved_nested + held;
    if (own > stall_threshold_) on_stall(name(), own);
  }
  detail::set_current_context(outer);
}

}  // namespace concur::executors
