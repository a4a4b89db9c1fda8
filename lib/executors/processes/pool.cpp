#include "executors/processes/pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <type_traits>

// clang-format off
// Boost 1.81's Process v2 headers use boost::optional and boost::remove_pointer
// without including them when built on std::filesystem (BOOST_PROCESS_USE_STD_FS),
#include <boost/optional.hpp>
#include <boost/type_traits/remove_pointer.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/stdio.hpp>
// and in header-only mode they never define process_environment::on_setup:
// its (non-inline) definition is compiled here, in this one translation unit.
#include <boost/process/v2/impl/environment.ipp>
// clang-format on

#include <fmt/format.h>

#include "concur/processes.hpp"
#include "concur/registry.hpp"
#include "concur/trace.hpp"
#include "executors/processes/protocol.hpp"

extern char** environ;

namespace concur::executors::processes {

namespace asio = boost::asio;
namespace bp = boost::process::v2;

namespace {

// How long a launched worker may take to say hello before the pool gives up
// on it (a program that forgot concur::init usually exits long before).
constexpr auto kStartTimeout = std::chrono::seconds(5);
// The window of calls in flight per worker: about this much work.
constexpr double kWindowNs = 1e6;
constexpr std::size_t kMaxWindow = 1024;

// Runs in the child between fork and exec: die with the parent. The flag
// survives exec; the worker sets it again and checks its parent in init.
struct DieWithParent {
  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&,
                               const char* const*) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    return {};
  }
};

// Puts `fd` at `target` in the child and keeps it open there (Boost 1.81's
// posix::bind_fd forgets to return from on_setup).
struct BindFd {
  int target;
  int fd;
  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                          const char* const*) {
    launcher.fd_whitelist.push_back(target);
    return {};
  }
  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&,
                               const char* const*) {
    if (::dup2(fd, target) == -1) return bp::error_code(errno, bp::system_category());
    return {};
  }
};

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return fmt::format("was killed by signal {} (SIG{}: {})", sig, abbrev ? abbrev : "?",
                       strsignal(sig));
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

std::string this_executable() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n > 0) return std::string(buf.data(), static_cast<std::size_t>(n));
  return "/proc/self/exe";
}

}  // namespace

struct Worker {
  explicit Worker(asio::io_context& io)
      : proc(io), sock(io), replies(io), err(io), hello_timer(io) {}
  enum class State { starting, ready, retiring, gone };
  struct Slot {
    std::uint64_t id;
    Pending* pending;  // null once abandoned (its reply is dropped)
  };

  bp::process proc;
  int pid = 0;
  asio::local::stream_protocol::socket sock;  // requests (the worker's stdin)
  asio::readable_pipe replies;                // hello and replies (the worker's fd 3)
  asio::readable_pipe err;
  asio::steady_timer hello_timer;
  State state = State::starting;
  bool killed = false;  // we killed it: a cancelled call did not stop
  bool start_timed_out = false;
  std::string out, writing;  // frames to send; frames being sent
  bool write_busy = false;
  std::string in;  // bytes received, in[0, in_len)
  std::size_t in_len = 0;
  std::array<char, 4096> err_buf{};
  std::string err_line;
  std::deque<Slot> inflight;  // sent, in send order: the worker answers in this order
  std::size_t assigned = 0;   // calls ever sent (max_tasks_per_child)
};

Pool::Pool(asio::io_context& io, PoolOptions options) : io_(io), options_(std::move(options)) {
  if (const char* marker = std::getenv(kWorkerVariable); marker != nullptr && *marker != '\0') {
    // We were launched as a worker but main() went on past where concur::init
    // would have served: refuse, or every worker would launch workers.
    throw WorkerStartError(
        fmt::format("concur processes executor: this process was launched as a worker but "
                    "never served calls: {} (it serves calls there and never returns)",
                    messages::kForgotInit));
  }
  if (options_.executable.empty()) {
    options_.executable = this_executable();
  } else if (::access(options_.executable.c_str(), X_OK) != 0) {
    throw WorkerStartError(fmt::format(
        "concur processes executor: worker_executable '{}' is not an executable file: {}",
        options_.executable, std::strerror(errno)));
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("CONCUR_INTERNAL_")) continue;
    environment_.emplace_back(entry);
  }
  environment_.push_back(std::string(kWorkerVariable) + "=1");
  environment_.push_back(fmt::format("{}={}", kParentVariable, getpid()));
}

