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

 private:
  std::exception_ptr error_;
};

template <class T>
struct TaskPromise : TaskResult<T> {
  std::coroutine_handle<> continuation = std::noop_coroutine();

  Task<T> get_return_object() noexcept;
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    // Symmetric transfer: resume whoever awaited us without nesting a call.
    std::coroutine_handle<> await_suspend(std::coroutine_handle<TaskPromise> h) noexcept {
      return h.promise().continuation;
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
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

  bool valid() const noexcept { return static_cast<bool>(h_); }
  bool done() const noexcept { return h_ && h_.done(); }

  auto operator co_await() && noexcept { return Awaiter{h_}; }
  auto operator co_await() & noexcept { return Awaiter{h_}; }

  /// Releases ownership of the frame (used by executors that manage it).
  handle_type release() noexcept { return std::exchange(h_, {}); }
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
