// SPDX-License-Identifier: BSL-1.0
// concur::task_group: start tasks as they become known and join them all
// (asyncio.TaskGroup, Trio's nursery, folly::coro::AsyncScope).
//
//   co_await concur::task_group([&](concur::TaskGroup& group) -> concur::Task<void> {
//     for (auto& url : urls) group.spawn(concur::call(fetch, url));   // starts now
//     auto first = group.spawn(concur::call(fetch, extra));
//     co_await concur::sleep_for(1s);                                // they run meanwhile
//   });                                 // here every spawned task has ended
//
// The body runs in the awaiting task; each spawn() starts its call at once on
// the same executor (on `sequential`, to its end before spawn returns). When
// the body returns, task_group waits for every spawned task. Fail-fast like
// gather: the first failure (of a spawned task or of the body) cancels the
// body and every other task, waits until they have stopped, then is thrown;
// no task outlives its group. If the awaiting task is cancelled, everything
// in the group stops and its Cancelled / TimeoutError / DeadlineExceeded is
// thrown instead. Spawned tasks are children of the group: a gather inside
// them, or a group inside a gather child, nests as gathers do.
//
// Options: `timeout` applies to each spawned task (from its spawn),
// `deadline` to the whole group, body included; `limit` and `on_progress`
// are not supported (spawn never waits) and are rejected with UsageError.
//
// spawn() gives a Spawned<T> handle; read its result() once the group has
// returned, as with asyncio's task.result() after the `async with` block.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/call.hpp"
#include "concur/detail/batch.hpp"
#include "concur/errors.hpp"
#include "concur/gather.hpp"
#include "concur/options.hpp"
#include "concur/result.hpp"
#include "concur/task.hpp"

namespace concur {

namespace messages {
/// UsageError: TaskGroup::spawn() called from another task than the group's body.
inline constexpr std::string_view kSpawnFromOtherTask =
    "TaskGroup::spawn must be called by the group's own body, not by another task "
    "(open a task_group inside that task instead)";
/// UsageError: Spawned::result() read before the task ended.
inline constexpr std::string_view kSpawnedNotDone =
    "the result of a spawned task was read before the task ended (read it after its "
    "task_group returns)";
/// UsageError: task_group given options it cannot honour.
inline constexpr std::string_view kGroupOptions =
    "task_group takes only the timeout and deadline options (spawn never waits for a limit)";
}  // namespace messages

namespace detail {

// One spawned call: keeps the call (its task may refer to it) and its outcome
// for as long as the group lives.
class SpawnedBase : public ChildFactory {
 public:
  virtual ~SpawnedBase() = default;
  void skip(std::size_t, const std::exception_ptr&) override {}  // never: started at once
};

template <class C, class T>
class SpawnedChild final : public SpawnedBase {
 public:
  explicit SpawnedChild(C call) : call_(std::move(call)), slot_(std::make_shared<Slot<T>>()) {}
  std::coroutine_handle<> make(std::size_t, ChildLink& link) override {
    link.ctx.set_name(call_name(call_));
    return adopt_child(call_(), link);
  }
  std::exception_ptr finish(ChildLink&, void* promise) noexcept override {
    return store_outcome(*static_cast<TaskPromise<T>*>(promise), *slot_);
  }
  const std::shared_ptr<Slot<T>>& slot() const noexcept { return slot_; }

 private:
  C call_;
  std::shared_ptr<Slot<T>> slot_;  // shared with the Spawned handle, which may outlive the group
};

}  // namespace detail

class TaskGroup;
namespace detail {
template <class T, class F>
Task<T> run_task_group(F body, GatherOptions options);
}  // namespace detail

/// A handle to one spawned task's outcome; copyable, and valid after the
/// group has returned.
template <class T>
class Spawned {
 public:
  /// The task's outcome (a value, or its error: Cancelled if the group
  /// stopped it). Read it after task_group has returned (or thrown): the
  /// group's join orders it after the task's end. Read earlier, it throws
  /// UsageError if the outcome is not stored yet.
  const Result<T>& result() const {
    if (!slot_->has_value()) throw UsageError(std::string(messages::kSpawnedNotDone));
    return **slot_;
  }

 private:
  friend class TaskGroup;
  explicit Spawned(std::shared_ptr<const detail::Slot<T>> s) noexcept : slot_(std::move(s)) {}
  std::shared_ptr<const detail::Slot<T>> slot_;
};

/// What a task_group body spawns into. Made by task_group(); not copyable.
class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Starts `call` now, as a child of the group. Call it only from the body
  /// (UsageError otherwise). Throws the group's stop exception (e.g.
  /// Cancelled after a failure) instead of starting anything once the group
  /// has stopped, and what making the task throws.
  template <TaskFactory C>
  Spawned<factory_value_t<C>> spawn(C call) {
    using T = factory_value_t<C>;
    if (detail::current_context() != &batch_) {
      throw UsageError(std::string(messages::kSpawnFromOtherTask));
    }
    auto child = std::make_unique<detail::SpawnedChild<C, T>>(std::move(call));
    auto* raw = child.get();
    children_.push_back(std::move(child));
    try {
      detail::start_child_now(batch_, *raw, children_.size() - 1);
    } catch (...) {
      children_.pop_back();
      throw;
    }
    return Spawned<T>(raw->slot());
  }

  /// Spawned so far (a count of spawn() calls that started a task).
  std::size_t size() const noexcept { return children_.size(); }

 private:
  template <class T, class F>
  friend Task<T> detail::run_task_group(F body, GatherOptions options);

  explicit TaskGroup(const GatherOptions& options)
      : batch_(static_cast<std::size_t>(-1), options, detail::GatherMode::fail_fast) {}

  detail::Batch batch_;
  std::deque<std::unique_ptr<detail::SpawnedBase>> children_;
};

namespace detail {
void check_group_options(const GatherOptions& options);

template <class T, class F>
Task<T> run_task_group(F body, GatherOptions options) {
  check_group_options(options);
  TaskGroup group(options);
  Batch& b = group.batch_;
  Context* owner = current_context();
  const bool adopted = owner == nullptr || owner->adopt(b);
  if (!adopted) b.cancel(owner->stop_reason());
  std::optional<unit_if_void_t<T>> value;
  std::exception_ptr body_error;
  if (adopted) {
    // The body runs as the group's node: a failure in the group, or the
    // owner's cancellation, reaches its waits (each wait records the
    // current context and the driver restores it on resume).
    set_current_context(&b);
    try {
      if constexpr (std::is_void_v<T>) {
        co_await body(group);
        value.emplace();
      } else {
        value.emplace(co_await body(group));
      }
    } catch (...) {
      body_error = std::current_exception();
    }
    set_current_context(owner);
    if (body_error) {
      // As for a failed child: the rest stop, and the first failure
      // recorded (this one, unless a child's came first) is thrown.
      b.input_skipped(body_error);
      b.cancel(StopReason::cancelled);
    }
  }
  co_await join_children(b, adopted && owner != nullptr);  // throws the first failure
  if (body_error) std::rethrow_exception(body_error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*value);
}
}  // namespace detail

/// Runs `body(group)` (a callable taking TaskGroup& and returning a Task),
/// then joins every task it spawned; gives the body's value. Awaited from a
/// task run by an executor. See the top of this header for the semantics.
template <class F>
auto task_group(F body, GatherOptions options = {}) {
  using BodyTask = std::invoke_result_t<F&, TaskGroup&>;
  static_assert(is_task_v<BodyTask>, "a task_group body must return a concur::Task");
  return detail::run_task_group<typename BodyTask::value_type>(std::move(body), std::move(options));
}

}  // namespace concur