// Workers start with the first call, not with the executor: an executor that
// is made but never used (or only lists executors) launches nothing.
void Pool::start() {
  started_ = true;
  warming_up_ = true;
  for (int i = 0; i < options_.workers && !broken_; ++i) respawn();
}

Pool::~Pool() {
  shutting_down_ = true;
  // Closing a worker's socket is its signal to exit.
  for (auto& w : workers_) {
    bp::error_code ec;
    w->sock.close(ec);
    // One that never said hello is not serving and will not notice: stop it.
    if (w->state == Worker::State::starting) ::kill(w->pid, SIGKILL);
  }
  for (auto& w : workers_) {
    bp::error_code ec;
    for (int i = 0; i < 2000 && w->proc.running(ec) && !ec; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ec && w->proc.running(ec)) w->proc.terminate(ec);
    (void)w->proc.detach();
    // Forward what the worker wrote to stderr last (it has exited: no blocking).
    const int fd = w->err.native_handle();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
      const ssize_t n = ::read(fd, w->err_buf.data(), w->err_buf.size());
      if (n <= 0) break;
      forward_stderr(*w, w->err_buf.data(), static_cast<std::size_t>(n), false);
    }
    forward_stderr(*w, nullptr, 0, true);
  }
}

std::shared_ptr<Worker> Pool::spawn() {
  auto w = std::make_shared<Worker>(io_);
  asio::local::stream_protocol::socket child(io_);
  asio::local::connect_pair(w->sock, child);
  ::fcntl(w->sock.native_handle(), F_SETFD, FD_CLOEXEC);
  ::fcntl(child.native_handle(), F_SETFD, FD_CLOEXEC);  // dup2 onto stdin clears it there
  // Big socket buffers let a window of requests go out in one write.
  const int bytes = 1 << 20;
  for (int fd : {w->sock.native_handle(), child.native_handle()}) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  // Replies come back on a pipe: a pipe write costs the kernel less than a
  // socket message, and the worker writes one per call.
  int reply_pipe[2];
  if (::pipe2(reply_pipe, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  ::fcntl(reply_pipe[0], F_SETPIPE_SZ, 1 << 20);  // best effort
  w->replies.assign(reply_pipe[0]);
  try {
    w->proc = bp::process(
        io_, options_.executable, std::vector<std::string>{}, bp::process_stdio{child, {}, w->err},
        bp::process_environment(environment_), DieWithParent{}, BindFd{kReplyFd, reply_pipe[1]});
  } catch (...) {
    ::close(reply_pipe[1]);
    throw;
  }
  ::close(reply_pipe[1]);
  w->pid = static_cast<int>(w->proc.id());
  child.close();
  w->in.resize(1 << 16);
  read_replies(w);
  read_stderr(w);
  w->hello_timer.expires_after(kStartTimeout);
  std::weak_ptr<Worker> weak = w;
  w->hello_timer.async_wait([this, weak](const bp::error_code& ec) {
    auto late = weak.lock();
    if (ec || !late || late->state != Worker::State::starting) return;
    bp::error_code avail_ec;
    int waiting = 0;
    ::ioctl(late->replies.native_handle(), FIONREAD, &waiting);
    if (waiting > 0) return;  // its hello is waiting to be read
    late->start_timed_out = true;
    ::kill(late->pid, SIGKILL);
    on_gone(*late);
  });
  return w;
}

void Pool::read_replies(const std::shared_ptr<Worker>& w) {
  if (w->in.size() - w->in_len < 4096) w->in.resize(w->in.size() * 2);
  w->replies.async_read_some(
      asio::buffer(w->in.data() + w->in_len, w->in.size() - w->in_len),
      [this, w](const bp::error_code& ec, std::size_t n) {
        if (ec) {
          on_gone(*w);
          return;
        }
        w->in_len += n;
        std::size_t pos = 0;
        while (w->in_len - pos >= kHeader && w->state != Worker::State::gone) {
          const auto size = load<std::uint32_t>(w->in.data() + pos);
          if (size > kMaxFrame) {
            std::fprintf(stderr, "concur: corrupt reply stream from worker %d; killing it\n",
                         w->pid);
            ::kill(w->pid, SIGKILL);
            on_gone(*w);
            return;
          }
          if (w->in_len - pos < 4 + std::size_t{size}) {
            if (4 + std::size_t{size} > w->in.size()) w->in.resize(4 + std::size_t{size});
            break;
          }
          on_frame(*w, w->in.data() + pos, 4 + std::size_t{size});
          pos += 4 + std::size_t{size};
        }
        if (w->state == Worker::State::gone) return;
        if (pos > 0) {
          std::memmove(w->in.data(), w->in.data() + pos, w->in_len - pos);
          w->in_len -= pos;
        }
        read_replies(w);
        flush();
      });
}

void Pool::read_stderr(const std::shared_ptr<Worker>& w) {
  w->err.async_read_some(asio::buffer(w->err_buf),
                         [this, w](const bp::error_code& ec, std::size_t n) {
                           if (ec) {
                             forward_stderr(*w, nullptr, 0, true);
                             return;
                           }
                           forward_stderr(*w, w->err_buf.data(), n, false);
                           read_stderr(w);
                         });
}

void Pool::forward_stderr(Worker& w, const char* data, std::size_t n, bool final) {
  w.err_line.append(data == nullptr ? "" : data, n);
  std::string out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = w.err_line.find('\n', start);
    if (nl == std::string::npos) break;
    out += fmt::format("[worker {}] ", w.pid);
    out.append(w.err_line, start, nl + 1 - start);
    start = nl + 1;
  }
  w.err_line.erase(0, start);
  if (final && !w.err_line.empty()) {
    out += fmt::format("[worker {}] {}\n", w.pid, w.err_line);
    w.err_line.clear();
  }
  if (!out.empty()) {
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t k = ::write(STDERR_FILENO, p, left);
      if (k <= 0) break;
      p += k;
      left -= static_cast<std::size_t>(k);
    }
  }
}

