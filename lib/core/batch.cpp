// SPDX-License-Identifier: BSL-1.0
#include "concur/detail/batch.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <type_traits>

#include "concur/detail/driver.hpp"

namespace concur::detail {

// Records are reused by constructing over them, never destroyed one by one.
static_assert(std::is_trivially_destructible_v<ChildLink>);

Batch::Batch(std::size_t total, const GatherOptions& options, GatherMode mode)
    : Context(current_context(), options.deadline, StopReason::deadline),
      total_(total),
      options_(options),
      mode_(mode),
      counts_progress_(static_cast<bool>(options.on_progress)),
      limit_(options.limit == 0 ? std::numeric_limits<std::size_t>::max() : options.limit) {
  progress_.total = total;
  // Already requested: runs at once, and the batch starts nothing.
  if (options.stop.stop_possible()) stop_from_outside_.emplace(options.stop, StopFromOutside{this});
}

void Batch::report_progress_locked() noexcept {
  if (options_.on_progress) options_.on_progress(progress_);
}

void Batch::input_skipped(const std::exception_ptr& error) noexcept {
  if (counts_progress_) {
    std::lock_guard cb(callback_mutex_);
    ++progress_.done;
    ++progress_.failed;
    report_progress_locked();
  }
  std::lock_guard lock(mutex_);
  if (mode_ == GatherMode::fail_fast && !first_failure_) first_failure_ = error;
}

// A block of child records. A small batch's single chunk comes from the
// per-thread frame cache; a batch of a million unlimited inputs grows chunk
// by chunk instead of asking for one huge block up front.
struct Batch::LinkChunk {
  LinkChunk* next;
  std::size_t count;
  ChildLink* records() noexcept {
    static_assert(sizeof(LinkChunk) % alignof(ChildLink) == 0);
    return reinterpret_cast<ChildLink*>(this + 1);
  }
  static std::size_t bytes(std::size_t n) noexcept {
    return sizeof(LinkChunk) + n * sizeof(ChildLink);
  }
};

Batch::~Batch() {
  while (LinkChunk* c = chunks_) {
    chunks_ = c->next;
    deallocate_frame(c, LinkChunk::bytes(c->count));
  }
}

void* Batch::take_link_locked() {
  if (ChildLink* l = free_links_) {
    free_links_ = l->next_free;
    return l;
  }
  if (fresh_ == fresh_end_) {
    // Never more than min(total, limit) run at once: sizes double from 16
    // (capped at 4096) until that many exist.
    constexpr std::size_t kFirst = 16, kMost = 4096;
    const std::size_t cap = std::min(total_, limit_);
    const std::size_t n = std::min(cap - links_made_, std::clamp(links_made_, kFirst, kMost));
    auto* c = static_cast<LinkChunk*>(allocate_frame(LinkChunk::bytes(n)));
    c->next = chunks_;
    c->count = n;
    chunks_ = c;
    fresh_ = c->records();
    fresh_end_ = fresh_ + n;
    links_made_ += n;
  }
  return fresh_++;
}

void Batch::free_link_locked(ChildLink& link) noexcept {
  release_locked(link.ctx);
  link.next_free = free_links_;
  free_links_ = &link;
}

void Batch::child_finished(ChildLink& child, const std::exception_ptr& error) noexcept {
  if (counts_progress_) {
    std::lock_guard cb(callback_mutex_);
    ++progress_.done;
    if (error) ++progress_.failed;
    report_progress_locked();
  }
  // One trip through the lock in the common case: unlink, free the record,
  // count out, and wake the batch if it waits for this.
  bool cancel_siblings = false;
  {
    std::lock_guard lock(mutex_);
    free_link_locked(child);
    if (error && mode_ == GatherMode::fail_fast && !first_failure_) {
      first_failure_ = error;
      cancel_siblings = true;  // still counted as running: the batch cannot end under us
    } else {
      count_out_locked();
    }
  }
  if (!cancel_siblings) return;
  cancel(StopReason::cancelled);
  std::lock_guard lock(mutex_);
  count_out_locked();
}

void start_child(ChildLink& link) {
  if (trace::detail::enabled()) trace::detail::task_begin();
  if (link.ctx.stop_requested()) std::rethrow_exception(link.ctx.stop_exception());
}

std::coroutine_handle<> end_child(ChildLink& link, void* promise,
                                  std::coroutine_handle<> h) noexcept {
  const std::exception_ptr error = link.factory->finish(link, promise);
  // The trace reads the call's name, which a by-value call keeps in the frame.
  if (trace::detail::enabled()) trace::detail::task_end(link.ctx, error != nullptr);
  // The frame goes first, as when a task's awaiter destroys it: the batch
  // may end (and its awaiting task move on) as soon as it hears of this.
  h.destroy();
  link.batch->child_finished(link, error);
  return std::noop_coroutine();
}

void Batch::count_out_locked() noexcept {
  --running_;
  if (waiting_ && (joining_ ? running_ == 0 : running_ < limit_)) {
    waiting_ = false;
    wake(waiter_, Waiter::notified);
  }
}

namespace {

// Parks the batch coroutine until a slot frees up (or, when joining, until
// every child has ended). The condition is checked under the batch lock after
// the waiter is published, so a child ending in between cannot be missed.
class BatchWait {
 public:
  BatchWait(Batch& b, NodeLock& m, Waiter& w, std::size_t& running, std::size_t limit,
            bool& waiting, bool join)
      : b_(b), m_(m), w_(w), running_(running), limit_(limit), waiting_(waiting), join_(join) {}

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    Driver& d = require_driver();
    w_.handle = h;
    w_.ctx = current_context();
    w_.driver = &d;
    w_.for_children = true;
    // While joining a stopped batch there is nothing left to time out.
    w_.deadline = (join_ && b_.stop_reason() != StopReason::none) ? kNever : b_.deadline();
    d.prepare(w_);
    w_.state.store(Waiter::parked, std::memory_order_release);
    {
      std::lock_guard lock(m_);
      if (join_ ? running_ == 0 : running_ < limit_) {
        w_.state.store(Waiter::idle, std::memory_order_release);
        return false;
      }
      waiting_ = true;
    }
    // Waiting for a slot is cancellable; the join is not: it must outlast the children.
    if (!join_ && !b_.attach(w_)) wake(w_, Waiter::cancelled);
    if (trace::detail::enabled()) trace::detail::wait_begin(w_.ctx);
    return d.park(w_);
  }

