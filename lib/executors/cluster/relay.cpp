// SPDX-License-Identifier: BSL-1.0
// A relay rank: one worker process at a time, its streams carried to and
// from rank 0. MPI offers no file descriptor to wait on, so the loop polls:
// at once while bytes move, then sleeping longer each idle round up to
// kIdleSleepMax (a blocking MPI receive would spin a core: Open MPI's
// progress engine busy-polls, 1.37 s of CPU per idle 2 s measured here).
#include "executors/cluster/relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/mpi/communicator.hpp>
#include <boost/mpi/request.hpp>
#include <boost/mpi/status.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "executors/cluster/idle_backoff.hpp"
#include "executors/cluster/wire.hpp"
#include "executors/processes/protocol.hpp"
#include "executors/processes/worker_process.hpp"

extern char** environ;

namespace concur::executors::cluster {

namespace mpi = boost::mpi;
using processes::Worker;

namespace {

constexpr std::size_t kChunk = 1 << 20;

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

class Relay {
 public:
  explicit Relay(mpi::communicator& world) : world_(world) {}

  void run() {
    IdleBackoff idle;
    while (!leaving_) {
      bool busy = receive();
      busy |= pump();
      reap_sends();
      if (busy) {
        idle.reset();
      } else {
        wait(idle.next());
      }
    }
    leave();
  }

 private:
  // Messages from rank 0.
  bool receive() {
    bool any = false;
    while (auto st = world_.iprobe(0, mpi::any_tag)) {
      any = true;
      const int n = st->count<char>().value_or(0);
      std::string m(static_cast<std::size_t>(n), '\0');
      world_.recv(0, st->tag(), m.data(), n);
      handle(st->tag(), m);
      if (leaving_) break;
    }
    return any;
  }

  void handle(int tag, std::string_view m) {
    const std::uint64_t epoch = epoch_of(m);
    const bool current = worker_ && epoch == epoch_;
    switch (tag) {
      case Tag::start:
        start(epoch, body_of(m));
        break;
      case Tag::data:
        if (current) to_worker_.append(body_of(m));
        break;
      case Tag::kill:
        if (current) processes::kill_worker(*worker_);
        break;
      case Tag::close:
        if (current) close_after_flush_ = true;
        break;
      case Tag::shutdown:
        leaving_ = true;
        break;
      default:
        break;
    }
  }

  void start(std::uint64_t epoch, std::string_view body) {
    if (worker_) end_worker(true);
    std::size_t at = 0;
    const std::string settings(get_string(body, at));
    std::string executable(get_string(body, at));
    if (executable.empty()) executable = processes::this_executable();
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      if (!std::string_view(*e).starts_with("CONCUR_INTERNAL_")) env.emplace_back(*e);
    }
    env.push_back(std::string(processes::kWorkerVariable) + "=1");
    env.push_back(fmt::format("{}={}", processes::kParentVariable, getpid()));
    env.push_back(fmt::format("{}={}", processes::kSettingsVariable, settings));
    epoch_ = epoch;
    to_worker_.clear();
    close_after_flush_ = false;
    try {
      worker_ = processes::launch_worker(io_, executable, env);
    } catch (const std::exception& e) {
      send(Tag::err, message(epoch, fmt::format("concur cluster relay on rank {}: cannot launch "
                                                "worker '{}': {}\n",
                                                world_.rank(), executable, e.what())));
      std::string gone = message(epoch);
      const std::int32_t status = -1;
      gone.append(reinterpret_cast<const char*>(&status), sizeof status);
      send(Tag::gone, std::move(gone));
      return;
    }
    set_nonblocking(worker_->sock.native_handle());
    set_nonblocking(worker_->replies.native_handle());
    set_nonblocking(worker_->err.native_handle());
    err_open_ = true;
  }

