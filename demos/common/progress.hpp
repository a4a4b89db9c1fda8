// A progress line on stderr for long demo runs: done/total, rate and ETA.
//
//   concur::demo::ProgressMeter meter("thread_pool / cpu", calls.size(), !json);
//   ex->gather_settled(calls, {.on_progress = meter.callback()});
//   meter.finish();
//
// It draws only when stderr is a terminal and the caller allows it (never
// with --json, never into a pipe), and only once the run has lasted half a
// second, so short runs print nothing. A ticker thread redraws every 200 ms,
// so elapsed time and ETA move even while no task finishes.
#pragma once

#include <chrono>
#include <concur/options.hpp>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace concur::demo {

class ProgressMeter {
 public:
  /// `allowed`: false for --json and the like; stderr must also be a TTY.
  ProgressMeter(std::string label, std::size_t total, bool allowed);
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  /// For GatherOptions::on_progress. The meter must outlive the gather.
  std::function<void(const Progress&)> callback();
  /// Records progress by hand (demos whose gathers take no options).
  void update(std::size_t done, std::size_t failed);
  /// Stops the ticker and clears the line.
  void finish();

  bool active() const noexcept { return active_; }

  /// Clears the line of the meter being drawn, if any, so that a line printed
  /// next starts clean; the meter redraws itself on its next tick. Call it
  /// before printing to a terminal while a meter runs.
  static void interrupt();

  /// The text of one progress line (exposed for tests): label, bar,
  /// done/total, rate per second and ETA.
  static std::string render(const std::string& label, std::size_t done, std::size_t failed,
                            std::size_t total, double elapsed_s, int bar_width = 24);

 private:
  void draw_locked();
  void tick();

  const std::string label_;
  const std::size_t total_;
  const bool active_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t done_ = 0, failed_ = 0;
  bool drawn_ = false;
  bool stop_ = false;
  std::thread ticker_;
};

}  // namespace concur::demo
