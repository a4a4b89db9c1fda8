// SPDX-License-Identifier: BSL-1.0
// concur::Task<T>: the lazy coroutine every workload is written as.
//
// A Task does nothing until it is awaited (or handed to an executor). Awaiting
// it transfers control symmetrically, so a chain of awaits never grows the
// native stack. Destroying a Task destroys its frame, whether it never started
// or is suspended, so nothing leaks. Tasks are move-only.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>
#include <variant>

#include "concur/detail/frame_alloc.hpp"

namespace concur {

template <class T = void>
class Task;

namespace detail {

// Holds what a task produced: nothing yet, a value, or an exception.
template <class T>
class TaskResult {
 public:
  template <class U>
  void return_value(U&& v) {
    state_.template emplace<1>(std::forward<U>(v));
  }
  void unhandled_exception() noexcept { state_.template emplace<2>(std::current_exception()); }
  T take() {
    if (state_.index() == 2) std::rethrow_exception(std::get<2>(state_));
    return std::move(std::get<1>(state_));
  }
  /// What the task let escape, or null (a gather child's end).
  std::exception_ptr exception() const noexcept {
    return state_.index() == 2 ? std::get<2>(state_) : nullptr;
  }
  /// The value, once the task returned one.
  T&& value() noexcept { return std::move(*std::get_if<1>(&state_)); }

 private:
  std::variant<std::monostate, T, std::exception_ptr> state_;
};

template <>
class TaskResult<void> {
 public:
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
  void take() {
    if (error_) std::rethrow_exception(error_);
  }
  std::exception_ptr exception() const noexcept { return error_; }

 private:
  std::exception_ptr error_;
};

struct ChildLink;  // concur/detail/batch.hpp
/// A gather child's first resume: records its start, and throws its stop
/// exception if its batch stopped before it got a thread.
void start_child(ChildLink& link);
/// A gather child ended: hands its outcome to its batch and frees the frame
/// `h`. Returns what to resume next.
std::coroutine_handle<> end_child(ChildLink& link, void* promise,
                                  std::coroutine_handle<> h) noexcept;

template <class T>
struct TaskPromise : TaskResult<T>, FrameAllocated {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  // Set when a gather runs this task as one of its children: then nobody
  // awaits it, and its end goes to the batch instead.
  ChildLink* child = nullptr;

  Task<T> get_return_object() noexcept;

  struct InitialAwaiter : std::suspend_always {
    TaskPromise* promise;
    // An exception here skips the body and reaches unhandled_exception.
    void await_resume() const {
      if (promise->child != nullptr) start_child(*promise->child);
    }
  };
  InitialAwaiter initial_suspend() noexcept { return {{}, this}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    // Symmetric transfer: resume whoever awaited us without nesting a call.
    std::coroutine_handle<> await_suspend(std::coroutine_handle<TaskPromise> h) noexcept {
      TaskPromise& p = h.promise();
      if (p.child != nullptr) return end_child(*p.child, &p, h);  // destroys the frame
      return p.continuation;
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
};

}  // namespace detail

/// A lazy coroutine producing a T (or nothing for Task<void>), or an exception.
///
/// Write `Task<T> f(...) { ... co_return v; }`; calling f creates the frame
/// without running it. Run it by `co_await`ing it from another task, or by
/// handing it (through concur::call) to an Executor or a gather.
/// Thread-safety: none; a Task is owned by one awaiter at a time, though the
/// frame may resume on a different thread after each wait (thread_pool,
/// fibers with several threads), so do not keep thread-local state across a
/// co_await.
template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;              ///< what makes Task<T> a coroutine type
  using value_type = T;                                     ///< what co_await yields
  using handle_type = std::coroutine_handle<promise_type>;  ///< the owned frame

  /// An empty task (valid() is false); only assigning to it is useful.
  Task() noexcept = default;
  /// Adopts a coroutine frame (used by promise types; owns and destroys it).
  explicit Task(handle_type h) noexcept : h_(h) {}
  /// Takes the frame; `o` is left empty.
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  /// Destroys this task's frame (if any), then takes `o`'s.
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  /// True when the task owns a coroutine frame (not empty, not moved from).
  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// True once the coroutine has finished (with a value or an exception).
  bool done() const noexcept { return h_ && h_.done(); }

  /// Runs the task and resumes the awaiter with its value; an exception the
  /// task let escape is rethrown here. Await a task at most once; the task
  /// must be valid().
  auto operator co_await() && noexcept { return Awaiter{h_}; }
  auto operator co_await() & noexcept { return Awaiter{h_}; }

  /// Releases ownership of the frame (used by executors that manage it); the
  /// caller must destroy it.
  handle_type release() noexcept { return std::exchange(h_, {}); }
  /// The frame, still owned by this task (null when !valid()).
  handle_type handle() const noexcept { return h_; }

 private:
  struct Awaiter {
    handle_type h;
    bool await_ready() const noexcept { return !h || h.done(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
      h.promise().continuation = caller;
      return h;
    }
    T await_resume() { return h.promise().take(); }
  };

  void reset() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }

  handle_type h_;
};

template <class T>
Task<T> detail::TaskPromise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<TaskPromise>::from_promise(*this)};
}

/// True for concur::Task<...> types.
template <class>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<Task<T>> = true;

}  // namespace concur
