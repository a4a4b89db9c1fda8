// SPDX-License-Identifier: BSL-1.0
// What only the processes executor has to prove (DESIGN §5): crash isolation,
// unregistered calls refused before anything runs, timeouts that reach a
// stuck worker, worker recycling, stderr forwarding, user types crossing the
// boundary, no orphans when the parent is killed, a forgotten concur::init.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/trace.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ios>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <typeinfo>
#include <variant>
#include <vector>

#include "support/processes_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;

namespace {

int worker_pid() { return static_cast<int>(getpid()); }
CONCUR_REGISTER(worker_pid);

// Crashes for every 25th input (i % 25 == 7) in the way `mode` names.
int maybe_crash(int i, int mode) {
  if (i % 25 == 7) {
    if (mode == 0) {
      volatile int* nowhere = nullptr;
      *nowhere = i;  // SIGSEGV
    } else if (mode == 1) {
      std::abort();
    } else {
      std::exit(3);
    }
  }
  return i * 2;
}
CONCUR_REGISTER(maybe_crash);

Task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}
CONCUR_REGISTER(value_after);

// Blocks its thread and never polls for cancellation: only a kill stops it.
int stuck(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  return worker_pid();
}
CONCUR_REGISTER(stuck);

int touch(std::string path) {
  std::ofstream(path) << "ran\n";
  return 1;
}
CONCUR_REGISTER(touch);

int not_registered(std::string path) { return touch(path); }

struct NoCodec {
  int x = 0;
};
int takes_no_codec(NoCodec n) { return n.x; }
CONCUR_REGISTER(takes_no_codec);

int shout(std::string line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  return worker_pid();
}
CONCUR_REGISTER(shout);

struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};
CONCUR_REGISTER_ERROR(QuotaExceeded);
struct Unregistered : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int throws(int kind) {
  if (kind == 0) throw QuotaExceeded("over quota");
  throw Unregistered("odd one");
}
CONCUR_REGISTER(throws);

// Standard exceptions that cannot be built from a message, raised in a worker.
int throws_standard(int kind) {
  switch (kind) {
    case 0:
      throw std::bad_alloc();
    case 1:
      throw std::bad_cast();
    case 2:
      throw std::bad_optional_access();
    case 3:
      throw std::bad_variant_access();
    case 4:
      throw std::bad_function_call();
    default:
      throw std::ios_base::failure("stream broke");
  }
}
CONCUR_REGISTER(throws_standard);

Task<std::vector<int>> nested_pids(int n) {
  std::vector<decltype(concur::call(worker_pid))> calls(static_cast<std::size_t>(n),
                                                        concur::call(worker_pid));
  co_return co_await concur::gather(calls);
}
CONCUR_REGISTER(nested_pids);

}  // namespace

namespace geo {
// A user type with its codec found by argument-dependent lookup.
struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  std::vector<int> tags;
  std::optional<std::map<std::string, int>> extra;
  bool operator==(const Point&) const = default;
};
void concur_encode(concur::Writer& w, const Point& p) { w.put(p.x, p.y, p.label, p.tags, p.extra); }
Point concur_decode(concur::Reader& r, concur::type_tag<Point>) {
  return {r.get<int>(), r.get<double>(), r.get<std::string>(), r.get<std::vector<int>>(),
          r.get<std::optional<std::map<std::string, int>>>()};
}
}  // namespace geo

namespace {

Task<geo::Point> shift(geo::Point p, int dx) {
  p.x += dx;
  p.label += "+" + std::to_string(dx);
  p.tags.push_back(dx);
  if (p.extra) (*p.extra)["shifted"] = dx;
  co_return p;
}
CONCUR_REGISTER(shift);

std::unique_ptr<concur::Executor> make(
    int workers, const std::vector<std::pair<std::string, std::string>>& more = {}) {
  return concur::testing::make_processes(workers, more);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Pids of the live (not zombie) children of `parent`.
std::set<int> children_of(int parent) {
  std::set<int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == parent && state != 'Z') out.insert(std::stoi(name));
  }
  return out;
}

