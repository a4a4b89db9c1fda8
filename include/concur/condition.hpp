// SPDX-License-Identifier: BSL-1.0
// concur::Condition: tasks wait, under a concur::Lock, until another task
// tells them something changed (asyncio.Condition, std::condition_variable_any).
//
//   concur::Lock lock;
//   concur::Condition changed;
//   std::deque<int> jobs;                       // guarded by lock
//
//   // consumer
//   auto held = co_await lock.scoped();
//   co_await changed.wait_for(held, [&] { return !jobs.empty(); });
//   int job = jobs.front();  jobs.pop_front();
//
//   // producer
//   { auto held = co_await lock.scoped();  jobs.push_back(7); }
//   changed.notify();                           // wakes the oldest waiter
//
// wait(lock) needs the lock held by the caller (UsageError if it is not
// locked at all); it unlocks it, waits for a notify, and locks it again
// before returning, as std::condition_variable does. The unlock happens only
// once the waiter is queued, so a notify made by whoever takes the lock next
// is never missed. notify(n) wakes the n oldest waiters (FIFO), notify_all()
// every one; each woken task then takes the lock again in turn. Wake-ups are
// never spurious here, but another task may change the state between the
// notify and the relock: check the state in a loop, which wait_for(lock,
// predicate) does for you (asyncio's Condition.wait_for).
//
// A wait is a library wait through the executor's driver and a cancellation
// point: a task cancelled (or past its timeout or deadline) while waiting
// leaves the queue, takes the lock again, and only then throws Cancelled /
// TimeoutError / DeadlineExceeded, so the caller's LockGuard still owns it
// (asyncio does the same). That relock is not itself a cancellation point:
// it waits for whoever holds the lock. A notify that a task cancelled at the
// same moment had already claimed still counts as received (wait returns).
//
// Use one Lock with each Condition. notify may be called with or without the
// lock held and from any thread (also outside any executor); without it, a
// notify can pass before a waiter that is about to wait has queued. Every
// member is thread-safe (thread_pool, fibers with threads > 1). On
// `sequential`, a wait only a later sibling can end never ends (see
// concur/sync.hpp); `processes`: a Condition lives in one process.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <string_view>

#include "concur/detail/sync_wait.hpp"
#include "concur/process_local.hpp"
#include "concur/sync.hpp"
#include "concur/task.hpp"

namespace concur {

namespace messages {
/// UsageError: Condition::wait with a Lock that is not locked (or a LockGuard that owns none).
inline constexpr std::string_view kConditionNotLocked =
    "concur::Condition::wait needs its Lock held by the caller (lock it first)";
}  // namespace messages

class Condition {
 public:
  Condition() noexcept = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// co_await: unlocks `lock` (held by the caller), waits until notified,
  /// locks it again. Throws UsageError if `lock` is not locked (nothing
  /// waits), the task's stop exception if it stops first (lock held again).
  Task<void> wait(Lock& lock);
  Task<void> wait(LockGuard& held) { return wait(held_lock(held)); }

  /// co_await: like wait(), but gives up after `d`: true if notified, false
  /// if the time passed first; the lock is held again either way.
  template <class Rep, class Period>
  Task<bool> wait_for(Lock& lock, std::chrono::duration<Rep, Period> d) {
    return wait_until(
        lock, detail::after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d)));
  }
  template <class Rep, class Period>
  Task<bool> wait_for(LockGuard& held, std::chrono::duration<Rep, Period> d) {
    return wait_for(held_lock(held), d);
  }

  /// co_await: waits (as wait()) until `pred()` holds; `pred` is called with
  /// the lock held, first before any wait (asyncio's Condition.wait_for).
  template <class P>
  requires std::predicate<P&> Task<void> wait_for(Lock& lock, P pred) {
    while (!pred()) co_await wait(lock);
  }
  template <class P>
  requires std::predicate<P&> Task<void> wait_for(LockGuard& held, P pred) {
    return wait_for(held_lock(held), std::move(pred));
  }

  /// Wakes the `n` oldest waiters (fewer if fewer wait).
  void notify(std::size_t n = 1) noexcept;
  /// Wakes every waiter, oldest first.
  void notify_all() noexcept;
  /// Tasks waiting now (a snapshot).
  std::size_t waiters() const noexcept;

 private:
  friend class detail::ConditionWait;
  static Lock& held_lock(LockGuard& held);
  Task<bool> wait_until(Lock& lock, detail::TimePoint until);

  mutable detail::NodeLock lock_;
  detail::WaitList waiters_;
};

// Lives in one process (concur/process_local.hpp): CONCUR_REGISTER refuses
// a function taking one.
template <>
struct is_process_local<Condition> : std::true_type {};

}  // namespace concur
