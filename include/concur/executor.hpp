// SPDX-License-Identifier: BSL-1.0
// concur::Executor: one concurrency model behind one API.
//
// ```cpp
// #include <chrono>
// #include <vector>
// using namespace std::chrono_literals;
//
// concur::Task<int> twice(int x) { co_return 2 * x; }
//
// void run_some() {
//   auto ex = concur::make_executor(concur::Config::from_env());
//   auto [a, b] = ex->gather(concur::call(twice, 1), concur::call(twice, 2));  // 2, 4
//   std::vector<decltype(concur::call(twice, 0))> calls;
//   for (int i = 0; i < 100; ++i) calls.push_back(concur::call(twice, i));
//   auto rs = ex->gather_settled(calls, {.limit = 64, .timeout = 30s});  // 100 Result<int>
// }
// ```
//
// The blocking member functions run a batch to the end on this executor and
// return its outcome; inside a task, co_await the free functions of
// concur/gather.hpp instead. An executor runs one top-level call at a time:
// calling its blocking functions from several threads at once is not
// supported (give each thread its own executor).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "concur/config.hpp"
#include "concur/detail/context.hpp"
#include "concur/gather.hpp"
#include "concur/task.hpp"

namespace concur {

/// A task that kept an event-loop thread busy longer than the threshold.
///
/// A stall is reported while it lasts (`ongoing`: the task still holds the
/// thread, reported by a watchdog thread at 1x, 2x, 4x, ... the threshold),
/// then once more when it ends (`ongoing` false, with the time it held the
/// thread). A CPU loop that never waits thus names itself even if it never
/// ends.
struct StallReport {
  std::string executor;                ///< e.g. "event_loop"
  std::string task;                    ///< the call's name
  std::chrono::nanoseconds duration;   ///< how long it held (has held so far) the thread
  std::chrono::nanoseconds threshold;  ///< Config::stall_threshold
  bool ongoing = false;                ///< true: the task is still holding the thread
};
/// Hears stall reports. A final report is made on the thread that stalled; an
/// ongoing one on concur's watchdog thread; they may come concurrently (and
/// from several threads with fibers' threads > 1): the handler must be
/// thread-safe, quick, must not throw, and must not create or destroy
/// executors.
using StallHandler = std::function<void(const StallReport&)>;

/// One concurrency model. Create it with make_executor(); use it through the
/// blocking members below, from outside any task.
///
/// Thread-safety: one blocking call at a time per executor (calls from
/// several threads at once are not supported: give each thread its own; a
/// call made while another thread's runs throws concur::UsageError, and
/// destroying the executor while one runs terminates with one).
/// The const accessors and stall_count() are safe from any thread. Tasks run
/// on the executor's threads (the caller's own thread for sequential and
/// event_loop; worker processes for processes), so a task's code must be as
/// thread-safe as the executor's lanes() demands.
///
/// Errors: a fail-fast gather and run() rethrow the task's own exception
/// unchanged (or Cancelled / TimeoutError / DeadlineExceeded); settled forms
/// report failures in their Results instead. An executor may throw
/// concur::Error for a resource it cannot get (e.g. a fiber stack).
class Executor {
 public:
  /// Must not run while a blocking call on this executor is in progress:
  /// doing so ends the program (std::terminate) with a concur::UsageError
  /// (messages::kDestroyedWhileRunning) rather than hang or crash later.
  virtual ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// The executor's name, as in Config::executor.
  virtual std::string_view name() const = 0;
  /// Whether a blocking call inside a task can stall other tasks here, and so
  /// whether the stall detector watches (event_loop, fibers: yes).
  virtual bool detects_stalls() const { return false; }
  /// How many OS threads (or processes) run tasks at once.
  virtual int lanes() const { return 1; }

  /// The validated configuration this executor was made with.
  const Config& config() const noexcept { return config_; }

  /// Runs `task` to the end on this executor; returns its value or rethrows
  /// the exception it ended with. Blocks the calling thread until then.
  /// Throws concur::UsageError (messages::kConcurrentUse) if another thread's
  /// blocking call on this executor is still running.
  template <class T>
  T run(Task<T> task) {
    std::optional<detail::unit_if_void_t<T>> out;
    Task<void> root = store_into(std::move(task), out);
    detail::Context ctx;
    run_owned(root.handle(), ctx);
    root.handle().promise().take();
    if constexpr (!std::is_void_v<T>) return std::move(*out);
  }

  /// run(task), cancellable from outside: once `stop` is requested (from any
  /// thread, e.g. a Ctrl-C handler's std::stop_source) the task and every
  /// task under it see cancelled(), their waits throw Cancelled, and run
  /// throws what the task ends with (Cancelled unless it caught it).
  template <class T>
  T run(Task<T> task, std::stop_token stop) {
    std::optional<detail::unit_if_void_t<T>> out;
    Task<void> root = store_into(std::move(task), out);
    detail::Context ctx;
    {
      auto cancel = [&ctx]() noexcept { ctx.cancel(detail::StopReason::cancelled); };
      std::stop_callback<decltype(cancel)> on_stop(stop, cancel);
      run_root(root.handle(), ctx);
    }
    root.handle().promise().take();
    if constexpr (!std::is_void_v<T>) return std::move(*out);
  }

