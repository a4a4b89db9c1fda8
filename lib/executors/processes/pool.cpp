// SPDX-License-Identifier: BSL-1.0
#include "executors/processes/pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "concur/log.hpp"
#include "concur/processes.hpp"
#include "concur/registry.hpp"
#include "concur/trace.hpp"
#include "executors/processes/protocol.hpp"
#include "executors/processes/worker_process.hpp"

extern char** environ;

namespace concur::executors::processes {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

// How long a launched worker may take to say hello before the pool gives up
// on it (a program that forgot concur::init usually exits long before).
constexpr auto kStartTimeout = std::chrono::seconds(5);
// Calls in flight per worker beyond its slots: about this much work.
constexpr double kWindowNs = 1e6;
constexpr std::size_t kMaxWindow = 1024;
// A worker that has answered nothing for this long (and at least several
// recent call times) while another is idle is asked for its unstarted calls.
constexpr auto kStuckAfter = std::chrono::milliseconds(20);

// The pool's own messages go through the program's log hook (concur/log.hpp).
void log_line(const std::string& line) { concur::log(concur::LogLevel::error, line); }

}  // namespace

Pool::Pool(asio::io_context& io, PoolOptions options)
    : io_(io), options_(std::move(options)), balance_timer_(io) {
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
  options_.concurrency = std::max<std::size_t>(1, options_.concurrency);
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("CONCUR_INTERNAL_")) continue;
    environment_.emplace_back(entry);
  }
  environment_.push_back(std::string(kWorkerVariable) + "=1");
  environment_.push_back(fmt::format("{}={}", kParentVariable, getpid()));
  environment_.push_back(fmt::format("{}={}", kSettingsVariable, options_.settings));
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
  balance_timer_.cancel();
  // Closing a worker's socket is its signal to exit.
  for (auto& w : workers_) {
    boost::system::error_code ec;
    w->sock.close(ec);
    // One that never said hello is not serving and will not notice: stop it.
    if (w->state == Worker::State::starting) kill_worker(*w);
  }
  for (auto& w : workers_) finish_worker(*w, std::chrono::milliseconds(2000));
}

void Pool::respawn() {
  try {
    std::vector<int> sites;
    for (const auto& x : workers_) sites.push_back(x->site);
    auto w = options_.launch ? options_.launch(io_, options_.executable, environment_, sites)
                             : launch_worker(io_, options_.executable, environment_);
    workers_.push_back(w);
    watch(w);
  } catch (const std::exception& e) {
    broken_ = std::make_exception_ptr(
        WorkerStartError(fmt::format("concur {} executor: cannot launch worker '{}': {}",
                                     options_.executor_name, options_.executable, e.what())));
    fail_queued(broken_);
  }
}

void Pool::watch(const std::shared_ptr<Worker>& w) {
  read_replies(w);
  read_stderr(w);
  w->hello_timer.expires_after(kStartTimeout);
  std::weak_ptr<Worker> weak = w;
  w->hello_timer.async_wait([this, weak](const boost::system::error_code& ec) {
    auto late = weak.lock();
    if (ec || !late || late->state != Worker::State::starting) return;
    int waiting = 0;
    ::ioctl(late->replies.native_handle(), FIONREAD, &waiting);
    if (waiting > 0) return;  // its hello is waiting to be read
    late->start_timed_out = true;
    kill_worker(*late);
    on_gone(*late);
  });
}

