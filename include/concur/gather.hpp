// SPDX-License-Identifier: BSL-1.0
// concur::gather and friends, awaited inside a task (asyncio.gather).
//
// ```cpp
// #include <cstddef>
// #include <vector>
//
// concur::Task<int> square(int x) { co_return x * x; }
//
// concur::Task<int> total() {
//   auto [a, b] = co_await concur::gather(concur::call(square, 1), concur::call(square, 2));
//   std::vector<decltype(concur::call(square, 0))> calls;
//   for (int i = 0; i < 10; ++i) calls.push_back(concur::call(square, i));
//   std::vector<int> v = co_await concur::gather(calls, {.limit = 8});  // input order
//   auto rs = co_await concur::gather_settled(calls);                  // one Result per input
//   int sum = 0;
//   co_await concur::as_completed(calls, [&](std::size_t, concur::Result<int>&& r) {
//     if (r.ok()) sum += r.value();  // completion order
//   });
//   co_return a + b + v.back() + static_cast<int>(rs.size()) + sum;
// }
// ```
//
// Children run on the executor running the awaiting task. Results come back in
// input order. gather() is fail-fast: the first failure cancels the siblings,
// waits for them to stop, then is thrown. gather_settled() never throws for a
// child's failure (only if the awaiting task itself is cancelled).
//
// Every function here returns a lazy Task: co_await it from a task run by an
// executor (awaiting it elsewhere throws concur::UsageError at the first
// library wait). Calls are taken by value (a range is viewed: an lvalue range
// must outlive the awaited task). `options` behave as documented in
// concur/options.hpp; unlike Executor's blocking functions, nothing here
// fills them from Config.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <ranges>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "concur/call.hpp"
#include "concur/detail/batch.hpp"
#include "concur/errors.hpp"
#include "concur/options.hpp"
#include "concur/result.hpp"
#include "concur/task.hpp"

// The message of the static_assert that an empty variadic gather() meets:
// without it the error surfaces deep inside std::tuple ("tuple index must be
// in range"). A macro because static_assert takes only a string literal.
#define CONCUR_DETAIL_NO_CALLS(fn)                                         \
  "concur::" fn                                                            \
  "() needs at least one call: pass concur::call(fn, args...) arguments, " \
  "or a range of calls (a range may be empty)"

namespace concur {

/// Stands for the value of a void task inside a tuple.
using Unit = std::monostate;

/// A random-access, sized range of task factories (e.g. std::vector<Call<...>>).
template <class R>
concept CallRange = std::ranges::random_access_range<R> && std::ranges::sized_range<R> &&
    TaskFactory<std::ranges::range_value_t<R>>;

/// The value type of the tasks a CallRange's calls produce.
template <CallRange R>
using range_value_t = factory_value_t<std::ranges::range_value_t<R>>;

/// An outcome delivered in completion order, with its input's index.
template <class T>
struct Completed {
  std::size_t index;  ///< position of the input in the range
  Result<T> result;   ///< its outcome
};

namespace detail {

template <class T>
using Slot = std::optional<Result<T>>;
template <class T>
using Slots = std::vector<Slot<T>, FrameAllocator<Slot<T>>>;
template <class T>
using CompletionHook = std::function<void(std::size_t, Result<T>&&)>;
template <class T>
using unit_if_void_t = std::conditional_t<std::is_void_v<T>, Unit, T>;

template <class T>
unit_if_void_t<T> unwrap_value(Result<T>&& r) {
  if constexpr (std::is_void_v<T>) {
    r.value();
    return Unit{};
  } else {
    return std::move(r).value();
  }
}

template <class C>
CallName call_name(const C& c) {
  if constexpr (requires { std::string_view(c.name()); }) {
    return CallName{
        &c, [](const void* p) { return std::string_view(static_cast<const C*>(p)->name()); }};
  } else {
    return CallName{};
  }
}

// Hands `task` to the batch as the child recorded in `link`.
template <class T>
std::coroutine_handle<> adopt_child(Task<T> task, ChildLink& link) {
  if (!task.valid()) throw UsageError("concur: a call given to gather returned an empty Task");
  auto h = task.release();
  h.promise().child = &link;
  return h;
}

// The child of a range that yields its calls by value (e.g. a transform
// view): this frame keeps the call, whose task may refer to it.
template <class C, class T>
Task<T> keep_call(C call) {
  if constexpr (std::is_void_v<T>) {
    co_await call();
  } else {
    co_return co_await call();
  }
}

// Stores a finished child's outcome in its slot; returns its error, if any.
template <class T>
std::exception_ptr store_outcome(TaskPromise<T>& p, Slot<T>& slot) noexcept {
  std::exception_ptr error = p.exception();
  if (!error) {
    try {
      if constexpr (std::is_void_v<T>) {
        slot.emplace();
      } else {
        slot.emplace(p.value());
      }
      return nullptr;
    } catch (...) {
      error = std::current_exception();  // moving the value threw
    }
  }
  slot.emplace(ErrorInfo::from_exception(error));
  return error;
}

template <class V, class T>
class RangeChildren final : public ChildFactory {
 public:
  RangeChildren(V& view, Slots<T>& slots, Batch& batch, CompletionHook<T>* hook)
      : view_(view), slots_(slots), batch_(batch), hook_(hook) {}
  std::coroutine_handle<> make(std::size_t i, ChildLink& link) override {
    using C = std::ranges::range_value_t<V>;
    if constexpr (std::is_lvalue_reference_v<std::ranges::range_reference_t<V>>) {
      const C& c = at(i);
      link.ctx.set_name(call_name(c));
      return adopt_child(c(), link);
    } else {
      C c(at(i));
      link.kept_name = call_name(c)();
      link.name_from_kept();
      return adopt_child(keep_call<C, T>(std::move(c)), link);
    }
  }
  std::exception_ptr finish(ChildLink& link, void* promise) noexcept override {
    Slot<T>& slot = slots_[link.index];
    std::exception_ptr error = store_outcome(*static_cast<TaskPromise<T>*>(promise), slot);
    if (hook_ != nullptr) {
      std::lock_guard lock(batch_.callback_mutex());
      (*hook_)(link.index, std::move(*slot));
    }
    return error;
  }
  void skip(std::size_t i, const std::exception_ptr& error) override {
    slots_[i].emplace(ErrorInfo::from_exception(error));
    if (hook_ != nullptr) {
      std::lock_guard lock(batch_.callback_mutex());
      (*hook_)(i, std::move(*slots_[i]));
    }
  }

