// SPDX-License-Identifier: BSL-1.0
// Pull-style as_completed with backpressure: the consumer asks for each
// outcome as it finishes, and a slow consumer holds the batch back.
//
//   co_await concur::as_completed(calls, [&](concur::CompletionStream<int>& s) ->
//   concur::Task<void> {
//     while (std::optional<concur::Completed<int>> done = co_await s.next()) {
//       use(done->index, done->result);        // completion order
//       if (enough()) break;                   // the rest are cancelled and joined
//     }
//   }, {.limit = 8});
//
// Backpressure: at most `limit` inputs are outstanding at once, an input
// being outstanding from its start until next() has handed its outcome over
// (running, or finished and waiting in the stream's buffer). A call starts
// only inside next(), and only while fewer than `limit` are outstanding, so
// however slow the consumer, started <= consumed + limit and the buffer
// never holds more than `limit` outcomes. `limit` 0: every input starts at
// the first next() and the buffer may hold them all.
//
// Why a body and not a stream object the caller keeps: the calls run as
// children of the awaiting task, and C++ has no asynchronous destructor, so
// a stream dropped early (a break, an exception) could not wait for its
// running calls. Here, when the body returns or throws, the calls still
// running are cancelled and joined before as_completed returns: no task
// outlives it (as with task_group). Its value is the body's.
//
// Every input is yielded exactly once: with its value or error, its
// TimeoutError (options.timeout, counted from its start), or, once the
// batch stops (options.deadline, options.stop), the stop error of the calls
// cut short and of those never started. next() gives std::nullopt after the
// last one. next() is a cancellation point: if the awaiting task is
// cancelled it throws that task's stop exception. Call next() only from the
// body itself (UsageError from another task). Works on every executor;
// under `processes` each call of a registered function runs in a worker.
//
// Outside tasks, see the blocking form, concur::BlockingCompletions, below.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <ranges>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/call.hpp"
#include "concur/detail/batch.hpp"
#include "concur/detail/driver.hpp"
#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/gather.hpp"
#include "concur/options.hpp"
#include "concur/race.hpp"
#include "concur/result.hpp"
#include "concur/sync.hpp"
#include "concur/task.hpp"

namespace concur {

namespace messages {
/// UsageError: CompletionStream::next() called by another task than the body.
inline constexpr std::string_view kNextFromOtherTask =
    "CompletionStream::next must be called by the as_completed body itself, not by another task";
}  // namespace messages

template <class T>
class CompletionStream;

namespace detail {
template <class V, class Body>
using stream_body_value_t =
    typename std::invoke_result_t<Body&, CompletionStream<range_value_t<V>>&>::value_type;
template <class V, class Body>
Task<stream_body_value_t<V, Body>> run_completion_stream(V view, Body body, GatherOptions options);
}  // namespace detail

/// The outcomes of one as_completed batch, pulled one by one by its body.
/// Made by as_completed(calls, body, options); not copyable.
template <class T>
class CompletionStream : private detail::ChildFactory {
 public:
  CompletionStream(const CompletionStream&) = delete;
  CompletionStream& operator=(const CompletionStream&) = delete;

  /// co_await: the next outcome to finish (completion order) with its input
  /// index, waiting while none has; std::nullopt once every input has been
  /// handed over. Starts calls first, as many as the limit allows.
  Task<std::optional<Completed<T>>> next();

  /// Inputs in the batch.
  std::size_t size() const noexcept { return batch_.total(); }

 protected:
  CompletionStream(std::size_t total, GatherOptions options)
      : options_(std::move(options)),
        batch_options_(unlimited(options_)),
        batch_(total, batch_options_, detail::GatherMode::settled),
        cap_(options_.limit == 0 ? total : std::min(options_.limit, total)),
        ring_(cap_) {}
  virtual ~CompletionStream() = default;

  /// Makes the child of input `i` (typed on the range, in RangeStream).
  virtual std::coroutine_handle<> make_child(std::size_t i, detail::ChildLink& link) = 0;

 private:
  template <class V, class Body>
  friend Task<detail::stream_body_value_t<V, Body>> detail::run_completion_stream(V, Body,
                                                                                  GatherOptions);
  class ChildEnded;
  enum class Next { item, never_started, end, wait };