void Pool::on_frame(Worker& w, const char* frame, std::size_t size) {
  const auto kind = static_cast<Kind>(frame[4]);
  if (kind == Kind::hello) {
    w.state = Worker::State::ready;
    w.hello_timer.cancel();
  } else if (kind == Kind::reply && size >= kReplyPayloadAt) {
    on_reply(w, frame, size);
  }
}

void Pool::on_reply(Worker& w, const char* frame, std::size_t size) {
  const auto id = load<std::uint64_t>(frame + kReplyIdAt);
  const auto status = static_cast<Status>(load<std::uint8_t>(frame + kReplyStatusAt));
  const auto ns = load<std::uint64_t>(frame + kReplyNanosAt);
  if (w.inflight.empty() || w.inflight.front().id != id) {
    std::fprintf(stderr, "concur: worker %d answered a call it was not running; killing it\n",
                 w.pid);
    ::kill(w.pid, SIGKILL);
    on_gone(w);
    return;
  }
  Pending* p = w.inflight.front().pending;
  w.inflight.pop_front();
  average_ns_ = average_ns_ == 0 ? static_cast<double>(ns)
                                 : 0.9 * average_ns_ + 0.1 * static_cast<double>(ns);
  if (p != nullptr && trace::recording()) {
    // Lanes of a timeline: one per worker process (steady clock: one per host).
    const trace::Clock::time_point start{std::chrono::duration_cast<trace::Clock::duration>(
        std::chrono::nanoseconds(load<std::uint64_t>(frame + kReplyStartAt)))};
    trace::record_task(
        p->req->name, "processes", w.pid, start,
        start + std::chrono::duration_cast<trace::Clock::duration>(std::chrono::nanoseconds(ns)),
        status != Status::ok);
  }
  if (p != nullptr) {
    const std::string_view payload(frame + kReplyPayloadAt, size - kReplyPayloadAt);
    if (status == Status::ok) {
      p->req->reply.assign(payload);
      complete(*p, nullptr);
    } else if (status == Status::error) {
      std::exception_ptr error;
      try {
        Reader r(payload);
        auto mangled = r.get<std::string>();
        auto type = r.get<std::string>();
        auto message = r.get<std::string>();
        error = detail::rebuild_error(mangled, type, message);
      } catch (...) {
        error = std::current_exception();
      }
      complete(*p, error);
    } else {
      complete(*p, std::make_exception_ptr(Cancelled()));
    }
  }
  maybe_retire(w);
}

void Pool::maybe_retire(Worker& w) {
  if (options_.max_tasks_per_child == 0 || w.state != Worker::State::ready) return;
  if (w.assigned < options_.max_tasks_per_child || !w.inflight.empty()) return;
  // Recycle: its end-of-file makes it exit; a fresh worker takes its place.
  w.state = Worker::State::retiring;
  bp::error_code ec;
  w.sock.shutdown(asio::socket_base::shutdown_send, ec);
  if (!shutting_down_) respawn();
}

