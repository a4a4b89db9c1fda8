// SPDX-License-Identifier: BSL-1.0
#include "concur/sleep.hpp"

#include <algorithm>

#include "concur/cancel.hpp"
#include "concur/detail/driver.hpp"
#include "concur/errors.hpp"

namespace concur {

namespace detail {

bool SleepAwaiter::await_ready() {
  ctx_ = current_context();
  if (ctx_ == nullptr) throw UsageError(std::string(messages::kNoExecutor));
  // Already stopped: skip the park, await_resume throws.
  return ctx_->stop_requested();
}

bool SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
  waiter_.deadline = std::min(until_, ctx_->deadline());
  return park_current(waiter_, h, ctx_);
}

void SleepAwaiter::await_resume() {
  end_park(waiter_, ctx_);
  if (ctx_->stop_requested()) std::rethrow_exception(ctx_->stop_exception());
}

bool YieldAwaiter::await_ready() {
  ctx_ = current_context();
  if (ctx_ == nullptr) throw UsageError(std::string(messages::kNoExecutor));
  return ctx_->stop_requested();  // already stopped: await_resume throws
}

bool YieldAwaiter::await_suspend(std::coroutine_handle<> h) {
  return require_driver().yield(h, ctx_);
}

void YieldAwaiter::await_resume() {
  if (ctx_->stop_requested()) std::rethrow_exception(ctx_->stop_exception());
}

}  // namespace detail

detail::YieldAwaiter yield_now() noexcept { return {}; }

bool cancelled() noexcept {
  detail::Context* c = detail::current_context();
  return c != nullptr && c->stop_requested();
}

void throw_if_cancelled() {
  detail::Context* c = detail::current_context();
  if (c != nullptr && c->stop_requested()) std::rethrow_exception(c->stop_exception());
}

}  // namespace concur
