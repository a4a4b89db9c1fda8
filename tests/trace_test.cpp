// SPDX-License-Identifier: BSL-1.0
// The trace recorder and its two exports, on every executor configuration:
// the recorded tasks match what ran, the Chrome JSON is well formed (required
// keys, a begin and an end per task, properly nested intervals), and the SVG
// is XML with one bar per task.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/trace.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace trace = concur::trace;

namespace {

Task<int> nap(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}
CONCUR_REGISTER(nap);

Task<int> broken(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  throw std::runtime_error("broken on purpose");
}
CONCUR_REGISTER(broken);

// A task that gathers two naps of its own: a nested batch.
Task<int> fan_out(std::chrono::milliseconds d) {
  auto [a, b] = co_await concur::gather(concur::call(nap, d, 1), concur::call(nap, d, 2));
  co_return a + b;
}
CONCUR_REGISTER(fan_out);

Task<int> instant(int v) { co_return v; }
CONCUR_REGISTER(instant);

// Holds its thread: the classic mistake the stall detector reports.
Task<int> hog(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  co_return 0;
}
CONCUR_REGISTER(hog);

// Runs the mixed batch every executor test uses: 3 naps, a failure, a nested gather.
trace::Trace record_mixed(concur::Executor& ex) {
  trace::Recorder rec(ex);
  auto [a, b, c, bad, nested] = ex.gather_settled(
      concur::call(nap, 30ms, 1), concur::call(nap, 30ms, 2), concur::call(nap, 30ms, 3),
      concur::call(broken, 10ms), concur::call(fan_out, 20ms));
  EXPECT_TRUE(a.ok() && b.ok() && c.ok() && nested.ok());
  EXPECT_FALSE(bad.ok());
  return rec.stop();
}

boost::json::array chrome_events(const trace::Trace& t) {
  std::ostringstream out;
  trace::write_chrome_json(t, out);
  boost::json::value v = boost::json::parse(out.str());
  return v.as_object().at("traceEvents").as_array();
}

// Checks the trace-event rules the viewers rely on and returns the task ids
// that had both a begin and an end.
std::set<std::int64_t> check_chrome(const boost::json::array& events) {
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::string>> thread_stack;
  std::map<std::int64_t, std::vector<std::string>> async_stack;
  std::map<std::pair<std::int64_t, std::int64_t>, double> last_ts;
  std::set<std::int64_t> begun, ended;
  for (const auto& ev : events) {
    const auto& o = ev.as_object();
    for (const char* key : {"ph", "ts", "pid", "tid", "name"})
      EXPECT_TRUE(o.contains(key))
          << "event without '" << key << "': " << boost::json::serialize(o);
    const std::string ph(o.at("ph").as_string());
    const std::string name(o.at("name").as_string());
    const double ts = o.at("ts").is_double() ? o.at("ts").as_double()
                                             : static_cast<double>(o.at("ts").to_number<double>());
    EXPECT_GE(ts, 0.0);
    const std::pair<std::int64_t, std::int64_t> lane{o.at("pid").to_number<std::int64_t>(),
                                                     o.at("tid").to_number<std::int64_t>()};
    if (ph == "B" || ph == "E") {
      // Per thread, B/E come in time order and nest like brackets.
      EXPECT_GE(ts, last_ts[lane]) << "thread events out of order";
      last_ts[lane] = ts;
      auto& stack = thread_stack[lane];
      if (ph == "B") {
        stack.push_back(name);
      } else {
        EXPECT_FALSE(stack.empty()) << "E without B: " << name;
        if (!stack.empty()) {
          EXPECT_EQ(stack.back(), name) << "thread slices overlap without nesting";
          stack.pop_back();
        }
      }
    } else if (ph == "b" || ph == "e") {
      const std::int64_t id = o.at("id").to_number<std::int64_t>();
      auto& stack = async_stack[id];
      if (ph == "b") {
        if (stack.empty()) begun.insert(id);
        stack.push_back(name);
      } else {
        EXPECT_FALSE(stack.empty()) << "e without b for task " << id;
        if (!stack.empty()) {
          EXPECT_EQ(stack.back(), name) << "task " << id << ": intervals not nested";
          stack.pop_back();
          if (stack.empty()) ended.insert(id);
        }
      }
    } else {
      EXPECT_TRUE(ph == "M" || ph == "i") << "unexpected phase " << ph;
    }
  }
  for (const auto& [lane, stack] : thread_stack) EXPECT_TRUE(stack.empty()) << "unclosed B";
  for (const auto& [id, stack] : async_stack) EXPECT_TRUE(stack.empty()) << "unclosed b " << id;
  EXPECT_EQ(begun, ended);
  return ended;
}

std::size_t count_task_bars(const boost::property_tree::ptree& node) {
  std::size_t n = 0;
  for (const auto& [tag, child] : node) {
    if (tag == "g") {
      const std::string cls = child.get<std::string>("<xmlattr>.class", "");
      if (cls == "task" || cls == "task failed") ++n;
    }
    n += count_task_bars(child);
  }
  return n;
}

// Parses the SVG as XML (throws if it is not) and counts its task bars.
std::size_t svg_task_bars(const trace::Trace& t) {
  std::ostringstream out;
  trace::write_svg(t, out, {.title = "test"});
  std::istringstream in(out.str());
  boost::property_tree::ptree tree;
  boost::property_tree::read_xml(in, tree);
  EXPECT_EQ(tree.count("svg"), 1U);
  return count_task_bars(tree);
}

class TraceSuite : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> make() { return concur::make_executor(GetParam().config()); }
};

