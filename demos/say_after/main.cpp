// SPDX-License-Identifier: BSL-1.0
// concur-say-after: the seed's first lesson under every executor.
//
//   gather             say_after(1 s, hello) and say_after(2 s, world) gathered:
//                      ~2 s when waits overlap, 3 s on sequential.
//   sequential-awaits  mistake 1: the same two awaited one after the other:
//                      3 s everywhere, whatever the executor.
//   blocking-sleep     mistake 2: std::this_thread::sleep_for inside the tasks:
//                      3 s on executors that share one thread between tasks
//                      (event_loop, fibers), with the stall detector's report.
#include <CLI/CLI.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "demo_config.hpp"
#include "interrupt.hpp"
#include "measure.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "trace_flags.hpp"

using namespace std::chrono_literals;
using concur::Task;
using ms = std::chrono::milliseconds;

namespace {

bool g_quiet = false;  // --json: stdout carries JSON only
std::mutex g_print_mutex;
// Worker processes (processes executor) never parse the flags; they learn of
// --json from the environment they inherit.
constexpr const char* kQuietVariable = "SAY_AFTER_JSON_ONLY";

// The seed's print(f"{time.strftime('%X')} - {what}").
void print_stamped(const std::string& what) {
  if (g_quiet || std::getenv(kQuietVariable) != nullptr) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<ms>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&t, &local);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
  std::lock_guard lock(g_print_mutex);
  concur::demo::ProgressMeter::interrupt();
  std::printf("  %s.%03lld - %s\n", stamp, static_cast<long long>(millis), what.c_str());
  std::fflush(stdout);
}

Task<std::string> say_after(ms delay, std::string what) {
  co_await concur::sleep_for(delay);
  print_stamped(what);
  co_return what;
}
CONCUR_REGISTER(say_after);

// Mistake 2: a blocking sleep inside a task holds the thread it runs on.
Task<std::string> blocking_say_after(ms delay, std::string what) {
  std::this_thread::sleep_for(delay);
  print_stamped(what);
  co_return what;
}
CONCUR_REGISTER(blocking_say_after);

// Mistake 1: awaiting one call after the other serialises them.
Task<std::vector<std::string>> say_in_turn(ms first, ms second) {
  std::vector<std::string> out;
  out.push_back(co_await say_after(first, "hello"));
  out.push_back(co_await say_after(second, "world"));
  co_return out;
}
CONCUR_REGISTER(say_in_turn);

// Run once per lane before the timings, so that starting worker processes
// (or threads) is not billed to the first case.
Task<int> warm_up(int lane) { co_return lane; }
CONCUR_REGISTER(warm_up);

void start_every_lane(concur::Executor& ex) {
  std::vector<decltype(concur::call(warm_up, 0))> calls;
  for (int i = 0; i < ex.lanes(); ++i) calls.push_back(concur::call(warm_up, i));
  (void)ex.gather(calls);
}

struct CaseInfo {
  std::string name;
  // What to expect, with {2} and {3} for the scaled 2 s and 3 s.
  std::string lesson;
};

const std::vector<CaseInfo> kCases{
    {"gather", "waits overlap: ~{2} on concurrent executors, {3} on sequential"},
    {"sequential-awaits", "mistake 1: awaiting in turn is {3} on every executor"},
    {"blocking-sleep",
     "mistake 2: a blocking sleep stalls a shared thread: {3} on event_loop/fibers"},
};

// "2 s" at --scale 1, "0.4 s" at 0.2: a time the lessons name, as scaled.
std::string scaled_seconds(double seconds, double scale) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", seconds * scale);
  return text;
}

// A lesson with the delays of this run: the numbers the table should show.
std::string scaled_lesson(const std::string& lesson, double scale) {
  std::string out = lesson;
  for (const auto& [key, seconds] : {std::pair{std::string("{2}"), 2.0}, {"{3}", 3.0}}) {
    for (auto at = out.find(key); at != std::string::npos; at = out.find(key)) {
      out.replace(at, key.size(), scaled_seconds(seconds, scale));
    }
  }
  return out;
}

// `stop` (Ctrl-C) cancels the case: each call still gets its Result.
concur::demo::RunRecord run_case(concur::Executor& ex, const std::string& which, double scale,
                                 std::stop_token stop) {
  const ms one(static_cast<long long>(1000 * scale));
  const ms two(static_cast<long long>(2000 * scale));
  concur::demo::RunRecord rec;
  rec.demo = "say-after";
  rec.executor = std::string(ex.name());
  rec.case_name = which;
  rec.lanes = ex.lanes();
  ex.on_stall([&rec](const concur::StallReport& s) {
    if (s.ongoing) return;  // the table lists each stall once, when it ends
    rec.stalls.push_back("task '" + s.task + "' held the " + s.executor + " thread for " +
                         std::to_string(std::chrono::duration_cast<ms>(s.duration).count()) +
                         " ms");
  });
  auto text = [](const std::string& s) { return s; };
  // Cancels the batch only (not the task awaiting it): each call still gets its Result.
  const concur::GatherOptions options{.stop = std::move(stop)};
  print_stamped("started");
  concur::demo::Stopwatch watch;
  if (which == "gather") {
    auto [a, b] =
        ex.run(concur::gather_settled(options, concur::call(say_after, one, std::string("hello")),
                                      concur::call(say_after, two, std::string("world"))));
    concur::demo::record_result(rec, a, text);
    concur::demo::record_result(rec, b, text);
  } else if (which == "sequential-awaits") {
    auto [both] = ex.run(concur::gather_settled(options, concur::call(say_in_turn, one, two)));
    if (both.ok()) {
      for (auto& s : both.value())
        concur::demo::record_result(rec, concur::Result<std::string>(s), text);
    } else {
      concur::demo::record_result(rec, concur::Result<std::string>(both.error()), text);
    }
  } else {
    auto [a, b] = ex.run(
        concur::gather_settled(options, concur::call(blocking_say_after, one, std::string("hello")),
                               concur::call(blocking_say_after, two, std::string("world"))));
    concur::demo::record_result(rec, a, text);
    concur::demo::record_result(rec, b, text);
  }
  rec.wall_s = watch.wall_s();
  rec.cpu_s = watch.cpu_s();
  print_stamped("finished");
  return rec;
}