bool alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

void crash_batch(int mode, const std::string& expected) {
  auto ex = make(2);
  std::vector<decltype(concur::call(maybe_crash, 0, 0))> calls;
  for (int i = 0; i < 100; ++i) calls.push_back(concur::call(maybe_crash, i, mode));
  auto rs = ex->gather_settled(calls);
  ASSERT_EQ(rs.size(), 100u);
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    const auto& r = rs[static_cast<std::size_t>(i)];
    if (i % 25 == 7) {
      ++failed;
      ASSERT_FALSE(r.ok()) << i;
      EXPECT_THROW(r.value(), concur::WorkerCrashed);
      EXPECT_NE(r.error().message().find(expected), std::string::npos) << r.error().message();
      EXPECT_NE(r.error().message().find("maybe_crash"), std::string::npos);
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
      EXPECT_EQ(r.value(), i * 2);
    }
  }
  EXPECT_EQ(failed, 4);
  // The pool is whole again: both lanes serve.
  auto again = ex->gather(calls[0], calls[1]);
  EXPECT_EQ(std::get<1>(again), 2);
}

TEST(Processes, SegfaultFailsOnlyItsOwnCall) { crash_batch(0, "SIGSEGV"); }
TEST(Processes, AbortFailsOnlyItsOwnCall) { crash_batch(1, "SIGABRT"); }
TEST(Processes, ExitFailsOnlyItsOwnCall) { crash_batch(2, "exited with status 3"); }

TEST(Processes, WorkersStartWithTheFirstCall) {
  auto ex = make(2);
  EXPECT_TRUE(children_of(getpid()).empty()) << "an unused executor launched workers";
  ex->gather(concur::call(worker_pid));
  EXPECT_EQ(children_of(getpid()).size(), 2u);
}

TEST(Processes, CallsRunInOtherProcesses) {
  auto ex = make(2, {{"worker_concurrency", "3"}});
  EXPECT_EQ(ex->lanes(), 6) << "lanes are workers x calls each runs at once";
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  auto [a, b] = ex->gather(concur::call(worker_pid), concur::call(worker_pid));
  EXPECT_NE(a, getpid());
  EXPECT_NE(b, getpid());
  const std::set<int> kids = children_of(getpid());
  EXPECT_TRUE(kids.count(a)) << a;
  EXPECT_TRUE(kids.count(b)) << b;
}

Task<int> pid_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  co_return static_cast<int>(getpid());
}
CONCUR_REGISTER(pid_after);

// Trivial calls first make the pool's pipelining window large; slow calls
// sent while a worker is still starting must not pile up on the ready ones.
TEST(Processes, SlowCallsAfterTrivialOnesSpreadOverEveryWorker) {
  auto ex = make(4);
  std::vector<decltype(concur::call(worker_pid))> trivial(4, concur::call(worker_pid));
  (void)ex->gather(trivial);
  std::vector<decltype(concur::call(pid_after, 100ms))> slow(4, concur::call(pid_after, 100ms));
  const std::vector<int> pids = ex->gather(slow);
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 4u)
      << "four slow calls on four workers ran on fewer processes";
}