TEST_P(TraceSuite, RecordsEveryTaskWithItsWaits) {
  auto ex = make();
  const trace::Trace t = record_mixed(*ex);
  ASSERT_EQ(t.tasks.size(), 7U);  // 5 top-level + 2 nested
  std::map<std::string, int> by_name;
  for (const auto& task : t.tasks) {
    ++by_name[task.name];
    EXPECT_EQ(task.executor, ex->name());
    EXPECT_LE(task.start, task.end);
    EXPECT_GT(task.tid, 0U);
    EXPECT_GT(task.pid, 0);
    ASSERT_FALSE(task.segments.empty()) << task.name;
    EXPECT_EQ(task.segments.front().start, task.start);
    EXPECT_EQ(task.segments.back().end, task.end);
    for (std::size_t i = 1; i < task.segments.size(); ++i) {
      EXPECT_EQ(task.segments[i - 1].end, task.segments[i].start) << "segments must tile the task";
      EXPECT_NE(task.segments[i - 1].kind, task.segments[i].kind);
    }
    EXPECT_EQ(task.failed, task.name == "broken");
    // Every task here sleeps or awaits a nested gather, so it waited (on
    // sequential too, where fan_out waits while its children run inline).
    EXPECT_GE(task.waited(), 5ms) << task.name;
  }
  EXPECT_EQ(by_name["nap"], 5);
  EXPECT_EQ(by_name["broken"], 1);
  EXPECT_EQ(by_name["fan_out"], 1);
  // The nested naps name fan_out as their parent.
  std::uint64_t fan_id = 0;
  for (const auto& task : t.tasks)
    if (task.name == "fan_out") fan_id = task.id;
  int children = 0, top_level = 0;
  for (const auto& task : t.tasks) {
    children += task.parent == fan_id ? 1 : 0;
    top_level += task.parent == 0 ? 1 : 0;
  }
  EXPECT_EQ(children, 2);
  EXPECT_EQ(top_level, 5);
}

// A thread runs one coroutine at a time: its tasks' running stretches follow
// each other or nest like a call stack (a child started inline), never
// overlap otherwise, with no clipping needed. A task parked in a wait (a
// sleep, a nested gather's join) leaves a gap on its thread.
TEST_P(TraceSuite, RunningStretchesNestPerThread) {
  auto ex = make();
  const trace::Trace t = record_mixed(*ex);
  std::map<std::pair<int, std::uint64_t>, std::vector<trace::Segment>> by_thread;
  for (const auto& task : t.tasks)
    for (const auto& seg : task.segments)
      if (seg.kind == trace::Segment::running && seg.end > seg.start)
        by_thread[{task.pid, seg.tid}].push_back(seg);
  for (auto& [lane, v] : by_thread) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<trace::Nanos> open;  // ends of the stretches holding the current one
    for (const auto& seg : v) {
      while (!open.empty() && open.back() <= seg.start) open.pop_back();
      EXPECT_TRUE(open.empty() || seg.end <= open.back())
          << "thread " << lane.second << ": a stretch overlaps another without nesting";
      open.push_back(seg.end);
    }
  }
}

