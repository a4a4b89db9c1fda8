// SPDX-License-Identifier: BSL-1.0
// concur::ProgressLine: the progress line the demos draw, for applications.
//
// GatherOptions::on_progress hands over counts (done, failed, total); a
// ProgressLine turns them into one line on a terminal -- label, bar,
// done/total, rate, elapsed time and ETA -- redrawn in place:
//
// ```cpp
// #include <concur/concur.hpp>
//
// #include <vector>
//
// concur::Task<int> work(int i) { co_return i; }
//
// void with_progress(concur::Executor& ex) {
//   std::vector<decltype(concur::call(work, 0))> calls;
//   for (int i = 0; i < 1000; ++i) calls.push_back(concur::call(work, i));
//   // The line lives as long as the options: drawn during this gather, cleared after it.
//   ex.gather_settled(calls, {.on_progress = concur::progress_line("work")});
//
//   concur::ProgressLine line("again", calls.size());  // or one you hold
//   ex.gather_settled(calls, {.on_progress = line.callback()});
//   line.finish();
// }
// ```
//
// It draws only when its stream is a terminal (never into a pipe or a file),
// and only once the batch has run for `show_after`, so short batches print
// nothing. A ticker thread redraws every `redraw_every`, so elapsed time and
// ETA move even while no task finishes. The line fits the terminal's width
// (TIOCGWINSZ, read at every redraw) and is redrawn at once on SIGWINCH when
// the application has no SIGWINCH handler of its own (concur then installs
// one, which only wakes the ticker; with the application's handler in place
// a resize is followed at the next redraw). On a narrow terminal the bar
// shrinks first, then rate and elapsed time go, so the line never wraps.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "concur/options.hpp"

namespace concur {

struct ProgressLineOptions {
  /// false: draw nothing (e.g. for --json); the stream must also be a terminal.
  bool enabled = true;
  /// The terminal's file descriptor (standard error by default).
  int fd = 2;
  /// Nothing is drawn before the batch has run this long.
  std::chrono::milliseconds show_after{500};
  std::chrono::milliseconds redraw_every{200};
};

class ProgressLine {
 public:
  /// `total` 0: taken from the first Progress the callback receives.
  explicit ProgressLine(std::string label, std::size_t total = 0, ProgressLineOptions options = {});
  ~ProgressLine();  ///< finish()
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  /// For GatherOptions::on_progress. The line must outlive the gather.
  std::function<void(const Progress&)> callback();
  /// Records progress by hand. Thread-safe.
  void update(std::size_t done, std::size_t failed, std::size_t total = 0);
  /// Stops the ticker and clears the line. Idempotent.
  void finish();
  /// Whether it draws (enabled, and its stream is a terminal).
  bool active() const noexcept { return active_; }

  /// Clears the line being drawn, if any, so that text printed next starts
  /// clean; the line comes back at its next redraw. Call it before printing
  /// to the same terminal while a line runs.
  static void interrupt();

  /// The text of one line: label, bar, done/total, rate, elapsed, ETA and
  /// failures, at most `width` - 1 columns (0: no limit, a 24-column bar).
  static std::string render(const std::string& label, std::size_t done, std::size_t failed,
                            std::size_t total, double elapsed_s, int width = 0);

  /// The terminal width of `fd` in columns, or 0 if it is not a terminal.
  static int terminal_width(int fd) noexcept;

 private:
  void draw_locked();
  void clear_locked();
  void tick();
  // Sleeps up to `d`; false when finish() woke it, true otherwise (timeout,
  // or a SIGWINCH when `on_resize`).
  bool sleep_for(std::chrono::milliseconds d, bool on_resize);

  const std::string label_;
  const ProgressLineOptions options_;
  bool active_ = false;
  const std::chrono::steady_clock::time_point start_;
  int wake_[2] = {-1, -1};  // finish() writes a byte: the ticker stops at once
  std::mutex mutex_;
  std::size_t total_ = 0, done_ = 0, failed_ = 0;
  std::size_t drawn_columns_ = 0;  // columns of the line on screen; 0: none drawn
  bool stop_ = false;
  std::thread ticker_;
};

/// An on_progress callback that owns a ProgressLine labelled `label`: it draws
/// while the gather runs and clears the line when the last copy of the
/// callback is destroyed (when the gather's options are). One per gather.
std::function<void(const Progress&)> progress_line(std::string label,
                                                   ProgressLineOptions options = {});

}  // namespace concur