TEST(Processes, UnregisteredCallFailsBeforeAnythingRuns) {
  auto ex = make(1);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("concur_touch_" + std::to_string(getpid())))
          .string();
  std::filesystem::remove(path);
  try {
    ex->gather(concur::call(touch, path), concur::call(not_registered, path));
    FAIL() << "an unregistered call ran";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(concur::messages::kNotRegistered), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("CONCUR_REGISTER"), std::string::npos) << e.what();
  }
  // Same with a range mixing registered and unregistered function pointers.
  std::vector<decltype(concur::call(touch, path))> calls{concur::call(touch, path),
                                                         concur::call(&not_registered, path)};
  EXPECT_THROW(ex->gather_settled(calls), concur::UsageError);
  try {
    ex->gather(concur::call(touch, path), concur::call([] { return 1; }));
    FAIL() << "a lambda ran";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("lambda"), std::string::npos) << e.what();
  }
  try {
    ex->gather(concur::call(touch, path), concur::call(takes_no_codec, NoCodec{1}));
    FAIL() << "a call without a codec ran";
  } catch (const concur::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("takes_no_codec"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("codec"), std::string::npos) << e.what();
  }
  // The same function still runs in-process on other executors.
  concur::Config seq;
  seq.executor = "sequential";
  EXPECT_EQ(
      std::get<0>(concur::make_executor(seq)->gather(concur::call(takes_no_codec, NoCodec{5}))), 5);
  EXPECT_FALSE(std::filesystem::exists(path)) << "the registered call ran before the error";
  // Registered calls still work afterwards.
  EXPECT_EQ(std::get<0>(ex->gather(concur::call(touch, path))), 1);
  EXPECT_TRUE(std::filesystem::exists(path));
  std::filesystem::remove(path);
}

TEST(Processes, UserTypesRoundTrip) {
  geo::Point p{3, 2.5, "p", {1, 2}, std::map<std::string, int>{{"a", 1}}};
  // The codec alone.
  std::string bytes;
  concur::Writer w(bytes);
  w.put(p);
  concur::Reader r(bytes);
  EXPECT_EQ(r.get<geo::Point>(), p);
  EXPECT_EQ(r.remaining(), 0u);
  // Through a worker and back.
  auto ex = make(1);
  auto [q, none] = ex->gather(concur::call(shift, p, 4), concur::call(shift, geo::Point{}, 1));
  EXPECT_EQ(q.x, 7);
  EXPECT_EQ(q.y, 2.5);
  EXPECT_EQ(q.label, "p+4");
  EXPECT_EQ(q.tags, (std::vector<int>{1, 2, 4}));
  ASSERT_TRUE(q.extra.has_value());
  EXPECT_EQ(q.extra->at("shifted"), 4);
  EXPECT_EQ(q.extra->at("a"), 1);
  EXPECT_FALSE(none.extra.has_value());
}

// std::bad_alloc arrived as concur::RemoteError: the standard types arrive as
// themselves; an unregistered type keeps "type: message" in describe().
TEST(Processes, StandardExceptionsArriveAsThemselves) {
  auto ex = make(1);
  std::vector<decltype(concur::call(throws_standard, 0))> calls;
  for (int k = 0; k < 6; ++k) calls.push_back(concur::call(throws_standard, k));
  auto rs = ex->gather_settled(calls);
  ASSERT_EQ(rs.size(), 6u);
  for (auto& r : rs) ASSERT_FALSE(r.ok());
  EXPECT_THROW(rs[0].value(), std::bad_alloc);
  EXPECT_THROW(rs[1].value(), std::bad_cast);
  EXPECT_THROW(rs[2].value(), std::bad_optional_access);
  EXPECT_THROW(rs[3].value(), std::bad_variant_access);
  EXPECT_THROW(rs[4].value(), std::bad_function_call);
  EXPECT_THROW(rs[5].value(), std::ios_base::failure);
  EXPECT_EQ(rs[0].error().describe(), "std::bad_alloc: std::bad_alloc");
  EXPECT_NE(rs[5].error().message().find("stream broke"), std::string::npos);
  // Fail-fast too.
  EXPECT_THROW(ex->gather(concur::call(throws_standard, 0)), std::bad_alloc);
  auto [unknown] = ex->gather_settled(concur::call(throws, 1));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().type(), "(anonymous namespace)::Unregistered");
  EXPECT_EQ(unknown.error().describe(), "(anonymous namespace)::Unregistered: odd one");
}

