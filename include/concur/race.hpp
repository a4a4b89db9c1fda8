// SPDX-License-Identifier: BSL-1.0
// First-completed waits: race (hedged requests), first_completed
// (asyncio.wait(FIRST_COMPLETED)) and wait_for (asyncio.wait_for).
//
//   std::string fastest = co_await concur::race(replicas);          // first success wins
//   concur::Completed<std::string> first = co_await concur::first_completed(replicas);
//   int v = co_await concur::wait_for(concur::call(slow, 1), 500ms);  // or TimeoutError
//
// race and first_completed start every call of a range (as gather does, on the
// executor of the awaiting task); once one has won, the others are cancelled
// and joined before the wait returns: no task outlives it. Calls not started
// yet when the winner is known (with `limit`) never start. If the awaiting
// task is cancelled, everything stops and its Cancelled / TimeoutError /
// DeadlineExceeded is thrown.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
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
/// UsageError: race or first_completed over an empty range.
inline constexpr std::string_view kEmptyRace = "race and first_completed need at least one call";
}  // namespace messages

namespace detail {

// The child for input `i` of a range viewed by `view`, its promise pointing
// at `link` (as gather's RangeChildren::make; also the completion stream's).
template <class V, class T>
std::coroutine_handle<> make_range_child(V& view, std::size_t i, ChildLink& link) {
  using C = std::ranges::range_value_t<V>;
  auto&& c = std::ranges::begin(view)[static_cast<std::ranges::range_difference_t<V>>(i)];
  if constexpr (std::is_lvalue_reference_v<std::ranges::range_reference_t<V>>) {
    link.ctx.set_name(call_name(c));
    return adopt_child(c(), link);
  } else {
    C kept(std::move(c));
    link.kept_name = call_name(kept)();
    link.name_from_kept();
    return adopt_child(keep_call<C, T>(std::move(kept)), link);
  }
}

// The children of one race: the first to end (successfully, unless
// `any_outcome`) is kept and stops the batch; later outcomes are the
// cancelled losers and are dropped.
template <class V, class T>
class RaceChildren final : public ChildFactory {
 public:
  RaceChildren(V& view, bool any_outcome) : view_(view), any_outcome_(any_outcome) {}

  std::coroutine_handle<> make(std::size_t i, ChildLink& link) override {
    return make_range_child<V, T>(view_, i, link);
  }

  std::exception_ptr finish(ChildLink& link, void* promise) noexcept override {
    auto& p = *static_cast<TaskPromise<T>*>(promise);
    const std::exception_ptr error = p.exception();
    bool won = false;
    {
      std::lock_guard lock(mutex_);
      if (winner_.has_value()) return nullptr;
      if (!error || any_outcome_) {
        store_outcome(p, winner_);
        winner_index_ = link.index;
        won = true;
      } else if (!first_error_) {
        first_error_ = error;
      }
    }
    if (won) link.batch->cancel(StopReason::cancelled);  // the losers stop; the batch joins them
    return nullptr;
  }
  void skip(std::size_t, const std::exception_ptr&) override {}

  // Read after the batch has joined.
  Slot<T>& winner() noexcept { return winner_; }
  std::size_t winner_index() const noexcept { return winner_index_; }
  const std::exception_ptr& first_error() const noexcept { return first_error_; }

 private:
  V& view_;
  const bool any_outcome_;
  std::mutex mutex_;
  Slot<T> winner_;
  std::size_t winner_index_ = 0;
  std::exception_ptr first_error_;
};

template <class V>
Task<Completed<range_value_t<V>>> race_range(V view, GatherOptions options, bool any_outcome) {
  using T = range_value_t<V>;
  detail::vet_calls(view);
  const std::size_t n = std::ranges::size(view);
  if (n == 0) throw UsageError(std::string(messages::kEmptyRace));
  Batch batch(n, options, GatherMode::settled);
  RaceChildren<V, T> children(view, any_outcome);
  co_await run_batch(batch, children);
  if (!children.winner().has_value()) {
    // Nobody succeeded: the first failure; or (a deadline stopped every
    // input first) the batch's own stop.
    if (children.first_error()) std::rethrow_exception(children.first_error());
    std::rethrow_exception(batch.stop_exception());
  }
  co_return Completed<T>{children.winner_index(), std::move(*children.winner())};
}

template <class T>
Task<T> unwrap_race(Task<Completed<T>> race) {
  Completed<T> c = co_await std::move(race);
  if constexpr (std::is_void_v<T>) {
    c.result.value();
  } else {
    co_return std::move(c.result).value();
  }
}

}  // namespace detail

/// The value of the first call of `calls` to succeed; the others are
/// cancelled and joined before it returns. If every call fails, the first
/// failure is thrown. UsageError for an empty range. `options` as for
/// gather (limit, per-call timeout, deadline).
template <CallRange R>
Task<range_value_t<R>> race(R&& calls, GatherOptions options = {}) {
  return detail::unwrap_race(
      detail::race_range(std::views::all(std::forward<R>(calls)), std::move(options), false));
}

/// The first call of `calls` to end, whatever its outcome, with its index;
/// the others are cancelled and joined before it returns.
template <CallRange R>
Task<Completed<range_value_t<R>>> first_completed(R&& calls, GatherOptions options = {}) {
  return detail::race_range(std::views::all(std::forward<R>(calls)), std::move(options), true);
}

/// Runs `call` as a child of the awaiting task with a time limit: its value,
/// or TimeoutError once `timeout` has passed (the call is cancelled and has
/// stopped by then; a CPU-bound call stops at its next cancelled() poll).
/// The call's own failure is thrown unchanged.
template <TaskFactory C, class Rep, class Period>
Task<factory_value_t<C>> wait_for(C call, std::chrono::duration<Rep, Period> timeout) {
  auto [v] = co_await gather(
      GatherOptions{.timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)},
      std::move(call));
  if constexpr (!std::is_void_v<factory_value_t<C>>) co_return std::move(v);
}

/// wait_for on a task already made (it is moved into the child).
template <class T, class Rep, class Period>
Task<T> wait_for(Task<T> task, std::chrono::duration<Rep, Period> timeout) {
  auto held = std::make_shared<Task<T>>(std::move(task));
  return wait_for([held]() { return std::move(*held); }, timeout);
}

}  // namespace concur
