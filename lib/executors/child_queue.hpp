// SPDX-License-Identifier: BSL-1.0
// The children one thread_pool task has spawned that no thread has started.
//
// A work-stealing deque (Chase and Lev; the C11 form of Le, Pop, Cohen and
// Zappa Nardelli, PPoPP 2013). Only the owning task pushes and takes, at the
// bottom: on thread_pool a task never leaves the thread that resumed it, so
// that is one thread. Other threads steal from the top. The owner takes its
// newest child, as oneTBB's own task deques do: a gather waiting for a
// `limit` slot runs the short child it just queued rather than an older long
// one, which a thief takes instead. A push is plain stores and a release
// store, a take one locked exchange, a steal one compare-exchange; a mutex
// here would double the cost of a short gather child.
//
// The ring grows by doubling; a thief may still be reading an older ring, so
// old rings are kept until the deque dies. A thief reads a slot before
// claiming it with the compare-exchange on `top_`; if the owner reused that
// slot meanwhile, `top_` has moved on and the claim fails, so a torn read is
// never used.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>

#include "concur/detail/context.hpp"

namespace concur::executors {

/// A child waiting to start: its frame and the context it runs in.
struct QueuedChild {
  std::coroutine_handle<> handle;
  detail::Context* ctx = nullptr;
};

class ChildQueue {
 public:
  ChildQueue() noexcept {
    inline_ring_.mask = kInlineSlots - 1;
    inline_ring_.slots = inline_slots_;
    ring_.store(&inline_ring_, std::memory_order_relaxed);
  }
  ChildQueue(const ChildQueue&) = delete;
  ChildQueue& operator=(const ChildQueue&) = delete;

  /// Owner only. Throws std::bad_alloc if the ring must grow and cannot.
  void push(QueuedChild c) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_acquire);
    Ring* r = ring_.load(std::memory_order_relaxed);
    if (b - t > static_cast<std::int64_t>(r->mask)) r = grow(r, t, b);
    r->put(b, c);
    bottom_.store(b + 1, std::memory_order_release);  // publishes the slot
  }

  /// Owner only: takes the newest child, or returns false if none is left.
  bool take(QueuedChild& out) noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Ring* r = ring_.load(std::memory_order_relaxed);
    // The store must be ordered before the load of top_ (a thief may be
    // claiming the same child): a locked exchange is cheaper than a fence.
    bottom_.exchange(b, std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    bool got = false;
    if (t <= b) {
      out = r->get(b);
      got = true;
      if (t == b) {
        // The last child: a thief may be claiming it too.
        got = top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                           std::memory_order_relaxed);
        bottom_.store(b + 1, std::memory_order_relaxed);
      }
    } else {
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return got;
  }

  /// Any thread: takes the oldest child, or returns false if there is none.
  bool steal(QueuedChild& out) noexcept {
    for (;;) {
      std::int64_t t = top_.load(std::memory_order_seq_cst);
      const std::int64_t b = bottom_.load(std::memory_order_seq_cst);
      if (t >= b) return false;
      // Read after the bottom: this ring (or a newer one) holds index t.
      const QueuedChild c = ring_.load(std::memory_order_acquire)->get(t);
      if (top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
        out = c;
        return true;
      }
    }
  }

  /// True if no child is queued (a hint while others push or take).
  bool empty() const noexcept {
    return top_.load(std::memory_order_acquire) >= bottom_.load(std::memory_order_acquire);
  }

  /// Links to the queues of the enclosing and enclosed tasks on the same
  /// thread; kept by the thread_pool under its lane's lock.
  ChildQueue* outer = nullptr;
  ChildQueue* inner = nullptr;
  /// The thread_pool lane (per thread and pool) the queue is linked on;
  /// null until its task first spawns.
  void* lane = nullptr;

 private:
  // Plain fields read and written through std::atomic_ref: an array of
  // std::atomic would be zeroed on every task, and most tasks queue nothing.
  struct Slot {
    void* handle;
    detail::Context* ctx;
  };
  struct Ring {
    std::uint64_t mask = 0;
    Slot* slots = nullptr;
    std::unique_ptr<Slot[]> owned;  // null for the inline ring
    std::unique_ptr<Ring> older;    // kept alive for late thieves

    void put(std::int64_t i, QueuedChild c) noexcept {
      Slot& s = slots[static_cast<std::uint64_t>(i) & mask];
      std::atomic_ref(s.handle).store(c.handle.address(), std::memory_order_relaxed);
      std::atomic_ref(s.ctx).store(c.ctx, std::memory_order_relaxed);
    }
    QueuedChild get(std::int64_t i) const noexcept {
      Slot& s = slots[static_cast<std::uint64_t>(i) & mask];
      return {std::coroutine_handle<>::from_address(
                  std::atomic_ref(s.handle).load(std::memory_order_relaxed)),
              std::atomic_ref(s.ctx).load(std::memory_order_relaxed)};
    }
  };
  static constexpr std::uint64_t kInlineSlots = 16;

  // Owner only: a ring twice the size holding the live entries at the same
  // indices, published before any push uses it.
  Ring* grow(Ring* r, std::int64_t top, std::int64_t bottom) {
    auto bigger = std::make_unique<Ring>();
    bigger->mask = r->mask * 2 + 1;
    bigger->owned.reset(new Slot[bigger->mask + 1]());
    bigger->slots = bigger->owned.get();
    for (std::int64_t i = top; i < bottom; ++i) bigger->put(i, r->get(i));
    bigger->older = std::move(grown_);
    grown_ = std::move(bigger);
    ring_.store(grown_.get(), std::memory_order_release);
    return grown_.get();
  }

  std::atomic<std::int64_t> top_{0};     // the oldest child; thieves take it
  std::atomic<std::int64_t> bottom_{0};  // one past the newest; the owner's end
  std::atomic<Ring*> ring_{nullptr};
  std::unique_ptr<Ring> grown_;  // the newest grown ring; it owns the older ones
  Ring inline_ring_;
  Slot inline_slots_[kInlineSlots];
};

}  // namespace concur::executors