  // The batch starts children one by one (start_child_now), never waiting
  // for a slot: the stream counts what is outstanding itself, and the
  // batch's records must be free to outnumber `limit` for the moment a
  // finished child has handed its outcome over but not yet given its
  // record back.
  static GatherOptions unlimited(GatherOptions o) {
    o.limit = 0;
    return o;
  }

  std::coroutine_handle<> make(std::size_t i, detail::ChildLink& link) override {
    return make_child(i, link);
  }
  std::exception_ptr finish(detail::ChildLink& link, void* promise) noexcept override {
    detail::Slot<T> slot;
    detail::store_outcome(*static_cast<detail::TaskPromise<T>*>(promise), slot);
    std::lock_guard lock(mutex_);
    push_locked(Completed<T>{link.index, std::move(*slot)});
    --running_;
    wake_locked();
    return nullptr;  // settled: a failure is an outcome, not a reason to stop
  }
  void skip(std::size_t, const std::exception_ptr&) override {}  // never: started one by one

  void push_locked(Completed<T>&& c) noexcept {
    ring_[(head_ + count_) % ring_.size()].emplace(std::move(c));
    ++count_;
    ++pushed_;
  }
  Completed<T> pop_locked() noexcept {
    Completed<T> c = std::move(*ring_[head_]);
    ring_[head_].reset();
    head_ = (head_ + 1) % ring_.size();
    --count_;
    return c;
  }
  void wake_locked() noexcept {
    if (waiting_) {
      waiting_ = false;
      detail::wake(waiter_, detail::Waiter::notified);
    }
  }
  bool stopped() const noexcept { return batch_.stop_reason() != detail::StopReason::none; }
  Next what_next_locked() const noexcept {
    if (count_ > 0) return Next::item;
    if (next_input_ < size() && stopped()) return Next::never_started;
    if (running_ == 0 && next_input_ == size()) return Next::end;
    return Next::wait;
  }

  // Starts inputs while fewer than cap_ are outstanding. An input that
  // cannot start (the batch stopped meanwhile, no memory) gets its error as
  // its outcome at once. Once an outcome came in while starting (on
  // `sequential` a child runs to its end inside its start), it is handed
  // over before anything else starts, rather than after `limit` more calls.
  void top_up() {
    std::size_t seen = static_cast<std::size_t>(-1);
    for (;;) {
      std::size_t i;
      {
        std::lock_guard lock(mutex_);
        if (next_input_ == size() || running_ + count_ >= cap_ || stopped()) return;
        if (seen != static_cast<std::size_t>(-1) && pushed_ != seen) return;  // one came in
        seen = pushed_;
        i = next_input_++;
        ++running_;
      }
      try {
        detail::start_child_now(batch_, *this, i);
      } catch (...) {
        const std::exception_ptr error = std::current_exception();
        batch_.input_skipped(error);
        std::lock_guard lock(mutex_);
        --running_;
        push_locked(Completed<T>{i, Result<T>(ErrorInfo::from_exception(error))});
      }
    }
  }

