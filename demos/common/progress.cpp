#include "progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace concur::demo {

namespace {
constexpr auto kShowAfter = std::chrono::milliseconds(500);
constexpr auto kRedrawEvery = std::chrono::milliseconds(200);

// The meter drawing now (one at a time), for interrupt().
std::mutex g_active_mutex;
ProgressMeter* g_active = nullptr;

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
}  // namespace

ProgressMeter::ProgressMeter(std::string label, std::size_t total, bool allowed)
    : label_(std::move(label)),
      total_(total),
      active_(allowed && total > 0 && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {
  if (!active_) return;
  {
    std::lock_guard lock(g_active_mutex);
    g_active = this;
  }
  ticker_ = std::thread([this] { tick(); });
}

void ProgressMeter::interrupt() {
  std::lock_guard active(g_active_mutex);
  if (g_active == nullptr) return;
  std::lock_guard lock(g_active->mutex_);
  if (g_active->drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    g_active->drawn_ = false;
  }
}

ProgressMeter::~ProgressMeter() { finish(); }

std::function<void(const Progress&)> ProgressMeter::callback() {
  if (!active_) return {};
  return [this](const Progress& p) { update(p.done, p.failed); };
}

void ProgressMeter::update(std::size_t done, std::size_t failed) {
  if (!active_) return;
  std::lock_guard lock(mutex_);
  done_ = done;
  failed_ = failed;
  // The ticker draws; a finished batch is drawn at once so 100% is seen.
  if (done_ == total_ && drawn_) draw_locked();
}

std::string ProgressMeter::render(const std::string& label, std::size_t done, std::size_t failed,
                                  std::size_t total, double elapsed_s, int bar_width) {
  const double frac = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(frac * bar_width);
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1;
  char buf[160];
  std::snprintf(buf, sizeof buf, " %zu/%zu  %.1f/s  elapsed %s  ETA %s", done, total, rate,
                seconds_text(elapsed_s).c_str(), done == total ? "0s" : seconds_text(eta).c_str());
  std::string line = label + " [" + std::string(static_cast<std::size_t>(filled), '#') +
                     std::string(static_cast<std::size_t>(bar_width - filled), '.') + "]" + buf;
  if (failed > 0) line += "  " + std::to_string(failed) + " failed";
  return line;
}

void ProgressMeter::draw_locked() {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string line = render(label_, done_, failed_, total_, elapsed);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressMeter::tick() {
  std::unique_lock lock(mutex_);
  if (cv_.wait_for(lock, kShowAfter, [this] { return stop_; })) return;
  while (!stop_) {
    draw_locked();
    cv_.wait_for(lock, kRedrawEvery, [this] { return stop_; });
  }
}

void ProgressMeter::finish() {
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
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  std::lock_guard lock(mutex_);
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
}

}  // namespace concur::demo
