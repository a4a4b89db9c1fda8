// SPDX-License-Identifier: BSL-1.0
// The executor-independent engine under every gather.
//
// A Batch is the cancellation node of one gather: its children are the
// tasks it started. run_batch() starts children through a factory while
// honouring `limit`, stops starting them once the batch stops (a fail-fast
// failure, the deadline, or the parent's cancellation), then joins every
// child it started: no task outlives its gather. Everything typed (calls,
// result slots) stays in the templates of gather.hpp; this part is compiled
// once in lib/core/batch.cpp.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string_view>

#include "concur/detail/context.hpp"
#include "concur/detail/frame_alloc.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/options.hpp"
#include "concur/result.hpp"
#include "concur/task.hpp"

namespace concur::detail {

enum class GatherMode { fail_fast, settled };

class Batch;
class ChildFactory;

/// The batch's record of one running child: the child's context, its input,
/// and who stores its outcome. A gather child is the call's own Task, whose
/// promise points here (TaskPromise::child): no wrapper frame per child. The
/// records of a batch come from a pool as large as its `limit`.
struct ChildLink {
  ChildLink(Context* parent, std::chrono::nanoseconds budget, std::size_t input, ChildFactory* f,
            Batch* b) noexcept
      : ctx(parent, budget, StopReason::timeout), index(input), factory(f), batch(b) {}

  Context ctx;
  std::size_t index = 0;
  ChildFactory* factory = nullptr;
  Batch* batch = nullptr;
  ChildLink* next_free = nullptr;
  // The name of a call made on the fly, resolved when the child is made:
  // the call itself lives in the child's frame, which is gone before a
  // stall report or the end of a cancelled child may ask for it.
  std::string_view kept_name;

  /// Names the child after `kept_name`.
  void name_from_kept() noexcept {
    ctx.set_name(CallName{&kept_name,
                          [](const void* p) { return *static_cast<const std::string_view*>(p); }});
  }
};

class Batch : public Context {
 public:
  Batch(std::size_t total, const GatherOptions& options, GatherMode mode);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  std::size_t total() const noexcept { return total_; }
  const GatherOptions& options() const noexcept { return options_; }

  /// Serialises user callbacks (progress, as_completed) of this batch.
  std::mutex& callback_mutex() noexcept { return callback_mutex_; }

  /// A child's last act, after its frame is gone: records its outcome, and
  /// may let the batch finish, so nothing may touch the batch afterwards.
  void child_finished(ChildLink& child, const std::exception_ptr& error) noexcept;

  /// Records an input that never started (the batch stopped first).
  void input_skipped(const std::exception_ptr& error) noexcept;

 private:
  friend Task<void> run_batch(Batch& batch, class ChildFactory& factory);
  friend void fail_unstarted(Batch& b, class ChildFactory& f, std::size_t i,
                             const std::exception_ptr& error);
  friend void start_child_now(Batch& b, class ChildFactory& f, std::size_t index);
  friend Task<void> join_children(Batch& b, bool adopted);
  void report_progress_locked() noexcept;
  /// Storage for the record of a child about to start (free or never
  /// used); the caller holds mutex_ and constructs the record in it.
  void* take_link_locked();
  /// Unlinks a child's context and puts its record back; mutex_ is held.
  void free_link_locked(ChildLink& link) noexcept;
  /// One running child fewer; wakes the batch if that is what it waits for.
  void count_out_locked() noexcept;

  const std::size_t total_;
  const GatherOptions& options_;
  const GatherMode mode_;
  const bool counts_progress_;  // someone listens: keep progress_ up to date
  std::size_t limit_;
  std::size_t running_ = 0;  // guarded by mutex_
  bool waiting_ = false;     // guarded by mutex_: the batch coroutine is parked
  bool joining_ = false;     // guarded by mutex_: parked until running_ == 0
  Waiter waiter_;
  std::exception_ptr first_failure_;  // guarded by mutex_
  std::mutex callback_mutex_;
  Progress progress_;  // guarded by callback_mutex_
  // The child records, at most min(total, limit): made in growing chunks
  // on first use, reused through the free list. All guarded by mutex_.
  struct LinkChunk;
  LinkChunk* chunks_ = nullptr;
  ChildLink* fresh_ = nullptr;  // never-used records of the newest chunk
  ChildLink* fresh_end_ = nullptr;
  std::size_t links_made_ = 0;  // records in all chunks
  ChildLink* free_links_ = nullptr;
  // Cancels this batch when options.stop is requested (from any thread).
  // Last, so it is unregistered before anything it could touch goes.
  struct StopFromOutside {
    Batch* batch;
    void operator()() const noexcept { batch->cancel(StopReason::cancelled); }
  };
  std::optional<std::stop_callback<StopFromOutside>> stop_from_outside_;
};

/// Makes the children of one batch (typed, in gather.hpp).
class ChildFactory {
 public:
  /// The suspended task for input `index`, its promise pointing at `link`
  /// (whose context is made). Throws what making the task throws.
  virtual std::coroutine_handle<> make(std::size_t index, ChildLink& link) = 0;
  /// The child of `link` ended (`promise` is its TaskPromise): stores its
  /// outcome and returns its error, if any. The frame is still alive.
  virtual std::exception_ptr finish(ChildLink& link, void* promise) noexcept = 0;
  /// Input `index` will never run; store `error` as its outcome.
  virtual void skip(std::size_t index, const std::exception_ptr& error) = 0;

 protected:
  ~ChildFactory() = default;
};

/// Runs every input of `batch` and joins them. Throws the parent's stop
/// exception if the parent was cancelled, and in fail-fast mode the first
/// failure; in settled mode every outcome is in the slots instead.
Task<void> run_batch(Batch& batch, ChildFactory& factory);

// A batch fed while it runs (concur::TaskGroup) instead of from a known
// range: the same records, cancellation and join as run_batch, with the
// children started one by one by the task that owns the batch.

/// Makes input `index` with `f` (its own factory) and starts it through the
/// current driver at once; never waits (`limit` does not apply). Throws the
/// batch's stop exception if it has stopped (nothing starts), and what making
/// or starting the child throws (nothing is left running). Call it from the
/// task that will join the batch: thread_pool queues a child on the deque of
/// the task that spawns it, which only that task's join drains.
void start_child_now(Batch& b, ChildFactory& f, std::size_t index);

/// Joins every child of `b`, as run_batch does last, then releases `b` from
/// its parent if `adopted`. Not a cancellation point: it outlasts the
/// children. Throws the parent's stop exception if the parent stopped, else
/// the batch's first failure (fail-fast mode).
Task<void> join_children(Batch& b, bool adopted);

}  // namespace concur::detail