 private:
  decltype(auto) at(std::size_t i) {
    return std::ranges::begin(view_)[static_cast<std::ranges::range_difference_t<V>>(i)];
  }
  V& view_;
  Slots<T>& slots_;
  Batch& batch_;
  CompletionHook<T>* hook_;
};

template <class... Cs>
class TupleChildren final : public ChildFactory {
 public:
  using Slots = std::tuple<Slot<factory_value_t<Cs>>...>;
  TupleChildren(std::tuple<Cs...>& calls, Slots& slots) : calls_(calls), slots_(slots) {}

  std::coroutine_handle<> make(std::size_t i, ChildLink& link) override {
    return dispatch(i, [&]<std::size_t I>() {
      const auto& c = std::get<I>(calls_);
      link.ctx.set_name(call_name(c));
      return adopt_child(c(), link);
    });
  }
  std::exception_ptr finish(ChildLink& link, void* promise) noexcept override {
    return dispatch(link.index, [&]<std::size_t I>() {
      using T = factory_value_t<std::tuple_element_t<I, std::tuple<Cs...>>>;
      return store_outcome(*static_cast<TaskPromise<T>*>(promise), std::get<I>(slots_));
    });
  }
  void skip(std::size_t i, const std::exception_ptr& error) override {
    dispatch(i, [&]<std::size_t I>() {
      std::get<I>(slots_).emplace(ErrorInfo::from_exception(error));
      return 0;
    });
  }

