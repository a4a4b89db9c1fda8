// The parent's side of the processes executor: a pool of worker processes
// and the calls on their way to and from them.
//
// Everything here runs on the thread that runs the executor's batch (the
// Asio handlers run inside its loop), so nothing is locked. Calls are sent
// ahead (pipelined): each worker gets up to a window of calls in flight,
// about 1 ms of work judged by how long recent calls took, so a flood of
// tiny calls costs a few syscalls per thousand calls while long calls are
// handed out one at a time and never queue behind each other.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "concur/detail/context.hpp"
#include "concur/detail/route.hpp"

namespace concur::executors::processes {

struct Worker;

/// One routed call, from submit() to its outcome. Lives in its task's frame.
struct Pending {
  enum State : std::uint8_t { queued, sent, done };
  detail::RemoteRequest* req = nullptr;
  std::uint64_t id = 0;
  State state = queued;
  bool cancel_sent = false;
  std::chrono::nanoseconds budget{0};  // per-call timeout from its start (0: none)
  Worker* worker = nullptr;            // while sent
  std::exception_ptr error;            // when done and failed
  detail::Waiter* waiter = nullptr;    // the park to wake when done
};

struct PoolOptions {
  int workers = 1;
  std::string executable;  // empty: this program
  std::size_t max_tasks_per_child = 0;
};

class Pool {
 public:
  Pool(boost::asio::io_context& io, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Queues `p` (sent at the next flush). Fails it at once if the pool is broken.
  void submit(Pending& p);
  /// Sends everything queued that the workers' windows allow, and starts writes.
  void flush();
  /// `p` is no longer wanted: an unsent call is dropped at once, a sent one
  /// is told to stop in its worker (p completes when the worker answers).
  void cancel(Pending& p);
  /// A cancelled call did not stop in time: kill its worker if it is running
  /// the call, else forget the call. Completes `p`.
  void give_up(Pending& p);

  int size() const noexcept { return options_.workers; }

 private:
  friend struct Worker;
  std::shared_ptr<Worker> spawn();
  void respawn();  // a replacement; on failure the pool is broken
  void start();
  void read_replies(const std::shared_ptr<Worker>& w);
  void read_stderr(const std::shared_ptr<Worker>& w);
  void on_frame(Worker& w, const char* frame, std::size_t size);
  void on_reply(Worker& w, const char* frame, std::size_t size);
  void on_gone(Worker& w);
  void start_write(const std::shared_ptr<Worker>& w);
  void maybe_retire(Worker& w);
  void send(Worker& w, Pending& p);
  void complete(Pending& p, std::exception_ptr error);
  void fail_queued(const std::exception_ptr& error);
  std::size_t window() const noexcept;
  void forward_stderr(Worker& w, const char* data, std::size_t n, bool final);

  boost::asio::io_context& io_;
  PoolOptions options_;
  std::vector<std::string> environment_;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::deque<Pending*> queue_;
  std::uint64_t next_id_ = 1;
  double average_ns_ = 0;      // recent run time of one call (EWMA)
  std::exception_ptr broken_;  // the workers cannot start: every call fails with this
  bool shutting_down_ = false;
  bool started_ = false;
  bool warming_up_ = false;  // the first workers are still starting
};

}  // namespace concur::executors::processes
