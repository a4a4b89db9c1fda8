// SPDX-License-Identifier: BSL-1.0
// The trace recorder's public face: a Recorder opens a recording (a new
// generation of the per-thread buffers) and stop() calibrates the clock and
// has the records replayed into a Trace; tasks run in other processes come
// in through record_task. The hot path is in trace_hooks.cpp, the replay in
// trace_replay.cpp, the storage both share in trace_buffer.hpp.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concur/detail/trace_hooks.hpp"
#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/trace.hpp"
#include "core/trace_buffer.hpp"
#include "core/trace_replay.hpp"

namespace concur::trace {

namespace {

// Ticks per nanosecond over a window long enough to be precise; used when a
// recording was too short to calibrate itself.
double process_ns_per_tick() {
  static const double v = [] {
    const auto t0 = Clock::now();
    const std::uint64_t k0 = detail::ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t k1 = detail::ticks();
    const auto t1 = Clock::now();
    return k1 == k0 ? 1.0 : static_cast<double>((t1 - t0).count()) / static_cast<double>(k1 - k0);
  }();
  return v;
}

}  // namespace

Recorder::Recorder() {
  detail::Registry& r = detail::registry();
  std::lock_guard lock(r.mutex);
  if (r.active) throw UsageError("concur::trace: a Recorder is already recording");
  // Buffers of threads that have ended since the last recording go now; their
  // chunks serve the threads of this one.
  std::erase_if(r.buffers, [&](std::unique_ptr<detail::Buffer>& b) {
    if (!b->orphaned) return false;
    while (b->head != nullptr) r.give_locked(std::exchange(b->head, b->head->next));
    return true;
  });
  // Map and touch a few chunks ahead, so a thread's first events do not pay
  // for page faults. Once per process in practice: chunks are reused.
  while (r.free_count < detail::kWarmFree) {
    auto* c = new detail::Chunk;
    for (std::size_t i = 0; i < detail::Chunk::kWords; i += 4096 / sizeof(std::uint64_t))
      c->words[i] = 0;
    r.give_locked(c);
  }
  r.stalls.clear();
  r.externals.clear();
  detail::g_generation.fetch_add(1, std::memory_order_acq_rel);
  r.cal.time0 = Clock::now();
  r.cal.tick0 = detail::ticks();
  r.active = true;
  active_ = true;
  detail::g_enabled.store(true, std::memory_order_release);
}

Recorder::Recorder(const Executor& ex) : Recorder() { executor_ = std::string(ex.name()); }

Recorder::~Recorder() {
  if (active_) (void)stop();
}

Trace Recorder::stop() {
  if (!active_) return Trace{};
  active_ = false;
  detail::Registry& r = detail::registry();
  detail::g_enabled.store(false, std::memory_order_release);
  const std::uint64_t tick1 = detail::ticks();
  const auto time1 = Clock::now();
  detail::Calibration cal;
  {
    std::lock_guard lock(r.mutex);
    r.active = false;
    cal = r.cal;
  }
  const auto window = time1 - cal.time0;
  if (window >= std::chrono::milliseconds(50) && tick1 > cal.tick0) {
    cal.ns_per_tick = static_cast<double>(window.count()) / static_cast<double>(tick1 - cal.tick0);
  } else {
    cal.ns_per_tick = process_ns_per_tick();  // too short to calibrate itself
  }
  std::lock_guard lock(r.mutex);
  return detail::rebuild(r, detail::g_generation.load(std::memory_order_acquire), cal, time1,
                         executor_);
}

bool recording() noexcept { return detail::enabled(); }

void record_task(std::string_view name, std::string_view executor, int lane_pid,
                 Clock::time_point start, Clock::time_point end, bool failed,
                 std::span<const std::pair<Clock::time_point, Clock::time_point>> waits) {
  if (!detail::enabled()) return;
  detail::ExternalEntry x{std::string(name),
                          std::string(executor),
                          lane_pid,
                          start,
                          std::max(start, end),
                          failed,
                          {waits.begin(), waits.end()}};
  detail::Registry& r = detail::registry();
  std::lock_guard lock(r.mutex);
  if (r.active) r.externals.push_back(std::move(x));
}

}  // namespace concur::trace
