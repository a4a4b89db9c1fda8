// SPDX-License-Identifier: BSL-1.0
#include "executors/processes/last_words.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "executors/processes/protocol.hpp"

namespace concur::executors::processes {

namespace {

int g_fd = -1;
const RunningTable* g_table = nullptr;
std::atomic<bool> g_spoken{false};

// Writes once, whichever of the handlers gets there first. Only
// async-signal-safe calls: it may run inside a SIGSEGV handler.
void speak(int signal) noexcept {
  if (g_fd < 0 || g_table == nullptr || g_spoken.exchange(true)) return;
  LastWords words;
  words.id = g_table->call_of(detail::current_context());
  words.signal = signal;
  words.started = static_cast<std::uint32_t>(g_table->started(nullptr, 0));
  if (::write(g_fd, &words, sizeof words) != static_cast<ssize_t>(sizeof words)) return;
  // The ids in pieces, from a small buffer: this may run on a spare stack.
  std::uint64_t piece[256];
  for (std::size_t from = 0; from < g_table->size(); from += 256) {
    const std::size_t n = g_table->started_in(from, piece, 256);
    if (n > 0 && ::write(g_fd, piece, n * sizeof piece[0]) < 0) return;
  }
}

void on_fatal_signal(int sig) {
  speak(sig);
  // SA_RESETHAND restored the default action: returning re-runs the faulting
  // instruction (or abort() raises again), and the worker dies of `sig`.
}

void on_exit() { speak(0); }

}  // namespace

std::uint64_t RunningTable::call_of(const detail::Context* ctx) const noexcept {
  if (ctx == nullptr) return 0;
  while (ctx->parent() != nullptr) ctx = ctx->parent();
  for (std::size_t i = 0; i < slots_; ++i) {
    if (entries_[i].root.load(std::memory_order_relaxed) == ctx) {
      return entries_[i].id.load(std::memory_order_acquire);
    }
  }
  return 0;
}

std::size_t RunningTable::started(std::uint64_t* out, std::size_t n) const noexcept {
  std::size_t count = 0;
  for (std::size_t i = 0; i < slots_; ++i) {
    const std::uint64_t id = entries_[i].id.load(std::memory_order_acquire);
    if (id == 0) continue;
    if (count < n) out[count] = id;
    ++count;
  }
  return count;
}

std::size_t RunningTable::started_in(std::size_t from, std::uint64_t* out,
                                     std::size_t n) const noexcept {
  std::size_t count = 0;
  for (std::size_t i = from; i < slots_ && i < from + n; ++i) {
    const std::uint64_t id = entries_[i].id.load(std::memory_order_acquire);
    if (id != 0) out[count++] = id;
  }
  return count;
}

void install_last_words(int fd, const RunningTable* table) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  g_fd = fd;
  g_table = table;
  // A stack overflow has no stack left to run a handler on: give the main
  // thread (the event loop's) a spare one.
  static std::vector<char> spare(64 * 1024);
  stack_t ss{};
  ss.ss_sp = spare.data();
  ss.ss_size = spare.size();
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = &on_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
  std::atexit(&on_exit);
}

}  // namespace concur::executors::processes
