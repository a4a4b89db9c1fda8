// SPDX-License-Identifier: BSL-1.0
// The cancellation tree and the waiter every library wait parks on.
//
// Each running task has a Context; each gather has one too (its children hang
// below it). Cancelling a node stops everything under it: the flag is pushed
// down eagerly and the one waiter each node may be parked on is woken, so a
// task blocked in a wait notices at once instead of at its next poll.
// Deadlines are inherited at creation (a child never outlives its parent's
// deadline) and checked lazily against the clock, so no timer is needed for a
// CPU-bound task that polls concur::cancelled().
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>

#include "concur/detail/node_lock.hpp"

namespace concur::detail {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
inline constexpr TimePoint kNever = TimePoint::max();

/// Why a context stopped.
enum class StopReason : std::uint8_t { none, cancelled, timeout, deadline };

class Context;
class Driver;

/// One parked wait. Lives in the awaiting coroutine's frame.
struct Waiter {
  enum State : std::uint8_t { idle, parked, notified, timed_out, cancelled };

  TimePoint deadline = kNever;  // wake by itself at this time
  std::coroutine_handle<> handle;
  Context* ctx = nullptr;    // the context the resumed coroutine runs in
  Driver* driver = nullptr;  // the driver that parked it
  std::atomic<std::uint8_t> state{idle};
  // The wait ends when a child of the waiting task ends (a gather waiting
  // for a `limit` slot, or joining). A driver whose waits block its thread
  // may run queued work meanwhile instead (thread_pool does).
  bool for_children = false;
  // Scratch space owned by the driver (its timer key, its parker, ...).
  void* driver_data = nullptr;
  std::uint64_t driver_key = 0;

