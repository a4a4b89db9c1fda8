// SPDX-License-Identifier: BSL-1.0
// The parent's side of the processes executor: the calls on their way to and
// from a pool of worker processes (launching one is worker_process.hpp).
//
// Everything here runs on the thread that runs the executor's batch (the
// Asio handlers run inside its loop), so nothing is locked. Each worker runs
// up to `concurrency` calls at once; a call goes to the least loaded worker
// with a free slot. Short calls are also sent ahead (pipelined) past the
// free slots, about 1 ms of work judged by how long recent calls took, so a
// flood of tiny calls costs a few syscalls per thousand calls, while long
// calls never queue behind each other inside a worker. If a worker stops
// answering (a call holds its thread) while another sits idle, the pool asks
// it to hand back the calls it has not started and gives them to others.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "concur/detail/context.hpp"

namespace concur::executors::processes {

struct Worker;

/// One routed call's bytes: its request frame (protocol header + encoded
/// arguments, built by the router) and, once it succeeded, its encoded result.
struct RemoteRequest {
  std::string_view name;  // the registered name (the registry's string)
  std::string frame;
  std::string reply;
};

/// One routed call, from submit() to its outcome. Lives in its task's frame.
struct Pending {
  enum State : std::uint8_t { queued, sent, done };
  RemoteRequest* req = nullptr;
  std::uint64_t id = 0;
  State state = queued;
  bool cancel_sent = false;
  std::chrono::nanoseconds timeout{0};  // its own, counted from its start in a worker (0: none)
  Worker* worker = nullptr;             // while sent
  std::exception_ptr error;             // when done and failed
  detail::Waiter* waiter = nullptr;     // the park to wake when done
};

struct PoolOptions {
  std::string executor_name = "processes";  // for traces and messages
  int workers = 1;
  std::size_t concurrency = 1;  // calls one worker runs at once
  std::string executable;       // empty: this program
  std::size_t max_tasks_per_child = 0;
  std::string settings;  // how workers run their calls (kSettingsVariable)
  /// A worker's stall report: the call, how long it held its thread, and
  /// whether it still holds it (a report while the stall lasts).
  std::function<void(std::string_view task, std::chrono::nanoseconds held, bool ongoing)> on_stall;
  /// Launches one worker; empty: a child process of ours (launch_worker).
  /// `sites` are the Worker::site of the workers alive now, so a launcher
  /// with several places to run one (cluster ranks) picks a free one.
  std::function<std::shared_ptr<Worker>(boost::asio::io_context& io, const std::string& executable,
                                        const std::vector<std::string>& environment,
                                        const std::vector<int>& sites)>
      launch;
};

class Pool {
 public:
  Pool(boost::asio::io_context& io, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Queues `p` (sent at the next flush). Fails it at once if the pool is broken.
  void submit(Pending& p);
  /// Sends everything queued that the workers' slots allow, and starts writes.
  void flush();
  /// `p` is no longer wanted: an unsent call is dropped at once, a sent one
  /// is told to stop in its worker (p completes when the worker answers).
  void cancel(Pending& p);
  /// A cancelled call did not stop in time: kill its worker if it may have
  /// started the call, else forget the call. Completes `p`.
  void give_up(Pending& p);

  int size() const noexcept { return options_.workers; }
  std::size_t concurrency() const noexcept { return options_.concurrency; }

 private:
  void start();
  void respawn();  // a replacement; on failure the pool is broken
  void watch(const std::shared_ptr<Worker>& w);
  void read_replies(const std::shared_ptr<Worker>& w);
  void read_stderr(const std::shared_ptr<Worker>& w);
  void on_frame(Worker& w, const char* frame, std::size_t size);
  void on_reply(Worker& w, const char* frame, std::size_t size);
  void on_stall_frame(const char* frame, std::size_t size);
  void on_gone(Worker& w);
  void fail_inflight(Worker& w, int status);
  void start_starting_failed(Worker& w, int status);
  void kill(Worker& w, int kind, std::uint64_t cause);
  void start_write(const std::shared_ptr<Worker>& w);
  void start_write(Worker& w);
  void maybe_retire(Worker& w);
  void send(Worker& w, Pending& p);
  void balance();
  void complete(Pending& p, std::exception_ptr error);
  void fail_queued(const std::exception_ptr& error);
  std::size_t allowed_inflight() const noexcept;

  boost::asio::io_context& io_;
  PoolOptions options_;
  std::vector<std::string> environment_;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::deque<Pending*> queue_;
  std::deque<Pending*> returned_;  // handed back by a stuck worker: first in line again
  boost::asio::steady_timer balance_timer_;
  bool balance_armed_ = false;
  std::uint64_t next_id_ = 1;
  double average_ns_ = 0;      // recent run time of one call (EWMA)
  std::exception_ptr broken_;  // the workers cannot start: every call fails with this
  bool shutting_down_ = false;
  bool started_ = false;
  bool warming_up_ = false;  // the first workers are still starting
};

}  // namespace concur::executors::processes
