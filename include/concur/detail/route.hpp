// SPDX-License-Identifier: BSL-1.0
// Routing calls out of the process (the processes executor, DESIGN §5).
//
// While a processes executor runs a batch, the thread running the parent's
// tasks has routing active: invoking a concur::call then does not run the
// function here but sends its registered name and encoded arguments to a
// worker process, and the task waits (parked on the parent's driver) for the
// encoded reply. Only calls of registered functions whose parameter and
// result types have a codec can be routed; anything else is a UsageError,
// found by check_routable() for a whole gather before any of it starts.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "concur/codec.hpp"
#include "concur/detail/context.hpp"
#include "concur/errors.hpp"
#include "concur/registry.hpp"
#include "concur/task.hpp"

namespace concur::detail {

/// The driver of the processes executor running on this thread, if any.
extern constinit thread_local Driver* tl_router_driver;

/// True on a thread where a processes executor is running the parent's tasks.
/// Inline: every gather child's call asks.
inline bool routing_active() noexcept {
  return tl_router_driver != nullptr && current_driver() == tl_router_driver;
}

/// One routed call: its request frame (built here) and its reply.
struct RemoteRequest {
  std::string_view name;
  std::string frame;  // protocol header + encoded arguments
  std::string reply;  // encoded result, once it succeeded
};
/// Starts the request frame of a call of `name` with signature `signature`.
void begin_call_frame(RemoteRequest& req, std::string_view name, std::uint64_t signature);
/// Sends `req` to a worker and waits for its reply; throws the call's error.
Task<void> remote_invoke(RemoteRequest& req);

/// Why a call with function `fn` cannot be routed, or empty if it can.
std::string routing_problem(const RegisteredFunction* f, std::string_view what);

template <class F>
std::string routing_problem_of(const F& fn) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    if (fn == nullptr) return "concur processes executor: a call holds a null function pointer";
    return routing_problem(find_function(function_address(fn)), "");
  } else {
    return routing_problem(nullptr, "a lambda or function object");
  }
}

/// Throws UsageError if any call of `calls` (a range or a single call) cannot
/// be routed. Consecutive calls of one function are checked once.
template <class C>
void check_one_routable(const C& c, const void*& last_ok) {
  if constexpr (requires { c.function(); }) {
    using F = std::decay_t<decltype(c.function())>;
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
      const void* key = function_address(c.function());
      if (key != nullptr && key == last_ok) return;
      std::string problem = routing_problem_of(c.function());
      if (!problem.empty()) throw UsageError(problem);
      last_ok = key;
    } else {
      throw UsageError(routing_problem_of(c.function()));
    }
  } else {
    throw UsageError(routing_problem(nullptr, "not a concur::call"));
  }
}
template <class R>
void check_routable(const R& calls) {
  if (!routing_active()) return;
  const void* last_ok = nullptr;
  for (const auto& c : calls) check_one_routable(c, last_ok);
}
template <class... Cs>
void check_routable(const std::tuple<Cs...>& calls) {
  if (!routing_active()) return;
  const void* last_ok = nullptr;
  std::apply([&](const Cs&... c) { (check_one_routable(c, last_ok), ...); }, calls);
}

template <class V>
Task<V> fail_task(std::exception_ptr error) {
  co_await std::suspend_never{};
  std::rethrow_exception(error);
}

// Encodes argument `a` as parameter type P (converting only when the types
// differ, e.g. a string literal for a std::string parameter).
template <class P, class A>
void encode_as(Writer& w, const A& a) {
  if constexpr (std::is_same_v<P, A>) {
    Codec<P>::encode(w, a);
  } else {
    Codec<P>::encode(w, P(a));
  }
}

template <class V, class R, class... P, class Tuple, std::size_t... I>
Task<V> route_function(R (*fn)(P...), const Tuple& args, std::index_sequence<I...>) {
  using Traits = function_traits<R (*)(P...)>;
  if constexpr (!Traits::encodable) {
    throw UsageError(routing_problem(find_function(function_address(fn)), ""));
  } else {
    const RegisteredFunction* f = find_function(function_address(fn));
    if (std::string problem = routing_problem(f, ""); !problem.empty()) throw UsageError(problem);
    RemoteRequest req;
    begin_call_frame(req, f->name, signature_of<R (*)(P...)>());
    Writer w(req.frame);
    // Encode as the function's own parameter types, which the worker decodes.
    (encode_as<std::decay_t<P>>(w, std::get<I>(args)), ...);
    co_await remote_invoke(req);
    if constexpr (!std::is_void_v<V>) {
      Reader r(req.reply);
      co_return Codec<V>::decode(r);
    }
  }
}

/// The task that runs call `fn(args...)` in a worker process.
template <class V, class F, class... Args>
Task<V> route_call(const F& fn, const std::tuple<Args...>& args) {
  if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
    return route_function<V>(fn, args, std::index_sequence_for<Args...>{});
  } else {
    return fail_task<V>(std::make_exception_ptr(UsageError(routing_problem_of(fn))));
  }
}

}  // namespace concur::detail