  GatherOptions options_;
  GatherOptions batch_options_;
  detail::Batch batch_;
  const std::size_t cap_;                          // most outstanding at once
  std::mutex mutex_;                               // guards everything below
  std::vector<std::optional<Completed<T>>> ring_;  // finished, not yet handed over
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::size_t pushed_ = 0;      // outcomes ever buffered
  std::size_t next_input_ = 0;  // inputs below this have started (or were skipped)
  std::size_t running_ = 0;
  bool waiting_ = false;  // next() is parked on waiter_
  detail::Waiter waiter_;
};

/// Parks next() until a child ends or the awaiting task stops. The state is
/// checked again under the lock after the waiter is published, so a child
/// ending in between cannot be missed; the wake-up is sent under the same
/// lock, which await_resume takes, so the waiter outlives every touch.
template <class T>
class CompletionStream<T>::ChildEnded {
 public:
  explicit ChildEnded(CompletionStream& s) noexcept : s_(s) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    detail::Driver& d = detail::require_driver();
    detail::Waiter& w = s_.waiter_;
    w.handle = h;
    w.ctx = detail::current_context();
    w.driver = &d;
    // Not a wait for *our* queued children: thread_pool would run one of
    // them on this thread meanwhile, and its outcome could come long after
    // another child's that the consumer should have had at once.
    w.for_children = false;
    w.deadline = w.ctx->deadline();
    d.prepare(w);
    w.state.store(detail::Waiter::parked, std::memory_order_release);
    {
      std::lock_guard lock(s_.mutex_);
      if (s_.what_next_locked() != Next::wait) {
        w.state.store(detail::Waiter::idle, std::memory_order_release);
        return false;
      }
      s_.waiting_ = true;
    }
    if (!w.ctx->attach(w)) detail::wake(w, detail::Waiter::cancelled);
    if (trace::detail::enabled()) trace::detail::wait_begin(w.ctx);
    return d.park(w);
  }
  void await_resume() noexcept {
    detail::Waiter& w = s_.waiter_;
    if (trace::detail::enabled()) trace::detail::wait_end(w.ctx);
    w.ctx->detach(w);
    w.driver->finish(w);
    std::lock_guard lock(s_.mutex_);
    s_.waiting_ = false;
    w.state.store(detail::Waiter::idle, std::memory_order_release);
  }

 private:
  CompletionStream& s_;
};

template <class T>
Task<std::optional<Completed<T>>> CompletionStream<T>::next() {
  for (;;) {
    detail::Context* ctx = detail::current_context();
    if (ctx == nullptr) throw UsageError(std::string(messages::kNoExecutor));
    if (ctx != batch_.parent()) throw UsageError(std::string(messages::kNextFromOtherTask));
    if (ctx->stop_requested()) std::rethrow_exception(ctx->stop_exception());
    batch_.stop_requested();  // records a deadline that has passed
    top_up();
    Next what;
    std::optional<Completed<T>> out;
    std::size_t unstarted = 0;
    {
      std::lock_guard lock(mutex_);
      what = what_next_locked();
      if (what == Next::item) out.emplace(pop_locked());
      if (what == Next::never_started) unstarted = next_input_++;
    }
    if (what == Next::never_started) {
      const std::exception_ptr why = batch_.stop_exception();
      batch_.input_skipped(why);
      out.emplace(Completed<T>{unstarted, Result<T>(ErrorInfo::from_exception(why))});
    }
    if (what != Next::wait) co_return out;
    co_await ChildEnded(*this);
  }
}

namespace detail {

template <class V, class T>
class RangeStream final : public CompletionStream<T> {
 public:
  RangeStream(V& view, GatherOptions options)
      : CompletionStream<T>(std::ranges::size(view), std::move(options)), view_(view) {}

 private:
  std::coroutine_handle<> make_child(std::size_t i, ChildLink& link) override {
    return make_range_child<V, T>(view_, i, link);
  }
  V& view_;
};

}  // namespace detail

namespace detail {

template <class V, class Body>
Task<stream_body_value_t<V, Body>> run_completion_stream(V view, Body body, GatherOptions options) {
  using T = range_value_t<V>;
  using U = stream_body_value_t<V, Body>;
  vet_calls(view);  // a driver that sends calls elsewhere vets them all first
  RangeStream<V, T> stream(view, std::move(options));
  CompletionStream<T>& s = stream;
  Batch& b = s.batch_;
  Context* owner = current_context();
  const bool adopted = owner == nullptr || owner->adopt(b);
  if (!adopted) b.cancel(owner->stop_reason());
  std::optional<unit_if_void_t<U>> value;
  std::exception_ptr body_error;
  try {
    if constexpr (std::is_void_v<U>) {
      co_await body(s);
      value.emplace();
    } else {
      value.emplace(co_await body(s));
    }
  } catch (...) {
    body_error = std::current_exception();
  }
  // The body is done (maybe early): whatever still runs stops and is joined.
  b.cancel(StopReason::cancelled);
  co_await join_children(b, adopted && owner != nullptr);
  if (body_error) std::rethrow_exception(body_error);
  if constexpr (!std::is_void_v<U>) co_return std::move(*value);
}

}  // namespace detail

