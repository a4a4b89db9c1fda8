// event_loop: asyncio's model. One thread interleaves coroutines; a wait
// suspends its coroutine and the loop runs whatever is ready, sleeping in the
// I/O engine (timers, sockets) only when nothing is.
//
// Children start eagerly (like asyncio's eager_task_factory): spawn() runs a
// child until its first wait, so a batch of tasks that never wait costs no
// queueing and stays cache-hot.
#include "executors/event_loop.hpp"

#include <time.h>

#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "concur/detail/driver.hpp"
#include "io/engine.hpp"

namespace concur::executors {

namespace {

// CLOCK_MONOTONIC_COARSE costs a few ns; its ~4 ms resolution is plenty for a
// stall threshold measured in tens of milliseconds.
std::chrono::nanoseconds coarse_now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

class EventLoop final : public Executor, private detail::Driver {
 public:
  explicit EventLoop(Config c)
      : Executor(std::move(c)), stall_threshold_(config().stall_threshold) {}
  std::string_view name() const override { return "event_loop"; }
  bool detects_stalls() const override { return stall_threshold_.count() > 0; }

 private:
  struct Ready {
    std::coroutine_handle<> handle;
    detail::Context* ctx;
  };

  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    loop_thread_ = std::this_thread::get_id();
    engine_.bind_to_current_thread();  // lets I/O waits touch the engine inline
    detail::ScopedCurrent scope(this, &ctx);
    resume_timed(root, &ctx);
    std::vector<Ready> batch;
    while (!root.done()) {
      batch.swap(ready_);
      for (const Ready& r : batch) resume_timed(r.handle, r.ctx);
      batch.clear();
      if (root.done()) break;
      engine_.run_once(/*block=*/ready_.empty());
    }
  }

  void spawn(std::coroutine_handle<> h, detail::Context* ctx) override { resume_timed(h, ctx); }

  bool park(detail::Waiter& w) override {
    // Someone already claimed the wake-up: unpark() has queued the resume.
    if (w.state.load(std::memory_order_acquire) != detail::Waiter::parked) return true;
    if (w.deadline != detail::kNever) engine_.add_timer(w);
    return true;
  }

  void unpark(detail::Waiter& w) noexcept override {
    Ready r{w.handle, w.ctx};
    if (std::this_thread::get_id() == loop_thread_) {
      ready_.push_back(r);
    } else {
      engine_.post([this, r] { ready_.push_back(r); });
    }
  }

  void finish(detail::Waiter& w) noexcept override { engine_.remove_timer(w); }

  io::Engine* io_engine() noexcept override { return &engine_; }

  // Resumes one coroutine and charges the time it held the thread to it,
  // minus the time of children it started eagerly (they are charged apart).
  void resume_timed(std::coroutine_handle<> h, detail::Context* ctx) {
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
      if (own > stall_threshold_) report_stall(name(), own);
    }
    detail::set_current_context(outer);
  }

  io::Engine engine_;
  std::vector<Ready> ready_;
  std::thread::id loop_thread_;
  std::chrono::nanoseconds stall_threshold_;
  std::chrono::nanoseconds nested_{0};
};

}  // namespace

std::unique_ptr<Executor> make_event_loop(const Config& c) {
  return std::make_unique<EventLoop>(c);
}

}  // namespace concur::executors