TEST_P(TraceSuite, ChromeJsonIsWellFormed) {
  auto ex = make();
  const trace::Trace t = record_mixed(*ex);
  const auto events = chrome_events(t);
  const auto complete = check_chrome(events);
  EXPECT_EQ(complete.size(), t.tasks.size()) << "every task needs a begin and an end";
  for (const auto& task : t.tasks) EXPECT_TRUE(complete.count(static_cast<std::int64_t>(task.id)));
}

TEST_P(TraceSuite, SvgHasOneBarPerTask) {
  auto ex = make();
  const trace::Trace t = record_mixed(*ex);
  EXPECT_EQ(svg_task_bars(t), t.tasks.size());
}

TEST_P(TraceSuite, ManyTasksStayReadable) {
  auto ex = make();
  std::vector<decltype(concur::call(instant, 0))> calls;
  for (int i = 0; i < 1000; ++i) calls.push_back(concur::call(instant, i));
  trace::Recorder rec(*ex);
  ex->gather(calls);
  const trace::Trace t = rec.stop();
  ASSERT_EQ(t.tasks.size(), 1000U);
  EXPECT_EQ(svg_task_bars(t), 1000U);
  check_chrome(chrome_events(t));
}

INSTANTIATE_TEST_SUITE_P(
    Executors, TraceSuite, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

TEST(Trace, OffByDefaultAndAfterStop) {
  auto ex = concur::make_executor(concur::Config{});
  EXPECT_FALSE(trace::recording());
  ex->gather(concur::call(instant, 1));  // not recorded: nobody is recording
  trace::Recorder rec;
  EXPECT_TRUE(trace::recording());
  ex->gather(concur::call(instant, 2), concur::call(instant, 3));
  const trace::Trace t = rec.stop();
  EXPECT_FALSE(trace::recording());
  EXPECT_EQ(t.tasks.size(), 2U);
  EXPECT_TRUE(rec.stop().tasks.empty()) << "a second stop returns nothing";
}

TEST(Trace, OneRecorderAtATime) {
  trace::Recorder rec;
  EXPECT_THROW(trace::Recorder second, concur::UsageError);
}

TEST(Trace, ExecutorRecorderKeepsOnlyItsTasks) {
  concur::Config a;
  a.set("executor", "event_loop", "test");
  auto loop = concur::make_executor(a);
  concur::Config b;
  b.set("executor", "sequential", "test");
  auto seq = concur::make_executor(b);
  trace::Recorder rec(*loop);
  loop->gather(concur::call(instant, 1));
  seq->gather(concur::call(instant, 2), concur::call(instant, 3));
  const trace::Trace t = rec.stop();
  ASSERT_EQ(t.tasks.size(), 1U);
  EXPECT_EQ(t.tasks[0].executor, "event_loop");
}

TEST(Trace, StallReportsAppearInTraces) {
  concur::Config c;
  c.set("executor", "event_loop", "test");
  c.set("stall_ms", "20", "test");
  auto ex = concur::make_executor(c);
  ex->on_stall([](const concur::StallReport&) {});  // keep the test's output quiet
  trace::Recorder rec(*ex);
  ex->gather(concur::call(hog, 60ms), concur::call(nap, 10ms, 1));
  const trace::Trace t = rec.stop();
  ASSERT_EQ(t.stalls.size(), 1U);
  EXPECT_EQ(t.stalls[0].task, "hog");
  EXPECT_GE(t.stalls[0].end - t.stalls[0].start, 40ms);

  std::size_t stall_events = 0;
  for (const auto& ev : chrome_events(t)) {
    const auto& o = ev.as_object();
    if (o.at("ph").as_string() == "i" && o.at("name").as_string() == "stall: hog") ++stall_events;
  }
  EXPECT_EQ(stall_events, 1U);
  std::ostringstream svg;
  trace::write_svg(t, svg);
  EXPECT_NE(svg.str().find("class=\"stall-report\""), std::string::npos);
}

TEST(Trace, ExternalTasksGetTheirWorkerAsLane) {
  trace::Recorder rec;
  const auto t0 = trace::Clock::now();
  const std::pair<trace::Clock::time_point, trace::Clock::time_point> wait{t0 + 2ms, t0 + 8ms};
  trace::record_task("remote", "processes", 424242, t0, t0 + 10ms, false, {&wait, 1});
  trace::record_task("remote", "processes", 434343, t0 + 1ms, t0 + 5ms, true);
  const trace::Trace t = rec.stop();
  ASSERT_EQ(t.tasks.size(), 2U);
  EXPECT_EQ(t.lanes().size(), 2U);
  EXPECT_EQ(t.tasks[0].pid, 424242);
  EXPECT_EQ(t.tasks[0].waited(), 6ms);
  EXPECT_TRUE(t.tasks[1].failed);
  check_chrome(chrome_events(t));
  EXPECT_EQ(svg_task_bars(t), 2U);
}

// Runs `n` instant tasks named `name` on a sequential executor, on this thread.
void run_named(const char* name, int n) {
  concur::Config c;
  c.set("executor", "sequential", "test");
  auto ex = concur::make_executor(c);
  std::vector<decltype(concur::call(instant, 0))> calls;
  for (int i = 0; i < n; ++i) calls.push_back(concur::call(instant, i).named(name));
  ex->gather(calls);
}

// Checks that `t` holds exactly `n` finished tasks, all named `name`.
void expect_only(const trace::Trace& t, const std::string& name, std::size_t n) {
  ASSERT_EQ(t.tasks.size(), n);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < t.tasks.size(); ++i) {
    const auto& task = t.tasks[i];
    EXPECT_EQ(task.id, i + 1);
    if (task.name != name) ++wrong;
    EXPECT_LE(task.start, task.end);
    EXPECT_GE(task.start, trace::Nanos(0));
    EXPECT_LE(task.end, t.duration);
    if (i > 0) {
      EXPECT_GE(task.start, t.tasks[i - 1].start);
    }
  }
  EXPECT_EQ(wrong, 0U) << "tasks not named '" << name << "' (another recording leaked in?)";
}

