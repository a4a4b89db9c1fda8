// SPDX-License-Identifier: BSL-1.0
#include "interrupt.hpp"

#include <semaphore.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace concur::demo {

namespace {

// What the handler may touch: plain data set before it is installed.
sem_t g_pressed;
std::atomic<int> g_presses{0};
std::atomic<bool> g_closing{false};
std::string g_first_message;  // written before the handler is installed, then only read
std::string g_again_message;

extern "C" void on_sigint(int) {
  if (g_presses.fetch_add(1) == 0) {
    (void)!::write(2, g_first_message.data(), g_first_message.size());
    ::sem_post(&g_pressed);
  } else {
    (void)!::write(2, g_again_message.data(), g_again_message.size());
    ::_exit(Interrupt::kExitCode);
  }
}

}  // namespace

Interrupt::Interrupt(std::string program, std::string first_message, std::function<void()> on_first)
    : on_first_(std::move(on_first)) {
  if (first_message.empty()) {
    first_message = "stopping: cancelling what runs, printing what has finished";
  }
  g_first_message = "\n" + program + ": " + first_message + " (Ctrl-C again to leave now)\n";
  g_again_message = "\n" + program + ": left at once\n";
  g_presses = 0;
  g_closing = false;
  if (::sem_init(&g_pressed, 0, 0) != 0) throw std::runtime_error("sem_init failed");
  watcher_ = std::thread([this] {
    while (::sem_wait(&g_pressed) != 0 && errno == EINTR) {
    }
    if (g_closing.load()) return;
    source_.request_stop();
    if (on_first_) on_first_();
  });
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
}

void Interrupt::ignore_until_installed() noexcept {
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

Interrupt::~Interrupt() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  g_closing = true;
  ::sem_post(&g_pressed);
  watcher_.join();
  ::sem_destroy(&g_pressed);
}

}  // namespace concur::demo
