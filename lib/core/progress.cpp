// SPDX-License-Identifier: BSL-1.0
#include "concur/progress.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <utility>

namespace concur {

namespace {

constexpr int kFullBar = 24;  // bar columns when the width allows
constexpr int kMinBar = 5;    // below this the bar is dropped

// The line drawing now (one at a time), for interrupt().
std::mutex g_active_mutex;
ProgressLine* g_active = nullptr;

// SIGWINCH: a self-pipe the handler writes one byte to, so a ticker
// sleeping in poll() redraws at once for the new width. Installed once, by
// the first line drawn, and only over the default disposition: an
// application's own handler is never replaced.
int g_winch_pipe[2] = {-1, -1};

extern "C" void on_sigwinch(int) {
  const int saved = errno;
  const char byte = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_winch_pipe[1], &byte, 1);  // full pipe: fine
  errno = saved;
}

void watch_resizes() {
  static const bool installed = [] {
    struct sigaction old {};
    if (::sigaction(SIGWINCH, nullptr, &old) != 0) return false;
    if ((old.sa_flags & SA_SIGINFO) != 0 ||
        (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
      return false;  // the application handles SIGWINCH itself
    if (::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    struct sigaction sa {};
    sa.sa_handler = &on_sigwinch;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return ::sigaction(SIGWINCH, &sa, nullptr) == 0;
  }();
  (void)installed;
}

std::string seconds_text(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "--";
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0fs", std::ceil(s));
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // a closed terminal: nothing more to draw
    off += static_cast<std::size_t>(n);
  }
}

// Columns a string takes: its UTF-8 code points (labels are plain text).
std::size_t columns(const std::string& s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

ProgressLine::ProgressLine(std::string label, std::size_t total, ProgressLineOptions options)
    : label_(std::move(label)),
      options_(options),
      start_(std::chrono::steady_clock::now()),
      total_(total) {
  if (!options.enabled || ::isatty(options.fd) != 1) return;
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) return;  // no pipe: draw nothing
  active_ = true;
  watch_resizes();
  {
    std::lock_guard lock(g_active_mutex);
    g_active = this;
  }
  ticker_ = std::thread([this] { tick(); });
}

ProgressLine::~ProgressLine() {
  finish();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

bool ProgressLine::sleep_for(std::chrono::milliseconds d, bool on_resize) {
  const auto until = std::chrono::steady_clock::now() + d;
  pollfd fds[2] = {{wake_[0], POLLIN, 0}, {g_winch_pipe[0], POLLIN, 0}};
  const nfds_t n = on_resize && g_winch_pipe[0] >= 0 ? 2 : 1;
  while (true) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    const int r = ::poll(fds, n, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return true;  // timeout (or a poll error: redraw as if it timed out)
    if ((fds[0].revents & POLLIN) != 0) return false;
    if (n == 2 && (fds[1].revents & POLLIN) != 0) {
      char buf[64];
      while (::read(g_winch_pipe[0], buf, sizeof buf) > 0) {
      }
      return true;
    }
  }
}

int ProgressLine::terminal_width(int fd) noexcept {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

void ProgressLine::interrupt() {
  std::lock_guard active(g_active_mutex);
  if (g_active == nullptr) return;
  std::lock_guard lock(g_active->mutex_);
  g_active->clear_locked();
}

std::function<void(const Progress&)> ProgressLine::callback() {
  if (!active_) return {};
  return [this](const Progress& p) { update(p.done, p.failed, p.total); };
}

void ProgressLine::update(std::size_t done, std::size_t failed, std::size_t total) {
  if (!active_) return;
  std::lock_guard lock(mutex_);
  done_ = done;
  failed_ = failed;
  if (total != 0) total_ = total;
  // The ticker draws; a finished batch is drawn at once so 100% is seen.
  if (done_ == total_ && drawn_columns_ != 0) draw_locked();
}

std::string ProgressLine::render(const std::string& label, std::size_t done, std::size_t failed,
                                 std::size_t total, double elapsed_s, int width) {
  const double frac =
      total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  const double eta = rate > 0 && total >= done ? static_cast<double>(total - done) / rate : -1;
  char buf[96];
  std::snprintf(buf, sizeof buf, " %zu/%zu", done, total);
  const std::string count = buf;
  std::snprintf(buf, sizeof buf, "  %.1f/s", rate);
  const std::string rate_text = buf;
  const std::string elapsed = "  elapsed " + seconds_text(elapsed_s);
  const std::string eta_text = "  ETA " + (done == total ? "0s" : seconds_text(eta));
  const std::string failures = failed > 0 ? "  " + std::to_string(failed) + " failed" : "";
  auto bar = [&](int n) {
    const int filled = static_cast<int>(frac * n);
    return " [" + std::string(static_cast<std::size_t>(filled), '#') +
           std::string(static_cast<std::size_t>(n - filled), '.') + "]";
  };
  if (width <= 0) return label + bar(kFullBar) + count + rate_text + elapsed + eta_text + failures;

  // Fit in width - 1 columns (the last column would wrap on some terminals):
  // shrink the bar, then drop the least useful parts, then cut the label.
  const std::size_t room = static_cast<std::size_t>(std::max(width - 1, 1));
  std::string tail = count + rate_text + elapsed + eta_text + failures;
  for (const std::string* drop : {&elapsed, &rate_text}) {
    const std::size_t fixed = columns(label) + 3 + columns(tail);
    if (fixed + kMinBar <= room) break;
    tail.erase(tail.find(*drop), drop->size());
  }
  const std::size_t fixed = columns(label) + 3 + columns(tail);  // 3: " [" and "]"
  if (fixed + kMinBar <= room) {
    const int n = static_cast<int>(std::min<std::size_t>(kFullBar, room - fixed));
    return label + bar(n) + tail;
  }
  std::string line = label + tail;
  if (columns(line) <= room) return line;
  // Still too wide: keep the counts (the tail's start) and cut the label.
  std::string cut;
  std::size_t used = 0;
  const std::size_t for_label = room > columns(tail) ? room - columns(tail) : 0;
  for (char c : label) {
    if ((c & 0xC0) != 0x80 && used == for_label) break;
    if ((c & 0xC0) != 0x80) ++used;
    cut += c;
  }
  line = cut + tail;
  // A terminal narrower than the counts: the first columns of them.
  std::string out;
  used = 0;
  for (char c : line) {
    if ((c & 0xC0) != 0x80 && used == room) break;
    if ((c & 0xC0) != 0x80) ++used;
    out += c;
  }
  return out;
}

void ProgressLine::clear_locked() {
  if (drawn_columns_ == 0) return;
  std::string out;
  // A line drawn for a wider terminal may have been wrapped by a narrower
  // one: go up to its first row, then clear to the end of the screen.
  const int width = terminal_width(options_.fd);
  if (width > 0 && drawn_columns_ > static_cast<std::size_t>(width)) {
    const std::size_t rows_up = (drawn_columns_ - 1) / static_cast<std::size_t>(width);
    out += "\033[" + std::to_string(rows_up) + "A";
  }
  out += "\r\033[J";
  write_all(options_.fd, out);
  drawn_columns_ = 0;
}

void ProgressLine::draw_locked() {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int width = terminal_width(options_.fd);
  const std::string line = render(label_, done_, failed_, total_, elapsed, width);
  clear_locked();
  write_all(options_.fd, line);
  drawn_columns_ = std::max<std::size_t>(columns(line), 1);
}

void ProgressLine::tick() {
  if (!sleep_for(options_.show_after, false)) return;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      if (total_ != 0) draw_locked();  // total not known yet: nothing to show
    }
    if (!sleep_for(options_.redraw_every, true)) return;
  }
}

void ProgressLine::finish() {
  if (!active_) return;
  {
    std::lock_guard active(g_active_mutex);
    if (g_active == this) g_active = nullptr;
  }
  {
    std::lock_guard lock(mutex_);
    if (stop_) return;
    stop_ = true;
  }
  const char byte = 0;
  [[maybe_unused]] const ssize_t n = ::write(wake_[1], &byte, 1);
  if (ticker_.joinable()) ticker_.join();
  std::lock_guard lock(mutex_);
  clear_locked();
}

std::function<void(const Progress&)> progress_line(std::string label, ProgressLineOptions options) {
  auto line = std::make_shared<ProgressLine>(std::move(label), 0, options);
  if (!line->active()) return {};
  return [line](const Progress& p) { line->update(p.done, p.failed, p.total); };
}

}  // namespace concur
