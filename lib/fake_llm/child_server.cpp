// SPDX-License-Identifier: BSL-1.0
// ChildServer: concur-fake-llm in its own process, found through the
// "listening on http://HOST:PORT/v1" line it prints once it accepts.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/fake_llm.hpp"

namespace concur::fake_llm {

namespace {
constexpr std::string_view kReady = "listening on http://";
constexpr auto kStartTimeout = std::chrono::seconds(10);
}  // namespace

ChildServer::ChildServer(const std::string& program, const std::vector<std::string>& args) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("ChildServer: pipe: ") + std::strerror(errno));
  std::vector<std::string> argv_text{program, "--port", "0"};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(std::string("ChildServer: fork: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    // Die with the parent (even when it is killed), never linger as an orphan.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the parent died before prctl

    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(program.c_str(), argv.data());
    const std::string msg = "cannot run " + program + ": " + std::strerror(errno) + "\n";
    [[maybe_unused]] auto n = write(STDOUT_FILENO, msg.data(), msg.size());
    _exit(127);
  }
  close(fds[1]);
  out_fd_ = fds[0];

  // Read until the ready line, the child's exit, or the timeout.
  std::string seen;
  const auto until = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    if (const auto at = seen.find(kReady); at != std::string::npos) {
      const auto colon = seen.find(':', at + kReady.size());
      const auto end = seen.find('/', colon == std::string::npos ? at : colon);
      if (colon != std::string::npos && end != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(seen.substr(colon + 1, end - colon - 1)));
        return;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{out_fd_, POLLIN, 0};
    const int ready = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    char buf[512];
    const ssize_t n = ready > 0 ? read(out_fd_, buf, sizeof buf) : 0;
    if (n <= 0) break;  // timed out, or the child closed its output (exited)
    seen.append(buf, static_cast<std::size_t>(n));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  close(out_fd_);
  throw std::runtime_error("ChildServer: " + program + " did not start listening: " + seen);
}

ChildServer::~ChildServer() {
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  close(out_fd_);
}

std::string ChildServer::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

}  // namespace concur::fake_llm
