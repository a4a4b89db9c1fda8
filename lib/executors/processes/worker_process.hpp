// SPDX-License-Identifier: BSL-1.0
// One worker process as the parent sees it: launching it (Boost.Process v2)
// with its socket and pipes, its stderr forwarded line by line, and what is
// left of it once it is gone (exit status, last words). Scheduling calls onto
// workers is the Pool's job (pool.hpp).
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

// clang-format off
// Boost 1.81's Process v2 headers use boost::optional and boost::remove_pointer
// without including them when built on std::filesystem (BOOST_PROCESS_USE_STD_FS).
#include <boost/optional.hpp>
#include <boost/type_traits/remove_pointer.hpp>
#include <boost/process/v2/process.hpp>
// clang-format on

namespace concur::executors::processes {

struct Pending;

/// A worker that a cluster rank runs for us (executors/cluster): the parent
/// cannot signal or wait for it, so it asks the rank through this.
class RemoteHost {
 public:
  virtual ~RemoteHost() = default;
  /// Asks the rank to kill the worker now (SIGKILL); its replies then end.
  virtual void kill() noexcept = 0;
  /// The worker's wait status as its rank reported it, or -1 if not (yet) known.
  virtual int status() noexcept = 0;
  /// The bytes the worker left on its last-words pipe, as its rank read them.
  virtual std::string last_words() = 0;
  /// "rank 2 (host node7)": where it runs, for messages.
  virtual std::string where() const = 0;
};

struct Worker {
  explicit Worker(boost::asio::io_context& io)
      : proc(io), sock(io), replies(io), err(io), hello_timer(io) {}
  ~Worker();
  enum class State { starting, ready, retiring, gone };
  /// Why the parent killed it.
  enum class Kill { none, cancel_ignored, overdue };
  struct Slot {
    std::uint64_t id;
    Pending* pending;  // null once abandoned (its reply is dropped)
  };

  boost::process::v2::process proc;
  int pid = 0;
  boost::asio::local::stream_protocol::socket sock;  // requests (the worker's stdin)
  boost::asio::readable_pipe replies;                // hello and replies (the worker's fd 3)
  boost::asio::readable_pipe err;
  int last_words_fd = -1;              // the worker's fd 4, read once it is gone
  std::unique_ptr<RemoteHost> remote;  // set for a worker run by a cluster rank
  int site = 0;                        // which of the launcher's places runs it
  boost::asio::steady_timer hello_timer;
  State state = State::starting;
  bool start_timed_out = false;

  Kill killed = Kill::none;
  std::uint64_t kill_cause = 0;        // the call that made us kill it
  std::vector<std::uint64_t> started;  // with an overdue kill: the calls it had started
  bool started_known = false;

  std::string out, writing;  // frames to send; frames being sent
  bool write_busy = false;
  std::string in;  // bytes received, in[0, in_len)
  std::size_t in_len = 0;
  std::array<char, 4096> err_buf{};
  std::string err_line;

  std::deque<Slot> inflight;  // sent and unanswered, in send order
  std::size_t assigned = 0;   // calls ever given to it (max_tasks_per_child)
  // It handed calls back (revoked) without answering any: it is stuck in a
  // call, so it gets nothing more until it answers again.
  bool suspect = false;
  bool revoke_sent = false;
  std::chrono::steady_clock::time_point last_progress{};  // last answer, or first call
};

/// Launches `executable` as a worker with `environment` (the last-words
/// pipe, reply pipe and request socket set up); starts nothing else.
std::shared_ptr<Worker> launch_worker(boost::asio::io_context& io, const std::string& executable,
                                      const std::vector<std::string>& environment);

/// Writes what the worker printed on stderr to ours, each line prefixed
/// "[worker PID] "; `final` flushes a last line without its newline.
void forward_stderr(Worker& w, const char* data, std::size_t n, bool final);

/// Kills the worker at once (SIGKILL, or through its rank).
void kill_worker(Worker& w) noexcept;

/// Waits (briefly) for a gone worker and returns its wait status, or -1.
int reap(Worker& w);

/// After its socket closed at shutdown: waits up to `limit` for a local
/// worker to exit, then terminates it; forwards the last of its stderr.
void finish_worker(Worker& w, std::chrono::milliseconds limit);

/// "was killed by signal 11 (SIGSEGV: Segmentation fault)" and the like.
std::string describe_status(int status);

/// What the worker said as it died: the call that crashed it (0: unknown)
/// and the calls it had started, if it said anything.
struct Farewell {
  bool spoke = false;
  bool complete = false;  // every started id arrived
  std::uint64_t crasher = 0;
  std::vector<std::uint64_t> started;
};
Farewell read_last_words(Worker& w);
/// Parses last-words bytes (a LastWords header and the started ids).
Farewell parse_last_words(std::string_view bytes);

/// This program, for launching copies of it.
std::string this_executable();

}  // namespace concur::executors::processes