  /// Claims the wake-up; exactly one of notify/timeout/cancel wins.
  bool try_wake(State how) noexcept {
    std::uint8_t expected = parked;
    return state.compare_exchange_strong(expected, how, std::memory_order_acq_rel);
  }
};

/// Wakes a parked waiter through its driver if nobody else has.
void wake(Waiter& w, Waiter::State how) noexcept;

/// Describes the call a context runs, computed only when someone asks
/// (stall reports, error messages) so that the hot path stores two pointers.
struct CallName {
  const void* object = nullptr;
  std::string_view (*get)(const void*) = nullptr;
  std::string_view operator()() const { return get ? get(object) : std::string_view("task"); }
};

class Context {
 public:
  /// A root context: no parent, no deadline.
  Context() = default;
  /// A child of `parent` that must finish within `budget` (zero = no budget of
  /// its own; a budget past the clock's range = none). A negative budget of
  /// kind `deadline` has already passed: the node stops on its first check.
  // Inline, like the other per-child steps below: one gather child makes,
  // links and unlinks a context, and the calls were a tenth of its cost.
  Context(Context* parent, std::chrono::nanoseconds budget, StopReason budget_kind,
          CallName name = {}) noexcept
      : parent_(parent), name_(name) {
    if (parent_ != nullptr) {
      deadline_ = parent_->deadline_;
      deadline_kind_ = parent_->deadline_kind_;
      budget_ = parent_->budget_;
    }
    if (budget.count() != 0) apply_budget(budget, budget_kind);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() = default;

  /// Cancels this node and everything below it. Idempotent; any thread.
  void cancel(StopReason why = StopReason::cancelled) noexcept;

  /// True once cancelled or past the deadline (marks the reason on first sight).
  bool stop_requested() noexcept {
    if (stopped_.load(std::memory_order_acquire) != StopReason::none) return true;
    return deadline_ != kNever && deadline_passed();
  }
  StopReason stop_reason() const noexcept { return stopped_.load(std::memory_order_acquire); }
  /// The exception a wait throws once this context has stopped.
  std::exception_ptr stop_exception() const;

  TimePoint deadline() const noexcept { return deadline_; }
  /// For a call that runs elsewhere (a worker process): gives up this node's
  /// own per-task timeout, which the runner there counts from the call's real
  /// start, and keeps only the deadline inherited from above. Returns that
  /// timeout (zero if this node had none of its own). Call it on the task's
  /// own thread before the node has children.
  std::chrono::nanoseconds hand_off_timeout() noexcept;
  Context* parent() const noexcept { return parent_; }
  std::string_view name() const { return name_(); }
  CallName call_name() const noexcept { return name_; }
  void set_name(CallName n) noexcept { name_ = n; }

  /// Links a child; returns false (and links nothing) if this node has stopped.
  bool adopt(Context& child) noexcept;
  /// Unlinks a child adopted earlier.
  void release(Context& child) noexcept;

  /// Publishes the waiter this node is parked on so cancel() can wake it.
  /// Returns false if the node has already stopped (the caller must not park).
  bool attach(Waiter& w) noexcept;
  void detach(Waiter& w) noexcept;

 protected:
  /// Links a child of a node known not to have stopped; the caller holds mutex_.
  void adopt_locked(Context& child) noexcept {
    child.next_sibling_ = first_child_;
    child.prev_sibling_ = nullptr;
    if (first_child_ != nullptr) first_child_->prev_sibling_ = &child;
    first_child_ = &child;
  }
  /// Unlinks a child adopted earlier; the caller holds mutex_.
  void release_locked(Context& child) noexcept {
    if (child.prev_sibling_ != nullptr) {
      child.prev_sibling_->next_sibling_ = child.next_sibling_;
    } else if (first_child_ == &child) {
      first_child_ = child.next_sibling_;
    }
    if (child.next_sibling_ != nullptr) child.next_sibling_->prev_sibling_ = child.prev_sibling_;
    child.prev_sibling_ = child.next_sibling_ = nullptr;
  }

  NodeLock mutex_;

 private:
  void cancel_locked(StopReason why) noexcept;
  void apply_budget(std::chrono::nanoseconds budget, StopReason budget_kind) noexcept;
  // The deadline is set: checks the clock, and cancels this node if it passed.
  bool deadline_passed() noexcept;

  Context* parent_ = nullptr;
  TimePoint deadline_ = kNever;
  StopReason deadline_kind_ = StopReason::none;
  std::chrono::nanoseconds budget_{0};  // for the timeout message
  std::atomic<StopReason> stopped_{StopReason::none};
  CallName name_;
  Waiter* waiter_ = nullptr;
  // Intrusive list of live children, guarded by mutex_.
  Context* first_child_ = nullptr;
  Context* prev_sibling_ = nullptr;
  Context* next_sibling_ = nullptr;
};

// What runs on this thread. Read on every child start and every resume, so
// the accessors below are inline: one thread-pointer-relative load each.
extern constinit thread_local Context* tl_current_context;
extern constinit thread_local Driver* tl_current_driver;

/// The context of the task running on this thread (null outside any executor).
inline Context* current_context() noexcept { return tl_current_context; }
/// The driver that performs waits on this thread (null outside any executor).
inline Driver* current_driver() noexcept { return tl_current_driver; }

/// Installs a driver and context for the current scope, restoring the old ones.
class ScopedCurrent {
 public:
  ScopedCurrent(Driver* d, Context* c) noexcept
      : old_driver_(tl_current_driver), old_context_(tl_current_context) {
    tl_current_driver = d;
    tl_current_context = c;
  }
  ~ScopedCurrent() {
    tl_current_driver = old_driver_;
    tl_current_context = old_context_;
  }
  ScopedCurrent(const ScopedCurrent&) = delete;
  ScopedCurrent& operator=(const ScopedCurrent&) = delete;

 private:
  Driver* old_driver_;
  Context* old_context_;
};

/// Sets the thread's current context (drivers do this before each resume).
inline void set_current_context(Context* c) noexcept { tl_current_context = c; }
inline void set_current(Driver* d, Context* c) noexcept {
  tl_current_driver = d;
  tl_current_context = c;
}

}  // namespace concur::detail
