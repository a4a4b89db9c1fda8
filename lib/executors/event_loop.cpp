// SPDX-License-Identifier: BSL-1.0
// event_loop: asyncio's model. One thread interleaves coroutines; a wait
// suspends its coroutine and the loop (LoopDriver) runs whatever is ready,
// sleeping in the I/O engine (timers, sockets) only when nothing is. Children
// start eagerly, and a resume that holds the loop too long is reported as a
// stall.
#include "executors/event_loop.hpp"

#include <utility>

#include "executors/loop_driver.hpp"

namespace concur::executors {

namespace {

class EventLoop final : public Executor, private LoopDriver {
 public:
  explicit EventLoop(Config c) : Executor(std::move(c)), LoopDriver(config().stall_threshold) {}
  ~EventLoop() override { check_destroy_allowed(); }
  std::string_view name() const override { return "event_loop"; }
  bool detects_stalls() const override { return config().stall_threshold.count() > 0; }

 private:
  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    engine().bind_to_current_thread();  // lets I/O waits touch the engine inline
    detail::ScopedCurrent scope(this, &ctx);
    run_loop(root, ctx, [] {});
  }

  void on_stall(std::string_view task, std::chrono::nanoseconds held) override {
    report_stall(task, held);
  }
  void on_stall_ongoing(std::string_view task, std::chrono::nanoseconds held) override {
    report_stall(task, held, /*ongoing=*/true);
  }
};

}  // namespace

std::unique_ptr<Executor> make_event_loop(const Config& c) {
  return std::make_unique<EventLoop>(c);
}

}  // namespace concur::executors
