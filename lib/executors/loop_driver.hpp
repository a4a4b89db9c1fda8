// SPDX-License-Identifier: BSL-1.0
// The driver of a one-thread event loop, shared by event_loop and by the
// parent side of processes: a ready queue of woken coroutines, timers and
// sockets on the shared Asio engine, and (optionally) the stall detector's
// timing of every resume.
//
// A wait suspends its coroutine; unpark() queues it, from any thread, and the
// loop resumes it. spawn() runs a child at once until its first wait (like
// asyncio's eager_task_factory), so a batch of tasks that never wait costs no
// queueing and stays cache-hot.
#pragma once

#include <chrono>
#include <coroutine>
#include <string_view>
#include <thread>
#include <vector>

#include "concur/detail/driver.hpp"
#include "executors/stall_watch.hpp"
#include "io/engine.hpp"

namespace concur::executors {

class LoopDriver : public detail::Driver {
 public:
  /// `stall_threshold` zero: resumes are not timed and nothing is reported.
  explicit LoopDriver(std::chrono::nanoseconds stall_threshold = std::chrono::nanoseconds(0))
      : stall_threshold_(stall_threshold),
        watch_(stall_threshold, [this](std::string_view task, std::chrono::nanoseconds held) {
          on_stall_ongoing(task, held);
        }) {}

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override { resume_timed(h, ctx); }
  bool park(detail::Waiter& w) override;
  void unpark(detail::Waiter& w) noexcept override;
  void finish(detail::Waiter& w) noexcept override { engine_.remove_timer(w); }
  io::Engine* io_engine() noexcept override { return &engine_; }
  /// Queues `h` behind every coroutine already ready (concur::yield_now).
  bool yield(std::coroutine_handle<> h, detail::Context* ctx) override {
    ready_.push_back({h, ctx});
    return true;
  }

 protected:
  io::Engine& engine() noexcept { return engine_; }

  /// Runs `root` (in context `ctx`) and everything it wakes on this thread
  /// until `root` is done. `before_poll()` runs before each trip into the
  /// engine (e.g. to flush queued requests).
  template <class BeforePoll>
  void run_loop(std::coroutine_handle<> root, detail::Context& ctx, BeforePoll&& before_poll) {
    loop_thread_ = std::this_thread::get_id();
    resume_timed(root, &ctx);
    std::vector<Ready> batch;
    while (!root.done()) {
      batch.swap(ready_);
      for (const Ready& r : batch) resume_timed(r.handle, r.ctx);
      batch.clear();
      if (root.done()) break;
      before_poll();
      engine_.run_once(/*block=*/ready_.empty());
    }
  }

  /// One resume held the loop longer than the stall threshold.
  virtual void on_stall(std::string_view task, std::chrono::nanoseconds held) {
    (void)task;
    (void)held;
  }
  /// A resume is still holding the loop after `held` (the watchdog thread
  /// calls this, at 1x, 2x, 4x, ... the threshold).
  virtual void on_stall_ongoing(std::string_view task, std::chrono::nanoseconds held) {
    (void)task;
    (void)held;
  }

 private:
  struct Ready {
    std::coroutine_handle<> handle;
    detail::Context* ctx;
  };

  // Resumes one coroutine and, when timing, charges the time it held the
  // thread to it, minus the time of children it started eagerly (they are
  // charged apart).
  void resume_timed(std::coroutine_handle<> h, detail::Context* ctx);

  io::Engine engine_;
  std::vector<Ready> ready_;
  std::thread::id loop_thread_;
  const std::chrono::nanoseconds stall_threshold_;
  std::chrono::nanoseconds nested_{0};
  detail::CallName leg_name_;  // of the resume in progress (for nested ones)
  bool in_leg_ = false;
  StallWatch watch_;
};

}  // namespace concur::executors
