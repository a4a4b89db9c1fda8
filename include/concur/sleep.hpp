// SPDX-License-Identifier: BSL-1.0
// concur::sleep_for / sleep_until: the first library wait.
//
// The executor decides how to wait: the event loop suspends the coroutine and
// arms a timer, the sequential and thread-pool executors block the thread.
// Every sleep is a cancellation point: it ends early, throwing
// concur::Cancelled (or TimeoutError / DeadlineExceeded), when its task stops.
#pragma once

#include <chrono>
#include <coroutine>

#include "concur/detail/context.hpp"

namespace concur {

namespace detail {
class SleepAwaiter {
 public:
  explicit SleepAwaiter(TimePoint until) noexcept : until_(until) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;

  bool await_ready();
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();

 private:
  TimePoint until_;
  Context* ctx_ = nullptr;
  Waiter waiter_;
};
}  // namespace detail

/// Waits until `when` (steady clock) on the current executor; a time already
/// past still yields. co_await it inside a task. Throws concur::Cancelled (or
/// TimeoutError / DeadlineExceeded) when the task stops before or during the
/// wait, and concur::UsageError when no executor runs the awaiting task.
inline detail::SleepAwaiter sleep_until(std::chrono::steady_clock::time_point when) noexcept {
  return detail::SleepAwaiter(when);
}

/// Waits for `d` on the current executor. A zero duration still yields.
/// Same errors as sleep_until().
/// A duration past the clock's range sleeps until the task stops.
template <class Rep, class Period>
detail::SleepAwaiter sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
  using Dur = std::chrono::steady_clock::duration;
  const auto now = std::chrono::steady_clock::now();
  // Saturate rather than overflow (duration::max() would wrap into the past).
  const auto room =
      std::chrono::duration_cast<std::chrono::duration<double, std::nano>>(detail::kNever - now);
  if (std::chrono::duration_cast<std::chrono::duration<double, std::nano>>(d) >= room) {
    return detail::SleepAwaiter(detail::kNever);
  }
  return detail::SleepAwaiter(now + std::chrono::duration_cast<Dur>(d));
}

}  // namespace concur
