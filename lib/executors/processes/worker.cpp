// SPDX-License-Identifier: BSL-1.0
// The entry of a launched worker: concur::init lands here and never returns
// (the server itself is in worker_server.cpp).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "executors/processes/last_words.hpp"
#include "executors/processes/protocol.hpp"
#include "executors/processes/worker_server.hpp"

namespace concur::executors::processes {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "concur worker %d: %s\n", static_cast<int>(getpid()), what);
  std::fflush(stderr);
  _exit(70);
}

// Moves fd `fd` above the protocol's fds, close-on-exec, so that nothing the
// worker starts inherits it and user code cannot stumble on it.
int take_over(int fd) {
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, kLastWordsFd + 1);
  if (moved < 0) die("cannot take over the request socket and reply pipes");
  return moved;
}

}  // namespace

void serve_if_worker() {
  const char* marker = std::getenv(kWorkerVariable);
  if (marker == nullptr || *marker == '\0') return;
  // Die with the parent even if it is killed outright (no chance to close
  // our socket); the socket's end-of-file covers the rest.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (const char* parent = std::getenv(kParentVariable)) {
    if (std::atoi(parent) != static_cast<int>(getppid())) _exit(0);  // parent already gone
  }
  WorkerSettings settings;
  try {
    const char* text = std::getenv(kSettingsVariable);
    settings = WorkerSettings::parse(text != nullptr ? text : "");
  } catch (const std::exception& e) {
    die(e.what());
  }
  // Requests arrive on stdin (a socket), replies leave on fd 3 and last
  // words on fd 4 (pipes). Stdin becomes /dev/null so user code reading it
  // cannot steal protocol bytes.
  const int in_fd = take_over(STDIN_FILENO);
  const int out_fd = take_over(kReplyFd);
  const int last_fd = take_over(kLastWordsFd);
  close(kReplyFd);
  close(kLastWordsFd);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    close(null_fd);
  }
  unsetenv(kWorkerVariable);
  unsetenv(kParentVariable);
  unsetenv(kSettingsVariable);
  signal(SIGPIPE, SIG_IGN);
  // Never destroyed: a call that calls exit() runs static destructors while
  // the reader thread still uses the server.
  auto* server = new Server(in_fd, out_fd, std::move(settings));
  install_last_words(last_fd, &server->running_table());
  server->run();
}

}  // namespace concur::executors::processes
