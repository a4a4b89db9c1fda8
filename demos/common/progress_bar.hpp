// A one-line progress bar on stderr for long batches, drawn only when stderr
// is a terminal (so pipes, --json consumers and tests never see it).
#pragma once

#include <unistd.h>

#include <chrono>
#include <concur/options.hpp>
#include <cstdio>
#include <string>

namespace concur::demo {

class ProgressBar {
 public:
  /// Draws nothing for batches smaller than `min_total` inputs.
  ProgressBar(std::string label, std::size_t total, std::size_t min_total = 20)
      : label_(std::move(label)), on_(total >= min_total && isatty(STDERR_FILENO) == 1) {}
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { finish(); }

  /// Suits GatherOptions::on_progress (called serially). Redraws at most
  /// ten times a second, and always at the end.
  void update(const Progress& p) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (p.done < p.total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int kWidth = 30;
    const int filled = p.total == 0 ? kWidth : static_cast<int>(kWidth * p.done / p.total);
    std::fprintf(stderr, "\r%s [%s%s] %zu/%zu%s", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), p.done, p.total,
                 p.failed ? (", " + std::to_string(p.failed) + " failed").c_str() : "");
    drawn_ = true;
  }

  /// Clears the bar's line.
  void finish() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  std::string label_;
  bool on_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace concur::demo
