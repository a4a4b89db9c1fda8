// SPDX-License-Identifier: BSL-1.0
// concur::is_process_local<T>: types whose objects live in one process and
// mean nothing in another: concur's Semaphore, Lock, Event, Latch,
// Condition and Queue (each header marks its own), and any type of yours
// you mark the same way:
//
// ```cpp
// struct Connection {};  // a socket of this process
// template <> struct concur::is_process_local<Connection> : std::true_type {};
// ```
//
// A registered call's arguments are copied into a worker process
// (`processes`, `cluster`), so CONCUR_REGISTER refuses, at compile time, a
// function taking such a type, a pointer, reference, std::shared_ptr or
// std::reference_wrapper to one: a Semaphore "shared" that way would be a
// different semaphore in every worker. Make the primitive inside the call
// (it works there, within its worker), or keep the function unregistered
// (it then runs on every in-process executor). Only registration is
// checked: an unregistered call may take them, on in-process executors.
#pragma once

#include <functional>
#include <memory>
#include <type_traits>

namespace concur {

template <class T>
struct is_process_local : std::false_type {};

namespace detail {

template <class T>
struct process_local_arg : is_process_local<std::remove_cv_t<T>> {};
template <class T>
struct process_local_arg<T*> : process_local_arg<T> {};
template <class T>
struct process_local_arg<std::shared_ptr<T>> : process_local_arg<T> {};
template <class T>
struct process_local_arg<std::reference_wrapper<T>> : process_local_arg<T> {};

/// Whether function pointer type F takes a process-local argument.
template <class F>
struct takes_process_local : std::false_type {};
template <class R, class... P>
struct takes_process_local<R (*)(P...)>
    : std::bool_constant<(process_local_arg<std::remove_reference_t<P>>::value || ...)> {};
template <class R, class... P>
struct takes_process_local<R (*)(P...) noexcept> : takes_process_local<R (*)(P...)> {};

}  // namespace detail
}  // namespace concur

/// The message of the static_assert in CONCUR_REGISTER (a macro: a
/// static_assert takes only a string literal).
#define CONCUR_DETAIL_PROCESS_LOCAL_ARG                                                      \
  "CONCUR_REGISTER: a registered call's arguments are copied into another process, and "     \
  "this function takes a process-local object (a concur::Semaphore, Lock, Event, Latch, "    \
  "Condition or Queue, or a pointer or reference to one): that would be a different object " \
  "in each worker. Make it inside the call instead, or do not register the function"
