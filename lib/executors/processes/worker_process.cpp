// SPDX-License-Identifier: BSL-1.0
#include "executors/processes/worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

// clang-format off
#include <boost/asio/local/connect_pair.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/stdio.hpp>
// In header-only mode Boost 1.81 never defines process_environment::on_setup:
// its (non-inline) definition is compiled here, in this one translation unit.
#include <boost/process/v2/impl/environment.ipp>
// clang-format on

#include <fmt/format.h>

#include "executors/processes/protocol.hpp"

namespace concur::executors::processes {

namespace asio = boost::asio;
namespace bp = boost::process::v2;

namespace {

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

struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
  int take_read() { return std::exchange(read, -1); }
};

}  // namespace

Worker::~Worker() {
  if (last_words_fd >= 0) ::close(last_words_fd);
}

std::string this_executable() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n > 0) return std::string(buf.data(), static_cast<std::size_t>(n));
  return "/proc/self/exe";
}

std::string describe_status(int status) {
  if (status < 0) return "ended (its status is unknown)";
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return fmt::format("was killed by signal {} (SIG{}: {})", sig, abbrev ? abbrev : "?",
                       strsignal(sig));
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

std::shared_ptr<Worker> launch_worker(asio::io_context& io, const std::string& executable,
                                      const std::vector<std::string>& environment) {
  auto w = std::make_shared<Worker>(io);
  asio::local::stream_protocol::socket child(io);
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
  Pipe replies, last_words;
  ::fcntl(replies.read, F_SETPIPE_SZ, 1 << 20);     // best effort
  ::fcntl(last_words.read, F_SETPIPE_SZ, 1 << 20);  // room for many started ids
  w->proc =
      bp::process(io, executable, std::vector<std::string>{}, bp::process_stdio{child, {}, w->err},
                  bp::process_environment(environment), DieWithParent{},
                  BindFd{kReplyFd, replies.write}, BindFd{kLastWordsFd, last_words.write});
  w->replies.assign(replies.take_read());
  w->last_words_fd = last_words.take_read();
  w->pid = static_cast<int>(w->proc.id());
  child.close();
  w->in.resize(1 << 16);
  return w;
}

void forward_stderr(Worker& w, const char* data, std::size_t n, bool final) {
  w.err_line.append(data == nullptr ? "" : data, n);
  std::string out;
  std::size_t start = 0;
  const std::string prefix = w.remote ? fmt::format("[worker {} on {}] ", w.pid, w.remote->where())
                                      : fmt::format("[worker {}] ", w.pid);
  for (;;) {
    const std::size_t nl = w.err_line.find('\n', start);
    if (nl == std::string::npos) break;
    out += prefix;
    out.append(w.err_line, start, nl + 1 - start);
    start = nl + 1;
  }
  w.err_line.erase(0, start);
  if (final && !w.err_line.empty()) {
    out += prefix + w.err_line + "\n";
    w.err_line.clear();
  }
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    const ssize_t k = ::write(STDERR_FILENO, p, left);
    if (k <= 0) break;
    p += k;
    left -= static_cast<std::size_t>(k);
  }
}

void kill_worker(Worker& w) noexcept {
  if (w.remote) {
    w.remote->kill();
  } else if (w.pid > 0) {
    ::kill(w.pid, SIGKILL);
  }
}

int reap(Worker& w) {
  if (w.remote) return w.remote->status();
  // Its pipes close as it exits, so this is normally immediate.
  bp::error_code ec;
  int status = -1;
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
  return status;
}

void finish_worker(Worker& w, std::chrono::milliseconds limit) {
  if (!w.remote) {
    bp::error_code ec;
    for (auto i = limit.count(); i > 0 && w.proc.running(ec) && !ec; --i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ec && w.proc.running(ec)) w.proc.terminate(ec);
    (void)w.proc.detach();
  }
  // Forward what the worker wrote to stderr last (a local one has exited,
  // a remote one's rank writes what it has: no blocking either way).
  const int fd = w.err.native_handle();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  for (;;) {
    const ssize_t n = ::read(fd, w.err_buf.data(), w.err_buf.size());
    if (n <= 0) break;
    forward_stderr(w, w.err_buf.data(), static_cast<std::size_t>(n), false);
  }
  forward_stderr(w, nullptr, 0, true);
}

Farewell read_last_words(Worker& w) {
  if (w.remote) return parse_last_words(w.remote->last_words());
  if (w.last_words_fd < 0) return {};
  ::fcntl(w.last_words_fd, F_SETFL, ::fcntl(w.last_words_fd, F_GETFL) | O_NONBLOCK);
  std::string bytes;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(w.last_words_fd, buf, sizeof buf);
    if (n <= 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  return parse_last_words(bytes);
}

Farewell parse_last_words(std::string_view bytes) {
  Farewell f;
  if (bytes.size() < sizeof(LastWords)) return f;
  LastWords words;
  std::memcpy(&words, bytes.data(), sizeof words);
  f.spoke = true;
  f.crasher = words.id;
  const std::size_t ids = (bytes.size() - sizeof words) / sizeof(std::uint64_t);
  f.complete = ids >= words.started;
  for (std::size_t i = 0; i < std::min<std::size_t>(ids, words.started); ++i) {
    f.started.push_back(load<std::uint64_t>(bytes.data() + sizeof words + i * 8));
  }
  return f;
}

}  // namespace concur::executors::processes
