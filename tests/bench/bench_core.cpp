// SPDX-License-Identifier: BSL-1.0
// concur-bench-core: what the library costs per task, beside the floor of bare
// C++20 coroutines measured in the same binary and run.
//
// Per executor (every name of concur::executor_names(), so new executors join
// by themselves):
//   noop    a gather of N no-op tasks                      ns per task, best of several runs
//   skynet  N leaf tasks, 10-way nested gather              ms, ratio to the bare-coroutine floor
//   sleep   M tasks each sleeping D                         wall s, process CPU s (getrusage)
// Targets (issue 2, "Benchmarks") are printed beside the figures as PASS/FAIL.
// The exit code is 0 whatever the figures: this is a report, not a test.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include <concur/concur.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Keeps the optimiser from deleting work whose result we do not otherwise use.
template <class T>
void keep(T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

// ---------------------------------------------------------------------------
// The floor: a minimal coroutine type, no library. Lazy start, the value is
// read by the creator after resume(), the creator destroys the frame.
struct Bare {
  struct promise_type {
    long value = 0;
    Bare get_return_object() noexcept {
      return Bare{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_value(long v) noexcept { value = v; }
    void unhandled_exception() noexcept { std::terminate(); }
  };
  explicit Bare(std::coroutine_handle<promise_type> handle) noexcept : h(handle) {}
  Bare(Bare&& o) noexcept : h(std::exchange(o.h, {})) {}
  Bare(const Bare&) = delete;
  Bare& operator=(const Bare&) = delete;
  ~Bare() {
    if (h) h.destroy();
  }
  std::coroutine_handle<promise_type> h;
};

Bare bare_noop() { co_return 0; }

// Each node creates its children, resumes them one by one, and sums them:
// the same shape as the library's skynet, without scheduling, contexts or
// result slots.
Bare bare_skynet(long num, long size, int div) {
  if (size == 1) co_return num;
  std::vector<Bare> children;
  children.reserve(static_cast<std::size_t>(div));
  for (int i = 0; i < div; ++i)
    children.push_back(bare_skynet(num + i * (size / div), size / div, div));
  long sum = 0;
  for (Bare& c : children) {
    c.h.resume();
    sum += c.h.promise().value;
  }
  co_return sum;
}

// ---------------------------------------------------------------------------
// The library's side of the same work.
concur::Task<void> noop_task() { co_return; }

concur::Task<long> skynet(long num, long size, int div) {
  if (size == 1) co_return num;
  std::vector<concur::Call<concur::Task<long> (*)(long, long, int), long, long, int>> calls;
  calls.reserve(static_cast<std::size_t>(div));
  for (int i = 0; i < div; ++i)
    calls.push_back(concur::call(&skynet, num + i * (size / div), size / div, div));
  std::vector<long> values = co_await concur::gather(std::move(calls));
  long sum = 0;
  for (long v : values) sum += v;
  co_return sum;
}

concur::Task<void> sleeper(std::chrono::milliseconds d) { co_await concur::sleep_for(d); }

// Registered, so the processes executor can run them in its workers too.
CONCUR_REGISTER(noop_task);
CONCUR_REGISTER(skynet);
CONCUR_REGISTER(sleeper);

// ---------------------------------------------------------------------------
struct Options {
  std::vector<std::string> executors;  // empty: all
  std::vector<std::pair<std::string, std::string>> settings;
  std::vector<std::string> benches;  // empty: all (noop, skynet, sleep)
  bool json = false;
  bool quick = false;
  long noop_n = 1'000'000;
  long skynet_n = 1'000'000;
  long sleep_n = 10'000;
  std::chrono::milliseconds sleep_d = 1000ms;
  int runs = 5;
  double run_budget_s = 4.0;  // stop repeating a measurement once this much time went on it
  double sleep_cap_s = 10.0;  // an executor whose waits block gets at most this long of sleeps
};

[[noreturn]] void usage(int code) {
  std::fputs(
      "usage: concur-bench-core [--executor NAME[,NAME...]]... [--json] [--quick]\n"
      "                         [--bench noop,skynet,sleep] [--runs N] [--set KEY=VALUE]...\n"
      "  --executor   restrict to these executors (repeatable, or a comma list); default all\n"
      "  --bench      restrict to these measurements (the floors always run)\n"
      "  --json       one JSON object per row instead of the table\n"
      "  --quick      smoke sizes: 100,000 tasks, 1,000 x 200 ms sleeps\n"
      "  --runs N     best of up to N runs per measurement (default 5)\n"
      "  --set K=V    a concur::Config key for every executor (e.g. workers=4, threads=2);\n"
      "               an executor that rejects it runs without it\n",
      code == 0 ? stdout : stderr);
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "--executor" || a == "-e") {
      std::string_view v = value();
      while (!v.empty()) {
        const auto comma = v.find(',');
        std::string_view one = v.substr(0, comma);
        if (!one.empty() && one != "all") o.executors.emplace_back(one);
        v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      }
    } else if (a == "--bench") {
      std::string_view v = value();
      while (!v.empty()) {
        const auto comma = v.find(',');
        std::string_view one = v.substr(0, comma);
        if (one != "noop" && one != "skynet" && one != "sleep") usage(2);
        o.benches.emplace_back(one);
        v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      }
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--runs") {
      o.runs = std::max(1, std::atoi(std::string(value()).c_str()));
    } else if (a == "--set") {
      std::string_view kv = value();
      const auto eq = kv.find('=');
      if (eq == std::string_view::npos) usage(2);
      o.settings.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    } else if (a == "--help" || a == "-h") {
      usage(0);
    } else {
      std::fprintf(stderr, "concur-bench-core: unknown argument '%s'\n", argv[i]);
      usage(2);
    }
  }
  if (o.quick) {
    o.noop_n = 100'000;
    o.skynet_n = 100'000;
    o.sleep_n = 1'000;
    o.sleep_d = 200ms;
    o.runs = std::min(o.runs, 3);
    o.run_budget_s = 1.0;
    o.sleep_cap_s = 2.0;
  }
  return o;
}

// ---------------------------------------------------------------------------
// One row of the report; absent figures stay empty.
struct Row {
  Row(std::string b, std::string e) : bench(std::move(b)), executor(std::move(e)) {}
  std::string bench;
  std::string executor;
  long n = 0;
  std::optional<double> ns_per_task;
  std::optional<double> ms;
  std::optional<double> ratio;  // to the floor
  std::optional<double> wall_s;
  std::optional<double> cpu_s;
  std::optional<long> sum;
  int runs = 0;
  std::string target;        // e.g. "<= 150 ns/task"
  std::optional<bool> pass;  // absent: no target for this row
  std::string note;          // skip reason, cap, error
};

void print_json(const Row& r, bool quick) {
  boost::json::object o{{"bench", r.bench}, {"executor", r.executor}, {"n", r.n}, {"quick", quick}};
  auto num = [&o](std::string_view k, const std::optional<double>& v) {
    if (v) o[k] = *v;
  };
  num("ns_per_task", r.ns_per_task);
  num("ms", r.ms);
  num("ratio_to_floor", r.ratio);
  num("wall_s", r.wall_s);
  num("cpu_s", r.cpu_s);
  if (r.sum) o["sum"] = *r.sum;
  if (r.runs > 0) o["runs"] = r.runs;
  if (!r.target.empty()) o["target"] = r.target;
  if (r.pass) o["pass"] = *r.pass;
  o["skipped"] = !r.ns_per_task && !r.ms && !r.wall_s;
  if (!r.note.empty()) o["note"] = r.note;
  std::puts(boost::json::serialize(o).c_str());
  std::fflush(stdout);
}

void print_table(const std::vector<Row>& rows, const Options& o) {
  fmt::print("\nconcur-bench-core{}: noop n={}, skynet n={} (10-way), sleep {} x {} ms\n",
             o.quick ? " (--quick)" : "", o.noop_n, o.skynet_n, o.sleep_n, o.sleep_d.count());
  fmt::print("{:<8} {:<14} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8}  {:<26} {}\n", "bench", "executor",
             "n", "ns/task", "ms", "x floor", "wall s", "cpu s", "target", "result");
  fmt::print("{}\n", std::string(118, '-'));
  auto f = [](const std::optional<double>& v, const char* spec) {
    return v ? fmt::format(fmt::runtime(spec), *v) : std::string("-");
  };
  for (const Row& r : rows) {
    std::string result = r.pass ? (*r.pass ? "PASS" : "FAIL") : "";
    if (!r.note.empty()) result += (result.empty() ? "" : "  ") + r.note;
    fmt::print("{:<8} {:<14} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8}  {:<26} {}\n", r.bench,
               r.executor, r.n, f(r.ns_per_task, "{:.1f}"), f(r.ms, "{:.1f}"), f(r.ratio, "{:.2f}"),
               f(r.wall_s, "{:.3f}"), f(r.cpu_s, "{:.3f}"), r.target, result);
  }
}

// Runs `once` (which returns its own measured seconds) up to `runs` times,
// stopping early once `budget` seconds went on it; returns the best time.
template <class F>
std::pair<double, int> best_of(int runs, double budget, F&& once) {
  double best = 1e300;
  int done = 0;
  const auto t0 = Clock::now();
  while (done < runs) {
    best = std::min(best, once());
    ++done;
    if (seconds_since(t0) > budget) break;
  }
  return {best, done};
}

long expected_skynet(long n) { return n * (n - 1) / 2; }

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int main() {
    floors();
    for (std::string_view name : concur::executor_names()) {
      if (!o_.executors.empty() &&
          std::find(o_.executors.begin(), o_.executors.end(), name) == o_.executors.end())
        continue;
      executor(std::string(name));
    }
    for (const std::string& want : o_.executors) {
      const auto names = concur::executor_names();
      if (std::find(names.begin(), names.end(), want) == names.end()) {
        Row r("-", want);
        r.note = "skipped: not one of concur::executor_names()";
        emit(std::move(r));
      }
    }
    if (!o_.json) print_table(rows_, o_);
    return 0;
  }

 private:
  void emit(Row r) {
    if (o_.json) print_json(r, o_.quick);
    // Progress only for a person watching; the table comes at the end.
    if (!o_.json && isatty(STDERR_FILENO) != 0)
      std::fprintf(stderr, "  done: %s %s\n", r.bench.c_str(), r.executor.c_str());
    rows_.push_back(std::move(r));
  }

  void floors() {
    {
      const long n = o_.noop_n;
      auto [best, runs] = best_of(o_.runs, o_.run_budget_s, [n] {
        const auto t0 = Clock::now();
        long sink = 0;
        for (long i = 0; i < n; ++i) {
          Bare c = bare_noop();
          c.h.resume();
          sink += c.h.promise().value;
        }
        keep(sink);
        return seconds_since(t0);
      });
      floor_noop_ns_ = best * 1e9 / static_cast<double>(n);
      Row r("noop", "floor:bare");
      r.n = n;
      r.ns_per_task = floor_noop_ns_;
      r.ms = best * 1e3;
      r.runs = runs;
      emit(std::move(r));
    }
    {
      const long n = o_.skynet_n;
      long sum = 0;
      auto [best, runs] = best_of(o_.runs, o_.run_budget_s, [n, &sum] {
        const auto t0 = Clock::now();
        Bare root = bare_skynet(0, n, 10);
        root.h.resume();
        sum = root.h.promise().value;
        return seconds_since(t0);
      });
      floor_skynet_s_ = best;
      Row r("skynet", "floor:bare");
      r.n = n;
      r.ns_per_task = best * 1e9 / static_cast<double>(n);
      r.ms = best * 1e3;
      r.ratio = 1.0;
      r.sum = sum;
      r.runs = runs;
      if (sum != expected_skynet(n))
        r.note = fmt::format("WRONG SUM (want {})", expected_skynet(n));
      emit(std::move(r));
    }
  }

  std::unique_ptr<concur::Executor> make(const std::string& name, std::string& note) {
    concur::Config cfg;
    cfg.executor = name;
    for (const auto& [k, v] : o_.settings) {
      try {
        cfg.set(k, v, "--set");
      } catch (const std::exception& e) {
        note += fmt::format("[{}={} not applied: {}] ", k, v, e.what());
      }
    }
    return concur::make_executor(cfg);
  }

  void executor(const std::string& name) {
    std::string note;
    std::unique_ptr<concur::Executor> ex;
    try {
      ex = make(name, note);
    } catch (const std::exception& e) {
      Row r("-", name);
      r.note = fmt::format("skipped: make_executor failed: {}", e.what());
      emit(std::move(r));
      return;
    }
    if (!note.empty() && !o_.json) std::fprintf(stderr, "%s: %s\n", name.c_str(), note.c_str());
    guarded("noop", name, [&] { noop(*ex, name); });
    guarded("skynet", name, [&] { skynet_row(*ex, name); });
    guarded("sleep", name, [&] { sleep_row(*ex, name); });
  }

  // A failing measurement becomes a row with the error; the rest go on.
  template <class F>
  void guarded(const char* bench, const std::string& name, F&& f) {
    if (!o_.benches.empty() &&
        std::find(o_.benches.begin(), o_.benches.end(), bench) == o_.benches.end())
      return;
    try {
      f();
    } catch (const std::exception& e) {
      Row r(bench, name);
      r.note = fmt::format("ERROR: {}", e.what());
      emit(std::move(r));
    }
  }

  void noop(concur::Executor& ex, const std::string& name) {
    const long n = o_.noop_n;
    std::vector<decltype(concur::call(noop_task))> calls(static_cast<std::size_t>(n),
                                                         concur::call(noop_task));
    auto [best, runs] = best_of(o_.runs, o_.run_budget_s, [&] {
      const auto t0 = Clock::now();
      ex.gather(calls);
      return seconds_since(t0);
    });
    const double ns = best * 1e9 / static_cast<double>(n);
    Row r("noop", name);
    r.n = n;
    r.ns_per_task = ns;
    r.ms = best * 1e3;
    r.ratio = ns / floor_noop_ns_;
    r.runs = runs;
    if (name == "event_loop") {
      r.target = "<= 150 ns/task";
      r.pass = ns <= 150.0;
    }
    emit(std::move(r));
  }

  void skynet_row(concur::Executor& ex, const std::string& name) {
    const long n = o_.skynet_n;
    long sum = 0;
    auto [best, runs] = best_of(o_.runs, o_.run_budget_s, [&] {
      const auto t0 = Clock::now();
      sum = ex.run(skynet(0, n, 10));
      return seconds_since(t0);
    });
    Row r("skynet", name);
    r.n = n;
    r.ns_per_task = best * 1e9 / static_cast<double>(n);
    r.ms = best * 1e3;
    r.ratio = best / floor_skynet_s_;
    r.sum = sum;
    r.runs = runs;
    if (name == "event_loop") {
      r.target = "<= 3x floor";
      r.pass = *r.ratio <= 3.0;
    }
    if (sum != expected_skynet(n)) {
      r.note = fmt::format("WRONG SUM {} (want {})", sum, expected_skynet(n));
      r.pass = false;
    }
    emit(std::move(r));
  }

  void sleep_row(concur::Executor& ex, const std::string& name) {
    Row r("sleep", name);
    const double d = std::chrono::duration<double>(o_.sleep_d).count();
    long n = o_.sleep_n;
    if (name == "sequential") {
      r.n = n;
      r.note = fmt::format("skipped: sequential runs {} x {} ms one after another ({:.0f} s)", n,
                           o_.sleep_d.count(), static_cast<double>(n) * d);
      emit(std::move(r));
      return;
    }
    // An executor whose waits block a thread (it does not watch for stalls)
    // gets as many sleeps as its lanes finish within the cap.
    if (!ex.detects_stalls()) {
      const long lanes = std::max(1, ex.lanes());
      const long waves = std::max(1L, static_cast<long>(o_.sleep_cap_s / d));
      const long cap = lanes * waves;
      if (cap < n) {
        r.note = fmt::format("capped from {}: waits block one of {} lanes, {} waves x {} ms", n,
                             lanes, waves, o_.sleep_d.count());
        n = cap;
      }
    }
    r.n = n;
    std::vector<decltype(concur::call(sleeper, o_.sleep_d))> calls(
        static_cast<std::size_t>(n), concur::call(sleeper, o_.sleep_d));
    // A safety net, not the measurement: a hung executor fails the batch.
    const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
        o_.sleep_d * 3 + std::chrono::duration<double>(o_.sleep_cap_s * 3));
    const double cpu0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    auto results = ex.gather_settled(calls, {.deadline = deadline});
    r.wall_s = seconds_since(t0);
    r.cpu_s = process_cpu_seconds() - cpu0;
    r.runs = 1;
    const auto failed =
        std::count_if(results.begin(), results.end(), [](auto& x) { return !x.ok(); });
    if (failed > 0) {
      r.note +=
          fmt::format("{}{} of {} failed (first: {})", r.note.empty() ? "" : "; ", failed, n,
                      std::find_if(results.begin(), results.end(), [](auto& x) { return !x.ok(); })
                          ->error()
                          .describe());
    }
    if (name == "event_loop") {
      // Scaled to the sizes in use: 1.1 s wall for 1 s sleeps, 0.2 s CPU per 10,000 tasks.
      const double wall_max = 1.1 * d;
      const double cpu_max = 0.2 * static_cast<double>(n) / 10'000.0;
      r.target = fmt::format("<= {:.3g} s wall, {:.3g} s cpu", wall_max, cpu_max);
      r.pass = failed == 0 && *r.wall_s <= wall_max && *r.cpu_s <= cpu_max;
    }
    emit(std::move(r));
  }

  Options o_;
  std::vector<Row> rows_;
  double floor_noop_ns_ = 1;
  double floor_skynet_s_ = 1;
};

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);
  return Bench(parse(argc, argv)).main();
}
