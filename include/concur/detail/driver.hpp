// SPDX-License-Identifier: BSL-1.0
// The driver: the one mechanism through which every wait happens (DESIGN §4).
//
// A task never knows which executor runs it. A library wait fills in a Waiter
// and asks the driver current on this thread to park it. A suspending driver
// (event_loop) keeps the coroutine handle and resumes it from its loop; a
// blocking driver (sequential, thread_pool, a worker process) blocks the
// thread until the waiter is woken and reports that the wait already ended.
// Adding an executor means adding a Driver; adding a wait means filling a
// Waiter and, where it needs I/O, one method on the drivers.
#pragma once

#include <coroutine>
#include <string_view>

#include "concur/detail/context.hpp"

namespace concur::io {
class Engine;
}

namespace concur::detail {

class CallRouter;

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;

  /// Starts a child coroutine running in context `ctx`, now or later.
  virtual void spawn(std::coroutine_handle<> h, Context* ctx) = 0;

  /// Called before the waiter is published, so a racing wake finds it ready.
  virtual void prepare(Waiter& w) { (void)w; }
  /// Parks the waiter (already in state `parked`). Returns true if the
  /// coroutine stays suspended until unpark() or its deadline; false if the
  /// wait has already ended on this thread.
  virtual bool park(Waiter& w) = 0;
  /// Resumes a waiter whose wake-up was claimed by Waiter::try_wake. Any thread.
  virtual void unpark(Waiter& w) noexcept = 0;
  /// Called on the waiter's own thread after it resumed; drops driver state.
  virtual void finish(Waiter& w) noexcept { (void)w; }

  /// concur::yield_now: lets the other ready tasks of this thread run first.
  /// Returns true if `h` (running in `ctx`) was queued behind them and must
  /// stay suspended; false if the caller may go on now (a blocking driver has
  /// nothing to interleave; a fiber driver has already yielded its fiber).
  virtual bool yield(std::coroutine_handle<> h, Context* ctx) {
    (void)h;
    (void)ctx;
    return false;
  }

  /// The I/O engine (sockets and timers) this driver's tasks wait on, or null
  /// when a wait blocks the thread (sequential, thread_pool, worker
  /// processes). I/O waits such as concur::http pick how to wait from it.
  virtual io::Engine* io_engine() noexcept { return nullptr; }

  /// The hook through which calls leave the process (detail/call_router.hpp):
  /// null for a driver that runs its calls here (all but processes, cluster).
  virtual CallRouter* call_router() noexcept { return nullptr; }
};

/// Parks the current coroutine `h` on `w` through the current driver.
/// `attach_to` (may be null) is the context whose cancellation wakes it.
/// Returns what an await_suspend returning bool should return.
bool park_current(Waiter& w, std::coroutine_handle<> h, Context* attach_to);
/// Undoes park_current once the coroutine runs again.
void end_park(Waiter& w, Context* attach_to) noexcept;

/// The current driver, or a UsageError naming the mistake.
Driver& require_driver();

}  // namespace concur::detail
