// SPDX-License-Identifier: BSL-1.0
// concur-contrast: concurrency versus parallelism, on the same two batches
// under every executor.
//
//   io   N tasks that each wait (a sleep, the stand-in for an API call):
//        every concurrent executor overlaps the waits, so the batch takes
//        about one wait; sequential takes N waits. Almost no CPU is used.
//   cpu  N tasks that each hash for ~50 ms on the CPU (polling
//        concur::cancelled()): only executors that run tasks on several
//        cores at once (thread_pool, processes, fibers with threads > 1)
//        beat sequential; event_loop and fibers on one thread interleave
//        the tasks on one core and take as long as sequential.
//
// The table shows wall time, speed-up over sequential, CPU seconds and CPU
// utilisation (CPU s / wall s: ~0 for waiting, ~1 per busy core), and the
// lanes (threads or processes) the tasks ran on. Each run's timeline picture
// shows the same thing at a glance.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/trace.hpp>
#include <cstdint>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "demo_config.hpp"
#include "interrupt.hpp"
#include "measure.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "trace_flags.hpp"
#include "workload.hpp"

using concur::Task;
using ms = std::chrono::milliseconds;
namespace demo = concur::demo;

namespace {

// One row of the comparison: an executor, maybe with a setting of its own.
struct Variant {
  std::string label;     // "fibers(threads=2)"
  std::string executor;  // "fibers"
  concur::Config config;
};

struct Sizes {
  int io_tasks = 8;
  int io_ms = 200;
  int cpu_tasks = 8;
  int cpu_ms = 50;
  std::uint64_t cpu_rounds = 0;  // calibrated: rounds of the hash per task
};

struct Row {
  demo::RunRecord rec;
  std::size_t tasks = 0;
  std::size_t lanes_used = 0;
  double on_cpu = 0;  // tasks on a CPU at once, on average, from the trace
  std::optional<double> speedup;
  std::string timeline;
};

// The executors to compare. Where fibers runs on one thread, a second fibers
// row with threads=2 shows what a second thread changes.
std::vector<Variant> variants(const demo::DemoConfig& dc) {
  std::vector<Variant> out;
  for (const std::string& name : dc.executors()) {
    concur::Config c = dc.config_for(name);
    if (name == "fibers") {
      out.push_back({c.threads > 1 ? "fibers(threads=" + std::to_string(c.threads) + ")" : "fibers",
                     name, c});
      if (c.threads <= 1) {
        c.set("threads", "2", "concur-contrast");
        out.push_back({"fibers(threads=2)", name, c});
      }
    } else {
      out.push_back({name, name, c});
    }
  }
  return out;
}

std::string case_title(const std::string& which, const Sizes& s) {
  if (which == "io")
    return "io batch: " + std::to_string(s.io_tasks) + " × " + std::to_string(s.io_ms) + " ms wait";
  return "cpu batch: " + std::to_string(s.cpu_tasks) + " × ~" + std::to_string(s.cpu_ms) +
         " ms hashing";
}

// CPU seconds of this process's live children (processes' workers): getrusage
// counts a child only once it has exited and been waited for.
double live_children_cpu_s() {
  const std::string me = std::to_string(::getpid());
  double total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(entry.path() / "stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    // Fields after the command (which may hold spaces) start after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state, ppid, skip;
    rest >> state >> ppid;
    if (ppid != me) continue;
    for (int i = 0; i < 9; ++i) rest >> skip;  // pgrp .. cmajflt
    unsigned long long utime = 0, stime = 0;
    rest >> utime >> stime;
    total += static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return total;
}

Row run_one(concur::Executor& ex, const Variant& v, const std::string& which, const Sizes& s,
            demo::TraceFlags& tf, bool json, std::stop_token stop) {
  Row row;
  row.rec.demo = "contrast";
  row.rec.executor = v.label;
  row.rec.case_name = which;
  row.rec.lanes = ex.lanes();
  ex.on_stall([&row](const concur::StallReport& r) {
    if (r.ongoing) return;  // the table lists each stall once, when it ends
    row.rec.stalls.push_back("task '" + r.task + "' held the " + r.executor + " thread for " +
                             std::to_string(std::chrono::duration_cast<ms>(r.duration).count()) +
                             " ms");
  });
  const std::size_t n = static_cast<std::size_t>(which == "io" ? s.io_tasks : s.cpu_tasks);
  row.tasks = n;
  demo::ProgressMeter meter(v.label + " / " + which, n, !json);
  concur::GatherOptions options;
  options.on_progress = meter.callback();
  options.stop = std::move(stop);  // Ctrl-C: the batch is cancelled, every task gets a Result

  // The recorder runs for every row: its lanes are a column of the table.
  auto rec = tf.start(ex, /*always=*/true);
  const double children0 = live_children_cpu_s();
  demo::Stopwatch watch;
  if (which == "io") {
    std::vector<decltype(concur::call(demo::io_wait, ms(0), 0))> calls;
    for (int i = 0; i < s.io_tasks; ++i)
      calls.push_back(concur::call(demo::io_wait, ms(s.io_ms), i));
    auto results = ex.gather_settled(calls, options);
    row.rec.wall_s = watch.wall_s();
    row.rec.cpu_s = watch.cpu_s();
    for (auto& r : results)
      demo::record_result(row.rec, r, [](int x) { return std::to_string(x); });
  } else {
    std::vector<decltype(concur::call(demo::cpu_hash, std::uint64_t{0}, std::uint64_t{0}))> calls;
    for (int i = 0; i < s.cpu_tasks; ++i)
      calls.push_back(concur::call(demo::cpu_hash, static_cast<std::uint64_t>(i), s.cpu_rounds));
    auto results = ex.gather_settled(calls, options);
    row.rec.wall_s = watch.wall_s();
    row.rec.cpu_s = watch.cpu_s() + live_children_cpu_s() - children0;
    for (auto& r : results) demo::record_result(row.rec, r, [](const std::string& x) { return x; });
  }
  meter.finish();
  const std::size_t before = tf.written().size();
  const concur::trace::Trace t =
      tf.finish(rec, v.label, which, row.rec.wall_s,
                "concur-contrast · " + v.label + " · " + case_title(which, s));
  row.lanes_used = t.lanes().size();
  // Tasks on a CPU at once (threads running a task, at most the cores): near
  // 1 when tasks take turns on one thread, near the core count when they run
  // in parallel. Unlike the wall-time speed-up it holds on a busy machine;
  // counting tasks merely not waiting would count more than there are cores.
  row.on_cpu = concur::trace::average_on_cpu(t);
  if (tf.written().size() > before) row.timeline = tf.written().back();
  return row;
}

void print_json(const Row& row, const Sizes& s) {
  const demo::RunRecord& r = row.rec;
  boost::json::object o = demo::to_json(r);
  o["lanes_used"] = row.lanes_used;
  o["tasks"] = row.tasks;
  o["cpu_util"] = r.wall_s > 0 ? r.cpu_s / r.wall_s : 0.0;
  o["on_cpu"] = row.on_cpu;
  o["task_ms"] = r.case_name == "io" ? s.io_ms : s.cpu_ms;
  if (row.speedup) o["speedup"] = *row.speedup;
  if (!row.timeline.empty()) o["timeline"] = row.timeline;
  demo::print_json_line(o);
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  concur::demo::Interrupt::ignore_until_installed();  // workers: the parent cancels them
  concur::init(argc, argv);
  CLI::App app{
      "concur-contrast: concurrency vs parallelism. An I/O-bound batch (waits) and a CPU-bound "
      "batch (hashing) under each executor, with a timeline picture per run"};
  demo::DemoConfig demo_config(app);
  demo::TraceFlags trace_flags(app, "concur-contrast-timelines/{case}-{executor}.svg");
  std::string cases = "all";
  Sizes sizes;
  bool json = false;
  app.add_option("--case", cases, "io|cpu|all (comma-separated)")->capture_default_str();
  app.add_option("--io-tasks", sizes.io_tasks, "tasks in the io batch")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--io-ms", sizes.io_ms, "each io task's wait, ms")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  app.add_option("--cpu-tasks", sizes.cpu_tasks, "tasks in the cpu batch")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--cpu-ms", sizes.cpu_ms,
                 "each cpu task's hashing, ms (calibrated on this machine)")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  app.add_flag("--json", json, "one JSON object per (executor, case) on stdout");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<std::string> chosen;
    for (const char* c : {"io", "cpu"}) {
      if (cases == "all" ||
          ("," + cases + ",").find("," + std::string(c) + ",") != std::string::npos)
        chosen.emplace_back(c);
    }
    if (chosen.empty())
      throw CLI::ValidationError("--case", "unknown case '" + cases + "' (io, cpu or all)");
    const std::vector<Variant> rows_to_run = variants(demo_config);
    trace_flags.expect_runs(rows_to_run.size() * chosen.size());
    sizes.cpu_rounds = demo::calibrate_rounds(ms(sizes.cpu_ms));

    // Ctrl-C: the running batch is cancelled, the rows so far are printed,
    // and the exit status is 130.
    demo::Interrupt interrupt("concur-contrast");
    std::vector<Row> rows;
    std::map<std::string, double> sequential_wall;  // case -> wall s
    for (const Variant& v : rows_to_run) {
      if (interrupt.requested()) break;
      auto ex = concur::make_executor(v.config);
      for (const std::string& which : chosen) {
        if (interrupt.requested()) break;
        if (!json) std::fprintf(stderr, "running %s / %s\n", v.label.c_str(), which.c_str());
        Row row = run_one(*ex, v, which, sizes, trace_flags, json, interrupt.token());
        if (v.label == "sequential") sequential_wall[which] = row.rec.wall_s;
        if (auto it = sequential_wall.find(which);
            it != sequential_wall.end() && row.rec.wall_s > 0)
          row.speedup = it->second / row.rec.wall_s;
        if (json) print_json(row, sizes);
        rows.push_back(std::move(row));
      }
    }
    const int status = interrupt.requested() ? demo::Interrupt::kExitCode : 0;
    if (json) return status;

    demo::Table table({"case", "executor", "tasks", "wall s", "speed-up", "cpu s", "cpu/wall",
                       "on a CPU at once", "lanes used", "stalls", "ok/failed", "timeline"});
    for (const std::string& which : chosen) {
      for (const Row& row : rows) {
        if (row.rec.case_name != which) continue;
        const auto& r = row.rec;
        table.add({which, r.executor, std::to_string(row.tasks), fixed(r.wall_s, 3),
                   row.speedup ? fixed(*row.speedup, 2) + "x" : "-", fixed(r.cpu_s, 3),
                   fixed(r.wall_s > 0 ? r.cpu_s / r.wall_s : 0, 2), fixed(row.on_cpu, 2),
                   std::to_string(row.lanes_used) + " of " + std::to_string(r.lanes),
                   std::to_string(r.stalls.size()),
                   std::to_string(r.ok) + "/" + std::to_string(r.failed), row.timeline});
      }
    }
    std::printf("\n");
    table.print();
    std::printf(
        "\nWhat to see:\n"
        "  io   waits overlap: every concurrent executor beats sequential and cpu/wall stays near "
        "0;\n"
        "       event_loop and fibers overlap every wait (about one wait, %d ms), thread_pool and\n"
        "       processes as many as they have threads or workers (a wait blocks one of them).\n"
        "  cpu  only executors that run tasks on several cores at once beat sequential "
        "(thread_pool, processes, fibers with threads > 1; cpu/wall near the core count);\n"
        "       event_loop and one-thread fibers interleave the tasks on one core: "
        "concurrency is not parallelism.\n",
        sizes.io_ms);
    std::printf(
        "  'on a CPU at once' is the average number of tasks running on a CPU at the same time, "
        "from the\n  trace (threads running a task, at most the %u cores this process may use); "
        "cpu/wall is the\n  measured figure. 'stalls' counts the stall detector's reports (a "
        "CPU-bound task holds a\n  shared thread by design here).\n",
        std::max(1U, std::thread::hardware_concurrency()));
    for (const Row& row : rows) {
      const auto& r = row.rec;
      if (r.executor == "sequential" && r.case_name == "cpu" && r.wall_s > 0 &&
          r.cpu_s / r.wall_s < 0.8) {
        std::printf(
            "  note: this machine is busy: sequential got %.0f%% of a core, so wall-time "
            "speed-ups are\n  understated; 'on a CPU at once' still shows which executors ran "
            "tasks in parallel.\n",
            100 * r.cpu_s / r.wall_s);
      }
    }
    if (status != 0) return status;
  } catch (const concur::ConfigError& e) {
    std::fprintf(stderr, "concur-contrast: %s\n", e.what());
    return 2;
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur-contrast: %s\n", e.what());
    return 1;
  }
  return 0;
}
