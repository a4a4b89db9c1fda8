// SPDX-License-Identifier: BSL-1.0
// concur::call(fn, args...): one unit of work for a gather.
//
// A Call stores a function and its arguments and, when invoked, produces a
// concur::Task. `fn` may be a coroutine function returning Task<T> or a plain
// callable returning T (it then runs synchronously inside its task). Calls of
// registered functions carry the registered name.
#pragma once

#include <concepts>
#include <functional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/detail/call_router.hpp"
#include "concur/detail/function_key.hpp"
#include "concur/task.hpp"

namespace concur {

namespace detail {
template <class R>
struct unwrap_task {
  using type = R;
};
template <class T>
struct unwrap_task<Task<T>> {
  using type = T;
};
}  // namespace detail

/// A function and copies of its arguments: one input of a gather. Make one
/// with concur::call(). Copyable when F and Args are.
///
/// Thread-safety: operator() only reads the call, so one Call may be invoked
/// from several threads at once when F and Args are safe to read
/// concurrently. A coroutine `fn` taking its parameters by reference sees
/// the Call's copies: the Call must then outlive the task (a range gather
/// keeps its range alive; the blocking Executor functions do so for you).
template <class F, class... Args>
class Call {
 public:
  /// What `fn(args...)` returns: a Task<T>, or a plain T.
  using raw_result = std::invoke_result_t<const F&, const Args&...>;
  /// The task's value type: T of Task<T>, else raw_result.
  using value_type = typename detail::unwrap_task<raw_result>::type;

  /// Stores `fn` and `args`; throws only what moving them throws.
  Call(F fn, Args... args) : fn_(std::move(fn)), args_(std::move(args)...) {}

  /// Starts nothing: returns the lazy task that runs the call. Whatever the
  /// function throws while running becomes the task's failure; a coroutine
  /// `fn` that throws while copying its parameters throws here.
  Task<value_type> operator()() const {
    // A driver whose calls leave the process (processes, cluster) sends it.
    if (detail::CallRouter* router = detail::current_router()) {
      return detail::route_call<value_type>(*router, fn_, args_);
    }
    if constexpr (is_task_v<raw_result>) {
      return std::apply(fn_, args_);
    } else {
      return run_plain(this);
    }
  }

  /// A name for reports; must outlive the call (a string literal is ideal).
  Call& named(std::string_view name) & {
    name_ = name;
    return *this;
  }
  Call&& named(std::string_view name) && {
    name_ = name;
    return std::move(*this);
  }

  /// The explicit name, else the registered name of a function, else "task".
  std::string_view name() const {
    if (!name_.empty()) return name_;
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
      std::string_view n = detail::registered_name(detail::function_address(fn_));
      if (!n.empty()) return n;
    }
    return "task";
  }

  /// The stored function (e.g. to serialise a registered call).
  const F& function() const noexcept { return fn_; }
  /// The stored arguments, in order.
  const std::tuple<Args...>& arguments() const noexcept { return args_; }

 private:
  static Task<value_type> run_plain(const Call* self) {
    if constexpr (std::is_void_v<value_type>) {
      std::apply(self->fn_, self->args_);
      co_return;
    } else {
      co_return std::apply(self->fn_, self->args_);
    }
  }

  F fn_;
  std::tuple<Args...> args_;
  std::string_view name_;
};

/// Bundles `fn` with copies of `args` (decayed: pass std::string, not a
/// reference you expect to be shared). Functions decay to pointers, so a
/// registered function's call knows its name. Does not run `fn`; throws only
/// what copying `fn` and `args` throws. `fn(args...)` must be well-formed for
/// const lvalue arguments (a compile-time check).
template <class F, class... Args>
requires std::invocable < const std::decay_t<F>
&, const std::decay_t<Args>&... > auto call(F&& fn, Args&&... args) {
  return Call<std::decay_t<F>, std::decay_t<Args>...>(std::forward<F>(fn),
                                                      std::forward<Args>(args)...);
}

/// Anything that, invoked with no arguments, returns a concur::Task. A
/// gather invokes it when it makes that input's child, on the gathering
/// task's thread, so the work belongs in the task it returns (as with
/// concur::call, whose factory only makes the coroutine frame).
template <class C>
concept TaskFactory = std::invocable<const C&> && is_task_v<std::invoke_result_t<const C&>>;

/// The value type a task factory's task produces.
template <TaskFactory C>
using factory_value_t = typename std::invoke_result_t<const C&>::value_type;

}  // namespace concur
