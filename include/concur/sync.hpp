// SPDX-License-Identifier: BSL-1.0
// Synchronisation between tasks: Semaphore, Lock, Event and Latch
// (asyncio.Semaphore, asyncio.Lock, asyncio.Event; folly::coro's Mutex and
// Baton; std::latch).
//
//   concur::Semaphore slots(4);          // at most 4 tasks in the section
//   co_await slots.acquire();  ...  slots.release();
//
//   concur::Lock lock;
//   { auto held = co_await lock.scoped();  ...  }   // unlocked at scope end
//
//   concur::Event ready;
//   co_await ready.wait();               // in one task
//   ready.set();                         // in another, or any thread
//
//   concur::Latch done(3);               // three tasks count down ...
//   done.count_down();  ...  co_await done.wait();   // ... one waits for all
//
// Every wait here is a library wait through the running executor's driver:
// it suspends the coroutine on event_loop, blocks the fiber on fibers and
// blocks the thread on sequential and thread_pool. Every wait is a
// cancellation point: a task cancelled (or past its timeout or its batch's
// deadline) while waiting leaves the queue and throws Cancelled (or
// TimeoutError / DeadlineExceeded); one that is already stopped throws
// without trying. Waiters are served first come, first served (FIFO), and a
// newcomer never overtakes a queued waiter: a released unit or the lock is
// handed straight to the oldest waiter.
//
// Thread-safety: every member is safe from any thread and any task at once
// (thread_pool and fibers with threads > 1 included); the non-waiting members
// (release, unlock, set, try_*) may also be called outside any executor, e.g.
// from another std::thread. An object must outlive every wait on it.
//
// On `sequential` tasks run one after another, so a wait that only another
// task of the same run can end (an Event set by a later sibling, a Lock held
// across a nested gather) never ends there, as in single-threaded code; it
// still ends by its task's timeout or deadline, or from another thread.
// `processes` (and `cluster`): each of these lives in one process; a call
// running in a worker process can make and use its own, but none is shared
// across processes (a Semaphore in the parent does not bound calls in
// workers: use the gather's `limit`). CONCUR_REGISTER refuses, at compile
// time, a function taking one (concur/process_local.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <utility>

#include "concur/detail/sync_wait.hpp"
#include "concur/process_local.hpp"

namespace concur {

namespace detail {
/// A sync wait whose co_await gives nothing (it completed or threw).
class SyncWaitVoid : public SyncAwait {
 public:
  using SyncAwait::SyncAwait;
  void await_resume() { (void)SyncAwait::await_resume(); }
};

inline TimePoint after(std::chrono::steady_clock::duration d) noexcept {
  const TimePoint now = Clock::now();
  return d >= kNever - now ? kNever : now + d;
}
}  // namespace detail

/// A counting semaphore (asyncio.Semaphore): acquire() takes a unit, waiting
/// while none is free; release() gives one back, to the oldest waiter first.
class Semaphore {
 public:
  explicit Semaphore(std::size_t initial) noexcept : count_(initial) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// co_await: takes a unit, waiting (FIFO) while none is free. Throws the
  /// task's stop exception if it is cancelled first (no unit is taken).
  detail::SyncWaitVoid acquire() noexcept {
    return detail::SyncWaitVoid(lock_, waiters_, this, &take);
  }
  /// co_await: like acquire(), but gives up after `d`: true if a unit was taken.
  template <class Rep, class Period>
  detail::SyncAwait try_acquire_for(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::SyncAwait(
        lock_, waiters_, this, &take,
        detail::after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d)));
  }
  /// Takes a unit if one is free and nobody waits; never waits.
  bool try_acquire() noexcept;
  /// Gives `n` units back: each goes to the oldest waiter, or to the count.
  void release(std::size_t n = 1) noexcept;
  /// Units free now (a snapshot).
  std::size_t available() const noexcept;
  /// Tasks waiting now (a snapshot).
  std::size_t waiters() const noexcept;

 private:
  static bool take(void* self, detail::SyncAwait& op) noexcept;
  bool take_locked() noexcept;

  mutable detail::NodeLock lock_;
  detail::WaitList waiters_;
  std::size_t count_;
};

class Lock;
namespace detail {
class ConditionWait;
}

