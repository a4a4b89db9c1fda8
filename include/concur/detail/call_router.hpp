// SPDX-License-Identifier: BSL-1.0
// The one hook through which a call leaves the process (DESIGN §5).
//
// A driver whose calls run elsewhere (processes, cluster) answers
// Driver::call_router() with a CallRouter. concur::Call asks the current
// driver for one when it makes its task: with none (every in-process
// executor), the call runs here; with one, the task it makes hands the
// function's address and its arguments to the router, which finds the
// registration (CONCUR_REGISTER), encodes the arguments as the function's
// own parameter types, sends them, and decodes the reply into the result.
// The encoding lives in the registration, so this header needs no codec.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/detail/context.hpp"
#include "concur/detail/function_key.hpp"
#include "concur/errors.hpp"
#include "concur/task.hpp"

namespace concur::detail {

class CallRouter {
 public:
  virtual ~CallRouter() = default;
  /// Why a call of the function at `fn` (null: not a plain function, as
  /// `what` says) cannot leave the process, or empty if it can.
  virtual std::string problem(const void* fn, std::string_view what) const = 0;
  /// Runs the registered function at `fn` elsewhere on `args`, a
  /// std::tuple of its decayed parameter types; its value goes into `out`,
  /// a std::optional of its value type (null for void). Throws its error.
  virtual Task<void> invoke(const void* fn, const void* args, void* out) = 0;
};

/// The router of the driver running on this thread, or null.
CallRouter* current_router() noexcept;

template <class V>
Task<V> fail_task(std::exception_ptr error) {
  co_await std::suspend_never{};
  std::rethrow_exception(error);
}

template <class V, class R, class... P, class Tuple, std::size_t... I>
Task<V> route_function(CallRouter& router, R (*fn)(P...), const Tuple& args,
                       std::index_sequence<I...>) {
  // Converted here to the parameter types the registration encodes (a
  // string literal becomes the std::string parameter it stands for).
  const std::tuple<std::decay_t<P>...> params(std::get<I>(args)...);
  if constexpr (std::is_void_v<V>) {
    co_await router.invoke(function_address(fn), &params, nullptr);
  } else {
    std::optional<V> out;
    co_await router.invoke(function_address(fn), &params, &out);
    co_return std::move(*out);
  }
}

/// The task that runs call `fn(args...)` through `router`.
template <class V, class F, class... Args>
Task<V> route_call(CallRouter& router, const F& fn, const std::tuple<Args...>& args) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    if (fn == nullptr) {
      return fail_task<V>(
          std::make_exception_ptr(UsageError(router.problem(nullptr, "a null function pointer"))));
    }
    return route_function<V>(router, fn, args, std::index_sequence_for<Args...>{});
  } else {
    return fail_task<V>(std::make_exception_ptr(
        UsageError(router.problem(nullptr, "a lambda or function object"))));
  }
}

/// Before a gather starts any of `calls` (a range, or a tuple of calls):
/// with a router current, every call must be one it can send, or the whole
/// gather is a UsageError. Consecutive calls of one function are vetted once.
template <class C>
void vet_one(CallRouter& router, const C& c, const void*& last_ok) {
  if constexpr (requires { c.function(); }) {
    using F = std::decay_t<decltype(c.function())>;
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
      const void* key = c.function() != nullptr ? function_address(c.function()) : nullptr;
      if (key != nullptr && key == last_ok) return;
      std::string problem =
          router.problem(key, key == nullptr ? "a null function pointer" : std::string_view{});
      if (!problem.empty()) throw UsageError(problem);
      last_ok = key;
    } else {
      throw UsageError(router.problem(nullptr, "a lambda or function object"));
    }
  } else {
    throw UsageError(router.problem(nullptr, "not a concur::call"));
  }
}
template <class R>
void vet_calls(const R& calls) {
  CallRouter* router = current_router();
  if (router == nullptr) return;
  const void* last_ok = nullptr;
  for (const auto& c : calls) vet_one(*router, c, last_ok);
}
template <class... Cs>
void vet_calls(const std::tuple<Cs...>& calls) {
  CallRouter* router = current_router();
  if (router == nullptr) return;
  const void* last_ok = nullptr;
  std::apply([&](const Cs&... c) { (vet_one(*router, c, last_ok), ...); }, calls);
}

}  // namespace concur::detail