TEST(Processes, ErrorsCrossWithTypeAndMessage) {
  auto ex = make(1);
  auto [known, unknown] = ex->gather_settled(concur::call(throws, 0), concur::call(throws, 1));
  ASSERT_FALSE(known.ok());
  EXPECT_THROW(known.value(), QuotaExceeded);
  EXPECT_EQ(known.error().message(), "over quota");
  ASSERT_FALSE(unknown.ok());
  try {
    unknown.value();
    FAIL();
  } catch (const concur::RemoteError& e) {
    EXPECT_NE(e.remote_type().find("Unregistered"), std::string::npos) << e.remote_type();
    EXPECT_STREQ(e.what(), "odd one");
  }
}

TEST(Processes, TimeoutKillsAndReplacesAStuckWorker) {
  auto ex = make(1, {{"cancel_grace_ms", "100"}});
  const int before = std::get<0>(ex->gather(concur::call(worker_pid)));
  std::vector<decltype(concur::call(stuck, 1ms))> calls{concur::call(stuck, 60'000ms)};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather_settled(calls, {.timeout = 100ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  const int after = std::get<0>(ex->gather(concur::call(worker_pid)));
  EXPECT_NE(before, after) << "the stuck worker was not replaced";
  EXPECT_FALSE(alive(before)) << "the stuck worker still runs";
}

TEST(Processes, TimeoutCountsFromTheStartInAWorker) {
  // One worker running one call at a time: the third call waits ~400 ms
  // before it starts, longer than its 300 ms timeout, yet runs only 200 ms.
  auto ex = make(1, {{"worker_concurrency", "1"}});
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls(
      3, concur::call(value_after, 200ms, 1));
  auto rs = ex->gather_settled(calls, {.timeout = 300ms});
  for (auto& r : rs) EXPECT_TRUE(r.ok()) << r.error().describe();
}

TEST(Processes, CooperativeCancellationKeepsTheWorker) {
  auto ex = make(1, {{"cancel_grace_ms", "5000"}});
  const int before = std::get<0>(ex->gather(concur::call(worker_pid)));
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls{
      concur::call(value_after, 60'000ms, 1)};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather_settled(calls, {.timeout = 50ms});
  EXPECT_LT(seconds_since(t0), 4.0) << "the sleep in the worker was not cancelled";
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  EXPECT_EQ(std::get<0>(ex->gather(concur::call(worker_pid))), before);
}

TEST(Processes, MaxTasksPerChildRecyclesWorkers) {
  auto ex = make(1, {{"max_tasks_per_child", "3"}});
  std::vector<decltype(concur::call(worker_pid))> calls(9, concur::call(worker_pid));
  std::vector<int> pids = ex->gather(calls);
  std::map<int, int> per_pid;
  for (int p : pids) ++per_pid[p];
  EXPECT_EQ(per_pid.size(), 3u);
  for (auto [pid, n] : per_pid) EXPECT_EQ(n, 3) << pid;
}

TEST(Processes, NestedGatherRunsInsideTheWorker) {
  auto ex = make(2);
  auto [pids] = ex->gather(concur::call(nested_pids, 5));
  ASSERT_EQ(pids.size(), 5u);
  for (int p : pids) EXPECT_EQ(p, pids[0]) << "a nested call left its worker";
  EXPECT_NE(pids[0], getpid());
  // The root task of run() is the parent's: its gather goes to the workers.
  std::vector<int> from_root = ex->run(nested_pids(4));
  for (int p : from_root) EXPECT_NE(p, getpid());
}

Task<int> pid_via_inner_sequential() {
  // Another executor run from a parent task keeps its calls in this process.
  concur::Config c;
  c.executor = "sequential";
  auto inner = concur::make_executor(c);
  co_return std::get<0>(inner->gather(concur::call(worker_pid)));
}

TEST(Processes, OtherExecutorsInsideAParentTaskStayLocal) {
  auto ex = make(1);
  EXPECT_EQ(ex->run(pid_via_inner_sequential()), getpid());
}

// CPU seconds (user + system) used so far by process `pid`.
double cpu_seconds_of(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);  // utime, stime
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

TEST(Processes, SleepingBatchUsesAlmostNoCpu) {
  auto ex = make(2);
  auto [a, b] = ex->gather(concur::call(value_after, 50ms, 1), concur::call(worker_pid));
  (void)a;
  const std::vector<int> pids{static_cast<int>(getpid()), b};
  double before = 0;
  for (int p : pids) before += cpu_seconds_of(p);
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls(
      4, concur::call(value_after, 150ms, 1));
  ex->gather(calls);  // ~300 ms of waiting on two workers
  double after = 0;
  for (int p : pids) after += cpu_seconds_of(p);
  EXPECT_LT(after - before, 0.1) << "the parent or a worker busy-waits";
}

TEST(Processes, WorkerStderrIsForwardedWithItsPid) {
  ::testing::internal::CaptureStderr();
  int pid = 0;
  {
    auto ex = make(1);
    pid = std::get<0>(ex->gather(concur::call(shout, std::string("hello from a worker"))));
  }  // the executor's end forwards what is left
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("[worker " + std::to_string(pid) + "] hello from a worker\n"),
            std::string::npos)
      << err;
}

TEST(Processes, ForgottenInitIsAClearErrorNotAHang) {
  const auto t0 = std::chrono::steady_clock::now();
  auto ex = make(2, {{"worker_executable", CONCUR_NO_INIT_HELPER}});
  auto [r] = ex->gather_settled(concur::call(worker_pid));
  EXPECT_LT(seconds_since(t0), 6.0);
  ASSERT_FALSE(r.ok());
  EXPECT_THROW(r.value(), concur::WorkerStartError);
  EXPECT_NE(r.error().message().find(concur::messages::kForgotInit), std::string::npos)
      << r.error().message();
  // Broken for good: later calls fail at once and nothing is relaunched.
  const auto t1 = std::chrono::steady_clock::now();
  auto [again] = ex->gather_settled(concur::call(worker_pid));
  EXPECT_FALSE(again.ok());
  EXPECT_LT(seconds_since(t1), 1.0);
  EXPECT_TRUE(children_of(getpid()).empty());
}

TEST(Processes, MissingWorkerExecutableIsAClearError) {
  try {
    make(1, {{"worker_executable", "/nonexistent/concur-worker"}});
    FAIL() << "no error for a missing worker executable";
  } catch (const concur::WorkerStartError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/concur-worker"), std::string::npos);
  }
}

TEST(Processes, TracesShowOneLanePerWorker) {
  auto ex = make(2);
  ex->gather(concur::call(value_after, 1ms, 0), concur::call(value_after, 1ms, 0));  // warm
  concur::trace::Recorder recorder(*ex);
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls(
      4, concur::call(value_after, 30ms, 1));
  ex->gather(calls);
  const concur::trace::Trace t = recorder.stop();
  std::set<int> worker_pids;
  for (const auto& task : t.tasks) {
    if (task.pid != getpid() && task.name == "value_after") {
      worker_pids.insert(task.pid);
      EXPECT_GE(task.end - task.start, 25ms);
    }
  }
  EXPECT_EQ(worker_pids.size(), 2u);
}

TEST(Processes, KilledParentLeavesNoWorkers) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(CONCUR_PARENT_HELPER, CONCUR_PARENT_HELPER, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* in = fdopen(out[0], "r");
  int a = 0;
  int b = 0;
  ASSERT_EQ(std::fscanf(in, "%d %d", &a, &b), 2) << "the helper did not report its workers";
  fclose(in);
  EXPECT_TRUE(alive(a));
  EXPECT_TRUE(alive(b));
  kill(helper, SIGKILL);
  waitpid(helper, nullptr, 0);
  const auto t0 = std::chrono::steady_clock::now();
  while ((alive(a) || alive(b)) && seconds_since(t0) < 5.0) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive(a)) << "worker " << a << " outlived its parent";
  EXPECT_FALSE(alive(b)) << "worker " << b << " outlived its parent";
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  rlimit no_core{0, 0};      // crash tests: no core files
  setrlimit(RLIMIT_CORE, &no_core);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
