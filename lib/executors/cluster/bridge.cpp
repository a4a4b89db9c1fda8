// SPDX-License-Identifier: BSL-1.0
#include "executors/cluster/bridge.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/request.hpp>
#include <boost/mpi/status.hpp>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "executors/cluster/idle_backoff.hpp"
#include "executors/cluster/wire.hpp"
#include "executors/cluster/world.hpp"
#include "executors/processes/protocol.hpp"

namespace concur::executors::cluster {

namespace asio = boost::asio;
namespace mpi = boost::mpi;
using processes::Worker;

namespace {

constexpr std::size_t kChunk = 1 << 20;

// One worker's life on one rank, from its start to its end. The fds are
// the bridge's ends of the pool's streams, used by the bridge thread only.
struct Link {
  Link(int r, std::uint64_t e) : rank(r), epoch(e) {}
  const int rank;
  const std::uint64_t epoch;
  int requests = -1;  // the pool writes requests; the bridge reads them
  int replies = -1;   // the bridge writes replies; the pool reads them
  int err = -1;       // the bridge writes the worker's stderr
  std::mutex mutex;   // guards what the rank reported of its end:
  int status = -1;
  std::string last_words;

  void close_replies() {
    for (int* fd : {&replies, &err}) {
      if (*fd >= 0) ::close(std::exchange(*fd, -1));
    }
  }
  ~Link() {
    close_replies();
    if (requests >= 0) ::close(requests);
  }
};

void write_all(int& fd, std::string_view bytes) {
  while (fd >= 0 && !bytes.empty()) {
    const ssize_t k = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (k > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(k));
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      ::close(std::exchange(fd, -1));  // the pool has let go of this worker
    }
  }
}

class Bridge {
 public:
  static Bridge& get() {
    // Leaked: it must outlive every pool, and stop_bridge() joins it at exit.
    static Bridge* bridge = new Bridge();
    return *bridge;
  }
  static bool running() noexcept { return started_.load(std::memory_order_acquire); }

  void attach(std::shared_ptr<Link> link, std::string body) {
    post({Command::attach, std::move(link), std::move(body)});
  }
  void kill(std::shared_ptr<Link> link) { post({Command::kill, std::move(link), {}}); }

