// SPDX-License-Identifier: BSL-1.0
// Cooperative cancellation for code that does not wait: a CPU-bound task
// polls concur::cancelled() (cheap) and stops, or calls throw_if_cancelled(),
// and on a one-thread executor lets the others run with yield_now().
#pragma once

#include <coroutine>

namespace concur {

namespace detail {
class Context;
class YieldAwaiter {
 public:
  YieldAwaiter() noexcept = default;
  YieldAwaiter(const YieldAwaiter&) = delete;
  YieldAwaiter& operator=(const YieldAwaiter&) = delete;

  bool await_ready();
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();

 private:
  Context* ctx_ = nullptr;
};
}  // namespace detail

/// True once the running task has been cancelled or has passed its timeout or
/// its batch's deadline. False outside any executor.
/// Thread-safety: call it from the task's own code (it reads the task that
/// the calling thread is running); cheap enough for a tight loop.
bool cancelled() noexcept;

/// Throws concur::Cancelled (or TimeoutError / DeadlineExceeded) if cancelled();
/// otherwise, and outside any executor, does nothing. Same thread rules as
/// cancelled().
void throw_if_cancelled();

/// `co_await concur::yield_now();` lets every other ready task run before
/// this one goes on (asyncio's `await asyncio.sleep(0)`), and is a
/// cancellation point: it throws concur::Cancelled (or TimeoutError /
/// DeadlineExceeded) once the task has stopped.
///
/// Polling cancelled() is not enough on event_loop and fibers: a CPU loop
/// holds the one thread, so a sibling that would fail (and cancel it) never
/// runs. Here gather(failer, cpu_poll, cpu_poll) ends as soon as `failer`
/// fails, because each pass of the loop lets it run:
///
///   Task<void> cpu_poll() {
///     for (;;) {
///       crunch_a_little();             // a few ms of CPU at most
///       co_await concur::yield_now();  // the failing sibling runs here, and
///     }                                // this throws Cancelled once it has
///   }
///
/// On event_loop and fibers the task goes to the back of the ready queue; on
/// sequential, thread_pool and inside a processes worker's blocking executor
/// (where a busy task holds only its own thread) it only checks for
/// cancellation, which costs next to nothing. Throws concur::UsageError when
/// no executor runs the awaiting task.
detail::YieldAwaiter yield_now() noexcept;

}  // namespace concur
