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

#include "concur/detail/context.hpp"
#include "concur/detail/frame_alloc.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/options.hpp"
#include "concur/result.hpp"
#include "concur/task.hpp"

namespace concur::detail {

enum class GatherMode { fail_fast, settled };

/// The coroutine type of one child of a batch: it owns its Context and
/// destroys itself when it ends (the batch learns of that first).
struct ChildPromise;
using ChildHandle = std::coroutine_handle<ChildPromise>;
struct ChildTask {
  using promise_type = ChildPromise;
  ChildHandle handle;
};
struct ChildPromise : FrameAllocated {
  CallName name;               // set by the factory
  std::optional<Context> ctx;  // made by run_batch once the child has a slot
  ChildTask get_return_object() noexcept { return {ChildHandle::from_promise(*this)}; }
  // Resumed first on the thread that runs the child: the trace's task start.
  struct Start : std::suspend_always {
    void await_resume() const noexcept {
      if (::concur::trace::detail::enabled()) ::concur::trace::detail::task_begin();
    }
  };
  Start initial_suspend() noexcept { return {}; }
  std::suspend_never final_suspend() noexcept { return {}; }
  void return_void() noexcept {}
  // The child body catches everything itself; reaching here is a bug.
  void unhandled_exception() noexcept { std::terminate(); }
};

class Batch : public Context {
 public:
  Batch(std::size_t total, const GatherOptions& options, GatherMode mode);

  std::size_t total() const noexcept { return total_; }
  const GatherOptions& options() const noexcept { return options_; }

  /// Serialises user callbacks (progress, as_completed) of this batch.
  std::mutex& callback_mutex() noexcept { return callback_mutex_; }

  /// A child's last act: records its outcome and may let the batch finish,
  /// so the child must not touch the batch (or its call) afterwards.
  void child_finished(Context& child, const std::exception_ptr& error) noexcept;

  /// Records an input that never started (the batch stopped first).
  void input_skipped(const std::exception_ptr& error) noexcept;

 private:
  friend Task<void> run_batch(Batch& batch, class ChildFactory& factory);
  friend void fail_unstarted(Batch& b, class ChildFactory& f, std::size_t i,
                             const std::exception_ptr& error);
  void report_progress_locked() noexcept;
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
};

/// Makes the child coroutines of one batch (typed, in gather.hpp).
class ChildFactory {
 public:
  /// A suspended child for input `index`, its promise's name set.
  virtual ChildHandle make(std::size_t index) = 0;
  /// Input `index` will never run; store `error` as its outcome.
  virtual void skip(std::size_t index, const std::exception_ptr& error) = 0;

 protected:
  ~ChildFactory() = default;
};

/// Runs every input of `batch` and joins them. Throws the parent's stop
/// exception if the parent was cancelled, and in fail-fast mode the first
/// failure; in settled mode every outcome is in the slots instead.
Task<void> run_batch(Batch& batch, ChildFactory& factory);

}  // namespace concur::detail
