// SPDX-License-Identifier: BSL-1.0
// libcurl's multi-socket interface driven by an io::Engine (event_loop and
// fibers). libcurl says which sockets to watch and when to time out; Asio's
// reactor (epoll) does the watching in the same io_context that sleeps for
// timers, so one thread carries thousands of transfers with no polling loop.
//
// Threading: everything here runs on the side that runs the engine (the event
// loop thread, or whichever fibers thread holds the engine). Tasks on other
// threads reach it through Engine::dispatch/post and learn of completion
// through their Waiter, never by touching the multi handle.
#pragma once

#include <curl/curl.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "concur/detail/context.hpp"
#include "io/curl_exchange.hpp"

namespace concur::io {

class Engine;

/// One request run through a CurlMulti. Shared by the task that waits for it
/// and the engine that runs it, so that either may let go first: a cancelled
/// task leaves at once and the engine aborts the transfer on its next turn.
class MultiTransfer {
 public:
  explicit MultiTransfer(http::Request request);
  ~MultiTransfer();
  MultiTransfer(const MultiTransfer&) = delete;
  MultiTransfer& operator=(const MultiTransfer&) = delete;

  // Task side.
  /// Publishes the waiter the engine wakes (Waiter::notified) on completion.
  void publish(detail::Waiter* w);
  /// Whether a task still waits for it (engine side: a transfer nobody waits
  /// for any more is not started).
  bool awaited();
  /// Withdraws the waiter; returns true if the transfer has finished.
  bool withdraw();
  /// The outcome, once finished: the response, or the typed http::Error.
  http::Response result();

 private:
  friend class CurlMulti;
  enum class Phase { created, queued, running, finished, aborted };

  // Engine side: records the outcome and wakes the task if it still waits.
  void complete(CURLcode code);
  // Wraps the request's on_body_chunk so that it runs only while a task
  // still waits: once withdraw() returns, the task's frame (which the
  // callback may refer to) can be gone, even with the transfer still running.
  http::Request guarded(http::Request request);

  CurlExchange exchange_;
  CURL* easy_ = nullptr;
  Phase phase_ = Phase::created;         // engine side only
  std::shared_ptr<MultiTransfer> keep_;  // the multi's reference while running
  std::mutex mutex_;                     // guards the three below
  detail::Waiter* waiter_ = nullptr;
  bool done_ = false;
  CURLcode code_ = CURLE_OK;
};

class CurlMulti {
 public:
  explicit CurlMulti(Engine& engine);
  /// Aborts every transfer still running or queued.
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  /// Starts `t` now, or queues it while max_in_flight() transfers run.
  void start(std::shared_ptr<MultiTransfer> t);
  /// Stops `t` (a cancelled task no longer waits for it) and frees its socket.
  void abort(const std::shared_ptr<MultiTransfer>& t);

  std::size_t in_flight() const noexcept { return in_flight_; }
  std::size_t peak_in_flight() const noexcept { return peak_; }

 private:
  struct Socket {
    explicit Socket(boost::asio::io_context& io, curl_socket_t fd) : descriptor(io, fd) {}
    boost::asio::posix::stream_descriptor descriptor;  // watches curl's fd, never owns it
    int wanted = 0;                                    // CURL_POLL_IN / OUT bits
    bool reading = false, writing = false;             // an async_wait is pending
    bool closed = false;                               // curl said CURL_POLL_REMOVE
  };

  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void* socket);
  static int on_timer(CURLM* multi, long timeout_ms, void* self);
  void watch(const std::shared_ptr<Socket>& s);
  void on_ready(const std::shared_ptr<Socket>& s, curl_socket_t fd, int direction);
  /// curl_multi_socket_action, then hands out finished transfers.
  void act(curl_socket_t fd, int events);
  void collect_finished();
  void admit();
  void add(const std::shared_ptr<MultiTransfer>& t);
  void refill_later();
  void remove(MultiTransfer& t);

  Engine& engine_;
  CURLM* multi_ = nullptr;
  using Clock = std::chrono::steady_clock;
  boost::asio::steady_timer timer_;
  Clock::time_point timer_due_ = Clock::time_point::max();  // when timer_ fires
  std::unordered_map<curl_socket_t, std::shared_ptr<Socket>> sockets_;
  std::unordered_set<MultiTransfer*> running_;
  std::deque<std::shared_ptr<MultiTransfer>> queue_;
  std::size_t in_flight_ = 0;
  std::size_t peak_ = 0;
  const std::size_t max_in_flight_;
  static constexpr std::size_t kStartsPerTurn = 64;
  std::size_t started_this_turn_ = 0;
  bool refill_pending_ = false;
};

}  // namespace concur::io