  void stop() noexcept {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Command {
    enum Kind { attach, kill } kind;
    std::shared_ptr<Link> link;
    std::string body;
  };
  struct Send {
    std::string bytes;
    mpi::request request;
  };

  Bridge() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (wake_fd_ < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
    thread_ = std::thread([this] { run(); });
    started_.store(true, std::memory_order_release);
  }

  void post(Command c) {
    {
      std::lock_guard lock(mutex_);
      commands_.push_back(std::move(c));
    }
    wake();
  }
  void wake() noexcept {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  void run() {
    IdleBackoff idle;
    for (;;) {
      std::vector<Command> commands;
      bool stopping = false;
      {
        std::lock_guard lock(mutex_);
        commands.swap(commands_);
        stopping = stopping_;
      }
      if (stopping) break;
      bool busy = !commands.empty();
      for (auto& c : commands) {
        if (c.kind == Command::attach) {
          links_.push_back(c.link);
          send(c.link->rank, Tag::start, message(c.link->epoch, c.body));
        } else {
          send(c.link->rank, Tag::kill, message(c.link->epoch));
        }
      }
      busy |= read_requests();
      busy |= receive();
      std::erase_if(links_, [](const auto& l) { return l->requests < 0 && l->replies < 0; });
      for (auto it = sends_.begin(); it != sends_.end();) {
        it = it->request.test() ? sends_.erase(it) : std::next(it);
      }
      if (busy) {
        idle.reset();
      } else {
        wait(idle.next());
      }
    }
  }

  // What the pool wrote for each rank's worker goes to that rank.
  bool read_requests() {
    bool any = false;
    for (auto& l : links_) {
      while (l->requests >= 0) {
        std::string m = message(l->epoch);
        m.resize(8 + kChunk);
        const ssize_t n = ::read(l->requests, m.data() + 8, kChunk);
        if (n > 0) {
          m.resize(8 + static_cast<std::size_t>(n));
          send(l->rank, Tag::data, std::move(m));
          any = true;
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        // The pool closed it (its shutdown, or the worker is done for).
        ::close(std::exchange(l->requests, -1));
        send(l->rank, Tag::close, message(l->epoch));
        any = true;
      }
    }
    return any;
  }

  bool receive() {
    bool any = false;
    mpi::communicator& w = world();
    while (auto st = w.iprobe(mpi::any_source, mpi::any_tag)) {
      any = true;
      const int n = st->count<char>().value_or(0);
      std::string m(static_cast<std::size_t>(n), '\0');
      w.recv(st->source(), st->tag(), m.data(), n);
      deliver(st->source(), st->tag(), m);
    }
    return any;
  }

  void deliver(int rank, int tag, std::string_view m) {
    const std::uint64_t epoch = epoch_of(m);
    Link* l = nullptr;
    for (auto& x : links_) {
      if (x->rank == rank && x->epoch == epoch) l = x.get();
    }
    if (l == nullptr) return;  // a worker the pool has forgotten
    if (tag == Tag::data) {
      write_all(l->replies, body_of(m));
    } else if (tag == Tag::err) {
      write_all(l->err, body_of(m));
    } else if (tag == Tag::gone) {
      const std::string_view body = body_of(m);
      {
        std::lock_guard lock(l->mutex);
        if (body.size() >= 4) std::memcpy(&l->status, body.data(), 4);
        l->last_words.assign(body.size() >= 4 ? body.substr(4) : std::string_view{});
      }
      // Its end of file tells the pool; what it asks next is answered above.
      l->close_replies();
    }
  }

  void send(int rank, int tag, std::string m) {
    sends_.emplace_back();
    auto& s = sends_.back();
    s.bytes = std::move(m);
    s.request = world().isend(rank, tag, s.bytes.data(), static_cast<int>(s.bytes.size()));
  }

  void wait(std::chrono::microseconds timeout) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    for (auto& l : links_) {
      if (l->requests >= 0) fds.push_back({l->requests, POLLIN, 0});
    }
    ::poll(fds.data(), fds.size(), static_cast<int>((timeout.count() + 999) / 1000));
    std::uint64_t drained;
    (void)!::read(wake_fd_, &drained, sizeof drained);
  }

  const int wake_fd_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Command> commands_;
  bool stopping_ = false;
  static inline std::atomic<bool> started_{false};
  // The bridge thread's own:
  std::vector<std::shared_ptr<Link>> links_;
  std::list<Send> sends_;
};

class RankHost final : public processes::RemoteHost {
 public:
  explicit RankHost(std::shared_ptr<Link> link) : link_(std::move(link)) {}
  void kill() noexcept override {
    try {
      Bridge::get().kill(link_);
    } catch (...) {
    }
  }
  int status() noexcept override {
    std::lock_guard lock(link_->mutex);
    return link_->status;
  }
  std::string last_words() override {
    std::lock_guard lock(link_->mutex);
    return link_->last_words;
  }
  std::string where() const override {
    const auto& h = hosts();
    const auto r = static_cast<std::size_t>(link_->rank);
    return r < h.size() ? fmt::format("rank {} ({})", link_->rank, h[r])
                        : fmt::format("rank {}", link_->rank);
  }

 private:
  std::shared_ptr<Link> link_;
};

// A connected pair of stream sockets: ours for the pool, the other for the bridge.
std::pair<int, int> stream_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error(fmt::format("socketpair: {}", std::strerror(errno)));
  }
  const int bytes = 1 << 20;
  for (int fd : fds) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  return {fds[0], fds[1]};
}

std::string setting_of(const std::vector<std::string>& environment) {
  const std::string key = std::string(processes::kSettingsVariable) + "=";
  for (const auto& e : environment) {
    if (e.starts_with(key)) return e.substr(key.size());
  }
  return {};
}

}  // namespace

std::shared_ptr<Worker> launch_on_ranks(asio::io_context& io, const std::string& executable,
                                        const std::vector<std::string>& environment,
                                        const std::vector<int>& sites) {
  int site = -1;
  for (int r = 0; r < ranks() && site < 0; ++r) {
    if (std::find(sites.begin(), sites.end(), r) == sites.end()) site = r;
  }
  if (site < 0) throw std::runtime_error("every rank of the job already runs a worker");
  if (site == 0) {
    auto w = processes::launch_worker(io, executable, environment);
    w->site = 0;
    return w;
  }
  static std::atomic<std::uint64_t> next_epoch{1};
  auto link = std::make_shared<Link>(site, next_epoch.fetch_add(1));
  auto w = std::make_shared<Worker>(io);
  const auto [req_pool, req_bridge] = stream_pair();
  const auto [rep_pool, rep_bridge] = stream_pair();
  const auto [err_pool, err_bridge] = stream_pair();
  w->sock.assign(asio::local::stream_protocol(), req_pool);
  w->replies.assign(rep_pool);
  w->err.assign(err_pool);
  ::fcntl(req_bridge, F_SETFL, ::fcntl(req_bridge, F_GETFL) | O_NONBLOCK);
  link->requests = req_bridge;
  link->replies = rep_bridge;
  link->err = err_bridge;
  w->in.resize(1 << 16);
  w->site = site;
  w->remote = std::make_unique<RankHost>(link);
  std::string body;
  put_string(body, setting_of(environment));
  put_string(body, executable);
  Bridge::get().attach(std::move(link), std::move(body));
  return w;
}

void stop_bridge() noexcept {
  if (Bridge::running()) Bridge::get().stop();
}

}  // namespace concur::executors::cluster