  void await_resume() noexcept {
    if (trace::detail::enabled()) trace::detail::wait_end(w_.ctx);
    if (!join_) b_.detach(w_);
    if (w_.driver != nullptr) w_.driver->finish(w_);
    std::lock_guard lock(m_);
    waiting_ = false;
    w_.state.store(Waiter::idle, std::memory_order_release);
  }

 private:
  Batch& b_;
  NodeLock& m_;
  Waiter& w_;
  std::size_t& running_;
  std::size_t limit_;
  bool& waiting_;
  bool join_;
};

}  // namespace

// Input `i` fails with `error` without having run; in fail-fast mode that
// stops the batch like any child's failure.
void fail_unstarted(Batch& b, ChildFactory& f, std::size_t i, const std::exception_ptr& error) {
  f.skip(i, error);
  b.input_skipped(error);
  if (b.mode_ == GatherMode::fail_fast) b.cancel(StopReason::cancelled);
}

Task<void> run_batch(Batch& b, ChildFactory& f) {
  Driver& driver = require_driver();
  Context* parent = b.parent();
  const bool adopted = parent == nullptr || parent->adopt(b);
  if (!adopted) b.cancel(parent->stop_reason());

  // Gives reserved records back unused (the batch stopped, or one failed).
  auto unreserve = [&b](ChildLink* const* links, std::size_t n) noexcept {
    if (n == 0) return;
    std::lock_guard lock(b.mutex_);
    for (std::size_t k = 0; k < n; ++k) b.free_link_locked(*links[k]);
    b.running_ -= n;
  };

  std::size_t i = 0;
  bool stopped = false;
  while (i < b.total_ && !stopped) {
    // Up to kBurst children get their slots and contexts in one trip
    // through the lock, and only once they have slots: a per-task timeout
    // must not count the time spent waiting for one. With a timeout, one at
    // a time, as its clock starts with the context: a sequential child must
    // not be charged for the siblings that run inline before it.
    constexpr std::size_t kBurst = 16;
    const std::size_t burst = b.options_.timeout.count() > 0 ? 1 : kBurst;
    ChildLink* links[kBurst];
    std::size_t got = 0;
    std::exception_ptr no_record;
    for (;;) {
      if (b.stop_requested()) break;
      {
        std::lock_guard lock(b.mutex_);
        if (b.stop_reason() != StopReason::none) break;
        if (b.running_ < b.limit_) {
          const std::size_t want = std::min({b.limit_ - b.running_, b.total_ - i, burst});
          for (; got < want; ++got) {
            void* record;
            try {
              record = b.take_link_locked();
            } catch (...) {
              // No memory for more records: start those reserved so far;
              // with none, the input fails below like an unmade child.
              no_record = std::current_exception();
              break;
            }
            // Constructed in place field by field: value-initialising a
            // record first would zero it with a slow string store.
            links[got] = ::new (record) ChildLink(&b, b.options_.timeout, i + got, &f, &b);
            b.adopt_locked(links[got]->ctx);
          }
          b.running_ += got;
          break;
        }
      }
      co_await BatchWait(b, b.mutex_, b.waiter_, b.running_, b.limit_, b.waiting_, false);
    }
    if (got == 0 && no_record) {
      fail_unstarted(b, f, i, no_record);
      ++i;
      continue;
    }
    if (got == 0) break;
    for (std::size_t k = 0; k < got; ++k, ++i) {
      if (b.stop_reason() != StopReason::none) {
        // An earlier child failed fast (or the deadline passed): the rest
        // are skipped below, like inputs that never got a slot.
        unreserve(links + k, got - k);
        stopped = true;
        break;
      }
      std::coroutine_handle<> h;
      try {
        h = f.make(i, *links[k]);
        driver.spawn(h, &links[k]->ctx);
      } catch (...) {
        // Making the child failed (the range threw, no memory for its
        // frame) or the driver could not start it (no memory for a fiber
        // stack): that input fails, and the batch goes on to join what it
        // has started instead of leaving those children running or its
        // slot taken.
        const std::exception_ptr error = std::current_exception();
        if (h) h.destroy();
        unreserve(links + k, 1);
        fail_unstarted(b, f, i, error);
      }
    }
  }

  if (i < b.total_) {
    b.stop_requested();  // make sure a deadline that stopped us is recorded
    const std::exception_ptr why = b.stop_exception();
    for (; i < b.total_; ++i) {
      f.skip(i, why);
      b.input_skipped(why);
    }
  }

  {
    std::lock_guard lock(b.mutex_);
    b.joining_ = true;
  }
  for (;;) {
    co_await BatchWait(b, b.mutex_, b.waiter_, b.running_, b.limit_, b.waiting_, true);
    b.stop_requested();  // a deadline that passed while joining stops the children
    std::lock_guard lock(b.mutex_);
    if (b.running_ == 0) break;
  }

  if (adopted && parent != nullptr) parent->release(b);
  if (parent != nullptr && parent->stop_requested())
    std::rethrow_exception(parent->stop_exception());
  if (b.mode_ == GatherMode::fail_fast && b.first_failure_)
    std::rethrow_exception(b.first_failure_);
}