  /// gather(calls...): runs every call concurrently (as the model allows) and
  /// returns a tuple of their values in argument order (Unit for void).
  /// Fail-fast: the first failure cancels the others, waits until they have
  /// stopped, then is thrown. Options left at zero take Config::limit,
  /// timeout and deadline.
  template <TaskFactory... Cs>
  auto gather(Cs... calls) {
    static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("Executor::gather"));
    if constexpr (sizeof...(Cs) > 0) return run(concur::gather(defaults({}), std::move(calls)...));
  }
  template <TaskFactory... Cs>
  auto gather(GatherOptions options, Cs... calls) {
    static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("Executor::gather"));
    if constexpr (sizeof...(Cs) > 0) {
      return run(concur::gather(defaults(std::move(options)), std::move(calls)...));
    }
  }
  /// gather(range): a vector of values in input order (nothing for void
  /// tasks), fail-fast as above. `calls` is read while the call runs.
  template <CallRange R>
  auto gather(const R& calls, GatherOptions options = {}) {
    return run(concur::gather(calls, defaults(std::move(options))));
  }

  /// gather_settled: one Result per input, in input order (a tuple for
  /// calls..., a vector for a range); never throws for a task's failure.
  /// Options left at zero take the Config defaults.
  template <TaskFactory... Cs>
  auto gather_settled(Cs... calls) {
    static_assert(sizeof...(Cs) > 0, CONCUR_DETAIL_NO_CALLS("Executor::gather_settled"));
    if constexpr (sizeof...(Cs) > 0) {
      return run(concur::gather_settled(defaults({}), std::move(calls)...));
    }
  }
  template <CallRange R>
  auto gather_settled(const R& calls, GatherOptions options = {}) {
    return run(concur::gather_settled(calls, defaults(std::move(options))));
  }

  /// Calls on_result(index, Result&&) as each input finishes (completion
  /// order), serially but on whichever thread finished it. Never throws for a
  /// task's failure; an exception from on_result ends the program.
  template <CallRange R, class F>
  requires std::invocable<F&, std::size_t, Result<range_value_t<R>> &&> void as_completed(
      const R& calls, F on_result, GatherOptions options = {}) {
    run(concur::as_completed(calls, std::move(on_result), defaults(std::move(options))));
  }
  /// Every outcome with its input index, in completion order.
  template <CallRange R>
  std::vector<Completed<range_value_t<R>>> as_completed(const R& calls,
                                                        GatherOptions options = {}) {
    std::vector<Completed<range_value_t<R>>> out;
    out.reserve(std::ranges::size(calls));
    as_completed(
        calls,
        [&out](std::size_t i, Result<range_value_t<R>>&& r) {
          out.push_back({i, std::move(r)});
        },
        std::move(options));
    return out;
  }

  /// Replaces the stall handler (the default sends one line to concur::log,
  /// level warning: stderr unless set_log_handler says otherwise); an
  /// empty handler silences reports (stall_count() still counts). Call it
  /// between blocking calls, not while one runs.
  void on_stall(StallHandler handler);
  /// Stalls that have ended so far (one per stall; ongoing reports are not
  /// counted), over this executor's life.
  std::size_t stall_count() const noexcept { return stalls_.load(); }

 protected:
  /// For implementations: `config` has been validated by make_executor().
  explicit Executor(Config config);
  /// Runs the root coroutine `root` (context `ctx`) until it is done.
  virtual void run_root(std::coroutine_handle<> root, detail::Context& ctx) = 0;
  /// Every final executor calls this first in its destructor (before its own
  /// members go): terminates with messages::kDestroyedWhileRunning if a
  /// blocking call still runs.
  void check_destroy_allowed() const noexcept;
  /// Called by drivers that detect a stall.
  /// `ongoing`: from the watchdog, while the task still holds the thread.
  void report_stall(std::string_view task, std::chrono::nanoseconds held, bool ongoing = false);

 private:
  template <class T>
  static Task<void> store_into(Task<T> task, std::optional<detail::unit_if_void_t<T>>& out) {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      out.emplace();
    } else {
      out.emplace(co_await std::move(task));
    }
  }
  GatherOptions defaults(GatherOptions o) const;
  // run_root() with this executor marked as running on the calling thread.
  void run_owned(std::coroutine_handle<> root, detail::Context& ctx);

  Config config_;
  // The thread whose blocking call is running (default id: none).
  std::atomic<std::thread::id> owner_{};
  StallHandler stall_handler_;
  std::atomic<std::size_t> stalls_{0};
};

/// Creates the executor named by `config.executor`. Throws ConfigError for an unknown name or an
/// invalid setting (it runs config.validate()). Safe to call from several threads.
std::unique_ptr<Executor> make_executor(const Config& config);

/// The executors this process can run, sequential (the reference) first:
/// cluster only inside an MPI job of 2 ranks or more (after concur::init),
/// though make_executor knows its name everywhere (and says how to launch
/// it). Static data: safe from any thread.
std::span<const std::string_view> executor_names();
/// Every executor name make_executor knows, those that cannot run in this
/// process (cluster outside an MPI job) included.
std::span<const std::string_view> known_executor_names();

}  // namespace concur