// Why the stall detector has nothing to watch on this executor, said plainly
// instead of printing nothing.
std::string no_stall_reason(const std::string& executor) {
  if (executor == "sequential") return "n/a (tasks run one by one by design)";
  if (executor == "processes") return "n/a (each task has its own process)";
  return "n/a (each task has its own thread)";
}

}  // namespace

int main(int argc, char** argv) {
  concur::demo::Interrupt::ignore_until_installed();  // workers: the parent cancels them
  concur::init(argc, argv);
  CLI::App app{
      "concur-say-after: the seed's hello/world timing and its two classic mistakes, "
      "under each executor"};
  concur::demo::DemoConfig demo_config(app);
  concur::demo::TraceFlags trace_flags(app);
  std::string cases = "all";
  double scale = 1.0;
  bool json = false;
  app.add_option("--case", cases, "gather|sequential-awaits|blocking-sleep|all (comma-separated)")
      ->capture_default_str();
  app.add_option("--scale", scale, "multiply every delay (0.05 for a quick run)")
      ->check(CLI::Range(0.001, 100.0))
      ->capture_default_str();
  app.add_flag("--json", json, "one JSON object per (executor, case) on stdout");
  CLI11_PARSE(app, argc, argv);
  g_quiet = json;
  if (json) setenv(kQuietVariable, "1", 1);  // before any worker is launched

  try {
    std::vector<CaseInfo> chosen;
    for (const auto& c : kCases) {
      if (cases == "all" || ("," + cases + ",").find("," + c.name + ",") != std::string::npos)
        chosen.push_back(c);
    }
    if (chosen.empty()) throw CLI::ValidationError("--case", "unknown case '" + cases + "'");

    concur::demo::Table table({"executor", "case", "wall s", "cpu s", "results", "stall reports"});
    std::map<std::string, std::string> measured;  // case -> "executor wall, ..." for the summary
    const std::size_t runs = demo_config.executors().size() * chosen.size();
    trace_flags.expect_runs(runs);
    concur::demo::ProgressMeter meter("say-after", runs, !json);
    std::size_t runs_done = 0;
    // Ctrl-C: the running case is cancelled, the table so far is printed,
    // and the exit status is 130.
    concur::demo::Interrupt interrupt("concur-say-after");
    for (const auto& name : demo_config.executors()) {
      if (interrupt.requested()) break;
      auto ex = concur::make_executor(demo_config.config_for(name));
      start_every_lane(*ex);
      for (const auto& c : chosen) {
        if (interrupt.requested()) break;
        concur::demo::ProgressMeter::interrupt();
        if (!json) std::printf("%s / %s\n", name.c_str(), c.name.c_str());
        auto recording = trace_flags.start(*ex);
        auto rec = run_case(*ex, c.name, scale, interrupt.token());
        trace_flags.finish(recording, name, c.name, rec.wall_s);
        meter.update(++runs_done, 0);
        if (json) {
          concur::demo::print_json_line(rec);
          continue;
        }
        std::string results;
        for (const auto& r : rec.results) results += (results.empty() ? "" : ", ") + r;
        const std::string stalls =
            ex->detects_stalls() ? std::to_string(rec.stalls.size()) : no_stall_reason(name);
        for (const auto& s : rec.stalls) std::printf("  stall: %s\n", s.c_str());
        char wall[32], cpu[32];
        std::snprintf(wall, sizeof wall, "%.2f", rec.wall_s);
        std::snprintf(cpu, sizeof cpu, "%.2f", rec.cpu_s);
        table.add({name, c.name, wall, cpu, results, stalls});
        auto& m = measured[c.name];
        m += (m.empty() ? "" : ", ") + name + " " + wall;
      }
    }
    meter.finish();
    if (!json) {
      std::printf("\n");
      table.print();
      std::printf("\nWhat to see (delays x %g: hello after %s, world after %s):\n", scale,
                  scaled_seconds(1, scale).c_str(), scaled_seconds(2, scale).c_str());
      for (const auto& c : chosen) {
        std::printf("  %-18s %s\n", c.name.c_str(), scaled_lesson(c.lesson, scale).c_str());
        std::printf("  %-18s measured (wall s): %s\n", "", measured[c.name].c_str());
      }
    }
    if (interrupt.requested()) return concur::demo::Interrupt::kExitCode;
  } catch (const concur::ConfigError& e) {
    std::fprintf(stderr, "concur-say-after: %s\n", e.what());
    return 2;
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  return 0;
}