  // Moves bytes between the worker and MPI; true if any moved.
  bool pump() {
    if (!worker_) return false;
    bool any = false;
    if (err_open_) any |= drain(worker_->err.native_handle(), Tag::err, err_open_);
    bool replies_open = true;
    any |= drain(worker_->replies.native_handle(), Tag::data, replies_open);
    if (!to_worker_.empty()) {
      const ssize_t k =
          ::send(worker_->sock.native_handle(), to_worker_.data(), to_worker_.size(), MSG_NOSIGNAL);
      if (k > 0) {
        to_worker_.erase(0, static_cast<std::size_t>(k));
        any = true;
      }
    }
    if (close_after_flush_ && to_worker_.empty()) {
      ::shutdown(worker_->sock.native_handle(), SHUT_WR);
      close_after_flush_ = false;
    }
    if (!replies_open) {
      end_worker(false);
      any = true;
    }
    return any;
  }

  // Reads what `fd` has and sends it as `tag`; `open` turns false at its end.
  bool drain(int fd, int tag, bool& open) {
    bool any = false;
    for (int round = 0; round < 8; ++round) {
      std::string m = message(epoch_);
      m.resize(8 + kChunk);
      const ssize_t n = ::read(fd, m.data() + 8, kChunk);
      if (n > 0) {
        m.resize(8 + static_cast<std::size_t>(n));
        send(tag, std::move(m));
        any = true;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) open = false;
      break;
    }
    return any;
  }

  // The worker's replies ended: it is gone (or, with `kill`, must go now).
  // Tells rank 0 how it died and what it said as it did.
  void end_worker(bool kill) {
    if (kill) processes::kill_worker(*worker_);
    bool open = err_open_;
    while (open && drain(worker_->err.native_handle(), Tag::err, open)) {
    }
    const std::int32_t status = processes::reap(*worker_);
    std::string gone = message(epoch_);
    gone.append(reinterpret_cast<const char*>(&status), sizeof status);
    if (worker_->last_words_fd >= 0) {
      set_nonblocking(worker_->last_words_fd);
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(worker_->last_words_fd, buf, sizeof buf);
        if (n <= 0) break;
        gone.append(buf, static_cast<std::size_t>(n));
      }
    }
    send(Tag::gone, std::move(gone));
    worker_.reset();
    to_worker_.clear();
  }

  void send(int tag, std::string m) {
    sends_.emplace_back();
    auto& s = sends_.back();
    s.bytes = std::move(m);
    s.request = world_.isend(0, tag, s.bytes.data(), static_cast<int>(s.bytes.size()));
  }

  void reap_sends() {
    for (auto it = sends_.begin(); it != sends_.end();) {
      it = it->request.test() ? sends_.erase(it) : std::next(it);
    }
  }

  void wait(std::chrono::microseconds timeout) {
    std::vector<pollfd> fds;
    if (worker_) {
      fds.push_back({worker_->replies.native_handle(), POLLIN, 0});
      if (err_open_) fds.push_back({worker_->err.native_handle(), POLLIN, 0});
      if (!to_worker_.empty()) fds.push_back({worker_->sock.native_handle(), POLLOUT, 0});
    }
    if (fds.empty()) {
      ::usleep(static_cast<useconds_t>(timeout.count()));
    } else {
      ::poll(fds.data(), fds.size(), static_cast<int>((timeout.count() + 999) / 1000));
    }
  }

  // Rank 0's program is over: the worker ends with its stdin, and every
  // message sent so far is delivered before MPI ends.
  void leave() {
    if (worker_) {
      ::shutdown(worker_->sock.native_handle(), SHUT_WR);
      bool open = true;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (open && std::chrono::steady_clock::now() < until) {
        if (!drain(worker_->replies.native_handle(), Tag::data, open)) ::usleep(1000);
      }
      end_worker(open);
    }
    while (!sends_.empty()) {
      reap_sends();
      if (!sends_.empty()) ::usleep(100);
    }
  }

  struct Send {
    std::string bytes;
    mpi::request request;
  };

  mpi::communicator& world_;
  boost::asio::io_context io_;  // holds the worker's handles; never run
  std::shared_ptr<Worker> worker_;
  std::uint64_t epoch_ = 0;
  std::string to_worker_;
  bool close_after_flush_ = false;
  bool err_open_ = false;
  bool leaving_ = false;
  std::list<Send> sends_;
};

}  // namespace

void run_relay(mpi::communicator& world) {
  ::signal(SIGPIPE, SIG_IGN);
  Relay(world).run();
}

}  // namespace concur::executors::cluster