// The recorder keeps its buffers for the next recording: a thread reuses its
// own, and buffers of threads that have ended are handed to new threads. The
// second recording is shorter than the first, so the reused memory still holds
// the first one's records past its end: none of them may show up.
TEST(Trace, ReusedBuffersHoldOnlyTheNewRecording) {
  // Enough tasks to fill several buffer chunks on each thread.
  constexpr int kFirst = 6000, kSecond = 700;
  {
    trace::Recorder rec;
    run_named("first", kFirst);
    std::thread other([] { run_named("first-other", kFirst); });
    other.join();  // its buffer is recycled when the next recording starts
    const trace::Trace t = rec.stop();
    EXPECT_EQ(t.tasks.size(), 2U * kFirst);
  }
  {
    trace::Recorder rec;
    run_named("second", kSecond);  // this thread's own buffer, reused
    const trace::Trace t = rec.stop();
    expect_only(t, "second", kSecond);
  }
  {
    trace::Recorder rec;
    std::thread fresh([] { run_named("third", kSecond); });  // takes recycled chunks
    fresh.join();
    const trace::Trace t = rec.stop();
    expect_only(t, "third", kSecond);
  }
  {
    trace::Recorder rec;
    run_named("fourth", kFirst);  // longer again: crosses into chunks the first left behind
    const trace::Trace t = rec.stop();
    expect_only(t, "fourth", kFirst);
  }
}

// A task of a hand-made trace: on thread `tid`, alive over [start, end] ms,
// running over [run_start, run_end] ms and waiting the rest.
trace::TaskRecord made_task(std::uint64_t id, std::uint64_t tid, int start, int end, int run_start,
                            int run_end) {
  using ms = std::chrono::milliseconds;
  trace::TaskRecord task;
  task.id = id;
  task.name = "made";
  task.executor = "test";
  task.pid = 1;
  task.tid = tid;
  task.start = ms(start);
  task.end = ms(end);
  auto add = [&](trace::Segment::Kind k, int a, int b) {
    if (b > a) task.segments.push_back({k, ms(a), ms(b), tid});
  };
  add(trace::Segment::waiting, start, run_start);
  add(trace::Segment::running, run_start, run_end);
  add(trace::Segment::waiting, run_end, end);
  return task;
}