 private:
  template <class F>
  static auto dispatch(std::size_t i, F&& f) {
    using R = decltype(f.template operator()<0>());
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      R out{};
      ((i == I ? (void)(out = f.template operator()<I>()) : void()), ...);
      return out;
    }
    (std::index_sequence_for<Cs...>{});
  }
  std::tuple<Cs...>& calls_;
  Slots& slots_;
};

template <GatherMode Mode, class V>
auto gather_range(V view, GatherOptions options, CompletionHook<range_value_t<V>>* hook)
    -> Task<std::conditional_t<Mode == GatherMode::settled, std::vector<Result<range_value_t<V>>>,
                               std::conditional_t<std::is_void_v<range_value_t<V>>, void,
                                                  std::vector<unit_if_void_t<range_value_t<V>>>>>> {
  using T = range_value_t<V>;
  detail::vet_calls(view);  // a driver that sends calls elsewhere vets them all first
  const std::size_t n = std::ranges::size(view);
  Slots<T> slots(n);
  Batch batch(n, options, Mode);
  RangeChildren<V, T> children(view, slots, batch, hook);
  co_await run_batch(batch, children);
  if constexpr (Mode == GatherMode::settled) {
    std::vector<Result<T>> out;
    out.reserve(n);
    for (auto& s : slots) out.push_back(std::move(*s));
    co_return out;
  } else if constexpr (!std::is_void_v<T>) {
    std::vector<T> out;
    out.reserve(n);
    for (auto& s : slots) out.push_back(std::move(*s).value());
    co_return out;
  }
}

template <GatherMode Mode, class... Cs>
auto gather_tuple(GatherOptions options, Cs... calls) -> Task<
    std::conditional_t<Mode == GatherMode::settled, std::tuple<Result<factory_value_t<Cs>>...>,
                       std::tuple<unit_if_void_t<factory_value_t<Cs>>...>>> {
  std::tuple<Cs...> call_tuple(std::move(calls)...);
  detail::vet_calls(call_tuple);  // a driver that sends calls elsewhere vets them all first
  typename TupleChildren<Cs...>::Slots slots;
  Batch batch(sizeof...(Cs), options, Mode);
  TupleChildren<Cs...> children(call_tuple, slots);
  co_await run_batch(batch, children);
  co_return std::apply(
      [](auto&... s) {
        if constexpr (Mode == GatherMode::settled) {
          return std::make_tuple(std::move(*s)...);
        } else {
          return std::make_tuple(unwrap_value(std::move(*s))...);
        }
      },
      slots);
}

template <class V>
Task<void> as_completed_range(V view, CompletionHook<range_value_t<V>> hook,
                              GatherOptions options) {
  co_await gather_range<GatherMode::settled>(std::move(view), std::move(options), &hook);
}

}  // namespace detail

/// Runs every call concurrently; a tuple of their values in argument order
/// (Unit for a void task). Fail-fast: the first failure cancels the siblings,
/// waits until they have stopped, then is rethrown unchanged; if the awaiting
/// task is cancelled, the children stop and its Cancelled/TimeoutError/
/// DeadlineExceeded is thrown instead.
template <TaskFactory... Cs>
auto gather(Cs... calls) {
  static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("gather"));
  if constexpr (sizeof...(Cs) > 0) {
    return detail::gather_tuple<detail::GatherMode::fail_fast>(GatherOptions{},
                                                               std::move(calls)...);
  }
}
template <TaskFactory... Cs>
auto gather(GatherOptions options, Cs... calls) {
  static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("gather"));
  if constexpr (sizeof...(Cs) > 0) {
    return detail::gather_tuple<detail::GatherMode::fail_fast>(std::move(options),
                                                               std::move(calls)...);
  }
}

/// Like gather, but every call's outcome comes back as a Result, in argument
/// order; a child's failure never throws. Throws only when the awaiting task
/// itself is cancelled (Cancelled, TimeoutError or DeadlineExceeded).
template <TaskFactory... Cs>
auto gather_settled(Cs... calls) {
  static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("gather_settled"));
  if constexpr (sizeof...(Cs) > 0) {
    return detail::gather_tuple<detail::GatherMode::settled>(GatherOptions{}, std::move(calls)...);
  }
}
template <TaskFactory... Cs>
auto gather_settled(GatherOptions options, Cs... calls) {
  static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("gather_settled"));
  if constexpr (sizeof...(Cs) > 0) {
    return detail::gather_tuple<detail::GatherMode::settled>(std::move(options),
                                                             std::move(calls)...);
  }
}

/// Runs a range of calls; a vector of values in input order (void: nothing).
/// Fail-fast with the same errors as gather(calls...).
/// An lvalue range must outlive the awaited task; an rvalue range is moved in.
template <CallRange R>
auto gather(R&& calls, GatherOptions options = {}) {
  return detail::gather_range<detail::GatherMode::fail_fast>(
      std::views::all(std::forward<R>(calls)), std::move(options), nullptr);
}

/// Runs a range of calls; one Result per input, in input order. Throws only
/// when the awaiting task itself is cancelled.
template <CallRange R>
auto gather_settled(R&& calls, GatherOptions options = {}) {
  return detail::gather_range<detail::GatherMode::settled>(std::views::all(std::forward<R>(calls)),
                                                           std::move(options), nullptr);
}

/// Runs a range of calls and hands each outcome to `on_result(index, Result&&)`
/// as soon as it is known (completion order), serially (never concurrently
/// with itself) but on whichever thread finished the input. Never throws for a
/// child's failure; on_result must not throw (that ends the program).
template <CallRange R, class F>
requires std::invocable<F&, std::size_t, Result<range_value_t<R>> &&> Task<void> as_completed(
    R&& calls, F on_result, GatherOptions options = {}) {
  return detail::as_completed_range(std::views::all(std::forward<R>(calls)),
                                    detail::CompletionHook<range_value_t<R>>(std::move(on_result)),
                                    std::move(options));
}

}  // namespace concur
