// SPDX-License-Identifier: BSL-1.0
#include "http/engine_wait.hpp"

#include "concur/detail/trace_hooks.hpp"
#include "io/engine.hpp"

namespace concur::http::detail_ {

using concur::detail::Waiter;

EngineWait::EngineWait(io::Engine& engine, concur::detail::Driver& driver,
                       concur::detail::Context& ctx, Request request)
    : engine_(engine),
      driver_(driver),
      ctx_(ctx),
      transfer_(std::make_shared<io::MultiTransfer>(std::move(request))) {}

// Like detail::park_current, but the transfer starts after the waiter is
// published and before the driver parks it: a transfer that ends at once
// (even on another fibers thread) then finds a waiter it can wake.
bool EngineWait::await_suspend(std::coroutine_handle<> h) {
  waiter_.deadline = ctx_.deadline();  // a task timeout wakes us like a sleep would
  waiter_.handle = h;
  waiter_.ctx = &ctx_;
  waiter_.driver = &driver_;
  driver_.prepare(waiter_);
  transfer_->publish(&waiter_);
  waiter_.state.store(Waiter::parked, std::memory_order_release);
  parked_ = true;
  if (!ctx_.attach(waiter_)) {
    // Stopped already: nobody else can wake this waiter, so claim it here
    // and go on without parking. (Waking through the driver instead would
    // make a fiber that is still running ready on the shared queue.)
    waiter_.try_wake(Waiter::cancelled);
    return false;
  }
  started_ = true;
  // The wait is recorded from here, before the transfer can end and wake us:
  // a task waiting for a reply is drawn as waiting, not as running.
  if (trace::detail::enabled()) trace::detail::wait_begin(&ctx_);
  engine_.dispatch([&engine = engine_, t = transfer_] { engine.curl().start(t); });
  return driver_.park(waiter_);
}

Response EngineWait::await_resume() {
  if (started_ && trace::detail::enabled()) trace::detail::wait_end(&ctx_);
  if (parked_) {
    ctx_.detach(waiter_);
    driver_.finish(waiter_);
  }
  const bool done = transfer_->withdraw();
  // A task that stops leaves now; the engine closes the connection on its
  // next turn (at once on event_loop, whose loop is this thread).
  if (started_ && !done) {
    engine_.dispatch([&engine = engine_, t = transfer_] { engine.curl().abort(t); });
  }
  if (ctx_.stop_requested()) std::rethrow_exception(ctx_.stop_exception());
  if (!done) throw Cancelled();  // woken without a result or a stop: cannot happen
  return transfer_->result();
}

}  // namespace concur::http::detail_
