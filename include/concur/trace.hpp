// SPDX-License-Identifier: BSL-1.0
// concur::trace: record what every task did, and draw it.
//
// ```cpp
// #include <concur/concur.hpp>
//
// #include <vector>
//
// concur::Task<int> work(int i) { co_return i; }
//
// void record(concur::Executor& ex) {
//   std::vector<decltype(concur::call(work, 0))> calls{concur::call(work, 1),
//                                                      concur::call(work, 2)};
//   concur::trace::Recorder rec(ex);  // starts recording (off by default)
//   ex.gather_settled(calls);
//   concur::trace::Trace t = rec.stop();
//   concur::trace::write_chrome_json(t, "run.json");  // Perfetto, chrome://tracing
//   concur::trace::write_svg(t, "run.svg");           // one lane per thread/process
// }
// ```
//
// For every task the recorder keeps its call name, executor, process and
// thread, its start and end, and the intervals it spent waiting (parked in a
// sleep, an I/O wait or a nested gather); stall-detector reports are kept too.
// Recording is cheap (per-thread append-only buffers, timestamps from the CPU's
// time-stamp counter) and costs one relaxed load per hook while off.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace concur {
class Executor;
}

namespace concur::trace {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

/// A stretch of one task's life. Times are offsets from Trace::origin.
struct Segment {
  enum Kind : std::uint8_t { running, waiting };
  Kind kind = running;
  Nanos start{0};
  Nanos end{0};
  std::uint64_t tid = 0;  ///< the OS thread the stretch began on
};

struct TaskRecord {
  std::uint64_t id = 0;      ///< unique within the trace, from 1
  std::uint64_t parent = 0;  ///< the task whose nested gather started it (0: top level)
  std::string name;          ///< the call's name (registered name, .named(), or "task")
  std::string executor;      ///< e.g. "thread_pool"
  int pid = 0;               ///< the process that ran it (a worker's pid for processes)
  std::uint64_t tid = 0;     ///< the OS thread it started on (its lane)
  std::uint64_t fiber = 0;   ///< its fiber (fibers runs one fiber per task), else 0
  Nanos start{0};
  Nanos end{0};
  bool failed = false;
  /// Running and waiting stretches, in time order, covering [start, end].
  std::vector<Segment> segments;

  Nanos waited() const;
};

/// A stall-detector report: `task` held thread `tid` for [start, end].
struct StallRecord {
  std::string executor;
  std::string task;
  int pid = 0;
  std::uint64_t tid = 0;
  Nanos start{0};
  Nanos end{0};
};

struct Trace {
  Clock::time_point origin;       ///< when recording started; every time is relative to it
  Nanos duration{0};              ///< from origin to when recording stopped
  int pid = 0;                    ///< the recording process
  std::vector<TaskRecord> tasks;  ///< in start order
  std::vector<StallRecord> stalls;

  /// The distinct (pid, tid) lanes that ran tasks, in order of first use.
  std::vector<std::pair<int, std::uint64_t>> lanes() const;
  /// From the first task's start to the last task's end (zero if none).
  Nanos span() const;
};

/// Records every task this process runs while it lives (one at a time).
class Recorder {
 public:
  /// Records tasks of every executor.
  Recorder();
  /// Records only tasks run by `ex` (matched by executor name).
  explicit Recorder(const Executor& ex);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  /// Stops recording and returns what was recorded. Call it once the
  /// gathers being recorded have returned. A second call returns an empty trace.
  Trace stop();

 private:
  std::string executor_;  // empty: all
  bool active_ = false;
};

/// Whether a Recorder is recording right now.
bool recording() noexcept;

/// For executors whose tasks run outside this process (processes, cluster):
/// records one task that ran in worker `lane_pid` over [start, end] (steady
/// clock of this host), with the waits it reported. Ignored when not recording.
void record_task(std::string_view name, std::string_view executor, int lane_pid,
                 Clock::time_point start, Clock::time_point end, bool failed = false,
                 std::span<const std::pair<Clock::time_point, Clock::time_point>> waits = {});

/// Over the trace's span (first start to last end): how many tasks were on a
/// CPU at once, on average. A thread runs one task at a time (a child run
/// inline inside its parent counts once) and at most `cpus` threads run at
/// once (0: the CPUs this process may use), so on 2 cores this is at most 2,
/// whatever the number of tasks that were merely not waiting. Set it beside
/// CPU seconds per wall second, which also counts what the trace does not
/// see (I/O threads, an in-process server).
double average_on_cpu(const Trace& t, unsigned cpus = 0);

/// Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing):
/// per thread, B/E slices while a task runs; per task, an async b/e span with
/// its waits nested inside; stalls as instant events.
void write_chrome_json(const Trace& t, std::ostream& out);
void write_chrome_json(const Trace& t, const std::string& path);

struct SvgOptions {
  std::string title;  ///< default: the executors in the trace
  double wall_s = 0;  ///< wall time to print in the title; 0: the trace's span
  int width = 1200;   ///< pixels
};

/// A self-contained SVG timeline: one lane per thread or process, one bar
/// per task (solid while running, hatched while waiting), stalls in red;
/// above the lanes a strip of how many tasks were in flight and how many
/// threads ran one, over time. A lane is as tall as the most tasks it had
/// alive at once; when that many rows cannot get a pixel each, one row in k
/// is drawn and the picture says so (the strip still counts every task).
void write_svg(const Trace& t, std::ostream& out, const SvgOptions& options = {});
void write_svg(const Trace& t, const std::string& path, const SvgOptions& options = {});

}  // namespace concur::trace