// "On a CPU at once" counts threads running a task, at most the CPUs: four
// threads running side by side on 2 CPUs are 2, a child running inline
// inside its parent on one thread is 1, and waiting is 0.
TEST(Trace, AverageOnCpuCountsThreadsUpToTheCpus) {
  trace::Trace four;
  for (std::uint64_t k = 0; k < 4; ++k)
    four.tasks.push_back(made_task(k + 1, 10 + k, 0, 100, 0, 100));
  four.pid = 1;
  EXPECT_NEAR(trace::average_on_cpu(four, 2), 2.0, 1e-9);
  EXPECT_NEAR(trace::average_on_cpu(four, 8), 4.0, 1e-9);
  EXPECT_LE(trace::average_on_cpu(four), static_cast<double>(std::thread::hardware_concurrency()));

  trace::Trace nested;
  nested.tasks.push_back(made_task(1, 7, 0, 100, 0, 100));
  nested.tasks.push_back(made_task(2, 7, 20, 60, 20, 60));  // inline inside task 1
  EXPECT_NEAR(trace::average_on_cpu(nested, 4), 1.0, 1e-9);

  trace::Trace waiting;  // 10 tasks on one thread, running 1 ms of 100 each, one after another
  for (int k = 0; k < 10; ++k) waiting.tasks.push_back(made_task(k + 1, 7, 0, 100, k, k + 1));
  EXPECT_NEAR(trace::average_on_cpu(waiting, 4), 0.1, 1e-9);
}

// Attribute `name` of the root element of an SVG text.
std::string svg_root_attribute(const std::string& svg, const std::string& name) {
  std::istringstream in(svg);
  boost::property_tree::ptree tree;
  boost::property_tree::read_xml(in, tree);
  return tree.get<std::string>("svg.<xmlattr>." + name);
}

// 1,000 tasks waiting at once on one thread do not fit 560 px at a pixel a
// row: one row in 2 is drawn, the picture says so, and the aggregate strip
// above still counts all 1,000. No bar is under a pixel high.
TEST(Trace, LargeBatchesAreSampledAndSayHow) {
  trace::Trace t;
  t.pid = 1;
  for (int k = 0; k < 1000; ++k)
    t.tasks.push_back(made_task(static_cast<std::uint64_t>(k + 1), 7, k / 100, 1000 + k / 100,
                                k / 100, k / 100 + 1));
  std::ostringstream out;
  trace::write_svg(t, out, {.title = "big"});
  const std::string svg = out.str();
  EXPECT_EQ(svg_root_attribute(svg, "data-row-sample"), "2");
  EXPECT_EQ(svg_root_attribute(svg, "data-drawn"), "500");
  EXPECT_NE(svg.find("bars: 1 row in 2 drawn (500 of 1000 tasks)"), std::string::npos);
  std::istringstream in(svg);
  boost::property_tree::ptree tree;
  boost::property_tree::read_xml(in, tree);
  EXPECT_EQ(count_task_bars(tree), 500U);
  EXPECT_NE(svg.find(R"(class="aggregate" data-peak-in-flight="1000" data-peak-running="1")"),
            std::string::npos);
  const std::regex height_re(
      R"re(class="(run|wait)" x="[0-9.]+" y="[0-9.]+" width="[0-9.]+" height="([0-9.]+)")re");
  int bars = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), height_re);
       it != std::sregex_iterator(); ++it, ++bars)
    ASSERT_GE(std::stod((*it)[2]), 1.0) << (*it)[0];
  EXPECT_GE(bars, 500);

  // A small batch is drawn whole and says nothing about sampling.
  trace::Trace small;
  small.pid = 1;
  for (int k = 0; k < 8; ++k)
    small.tasks.push_back(made_task(static_cast<std::uint64_t>(k + 1), 7, 0, 100, 0, 5));
  std::ostringstream small_out;
  trace::write_svg(small, small_out);
  EXPECT_EQ(svg_root_attribute(small_out.str(), "data-row-sample"), "1");
  EXPECT_EQ(small_out.str().find("row in"), std::string::npos);
}

TEST(Trace, WritingToABadPathIsAClearError) {
  trace::Trace t;
  try {
    trace::write_svg(t, "/nonexistent-dir/x.svg");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.svg"), std::string::npos);
  }
}

}  // namespace
