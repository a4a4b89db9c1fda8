// SPDX-License-Identifier: BSL-1.0
// The I/O engine shared by the suspending drivers (event_loop, fibers): one
// Boost.Asio io_context that carries the timers of every parked waiter and
// the sockets of libcurl's transfers (concur::http, see curl_multi.hpp). All
// timers share one asio::steady_timer set to the earliest deadline, so a
// million sleeping tasks cost one kernel timer. Single-threaded: only the
// thread running the engine touches it, except post(), which any thread may
// call, and dispatch(), which posts unless called on the engine's own thread.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "concur/detail/context.hpp"

namespace concur::io {

class CurlMulti;

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  boost::asio::io_context& context() noexcept { return io_; }

  /// Wakes `w` (Waiter::timed_out) at its deadline unless removed first.
  void add_timer(detail::Waiter& w);
  /// Forgets `w`'s timer if it has one. Safe to call twice.
  void remove_timer(detail::Waiter& w) noexcept;
  bool has_timers() const noexcept { return !timers_.empty(); }

  /// Runs ready handlers; if `block`, first waits for the next timer, socket
  /// event or post(). Expired waiters are woken through their drivers.
  void run_once(bool block);
  /// Like run_once(true), but also returns at `wake_at` (the fibers scheduler
  /// sleeps here until its next timer). kNever: no time limit.
  void run_until(detail::TimePoint wake_at);

  /// Runs `fn` on the engine's thread (thread-safe).
  void post(std::function<void()> fn);

  /// Marks the calling thread as the only one that runs this engine and the
  /// tasks waiting on it (event_loop), so dispatch() may run work inline.
  void bind_to_current_thread() noexcept { owner_ = std::this_thread::get_id(); }
  /// Runs `fn` now if the calling thread owns the engine, else post()s it.
  void dispatch(std::function<void()> fn);

  /// libcurl's multi handle on this engine (concur::http), made on first use.
  /// Only the side running the engine may call this.
  CurlMulti& curl();

 private:
  std::size_t fire_expired();
  void arm();

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_running_;
  boost::asio::steady_timer timer_;
  detail::TimePoint armed_for_ = detail::kNever;
  std::map<std::pair<detail::TimePoint, std::uint64_t>, detail::Waiter*> timers_;
  std::uint64_t next_key_ = 1;
  std::thread::id owner_;
  // Its sockets and timer live in io_, so it must go first (see ~Engine).
  std::unique_ptr<CurlMulti> curl_;
};

}  // namespace concur::io
