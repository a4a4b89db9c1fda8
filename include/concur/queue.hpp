// SPDX-License-Identifier: BSL-1.0
// concur::Queue<T>: a bounded multi-producer multi-consumer queue between
// tasks, with close (asyncio.Queue with maxsize and shutdown, folly::coro's
// BoundedQueue, libcoro's queue).
//
//   concur::Queue<std::string> lines(64);
//   co_await lines.push(line);                     // producer: waits while full
//   while (auto line = co_await lines.pop()) ...   // consumer: waits while empty
//   lines.close();                                 // consumers drain, then get nullopt
//
// push and pop are library waits (concur/sync.hpp says how they wait on each
// executor) and cancellation points: a task cancelled while waiting leaves
// the queue without its item having moved and throws its stop exception.
// Waiting producers and consumers are served in arrival order (FIFO): a
// consumer that waited gets the next item before a newcomer, and a full
// queue takes the oldest waiting producer's item first. close() wakes every
// waiter: producers waiting (and any later push) throw QueueClosed, their
// items dropped; consumers take what is left, then get std::nullopt.
//
// Thread-safety: every member is safe from any thread and any task at once;
// try_push, try_pop, close and the accessors also outside any executor. The
// queue must outlive every wait on it. On `sequential`, where tasks run one
// after another, a producer waits on a full queue for a consumer that never
// runs beside it: give the queue room for all it will hold there. A Queue
// lives in one process: it carries nothing between worker processes, and
// CONCUR_REGISTER refuses a function taking one (concur/process_local.hpp).
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/detail/sync_wait.hpp"
#include "concur/errors.hpp"
#include "concur/process_local.hpp"

namespace concur {

template <class T>
class Queue {
  // An item moves while a claimed waiter waits to be resumed; a move that
  // threw there would strand it.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "concur::Queue needs an item type with a noexcept move constructor");

 public:
  /// A queue holding at most `capacity` items. Throws UsageError for 0.
  explicit Queue(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw UsageError(std::string(messages::kQueueCapacity));
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  class PushAwait : public detail::SyncAwait {
   public:
    PushAwait(Queue& q, T item) noexcept
        : SyncAwait(q.lock_, q.pushers_, &q, &Queue::push_now, detail::kNever, &item_),
          item_(std::move(item)) {}
    void await_resume() {
      (void)SyncAwait::await_resume();
      if (closed()) throw QueueClosed();
    }

   private:
    T item_;
  };

  class PopAwait : public detail::SyncAwait {
   public:
    explicit PopAwait(Queue& q) noexcept
        : SyncAwait(q.lock_, q.poppers_, &q, &Queue::pop_now, detail::kNever, &out_) {}
    std::optional<T> await_resume() {
      (void)SyncAwait::await_resume();
      return std::move(out_);
    }

   private:
    std::optional<T> out_;
  };

  /// co_await: appends `item`, waiting while the queue is full. Throws
  /// QueueClosed if the queue is (or gets) closed first, and the task's stop
  /// exception if it is cancelled first; either way the item is dropped.
  PushAwait push(T item) noexcept { return PushAwait(*this, std::move(item)); }
  /// co_await: the oldest item, waiting while the queue is empty; std::nullopt
  /// once it is closed and empty. Throws the task's stop exception if it is
  /// cancelled first (no item is taken).
  PopAwait pop() noexcept { return PopAwait(*this); }

  /// Appends without waiting: false (item untouched) if full or closed.
  bool try_push(T& item) noexcept {
    std::lock_guard lock(lock_);
    if (closed_) return false;
    return push_locked(item, nullptr);
  }
  /// Takes the oldest item without waiting, or nullopt if there is none.
  std::optional<T> try_pop() noexcept {
    std::lock_guard lock(lock_);
    std::optional<T> out;
    if (!items_.empty()) pop_locked(out);
    return out;
  }

  /// Closes the queue: waiting producers throw QueueClosed, waiting
  /// consumers get std::nullopt (the queue is empty when any wait), later
  /// pushes throw, later pops drain what is left. Idempotent.
  void close() noexcept {
    std::lock_guard lock(lock_);
    closed_ = true;
    while (detail::SyncNode* p = pushers_.claim_first()) {
      p->op->set_closed();
      detail::WaitList::resume(*p);
    }
    while (detail::SyncNode* c = poppers_.claim_first()) detail::WaitList::resume(*c);
  }

  bool closed() const noexcept {
    std::lock_guard lock(lock_);
    return closed_;
  }
  /// Items held now (a snapshot).
  std::size_t size() const noexcept {
    std::lock_guard lock(lock_);
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  // Invariants (under lock_): consumers are parked only while items_ is
  // empty, producers only while it is full.
  static bool push_now(void* self, detail::SyncAwait& op) noexcept {
    return static_cast<Queue*>(self)->push_locked(*static_cast<T*>(op.slot()), &op);
  }
  static bool pop_now(void* self, detail::SyncAwait& op) noexcept {
    return static_cast<Queue*>(self)->pop_locked(*static_cast<std::optional<T>*>(op.slot()));
  }

  // Moves `item` in if it can (true: done, or the queue is closed, which
  // `op` hears of); lock_ is held.
  bool push_locked(T& item, detail::SyncAwait* op) noexcept {
    if (closed_) {
      if (op != nullptr) op->set_closed();
      return true;
    }
    if (detail::SyncNode* c = poppers_.claim_first()) {
      static_cast<std::optional<T>*>(c->op->slot())->emplace(std::move(item));
      detail::WaitList::resume(*c);
      return true;
    }
    if (items_.size() < capacity_ && !pushers_.any_parked()) {
      items_.push_back(std::move(item));
      return true;
    }
    return false;
  }

  // Takes the oldest item into `out` if there is one (true), or gives true
  // with `out` empty once closed and drained; lock_ is held.
  bool pop_locked(std::optional<T>& out) noexcept {
    if (items_.empty()) return closed_;
    out.emplace(std::move(items_.front()));
    items_.pop_front();
    // A slot just freed: the oldest waiting producer's item takes it.
    if (detail::SyncNode* p = pushers_.claim_first()) {
      items_.push_back(std::move(*static_cast<T*>(p->op->slot())));
      detail::WaitList::resume(*p);
    }
    return true;
  }

  mutable detail::NodeLock lock_;
  detail::WaitList pushers_;
  detail::WaitList poppers_;
  std::deque<T> items_;
  const std::size_t capacity_;
  bool closed_ = false;
};

// Lives in one process (concur/process_local.hpp): CONCUR_REGISTER refuses
// a function taking one.
template <class T>
struct is_process_local<Queue<T>> : std::true_type {};

}  // namespace concur
