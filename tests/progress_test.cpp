// SPDX-License-Identifier: BSL-1.0
// concur::ProgressLine: the line fits the terminal's width (and follows a
// resize), draws only on a terminal, and progress_line() serves
// GatherOptions::on_progress directly. Drawn on a pseudo-terminal whose
// window size the test sets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/progress.hpp>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using concur::ProgressLine;

namespace {

std::size_t columns(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

TEST(ProgressLine, RenderFitsEveryWidth) {
  const std::string label = "thread_pool / translate";
  for (int width : {200, 120, 80, 60, 50, 40, 30, 20, 12, 5, 1}) {
    SCOPED_TRACE(width);
    const std::string line = ProgressLine::render(label, 1234, 5, 10000, 61.5, width);
    EXPECT_LE(columns(line), static_cast<std::size_t>(std::max(width - 1, 1))) << line;
    if (width >= 30) {
      EXPECT_NE(line.find("1234/10000"), std::string::npos) << line;
    }
    if (width >= 80) {
      EXPECT_NE(line.find(label), std::string::npos) << line;
      EXPECT_NE(line.find("ETA"), std::string::npos) << line;
      EXPECT_NE(line.find("5 failed"), std::string::npos) << line;
      EXPECT_NE(line.find('['), std::string::npos) << "a bar at " << width << ": " << line;
    }
  }
  // No width: the full line with a 24-column bar.
  const std::string full = ProgressLine::render("x", 12, 0, 24, 1.0, 0);
  EXPECT_NE(full.find("[" + std::string(12, '#') + std::string(12, '.') + "]"), std::string::npos)
      << full;
  EXPECT_NE(full.find("elapsed 1s"), std::string::npos) << full;
}

// A pseudo-terminal: the library draws on `slave`, the test reads `master`.
struct Pty {
  int master = -1, slave = -1;
  Pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    EXPECT_GE(master, 0);
    EXPECT_EQ(::grantpt(master), 0);
    EXPECT_EQ(::unlockpt(master), 0);
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    EXPECT_GE(slave, 0);
    ::fcntl(master, F_SETFL, O_NONBLOCK);
  }
  ~Pty() {
    ::close(slave);
    ::close(master);
  }
  void resize(int cols) {
    winsize ws{};
    ws.ws_row = 24;
    ws.ws_col = static_cast<unsigned short>(cols);
    ASSERT_EQ(::ioctl(slave, TIOCSWINSZ, &ws), 0);
  }
  std::string drain() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) out.append(buf, n);
    return out;
  }
};

// The drawn lines: the text between the escape sequences.
std::vector<std::string> drawn_lines(const std::string& out) {
  std::vector<std::string> lines;
  std::string cur;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\033') {  // CSI ... final byte
      if (!cur.empty()) lines.push_back(cur);
      cur.clear();
      ++i;
      while (i + 1 < out.size() && !(out[i + 1] >= 0x40 && out[i + 1] <= 0x7E && out[i + 1] != '['))
        ++i;
      ++i;
    } else if (out[i] == '\r' || out[i] == '\n') {
      if (!cur.empty()) lines.push_back(cur);
      cur.clear();
    } else {
      cur += out[i];
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

TEST(ProgressLine, DrawsWithinTheTerminalWidthAndFollowsAResize) {
  Pty pty;
  pty.resize(50);
  ProgressLine line("fibers / a long label for a narrow terminal", 100,
                    {.fd = pty.slave, .show_after = 0ms, .redraw_every = 10ms});
  ASSERT_TRUE(line.active());
  line.update(10, 1);
  std::this_thread::sleep_for(100ms);
  std::vector<std::string> at50 = drawn_lines(pty.drain());
  ASSERT_FALSE(at50.empty());
  for (const auto& l : at50) EXPECT_LE(columns(l), 49u) << l;
  EXPECT_NE(at50.back().find("10/100"), std::string::npos) << at50.back();

  pty.resize(30);
  line.update(50, 1);
  std::this_thread::sleep_for(100ms);
  std::vector<std::string> at30 = drawn_lines(pty.drain());
  ASSERT_FALSE(at30.empty());
  EXPECT_LE(columns(at30.back()), 29u) << at30.back();
  EXPECT_NE(at30.back().find("50/100"), std::string::npos) << at30.back();

  line.finish();
  const std::string cleared = pty.drain();
  EXPECT_NE(cleared.find("\033[J"), std::string::npos) << "finish() clears the line";
}

// Waits (up to `limit`) until the terminal shows a drawn line.
std::vector<std::string> wait_for_lines(Pty& pty, std::chrono::seconds limit) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    out += pty.drain();
    if (!drawn_lines(out).empty()) break;
    std::this_thread::sleep_for(5ms);
  }
  return drawn_lines(out);
}

// A resize is redrawn at once on SIGWINCH, not at the next tick (a minute
// away here); finish() returns at once too, however long the tick.
TEST(ProgressLine, RedrawsOnSigwinch) {
  Pty pty;
  pty.resize(80);
  const auto t0 = std::chrono::steady_clock::now();
  {
    ProgressLine line("fibers / a label that needs some room to show in full", 100,
                      {.fd = pty.slave, .show_after = 0ms, .redraw_every = 60s});
    line.update(10, 0);
    ASSERT_FALSE(wait_for_lines(pty, 10s).empty()) << "the first draw";
    pty.resize(30);
    ::raise(SIGWINCH);  // what the terminal sends its foreground process group
    const std::vector<std::string> lines = wait_for_lines(pty, 10s);
    ASSERT_FALSE(lines.empty()) << "no redraw after SIGWINCH";
    EXPECT_LE(columns(lines.back()), 29u) << lines.back();
    EXPECT_NE(lines.back().find("10/100"), std::string::npos) << lines.back();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "finish() waited for the tick";
}

TEST(ProgressLine, DrawsNothingIntoAPipeOrWhenDisabled) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    ProgressLine into_pipe("x", 10, {.fd = fds[1], .show_after = 0ms});
    EXPECT_FALSE(into_pipe.active());
    EXPECT_FALSE(static_cast<bool>(into_pipe.callback()));
  }
  Pty pty;
  ProgressLine disabled("x", 10, {.enabled = false, .fd = pty.slave, .show_after = 0ms});
  EXPECT_FALSE(disabled.active());
  ::close(fds[0]);
  ::close(fds[1]);
}

concur::Task<int> nap(int i) {
  co_await concur::sleep_for(5ms);
  co_return i;
}

// progress_line() as GatherOptions::on_progress: drawn during the gather,
// cleared when the gather's options are gone.
TEST(ProgressLine, ProgressLineHelperDrawsDuringAGather) {
  Pty pty;
  pty.resize(60);
  auto ex = concur::make_executor(concur::Config{});
  std::vector<decltype(concur::call(nap, 0))> calls;
  for (int i = 0; i < 40; ++i) calls.push_back(concur::call(nap, i));
  auto rs = ex->gather_settled(
      calls, {.limit = 2,
              .on_progress = concur::progress_line(
                  "naps", {.fd = pty.slave, .show_after = 0ms, .redraw_every = 20ms})});
  EXPECT_EQ(rs.size(), 40u);
  const std::string out = pty.drain();
  const std::vector<std::string> lines = drawn_lines(out);
  ASSERT_FALSE(lines.empty()) << out;
  for (const auto& l : lines) EXPECT_LE(columns(l), 59u) << l;
  EXPECT_NE(lines.back().find("40/40"), std::string::npos) << lines.back();
  EXPECT_GE(out.rfind("\033[J"), out.rfind("40/40")) << "the line is cleared after the gather";
}

}  // namespace