void start_child_now(Batch& b, ChildFactory& f, std::size_t index) {
  ChildLink* link = nullptr;
  if (!b.stop_requested()) {
    std::lock_guard lock(b.mutex_);
    if (b.stop_reason() == StopReason::none) {
      link = ::new (b.take_link_locked()) ChildLink(&b, b.options_.timeout, index, &f, &b);
      b.adopt_locked(link->ctx);
      ++b.running_;
    }
  }
  if (link == nullptr) std::rethrow_exception(b.stop_exception());
  std::coroutine_handle<> h;
  try {
    h = f.make(index, *link);
    require_driver().spawn(h, &link->ctx);
  } catch (...) {
    if (h) h.destroy();
    std::lock_guard lock(b.mutex_);
    b.free_link_locked(*link);
    --b.running_;  // the owner is here, not parked in the join: nobody to wake
    throw;
  }
}

// The end of run_batch, for a batch fed by start_child_now.
Task<void> join_children(Batch& b, bool adopted) {
  {
    std::lock_guard lock(b.mutex_);
    b.joining_ = true;
  }
  for (;;) {
    co_await BatchWait(b, b.mutex_, b.waiter_, b.running_, b.limit_, b.waiting_, true);
    b.stop_requested();  // a deadline that passed while joining stops the children
    std::lock_guard lock(b.mutex_);
    if (b.running_ == 0) break;
  }
  Context* parent = b.parent();
  if (adopted && parent != nullptr) parent->release(b);
  if (parent != nullptr && parent->stop_requested())
    std::rethrow_exception(parent->stop_exception());
  if (b.mode_ == GatherMode::fail_fast && b.first_failure_)
    std::rethrow_exception(b.first_failure_);
}

}  // namespace concur::detail