void Pool::read_replies(const std::shared_ptr<Worker>& w) {
  if (w->in.size() - w->in_len < 4096) w->in.resize(w->in.size() * 2);
  w->replies.async_read_some(
      asio::buffer(w->in.data() + w->in_len, w->in.size() - w->in_len),
      [this, w](const boost::system::error_code& ec, std::size_t n) {
        if (ec) {
          on_gone(*w);
          return;
        }
        w->in_len += n;
        std::size_t pos = 0;
        while (w->in_len - pos >= kHeader && w->state != Worker::State::gone) {
          const auto size = load<std::uint32_t>(w->in.data() + pos);
          if (size > kMaxFrame) {
            log_line(
                fmt::format("concur: corrupt reply stream from worker {}; killing it", w->pid));
            kill_worker(*w);
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
                         [this, w](const boost::system::error_code& ec, std::size_t n) {
                           if (ec) {
                             forward_stderr(*w, nullptr, 0, true);
                             return;
                           }
                           forward_stderr(*w, w->err_buf.data(), n, false);
                           read_stderr(w);
                         });
}

void Pool::on_frame(Worker& w, const char* frame, std::size_t size) {
  const auto kind = static_cast<Kind>(frame[4]);
  if (kind == Kind::hello) {
    // A rank's worker is known by the pid it reports (ours we launched).
    if (w.remote && size >= kHeader + 4)
      w.pid = static_cast<int>(load<std::uint32_t>(frame + kHeader));
    w.state = Worker::State::ready;
    w.hello_timer.cancel();
  } else if (kind == Kind::reply && size >= kReplyFixed) {
    on_reply(w, frame, size);
  } else if (kind == Kind::stall) {
    on_stall_frame(frame, size);
  }
}

void Pool::on_stall_frame(const char* frame, std::size_t size) {
  constexpr std::size_t kName = kHeader + 8 + 8 + 1;
  if (size < kName + 2 || !options_.on_stall) return;
  const auto held = load<std::uint64_t>(frame + kHeader);
  const bool ongoing = load<std::uint8_t>(frame + kHeader + 16) != 0;
  const auto n = std::min<std::size_t>(load<std::uint16_t>(frame + kName), size - kName - 2);
  options_.on_stall(std::string_view(frame + kName + 2, n),
                    std::chrono::nanoseconds(static_cast<std::int64_t>(held)), ongoing);
}

void Pool::on_reply(Worker& w, const char* frame, std::size_t size) {
  const auto id = load<std::uint64_t>(frame + kReplyIdAt);
  const auto status = static_cast<Status>(load<std::uint8_t>(frame + kReplyStatusAt));
  const auto ns = load<std::uint64_t>(frame + kReplyNanosAt);
  // Answers come mostly in send order: look from the front.
  const auto it = std::find_if(w.inflight.begin(), w.inflight.end(),
                               [id](const Worker::Slot& s) { return s.id == id; });
  if (it == w.inflight.end()) {
    log_line(fmt::format("concur: worker {} answered a call it was not given; killing it", w.pid));
    kill_worker(w);
    on_gone(w);
    return;
  }
  Pending* p = it->pending;

  if (status == Status::overdue) {
    // It ignores its timeout or cancellation: the worker must go. It starts
    // nothing more, so the calls it lists are all a kill can hit.
    const std::size_t at = kReplyFixed;
    if (size >= at + 4) {
      const auto n = load<std::uint32_t>(frame + at);
      w.started.clear();
      for (std::uint32_t i = 0; i < n && at + 4 + (i + 1) * 8 <= size; ++i) {
        w.started.push_back(load<std::uint64_t>(frame + at + 4 + i * 8));
      }
      w.started_known = true;
    }
    kill(w, static_cast<int>(Worker::Kill::overdue), id);
    return;
  }

  w.inflight.erase(it);
  if (status == Status::returned) {
    // Handed back unstarted: first in line again, on another worker.
    --w.assigned;
    w.suspect = true;
    if (p != nullptr) {
      p->state = Pending::queued;
      p->worker = nullptr;
      returned_.push_back(p);
    }
    return;
  }
  w.suspect = false;
  w.revoke_sent = false;
  w.last_progress = SteadyClock::now();
  if (ns > 0) {
    average_ns_ = average_ns_ == 0 ? static_cast<double>(ns)
                                   : 0.9 * average_ns_ + 0.1 * static_cast<double>(ns);
  }
  if (p != nullptr && trace::recording() && status != Status::cancelled) {
    // Lanes of a timeline: one per worker process (steady clock: one per host).
    const trace::Clock::time_point start{std::chrono::duration_cast<trace::Clock::duration>(
        std::chrono::nanoseconds(load<std::uint64_t>(frame + kReplyStartAt)))};
    const auto waits_n = load<std::uint32_t>(frame + kReplyWaitsAt);
    std::vector<std::pair<trace::Clock::time_point, trace::Clock::time_point>> waits;
    for (std::uint32_t i = 0; i < waits_n && kReplyFixed + (i + 1) * 16 <= size; ++i) {
      const auto b = load<std::uint64_t>(frame + kReplyFixed + i * 16);
      const auto e = load<std::uint64_t>(frame + kReplyFixed + i * 16 + 8);
      waits.emplace_back(trace::Clock::time_point(std::chrono::nanoseconds(b)),
                         trace::Clock::time_point(std::chrono::nanoseconds(e)));
    }
    trace::record_task(
        p->req->name, options_.executor_name, w.pid, start,
        start + std::chrono::duration_cast<trace::Clock::duration>(std::chrono::nanoseconds(ns)),
        status != Status::ok, waits);
  }
  if (p != nullptr) {
    const std::size_t payload_at =
        kReplyFixed + std::size_t{load<std::uint32_t>(frame + kReplyWaitsAt)} * 16;
    const std::string_view payload(frame + std::min(payload_at, size),
                                   size - std::min(payload_at, size));
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

void Pool::kill(Worker& w, int kind, std::uint64_t cause) {
  w.killed = static_cast<Worker::Kill>(kind);
  w.kill_cause = cause;
  kill_worker(w);
  on_gone(w);
}

void Pool::maybe_retire(Worker& w) {
  if (options_.max_tasks_per_child == 0 || w.state != Worker::State::ready) return;
  if (w.assigned < options_.max_tasks_per_child || !w.inflight.empty()) return;
  // Recycle: its end-of-file makes it exit; a fresh worker takes its place.
  w.state = Worker::State::retiring;
  boost::system::error_code ec;
  w.sock.shutdown(asio::socket_base::shutdown_send, ec);
  if (!shutting_down_) respawn();
}

void Pool::on_gone(Worker& w) {
  if (w.state == Worker::State::gone) return;
  const Worker::State was = w.state;
  w.state = Worker::State::gone;
  boost::system::error_code ec;
  w.sock.close(ec);
  w.replies.close(ec);
  w.hello_timer.cancel();
  if (shutting_down_) return;
  const int status = reap(w);

  // Keep the shared_ptr alive until this function returns.
  std::shared_ptr<Worker> keep;
  auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& x) { return x.get() == &w; });
  if (it != workers_.end()) {
    keep = *it;
    workers_.erase(it);
  }
  if (was == Worker::State::retiring) return;
  if (was == Worker::State::starting) {
    start_starting_failed(w, status);
    return;
  }
  fail_inflight(w, status);
  respawn();
  flush();
}

void Pool::start_starting_failed(Worker& w, int status) {
  const std::string why = fmt::format(
      "concur processes executor: {}: worker process {} ('{}') {}. Its {} (a launched worker "
      "serves calls there and never returns), or set worker_executable to a program that does",
      messages::kWorkerDidNotStart, w.pid, options_.executable,
      w.start_timed_out ? fmt::format("did not answer within {} s", kStartTimeout.count())
                        : describe_status(status) + " before it started serving calls",
      messages::kForgotInit);
  const bool any_ready = std::any_of(workers_.begin(), workers_.end(), [](const auto& x) {
    return x->state == Worker::State::ready || x->state == Worker::State::retiring;
  });
  if (any_ready) {
    // Others serve: go on with one lane fewer rather than relaunch in a loop.
    log_line(why + "; going on with fewer workers");
    flush();
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
    kill_worker(*x);
    on_gone(*x);
  }
}

// The worker died with calls unanswered. Those it had started fail (the
// one whose code killed it named as such, the others as in flight beside
// it); those it had not started go out again, first in line.
void Pool::fail_inflight(Worker& w, int status) {
  const Farewell words = w.killed == Worker::Kill::none ? read_last_words(w) : Farewell{};
  const bool list_known = words.complete || w.started_known;
  const std::vector<std::uint64_t>& listed = w.started_known ? w.started : words.started;
  const std::uint64_t culprit = w.killed != Worker::Kill::none ? w.kill_cause : words.crasher;

  std::string culprit_name;
  bool culprit_cancelled = false;
  for (const auto& s : w.inflight) {
    if (s.id != culprit || s.pending == nullptr) continue;
    culprit_name = std::string(s.pending->req->name);
    culprit_cancelled = s.pending->cancel_sent;
  }
  const std::string how = describe_status(status);
  std::size_t position = 0;
  std::deque<Pending*> again;
  std::vector<Pending*> maybe_started;
  for (const auto& s : w.inflight) {
    const bool started = list_known ? std::find(listed.begin(), listed.end(), s.id) != listed.end()
                                    : position < options_.concurrency;
    ++position;
    Pending* p = s.pending;
    if (p == nullptr) continue;
    if (p->cancel_sent) {
      complete(*p, std::make_exception_ptr(Cancelled()));
    } else if (!started) {
      p->state = Pending::queued;
      p->worker = nullptr;
      again.push_back(p);
    } else {
      maybe_started.push_back(p);
    }
  }
  // Without a name from the worker, a lone started call is the one it ran.
  const bool lone = culprit == 0 && maybe_started.size() == 1;
  for (Pending* p : maybe_started) {
    const bool is_culprit = lone || (culprit != 0 && p->id == culprit);
    if (is_culprit && w.killed == Worker::Kill::overdue) {
      complete(*p, std::make_exception_ptr(TimeoutError(fmt::format(
                       "{} {} ms (in '{}'); it ignored the timeout, so its worker process {} "
                       "was killed",
                       messages::kTimedOut,
                       std::chrono::duration_cast<std::chrono::milliseconds>(p->timeout).count(),
                       p->req->name, w.pid))));
    } else if (is_culprit && w.killed == Worker::Kill::cancel_ignored) {
      complete(*p, std::make_exception_ptr(Cancelled()));
    } else if (is_culprit) {
      complete(*p, std::make_exception_ptr(WorkerCrashed(fmt::format(
                       "{} while running '{}': process {} {}; a new worker took its place",
                       messages::kWorkerCrashed, p->req->name, w.pid, how))));
    } else if (w.killed != Worker::Kill::none) {
      complete(*p, std::make_exception_ptr(WorkerCrashed(fmt::format(
                       "{} while this call was in flight on it: process {} was killed because "
                       "'{}' did not stop {}; a new worker took its place",
                       messages::kWorkerCrashed, w.pid, culprit_name,
                       culprit_cancelled ? "when it was cancelled" : "at its timeout"))));
    } else {
      complete(*p, std::make_exception_ptr(WorkerCrashed(fmt::format(
                       "{} while this call was in flight on it: process {} {}{}; a new worker "
                       "took its place",
                       messages::kWorkerCrashed, w.pid, how,
                       culprit_name.empty() ? std::string()
                                            : fmt::format(" while running '{}'", culprit_name)))));
    }
  }
  w.inflight.clear();
  for (auto rit = again.rbegin(); rit != again.rend(); ++rit) queue_.push_front(*rit);
}

void Pool::fail_queued(const std::exception_ptr& error) {
  std::deque<Pending*> queued;
  queued.swap(queue_);
  for (Pending* p : returned_) queued.push_front(p);
  returned_.clear();
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
  store<std::uint64_t>(p.req->frame, kCallTimeoutAt, static_cast<std::uint64_t>(p.timeout.count()));
  store<std::uint8_t>(p.req->frame, kCallFlagsAt, trace::recording() ? kRecordWaits : 0);
  end_frame(p.req->frame, 0);
  p.state = Pending::queued;
  queue_.push_back(&p);
}

std::size_t Pool::allowed_inflight() const noexcept {
  if (average_ns_ <= 0) return options_.concurrency;
  const auto window = std::clamp<std::size_t>(
      static_cast<std::size_t>(kWindowNs / std::max(average_ns_, 1.0)), 1, kMaxWindow);
  return std::max(options_.concurrency, window);
}

void Pool::send(Worker& w, Pending& p) {
  if (w.inflight.empty()) w.last_progress = SteadyClock::now();
  p.state = Pending::sent;
  p.worker = &w;
  w.inflight.push_back({p.id, &p});
  ++w.assigned;
  w.out.append(p.req->frame);
}

void Pool::flush() {
  if (!returned_.empty()) {
    queue_.insert(queue_.begin(), returned_.begin(), returned_.end());
    returned_.clear();
  }
  if (warming_up_) {
    // The first calls wait until every first worker has started (or failed),
    // so that a batch sees all its lanes instead of piling onto the quickest.
    warming_up_ = std::any_of(workers_.begin(), workers_.end(),
                              [](const auto& w) { return w->state == Worker::State::starting; });
  }
  // While a worker is still starting, fill only the free slots of the ready
  // ones: the window is judged from past calls (a warm-up of trivial ones
  // makes it large), and piling calls of unknown length onto the ready
  // workers would leave the starting one idle once it is up.
  const bool any_starting = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) {
    return w->state == Worker::State::starting;
  });
  const std::size_t allowed = any_starting ? options_.concurrency : allowed_inflight();
  while (!queue_.empty() && !warming_up_) {
    Worker* best = nullptr;
    for (auto& w : workers_) {
      if (w->state != Worker::State::ready || w->suspect || w->inflight.size() >= allowed) continue;
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
  balance();
}

// A worker that answers nothing for a while, with calls waiting behind the
// one it is stuck in, while another worker is idle: ask for its unstarted
// calls back (a call stuck in a CPU loop must not hold innocent ones).
void Pool::balance() {
  if (!queue_.empty() || workers_.size() < 2) return;
  const bool someone_idle = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) {
    return w->state == Worker::State::ready && !w->suspect && w->inflight.empty();
  });
  if (!someone_idle) return;
  const auto now = SteadyClock::now();
  const auto stuck_after = std::max<SteadyClock::duration>(
      kStuckAfter, std::chrono::nanoseconds(static_cast<long long>(8 * average_ns_)));
  auto next = SteadyClock::time_point::max();
  for (auto& w : workers_) {
    if (w->state != Worker::State::ready || w->revoke_sent || w->inflight.size() < 2) continue;
    if (now - w->last_progress >= stuck_after) {
      w->revoke_sent = true;
      const std::size_t at = begin_frame(w->out, Kind::revoke);
      end_frame(w->out, at);
      start_write(w);
    } else {
      next = std::min(next, w->last_progress + stuck_after);
    }
  }
  if (next != SteadyClock::time_point::max() && !balance_armed_) {
    balance_armed_ = true;
    balance_timer_.expires_at(next);
    balance_timer_.async_wait([this](const boost::system::error_code& ec) {
      balance_armed_ = false;
      if (!ec && !shutting_down_) flush();
    });
  }
}

void Pool::start_write(const std::shared_ptr<Worker>& w) {
  if (w->write_busy || w->out.empty() || w->state == Worker::State::gone) return;
  w->write_busy = true;
  w->writing.swap(w->out);
  asio::async_write(w->sock, asio::buffer(w->writing),
                    [this, w](const boost::system::error_code& ec, std::size_t) {
                      w->write_busy = false;
                      w->writing.clear();
                      if (!ec) start_write(w);  // a failed write shows up as the read's error
                    });
}

void Pool::start_write(Worker& w) {
  for (auto& sp : workers_) {
    if (sp.get() == &w) start_write(sp);
  }
}

void Pool::cancel(Pending& p) {
  if (p.state == Pending::queued) {
    auto it = std::find(queue_.begin(), queue_.end(), &p);
    if (it != queue_.end()) {
      queue_.erase(it);
    } else {
      returned_.erase(std::find(returned_.begin(), returned_.end(), &p));
    }
    complete(p, std::make_exception_ptr(Cancelled()));
    return;
  }
  if (p.state != Pending::sent || p.cancel_sent || p.worker == nullptr) return;
  p.cancel_sent = true;
  Worker& w = *p.worker;
  const std::size_t at = begin_frame(w.out, Kind::cancel);
  append<std::uint64_t>(w.out, p.id);
  end_frame(w.out, at);
  start_write(w);
}

void Pool::give_up(Pending& p) {
  if (p.state != Pending::sent || p.worker == nullptr) return;
  Worker& w = *p.worker;
  // Started calls are among the oldest `concurrency` unanswered ones.
  std::size_t position = 0;
  for (auto& slot : w.inflight) {
    if (slot.pending == &p) break;
    ++position;
  }
  if (position < options_.concurrency) {
    // Stuck in the call: kill the worker; fail_inflight completes p and replaces it.
    kill(w, static_cast<int>(Worker::Kill::cancel_ignored), p.id);
    return;
  }
  // Still queued in the worker behind other calls: forget it, drop its reply.
  for (auto& slot : w.inflight) {
    if (slot.pending == &p) slot.pending = nullptr;
  }
  complete(p, std::make_exception_ptr(Cancelled()));
}

}  // namespace concur::executors::processes
