// SPDX-License-Identifier: BSL-1.0
// Traces of the seed's own workload: a batch of chat completions against the
// in-process fake server, on every in-process executor. A task waiting for a
// reply must be drawn waiting (its waits cover almost all of its life, on
// the engine and on the blocking path alike), a thread's running slices must
// nest like a call stack (no task "running" around another's stretch on an
// event-loop thread), the Chrome export must keep every running stretch
// whole, and the lanes' busy share must match the little CPU the batch used.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <concur/trace.hpp>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace fl = concur::fake_llm;
namespace llm = concur::llm;
namespace trace = concur::trace;

namespace {

Task<std::string> translate(const llm::Client* client, std::string text) {
  llm::ChatRequest r;
  r.messages = {{"system", "Translate the user's text into Japanese."}, {"user", std::move(text)}};
  llm::ChatResponse reply = co_await client->chat(std::move(r));
  co_return std::move(reply.content);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

using Lane = std::pair<int, std::uint64_t>;

// The running stretches of every task, per thread.
std::map<Lane, std::vector<trace::Segment>> running_by_thread(const trace::Trace& t) {
  std::map<Lane, std::vector<trace::Segment>> out;
  for (const auto& task : t.tasks)
    for (const auto& s : task.segments)
      if (s.kind == trace::Segment::running && s.end > s.start) out[{task.pid, s.tid}].push_back(s);
  return out;
}

// Stretches on one thread that overlap without one holding the other.
int badly_nested(std::vector<trace::Segment> v) {
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  int bad = 0;
  std::vector<trace::Nanos> open;  // ends of the stretches that hold the current one
  for (const auto& s : v) {
    while (!open.empty() && open.back() <= s.start) open.pop_back();
    if (!open.empty() && s.end > open.back()) ++bad;
    open.push_back(s.end);
  }
  return bad;
}

trace::Nanos union_length(std::vector<trace::Segment> v) {
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  trace::Nanos total{0}, s{0}, e{0};
  bool any = false;
  for (const auto& g : v) {
    if (!any || g.start > e) {
      if (any) total += e - s;
      s = g.start;
      e = g.end;
      any = true;
    } else {
      e = std::max(e, g.end);
    }
  }
  return any ? total + (e - s) : total;
}

// Per task: the microseconds its B/E slices in the Chrome export add up to.
std::map<std::int64_t, double> chrome_running_us(const trace::Trace& t) {
  std::ostringstream out;
  trace::write_chrome_json(t, out);
  const auto events = boost::json::parse(out.str()).as_object().at("traceEvents").as_array();
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::pair<std::int64_t, double>>>
      stacks;
  std::map<std::int64_t, double> total;
  for (const auto& ev : events) {
    const auto& o = ev.as_object();
    const std::string ph(o.at("ph").as_string());
    if (ph != "B" && ph != "E") continue;
    const std::pair lane{o.at("pid").to_number<std::int64_t>(),
                         o.at("tid").to_number<std::int64_t>()};
    const double ts = o.at("ts").to_number<double>();
    auto& stack = stacks[lane];
    if (ph == "B") {
      stack.push_back({o.at("args").at("task").to_number<std::int64_t>(), ts});
    } else if (!stack.empty()) {
      total[stack.back().first] += ts - stack.back().second;
      stack.pop_back();
    } else {
      ADD_FAILURE() << "E without B";
    }
  }
  return total;
}

class TraceHttp : public ::testing::TestWithParam<concur::testing::ExecutorParam> {};

TEST_P(TraceHttp, AnHttpBatchIsDrawnWaiting) {
  constexpr int kTexts = 10;
  fl::Server server({.latency = fl::Latency::fixed(120ms)});
  llm::ClientOptions options;
  options.base_url = server.base_url();
  options.max_retries = 0;
  llm::Client client(options);
  std::vector<decltype(concur::call(translate, &client, std::string()))> calls;
  for (int i = 0; i < kTexts; ++i)
    calls.push_back(concur::call(translate, &client, "text " + std::to_string(i)));

  auto ex = concur::make_executor(GetParam().config());
  (void)ex->gather(calls);  // warm: connections, threads and buffers exist before the timing

  trace::Recorder rec(*ex);
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  const auto results = ex->gather_settled(calls);
  const double cpu_s = cpu_seconds() - cpu0;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const trace::Trace t = rec.stop();
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(t.tasks.size(), static_cast<std::size_t>(kTexts));

  // Each task spent its life waiting for its reply: the waits, HTTP
  // included, are recorded whichever way the executor waits.
  for (const auto& task : t.tasks) {
    const auto span = task.end - task.start;
    EXPECT_GE(task.waited().count(), span.count() * 8 / 10)
        << task.name << " #" << task.id << " waited " << task.waited().count() / 1000 << " us of "
        << span.count() / 1000 << " us";
  }

  // Per thread, running stretches nest or follow each other.
  const auto by_thread = running_by_thread(t);
  for (const auto& [lane, segments] : by_thread)
    EXPECT_EQ(badly_nested(segments), 0) << "thread " << lane.second;

  // The Chrome export keeps each running stretch whole (nothing clipped).
  const auto exported = chrome_running_us(t);
  for (const auto& task : t.tasks) {
    const double ran_us =
        static_cast<double>((task.end - task.start - task.waited()).count()) / 1e3;
    const auto it = exported.find(static_cast<std::int64_t>(task.id));
    const double got = it == exported.end() ? 0.0 : it->second;
    EXPECT_NEAR(got, ran_us, 2.0 + ran_us * 0.01) << "task #" << task.id;
  }

  // Busy share of the lanes against CPU per wall second. The CPU figure also
  // holds the in-process server's threads, and a preempted stretch counts
  // as busy: hence the bound, far below the 100% per lane of a trace that
  // missed the HTTP waits.
  double busy = 0;
  const double span_ns = static_cast<double>(t.span().count());
  for (const auto& [lane, segments] : by_thread)
    busy += static_cast<double>(union_length(segments).count()) / span_ns;
  EXPECT_LE(busy, 2 * cpu_s / wall_s + 0.2) << "cpu/wall " << cpu_s / wall_s;

  // The picture says the same: every lane's "busy N%" is small.
  std::ostringstream svg;
  trace::write_svg(t, svg);
  const std::string text = svg.str();
  const std::regex busy_re("busy (?:&lt;)?([0-9]+)%");  // "busy &lt;1%": under 1%
  int lanes_seen = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), busy_re);
       it != std::sregex_iterator(); ++it, ++lanes_seen)
    EXPECT_LE(std::stoi((*it)[1]), 100 * (2 * cpu_s / wall_s + 0.2)) << (*it)[0];
  EXPECT_EQ(lanes_seen, static_cast<int>(t.lanes().size()));
}

INSTANTIATE_TEST_SUITE_P(
    Executors, TraceHttp, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<concur::testing::ExecutorParam>>);

}  // namespace
