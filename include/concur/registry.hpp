// SPDX-License-Identifier: BSL-1.0
// Names for task functions: CONCUR_REGISTER(fn).
//
// A registered function is known by its name: stall reports and error
// messages say "say_after" instead of "task", and the processes executor can
// run it in a worker process: the parent sends the name and the encoded
// arguments (concur/codec.hpp), the worker looks the name up here, decodes
// the arguments, runs the task and sends back the encoded result or error.
//
// Exceptions cross the boundary as their type name and message. A type
// registered with CONCUR_REGISTER_ERROR(Type) (constructible from a
// std::string) is rethrown in the parent as that very type; the standard
// exception types and concur's own are registered already; any other type
// arrives as concur::RemoteError carrying the original type name.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "concur/codec.hpp"
#include "concur/detail/function_key.hpp"
#include "concur/errors.hpp"
#include "concur/process_local.hpp"
#include "concur/task.hpp"

namespace concur {

/// A failure raised in a worker process whose exception type the parent
/// cannot rebuild (not registered with CONCUR_REGISTER_ERROR).
class RemoteError : public Error {
 public:
  RemoteError(std::string type, const std::string& message)
      : Error(message), type_(std::move(type)) {}
  /// The demangled type name of the exception raised in the worker.
  const std::string& remote_type() const noexcept { return type_; }

 private:
  std::string type_;
};

namespace detail {

/// Runs a registered function in a worker: decodes its arguments from
/// `args`, runs it, encodes its result into `result`.
using Invoker = Task<void> (*)(Reader& args, Writer& result);

/// In the parent: encodes a call's arguments, `params` pointing to a
/// std::tuple of the function's decayed parameter types.
using ArgsEncoder = void (*)(const void* params, Writer& out);
/// In the parent: decodes a reply into `out`, a std::optional of the
/// function's value type (nothing for void).
using ResultDecoder = void (*)(Reader& in, void* out);

/// How a registered function crosses a process boundary; all null when a
/// parameter or the result has no codec.
struct Crossing {
  Invoker invoker = nullptr;
  ArgsEncoder encode_args = nullptr;
  ResultDecoder decode_result = nullptr;
};

/// What the registry knows about one function.
struct RegisteredFunction {
  std::string name;
  Invoker invoker = nullptr;  // null when a parameter or the result has no codec
  ArgsEncoder encode_args = nullptr;
  ResultDecoder decode_result = nullptr;
  std::uint64_t signature = 0;  // hash of the function's type, checked across processes
  bool ambiguous = false;       // two different functions share this name
};

/// Records `name` for the function at `address`. Returns true (for static init).
bool register_function(std::string_view name, const void* address, Crossing crossing = {},
                       std::uint64_t signature = 0);
/// The registration of the function at `address`, or null.
const RegisteredFunction* find_function(const void* address) noexcept;
/// The registration under `name`, or null.
const RegisteredFunction* find_function(std::string_view name) noexcept;

/// A stable hash of a type's mangled name (same program, same value).
std::uint64_t hash_type_name(const char* mangled) noexcept;
template <class F>
std::uint64_t signature_of() {
  static const std::uint64_t h = hash_type_name(typeid(F).name());
  return h;
}

template <class R>
struct task_value {
  using type = R;
};
template <class T>
struct task_value<Task<T>> {
  using type = T;
};

template <class F>
struct function_traits;
template <class R, class... P>
struct function_traits<R (*)(P...)> {
  using raw_result = R;
  using value_type = typename task_value<R>::type;
  using params = std::tuple<std::decay_t<P>...>;
  static constexpr bool encodable =
      (Encodable<std::decay_t<P>> && ...) && (std::is_void_v<value_type> || Encodable<value_type>);
};
template <class R, class... P>
struct function_traits<R (*)(P...) noexcept> : function_traits<R (*)(P...)> {};

template <auto Fn>
Task<void> invoke_registered(Reader& in, Writer& out) {
  using Traits = function_traits<decltype(Fn)>;
  using Params = typename Traits::params;
  Params args = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return Params{Codec<std::tuple_element_t<I, Params>>::decode(in)...};  // left to right
  }
  (std::make_index_sequence<std::tuple_size_v<Params>>{});
  if constexpr (is_task_v<typename Traits::raw_result>) {
    if constexpr (std::is_void_v<typename Traits::value_type>) {
      co_await std::apply(Fn, args);
    } else {
      out.put(co_await std::apply(Fn, args));
    }
  } else if constexpr (std::is_void_v<typename Traits::value_type>) {
    std::apply(Fn, args);
  } else {
    out.put(std::apply(Fn, args));
  }
}

template <class Params>
void encode_params(const void* params, Writer& out) {
  std::apply([&](const auto&... p) { (out.put(p), ...); }, *static_cast<const Params*>(params));
}

template <class V>
void decode_value(Reader& in, void* out) {
  if constexpr (!std::is_void_v<V>) static_cast<std::optional<V>*>(out)->emplace(in.get<V>());
}

/// How `Fn` crosses a process boundary, or nothing if its types cannot.
template <auto Fn>
Crossing crossing_for() noexcept {
  using Traits = function_traits<decltype(Fn)>;
  if constexpr (Traits::encodable) {
    return {&invoke_registered<Fn>, &encode_params<typename Traits::params>,
            &decode_value<typename Traits::value_type>};
  } else {
    return {};
  }
}

/// Rebuilds an exception raised in another process from its type and message.
using ErrorFactory = std::exception_ptr (*)(const std::string& message);
bool register_error(const char* mangled_type, ErrorFactory factory);
/// The rebuilt exception, or concur::RemoteError(demangled type, message).
std::exception_ptr rebuild_error(std::string_view mangled_type, const std::string& type,
                                 const std::string& message);

template <class E>
std::exception_ptr make_error(const std::string& message) {
  return std::make_exception_ptr(E(message));
}

}  // namespace detail
}  // namespace concur

#define CONCUR_DETAIL_CAT2(a, b) a##b
#define CONCUR_DETAIL_CAT(a, b) CONCUR_DETAIL_CAT2(a, b)

/// Registers task function `fn` under its own name. Use at namespace scope.
/// A function taking a process-local object (concur/process_local.hpp) is
/// refused at compile time.
#define CONCUR_REGISTER(fn)                                                             \
  static_assert(!::concur::detail::takes_process_local<decltype(&fn)>::value,           \
                CONCUR_DETAIL_PROCESS_LOCAL_ARG);                                       \
  [[maybe_unused]] static const bool CONCUR_DETAIL_CAT(concur_registered_, __LINE__) =  \
      ::concur::detail::register_function(#fn, ::concur::detail::function_address(&fn), \
                                          ::concur::detail::crossing_for<&fn>(),        \
                                          ::concur::detail::signature_of<decltype(&fn)>())

/// Lets exception type `E` (constructible from std::string) cross from a
/// worker process to the parent as itself. Use at namespace scope.
#define CONCUR_REGISTER_ERROR(E)                                                             \
  [[maybe_unused]] static const bool CONCUR_DETAIL_CAT(concur_registered_error_, __LINE__) = \
      ::concur::detail::register_error(typeid(E).name(), &::concur::detail::make_error<E>)