void Pool::on_gone(Worker& w) {
  if (w.state == Worker::State::gone) return;
  const Worker::State was = w.state;
  w.state = Worker::State::gone;
  bp::error_code ec;
  w.sock.close(ec);
  w.replies.close(ec);
  w.hello_timer.cancel();
  if (shutting_down_) return;

  // Reap it. Its socket closes as it exits, so this is normally immediate.
  int status = 0;
  bool reaped = false;
  for (int i = 0; i < 2000; ++i) {
    if (!w.proc.running(ec) || ec) {
      reaped = !ec;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!reaped && !ec) {
    w.proc.terminate(ec);
    reaped = !ec;
  }
  if (reaped) status = w.proc.native_exit_code();
  (void)w.proc.detach();

  // Keep the shared_ptr alive until this function returns.
  std::shared_ptr<Worker> keep;
  auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& x) { return x.get() == &w; });
  if (it != workers_.end()) {
    keep = *it;
    workers_.erase(it);
  }
  if (was == Worker::State::retiring) return;

  const std::string how = describe_status(status);
  if (was == Worker::State::starting) {
    const std::string why = fmt::format(
        "concur processes executor: {}: worker process {} ('{}') {}. Its {} (a launched worker "
        "serves calls there and never returns), or set worker_executable to a program that does",
        messages::kWorkerDidNotStart, w.pid, options_.executable,
        w.start_timed_out ? fmt::format("did not answer within {} s", kStartTimeout.count())
                          : how + " before it started serving calls",
        messages::kForgotInit);
    const bool any_ready = std::any_of(workers_.begin(), workers_.end(), [](const auto& x) {
      return x->state == Worker::State::ready || x->state == Worker::State::retiring;
    });
    if (any_ready) {
      // Others serve: go on with one lane fewer rather than relaunch in a loop.
      std::fprintf(stderr, "%s; going on with fewer workers\n", why.c_str());
      return;
    }
    // Not one worker serves: fail everything, stop the other starters, and
    // launch nothing more.
    if (!broken_) broken_ = std::make_exception_ptr(WorkerStartError(why));
    fail_queued(broken_);
    std::vector<std::shared_ptr<Worker>> starters;
    for (const auto& x : workers_) {
      if (x->state == Worker::State::starting) starters.push_back(x);
    }
    for (const auto& x : starters) {
      ::kill(x->pid, SIGKILL);
      on_gone(*x);
    }
    return;
  }

  // The oldest call without a reply is the one it was running.
  if (!w.inflight.empty()) {
    const Worker::Slot running = w.inflight.front();
    w.inflight.pop_front();
    if (running.pending != nullptr) {
      Pending& p = *running.pending;
      if (p.cancel_sent || w.killed) {
        complete(p, std::make_exception_ptr(Cancelled()));
      } else {
        complete(p, std::make_exception_ptr(WorkerCrashed(fmt::format(
                        "{} while running '{}': process {} {}; a new worker took its place",
                        messages::kWorkerCrashed, p.req->name, w.pid, how))));
      }
    }
    // The calls queued behind it never started: send them again, in order.
    for (auto rit = w.inflight.rbegin(); rit != w.inflight.rend(); ++rit) {
      Pending* p = rit->pending;
      if (p == nullptr) continue;
      if (p->cancel_sent) {
        complete(*p, std::make_exception_ptr(Cancelled()));
      } else {
        p->state = Pending::queued;
        p->worker = nullptr;
        queue_.push_front(p);
      }
    }
    w.inflight.clear();
  }
  respawn();
  flush();
}

void Pool::respawn() {
  try {
    workers_.push_back(spawn());
  } catch (const std::exception& e) {
    broken_ = std::make_exception_ptr(
        WorkerStartError(fmt::format("concur processes executor: cannot launch worker '{}': {}",
                                     options_.executable, e.what())));
    fail_queued(broken_);
  }
}

void Pool::fail_queued(const std::exception_ptr& error) {
  std::deque<Pending*> queued;
  queued.swap(queue_);
  for (Pending* p : queued) complete(*p, error);
}

