// The one wait under every synchronisation primitive (Semaphore, Lock,
// Event, Queue): a FIFO of parked tasks and the awaiter that joins it.
//
// A wait goes through the current driver like sleep_for does, so it suspends
// the coroutine on event_loop, blocks the fiber on fibers and blocks the
// thread on sequential and thread_pool. The protocol is the batch's
// (lib/core/batch.cpp, BatchWait): prepare the waiter, mark it parked, then
// under the primitive's lock either complete at once or join the queue, and
// only then park. Whoever completes a queued wait claims it with
// Waiter::try_wake while holding the same lock, so a cancel or a timeout
// racing with it has exactly one winner; the woken task takes that lock
// again before it goes on, so its frame outlives every touch of the waker.
#pragma once

#include <coroutine>
#include <cstddef>

#include "concur/detail/context.hpp"
#include "concur/detail/node_lock.hpp"

namespace concur::detail {

/// One task waiting on a primitive. Lives in the awaiting coroutine's frame.
struct SyncNode {
  Waiter waiter;
  SyncNode* prev = nullptr;
  SyncNode* next = nullptr;
  bool queued = false;
  // Set by whoever completed the wait, before waking it (Queue: the queue
  // was closed rather than the item moved).
  bool closed = false;
  // What the operation moves (Queue: the item pushed, or where a popped one goes).
  void* slot = nullptr;
};

/// An intrusive FIFO of parked waits. Every member needs the owner's lock.
class WaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  /// Waits queued (some may be on their way out after a cancel).
  std::size_t size() const noexcept { return size_; }
  void push_back(SyncNode& n) noexcept;
  void remove(SyncNode& n) noexcept;
  /// Whether a wait is still parked here; first drops those at the front
  /// that a cancel or timeout has claimed (they are leaving).
  bool any_parked() noexcept;
  /// Claims the oldest wait that no cancel or timeout has claimed yet and
  /// unlinks it (waits claimed by those leave by themselves, unlinked here on
  /// the way). Returns null if none is left. The caller may fill the node,
  /// then must call resume(): until then the waiter stays parked.
  SyncNode* claim_first() noexcept;
  /// Resumes a node returned by claim_first(). Still under the owner's lock.
  static void resume(SyncNode& n) noexcept;

 private:
  SyncNode* head_ = nullptr;
  SyncNode* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// The awaiter every primitive's wait is made of. `try_now(self, node)` runs
/// under `lock` and completes the operation at once if it can (returning
/// true); otherwise the wait joins `list` until someone claims it.
class SyncAwait {
 public:
  using TryNow = bool (*)(void* self, SyncNode& node);

  SyncAwait(NodeLock& lock, WaitList& list, void* self, TryNow try_now,
            TimePoint until = kNever) noexcept
      : lock_(lock), list_(list), self_(self), try_now_(try_now), until_(until) {}
  SyncAwait(const SyncAwait&) = delete;
  SyncAwait& operator=(const SyncAwait&) = delete;

  /// Throws UsageError outside any executor. A task already stopped does not
  /// try (await_resume throws); otherwise tries to complete without parking.
  bool await_ready();
  bool await_suspend(std::coroutine_handle<> h);
  /// True if the operation completed; false if `until` passed first. Throws
  /// the task's stop exception (Cancelled, TimeoutError, DeadlineExceeded) if
  /// it stopped before the operation completed; an operation that completed
  /// stays done even if a cancel came at the same moment.
  bool await_resume();

  SyncNode& node() noexcept { return node_; }
  void* self() const noexcept { return self_; }

 private:
  NodeLock& lock_;
  WaitList& list_;
  void* self_;
  TryNow try_now_;
  TimePoint until_;
  Context* ctx_ = nullptr;
  bool done_ = false;    // completed without parking
  bool parked_ = false;  // went through the driver
  SyncNode node_;
};

}  // namespace concur::detail