/// Holds a Lock until destroyed (or unlock()); what `co_await lock.scoped()` gives.
class LockGuard {
 public:
  LockGuard() noexcept = default;
  explicit LockGuard(Lock& l) noexcept : lock_(&l) {}
  LockGuard(LockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
  LockGuard& operator=(LockGuard&& o) noexcept;
  ~LockGuard();
  /// Unlocks now (once); the destructor then does nothing.
  void unlock() noexcept;
  bool owns_lock() const noexcept { return lock_ != nullptr; }
  /// The lock held, or null once unlocked (std::unique_lock::mutex).
  Lock* mutex() const noexcept { return lock_; }

 private:
  Lock* lock_ = nullptr;
};

/// A mutual-exclusion lock for tasks (asyncio.Lock, folly::coro::Mutex). Not
/// recursive: a task that locks it twice waits for itself forever. It is not
/// owned by a thread, so a task may unlock it after resuming elsewhere.
class Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// co_await: locks, waiting (FIFO) while another holder has it. Throws the
  /// task's stop exception if it is cancelled first (the lock is not taken).
  detail::SyncWaitVoid lock() noexcept {
    return detail::SyncWaitVoid(lock_, waiters_, this, &take);
  }
  /// co_await: like lock(), but gives up after `d`: true if locked.
  template <class Rep, class Period>
  detail::SyncAwait try_lock_for(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::SyncAwait(
        lock_, waiters_, this, &take,
        detail::after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d)));
  }
  /// co_await: locks like lock() and gives a LockGuard that unlocks it.
  auto scoped() noexcept {
    class Scoped : public detail::SyncAwait {
     public:
      using SyncAwait::SyncAwait;
      LockGuard await_resume() {
        (void)SyncAwait::await_resume();
        return LockGuard(*static_cast<Lock*>(self()));
      }
    };
    return Scoped(lock_, waiters_, this, &take);
  }
  /// Locks if free and nobody waits; never waits.
  bool try_lock() noexcept;
  /// Unlocks, handing the lock to the oldest waiter if any. Throws
  /// UsageError if the lock is not locked.
  void unlock();
  /// Whether someone holds it now (a snapshot).
  bool locked() const noexcept;
  /// Tasks waiting now (a snapshot).
  std::size_t waiters() const noexcept;

 private:
  friend class detail::ConditionWait;  // unlocks and relocks around a Condition wait
  static bool take(void* self, detail::SyncAwait& op) noexcept;
  bool take_locked() noexcept;
  /// Unlock for a lock known to be held (no check, never throws).
  void unlock_held() noexcept;
  /// To the oldest waiter, or unlocked; lock_ is held.
  void hand_over_locked() noexcept;
  /// co_await: locks like lock(), but is not a cancellation point: a
  /// Condition waiter that was cancelled must hold the lock again before
  /// its exception reaches the caller's guard.
  detail::SyncWaitVoid relock() noexcept {
    return detail::SyncWaitVoid(lock_, waiters_, this, &take, detail::kNever, nullptr, false);
  }

  mutable detail::NodeLock lock_;
  detail::WaitList waiters_;
  bool locked_ = false;
};

/// A flag tasks wait for (asyncio.Event, folly::coro::Baton): wait() returns
/// once it is set; set() wakes every waiter (in the order they came) and lets
/// later waits through until clear().
class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// co_await: returns at once if set, else waits until set() or the task
  /// stops (then throws its stop exception).
  detail::SyncWaitVoid wait() noexcept {
    return detail::SyncWaitVoid(lock_, waiters_, this, &test);
  }
  /// co_await: like wait(), but gives up after `d`: true if the event was set.
  template <class Rep, class Period>
  detail::SyncAwait wait_for(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::SyncAwait(
        lock_, waiters_, this, &test,
        detail::after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d)));
  }
  /// Sets the flag and wakes every waiter.
  void set() noexcept;
  /// Clears the flag; later waits wait again.
  void clear() noexcept;
  bool is_set() const noexcept;
  /// Tasks waiting now (a snapshot).
  std::size_t waiters() const noexcept;

 private:
  static bool test(void* self, detail::SyncAwait& op) noexcept;

  mutable detail::NodeLock lock_;
  detail::WaitList waiters_;
  bool set_ = false;
};

/// A single-use countdown (std::latch, cppcoro::async_latch): wait() returns
/// once count_down() has been called `count` times in all; it never resets.
class Latch {
 public:
  explicit Latch(std::size_t count) noexcept : count_(count) {}
  Latch(const Latch&) = delete;
  Latch& operator=(const Latch&) = delete;

  /// Counts down by `n`; reaching zero wakes every waiter. Counting down
  /// past zero throws UsageError (the count is left at zero).
  void count_down(std::size_t n = 1);
  /// co_await: returns once the count is zero; a cancellation point.
  detail::SyncWaitVoid wait() noexcept {
    return detail::SyncWaitVoid(lock_, waiters_, this, &test);
  }
  /// co_await: like wait(), but gives up after `d`: true if the count reached zero.
  template <class Rep, class Period>
  detail::SyncAwait wait_for(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::SyncAwait(
        lock_, waiters_, this, &test,
        detail::after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d)));
  }
  /// Whether the count is zero (never waits).
  bool try_wait() const noexcept;
  /// Tasks waiting now (a snapshot).
  std::size_t waiters() const noexcept;

 private:
  static bool test(void* self, detail::SyncAwait& op) noexcept;

  mutable detail::NodeLock lock_;
  detail::WaitList waiters_;
  std::size_t count_;
};

// Each lives in one process (concur/process_local.hpp): CONCUR_REGISTER
// refuses a function taking one.
template <>
struct is_process_local<Semaphore> : std::true_type {};
template <>
struct is_process_local<Lock> : std::true_type {};
template <>
struct is_process_local<LockGuard> : std::true_type {};
template <>
struct is_process_local<Event> : std::true_type {};
template <>
struct is_process_local<Latch> : std::true_type {};

}  // namespace concur
