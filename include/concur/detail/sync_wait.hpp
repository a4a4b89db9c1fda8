// SPDX-License-Identifier: BSL-1.0
// The one wait under every synchronisation primitive (Semaphore, Lock,
// Event, Condition, Queue): a FIFO of parked tasks and the awaiter that joins it.
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
#include <new>

#include "concur/detail/context.hpp"
#include "concur/detail/node_lock.hpp"

namespace concur::detail {

class SyncAwait;

/// One task waiting on a primitive, made only when it parks (an operation
/// that completes at once never builds one: the stores would have to drain
/// before the lock's atomic, doubling the uncontended cost). Lives in the
/// awaiting coroutine's frame.
struct SyncNode {
  Waiter waiter;
  SyncNode* prev = nullptr;
  SyncNode* next = nullptr;
  bool queued = false;
  SyncAwait* op = nullptr;  // the operation waiting: its slot, its closed flag
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

/// The awaiter every primitive's wait is made of. `try_now(self, op)` runs
/// under `lock` and completes the operation at once if it can (returning
/// true); otherwise the wait joins `list` until someone claims it.
class SyncAwait {
 public:
  using TryNow = bool (*)(void* self, SyncAwait& op);

  /// `cancellable` false: not a cancellation point (the task's stop, timeout
  /// and deadline are ignored; only `until` or a completion ends it), for
  /// Condition's relock, which must hold the lock again before it throws.
  SyncAwait(NodeLock& lock, WaitList& list, void* self, TryNow try_now, TimePoint until = kNever,
            void* slot = nullptr, bool cancellable = true) noexcept
      : lock_(lock),
        list_(list),
        self_(self),
        try_now_(try_now),
        until_(until),
        slot_(slot),
        cancellable_(cancellable) {}
  SyncAwait(const SyncAwait&) = delete;
  SyncAwait& operator=(const SyncAwait&) = delete;
  ~SyncAwait() {
    if (parked_) node().~SyncNode();
  }

  /// Throws UsageError outside any executor. A task already stopped does not
  /// try (await_resume throws); otherwise tries to complete without parking.
  bool await_ready();
  bool await_suspend(std::coroutine_handle<> h);
  /// True if the operation completed; false if `until` passed first. Throws
  /// the task's stop exception (Cancelled, TimeoutError, DeadlineExceeded) if
  /// it stopped before the operation completed; an operation that completed
  /// stays done even if a cancel came at the same moment.
  bool await_resume();

  void* self() const noexcept { return self_; }
  /// What the operation moves (Queue: the item pushed, or where a popped one goes).
  void* slot() const noexcept { return slot_; }
  /// Set by whoever completed the operation (Queue: closed rather than moved).
  bool closed() const noexcept { return closed_; }
  void set_closed() noexcept { closed_ = true; }

 private:
  NodeLock& lock_;
  WaitList& list_;
  void* self_;
  TryNow try_now_;
  SyncNode& node() noexcept { return *std::launder(reinterpret_cast<SyncNode*>(node_)); }

  TimePoint until_;
  void* slot_;
  Context* ctx_ = nullptr;
  bool closed_ = false;
  const bool cancellable_;
  bool done_ = false;    // completed without parking
  bool parked_ = false;  // the node is made and went through the driver
  alignas(SyncNode) unsigned char node_[sizeof(SyncNode)];
};

}  // namespace concur::detail