/// Runs the calls of `calls` (as gather does, on the executor of the
/// awaiting task) and `body(stream)`, which pulls their outcomes with
/// `co_await stream.next()` as they finish; at most `options.limit`
/// outstanding at once (see the top of this header). When the body returns,
/// the calls still running are cancelled and joined; gives the body's value,
/// or rethrows what the body threw. An lvalue range must outlive the awaited
/// task; an rvalue range is moved in.
template <CallRange R, class Body>
requires std::invocable < Body&, CompletionStream<range_value_t<R>>
& > auto as_completed(R&& calls, Body body, GatherOptions options = {}) {
  using BodyTask = std::invoke_result_t<Body&, CompletionStream<range_value_t<R>>&>;
  static_assert(is_task_v<BodyTask>, "an as_completed body must return a concur::Task");
  return detail::run_completion_stream(std::views::all(std::forward<R>(calls)), std::move(body),
                                       std::move(options));
}

/// The blocking form, for a thread outside any task: the batch runs on `ex`
/// (in a thread of concur's own, through ex.run) and next() blocks the
/// calling thread until the next outcome is there. The body that feeds it
/// asks the stream for one outcome per next(), so the same backpressure
/// holds: at most `limit` outstanding while the caller is busy elsewhere.
///
///   auto results = concur::as_completed(*ex, calls, {.limit = 8});
///   while (auto done = results.next()) use(done->index, done->result);
///
/// Destroying it before the end cancels what still runs and joins it (the
/// destructor blocks until then). While it lives, `ex` runs it: another
/// blocking call on `ex` throws UsageError (one blocking call at a time).
/// `calls` must outlive it. Options left at zero take the Config defaults,
/// as the Executor's blocking functions do.
template <class T>
class BlockingCompletions {
 public:
  template <CallRange R>
  BlockingCompletions(Executor& ex, const R& calls, GatherOptions options) {
    if (options.limit == 0) options.limit = ex.config().limit;
    if (options.timeout.count() == 0) options.timeout = ex.config().timeout;
    if (options.deadline.count() == 0) options.deadline = ex.config().deadline;
    runner_ = std::thread([this, &ex, &calls, options = std::move(options)]() mutable {
      try {
        ex.run(as_completed(
                   calls, [this](CompletionStream<T>& s) { return feed(s); }, std::move(options)),
               stop_.get_token());
      } catch (...) {
        if (!stop_.stop_requested()) error_ = std::current_exception();
      }
      std::lock_guard lock(mutex_);
      ended_ = true;
      ready_.notify_all();
    });
  }
  BlockingCompletions(const BlockingCompletions&) = delete;
  BlockingCompletions& operator=(const BlockingCompletions&) = delete;
  ~BlockingCompletions() {
    stop_.request_stop();
    runner_.join();
  }

  /// The next outcome to finish, with its input index; std::nullopt after
  /// the last. Blocks until then. Rethrows what stopped the batch otherwise
  /// (e.g. UsageError for an unregistered call under `processes`).
  std::optional<Completed<T>> next() {
    wanted_.release();  // the feeder asks the stream for one more
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return item_.has_value() || ended_; });
    if (item_.has_value()) return std::exchange(item_, std::nullopt);
    if (error_) std::rethrow_exception(error_);
    return std::nullopt;
  }

 private:
  Task<void> feed(CompletionStream<T>& s) {
    for (;;) {
      co_await wanted_.acquire();
      std::optional<Completed<T>> done = co_await s.next();
      if (!done) co_return;
      std::lock_guard lock(mutex_);
      item_ = std::move(done);
      ready_.notify_all();
    }
  }

  Semaphore wanted_{0};  // next() calls not yet served
  std::stop_source stop_;
  std::mutex mutex_;  // guards the three below
  std::condition_variable ready_;
  std::optional<Completed<T>> item_;
  bool ended_ = false;
  std::exception_ptr error_;  // written before ended_, read after
  std::thread runner_;        // last: starts once everything above exists
};

/// Opens the blocking form of as_completed on `ex` (see BlockingCompletions).
template <CallRange R>
BlockingCompletions<range_value_t<R>> as_completed(Executor& ex, const R& calls,
                                                   GatherOptions options = {}) {
  return BlockingCompletions<range_value_t<R>>(ex, calls, std::move(options));
}

}  // namespace concur