void Pool::complete(Pending& p, std::exception_ptr error) {
  p.state = Pending::done;
  p.worker = nullptr;
  p.error = std::move(error);
  if (p.waiter != nullptr) detail::wake(*p.waiter, detail::Waiter::notified);
}

void Pool::submit(Pending& p) {
  if (!started_) start();
  if (broken_) {
    complete(p, broken_);
    return;
  }
  p.id = next_id_++;
  store<std::uint64_t>(p.req->frame, kCallIdAt, p.id);
  store<std::uint64_t>(p.req->frame, kCallTimeoutAt, static_cast<std::uint64_t>(p.budget.count()));
  end_frame(p.req->frame, 0);
  p.state = Pending::queued;
  queue_.push_back(&p);
}

std::size_t Pool::window() const noexcept {
  if (average_ns_ <= 0) return 1;
  return std::clamp<std::size_t>(static_cast<std::size_t>(kWindowNs / std::max(average_ns_, 1.0)),
                                 1, kMaxWindow);
}

void Pool::send(Worker& w, Pending& p) {
  p.state = Pending::sent;
  p.worker = &w;
  w.inflight.push_back({p.id, &p});
  ++w.assigned;
  w.out.append(p.req->frame);
  // A timed call's task arms its timer now that the call is on its way.
  if (p.budget.count() > 0 && p.waiter != nullptr)
    detail::wake(*p.waiter, detail::Waiter::notified);
}

void Pool::flush() {
  if (warming_up_) {
    // The first calls wait until every first worker has started (or failed),
    // so that a batch sees all its lanes instead of piling onto the quickest.
    warming_up_ = std::any_of(workers_.begin(), workers_.end(),
                              [](const auto& w) { return w->state == Worker::State::starting; });
  }
  // While a worker is still starting, give each ready worker one call at a
  // time: the window is judged from past calls (a warm-up of trivial ones
  // makes it large), and piling calls of unknown length onto the ready
  // workers would leave the starting one idle once it is up.
  const bool any_starting = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) {
    return w->state == Worker::State::starting;
  });
  const std::size_t win = any_starting ? 1 : window();
  while (!queue_.empty() && !warming_up_) {
    Worker* best = nullptr;
    for (auto& w : workers_) {
      if (w->state != Worker::State::ready || w->inflight.size() >= win) continue;
      if (options_.max_tasks_per_child != 0 && w->assigned >= options_.max_tasks_per_child)
        continue;
      if (best == nullptr || w->inflight.size() < best->inflight.size()) best = w.get();
    }
    if (best == nullptr) break;
    Pending* p = queue_.front();
    queue_.pop_front();
    send(*best, *p);
  }
  for (auto& w : workers_) start_write(w);
}

void Pool::start_write(const std::shared_ptr<Worker>& w) {
  if (w->write_busy || w->out.empty() || w->state == Worker::State::gone) return;
  w->write_busy = true;
  w->writing.swap(w->out);
  asio::async_write(w->sock, asio::buffer(w->writing),
                    [this, w](const bp::error_code& ec, std::size_t) {
                      w->write_busy = false;
                      w->writing.clear();
                      if (!ec) start_write(w);  // a failed write shows up as the read's error
                    });
}

void Pool::cancel(Pending& p) {
  if (p.state == Pending::queued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), &p));
    complete(p, std::make_exception_ptr(Cancelled()));
    return;
  }
  if (p.state != Pending::sent || p.cancel_sent || p.worker == nullptr) return;
  p.cancel_sent = true;
  Worker& w = *p.worker;
  const std::size_t at = begin_frame(w.out, Kind::cancel);
  append<std::uint64_t>(w.out, p.id);
  end_frame(w.out, at);
  for (auto& sp : workers_) {
    if (sp.get() == &w) start_write(sp);
  }
}

void Pool::give_up(Pending& p) {
  if (p.state != Pending::sent || p.worker == nullptr) return;
  Worker& w = *p.worker;
  if (!w.inflight.empty() && w.inflight.front().pending == &p) {
    // Stuck in the call: kill the worker; on_gone completes p and replaces it.
    w.killed = true;
    ::kill(w.pid, SIGKILL);
    on_gone(w);
    return;
  }
  // Still queued in the worker behind another call: forget it, drop its reply.
  for (auto& slot : w.inflight) {
    if (slot.pending == &p) slot.pending = nullptr;
  }
  complete(p, std::make_exception_ptr(Cancelled()));
}

}  // namespace concur::executors::processes
