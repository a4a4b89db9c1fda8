// SPDX-License-Identifier: BSL-1.0
// The cluster executor's own cases, beyond the shared registered-call suite
// (concur_cluster_gather_test): where calls run, crashes on a rank, idle
// ranks, traces, and launching it wrong. ctest runs this binary under
// `mpirun -np 3` (Cluster*), under `mpirun -np 1` (ClusterOneRank*) and
// plainly (ClusterWithoutMpirun*, ClusterRankDeath*).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>
#include <concur/concur.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

concur::Config cluster_config(int slots = 1) {
  concur::Config c;
  c.set("executor", "cluster", "test");
  c.set("worker_concurrency", std::to_string(slots), "test");
  return c;
}

// Where a call ran: its MPI rank (the worker inherits its relay's
// environment; rank 0's own worker inherits rank 0's) and its relay's pid.
struct Place {
  int rank = -1;
  int relay = 0;
  int worker = 0;
};
std::string place_after(std::chrono::milliseconds d) {
  std::this_thread::sleep_for(d);
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  return std::string(r != nullptr ? r : "?") + " " + std::to_string(getppid()) + " " +
         std::to_string(getpid());
}
CONCUR_REGISTER(place_after);

Place parse(const std::string& s) {
  Place p;
  std::istringstream in(s);
  in >> p.rank >> p.relay >> p.worker;
  return p;
}

int twice_or_crash(int i, int mode) {
  if (i % 10 == 3) {
    if (mode == 0) {
      volatile int* nowhere = nullptr;
      *nowhere = i;  // SIGSEGV
    } else if (mode == 1) {
      std::abort();
    } else {
      std::exit(3);
    }
  }
  return 2 * i;
}
CONCUR_REGISTER(twice_or_crash);

concur::Task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await concur::sleep_for(d);
  co_return v;
}
CONCUR_REGISTER(value_after);

// Kills the relay of the rank it runs on, unless that is rank 0 (whose own
// worker's parent is the program itself): the MPI job loses that rank.
int kill_my_rank() {
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank != nullptr && std::string(rank) != "0") ::kill(getppid(), SIGKILL);
  std::this_thread::sleep_for(5s);
  return 0;
}
CONCUR_REGISTER(kill_my_rank);

// CPU seconds a process has used (utime + stime from /proc).
double cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

TEST(Cluster, LanesAreRanksTimesSlots) {
  EXPECT_EQ(concur::make_executor(cluster_config(1))->lanes(), 3);
  EXPECT_EQ(concur::make_executor(cluster_config(16))->lanes(), 48);
  EXPECT_EQ(concur::make_executor(cluster_config(1))->name(), "cluster");
}

TEST(Cluster, CallsRunOnEveryRankOutsideRankZerosProcess) {
  auto ex = concur::make_executor(cluster_config(1));
  std::vector<decltype(concur::call(place_after, 1ms))> calls(12, concur::call(place_after, 100ms));
  std::set<int> ranks, workers;
  for (const auto& s : ex->gather(calls)) {
    const Place p = parse(s);
    ranks.insert(p.rank);
    workers.insert(p.worker);
    EXPECT_NE(p.worker, getpid()) << "a call ran in rank 0's own process";
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2})) << "calls are dealt to every rank";
  EXPECT_EQ(workers.size(), 3u);
}

void crash_batch(int mode, const std::string& expected) {
  auto ex = concur::make_executor(cluster_config(1));
  std::vector<decltype(concur::call(twice_or_crash, 0, 0))> calls;
  for (int i = 0; i < 40; ++i) calls.push_back(concur::call(twice_or_crash, i, mode));
  auto rs = ex->gather_settled(calls);
  ASSERT_EQ(rs.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    const auto& r = rs[static_cast<std::size_t>(i)];
    if (i % 10 == 3) {
      ASSERT_FALSE(r.ok()) << i;
      EXPECT_THROW(r.value(), concur::WorkerCrashed);
      EXPECT_NE(r.error().message().find(expected), std::string::npos) << r.error().message();
      EXPECT_NE(r.error().message().find("twice_or_crash"), std::string::npos)
          << r.error().message();
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error().describe();
      EXPECT_EQ(r.value(), 2 * i);
    }
  }
  // The job goes on, on every rank: each lost worker was replaced.
  std::vector<decltype(concur::call(place_after, 1ms))> again(9, concur::call(place_after, 100ms));
  std::set<int> ranks;
  for (const auto& s : ex->gather(again)) ranks.insert(parse(s).rank);
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2}));
}

TEST(Cluster, SegfaultOnARankFailsOnlyItsCall) { crash_batch(0, "SIGSEGV"); }
TEST(Cluster, AbortOnARankFailsOnlyItsCall) { crash_batch(1, "SIGABRT"); }
TEST(Cluster, ExitOnARankFailsOnlyItsCall) { crash_batch(2, "exited with status 3"); }

TEST(Cluster, TimeoutKillsAStuckCallOnItsRankAndTheBatchGoesOn) {
  auto ex = concur::make_executor(cluster_config(1));
  // place_after blocks its thread: only killing its worker stops it early.
  auto rs = ex->gather_settled(
      std::vector<decltype(concur::call(place_after, 1ms))>{concur::call(place_after, 20000ms),
                                                            concur::call(place_after, 10ms)},
      {.timeout = 300ms});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  EXPECT_TRUE(rs[1].ok()) << rs[1].error().describe();
  EXPECT_EQ(ex->gather(concur::call(value_after, 1ms, 7)), std::tuple<int>{7});
}

TEST(Cluster, TraceHasOneLanePerWorkerOnEveryRank) {
  auto ex = concur::make_executor(cluster_config(4));
  std::vector<decltype(concur::call(value_after, 1ms, 0))> calls;
  for (int i = 0; i < 24; ++i) calls.push_back(concur::call(value_after, 50ms, i));
  ex->gather(calls);  // warm: every rank's worker is up
  concur::trace::Recorder rec(*ex);
  ex->gather(calls);
  const auto trace = rec.stop();
  std::set<int> lanes;
  int tasks = 0;
  for (const auto& t : trace.tasks) {
    if (t.executor != "cluster") continue;
    ++tasks;
    lanes.insert(t.pid);
  }
  EXPECT_EQ(tasks, 24);
  EXPECT_EQ(lanes.size(), 3u) << "one process lane per rank's worker";
}

TEST(Cluster, IdleRanksDoNotSpin) {
  auto ex = concur::make_executor(cluster_config(1));
  std::vector<decltype(concur::call(place_after, 1ms))> calls(6, concur::call(place_after, 50ms));
  std::set<int> relays;
  for (const auto& s : ex->gather(calls)) {
    const Place p = parse(s);
    if (p.rank != 0) relays.insert(p.relay);
  }
  ASSERT_EQ(relays.size(), 2u);
  std::vector<double> before;
  for (int pid : relays) before.push_back(cpu_seconds(pid));
  const double self_before = cpu_seconds(getpid());
  std::this_thread::sleep_for(2s);
  std::size_t i = 0;
  for (int pid : relays) {
    const double used = cpu_seconds(pid) - before[i++];
    std::printf("relay %d: %.3f s of CPU over 2 s idle\n", pid, used);
    // A blocking MPI wait would use most of a core (about 1.4 s here).
    EXPECT_LT(used, 0.2) << "relay " << pid << " used " << used << " s of CPU idling 2 s";
  }
  const double self_used = cpu_seconds(getpid()) - self_before;
  std::printf("rank 0: %.3f s of CPU over 2 s idle\n", self_used);
  EXPECT_LT(self_used, 0.2) << "rank 0 used " << self_used << " s of CPU idling 2 s";
}

// A rank lost outright (its process killed) cannot be hidden from Open MPI:
// mpirun ends the whole job, naming the rank, and nothing hangs. Run as
// mpirun's child by ClusterRankDeath below; never returns normally.
TEST(ClusterKilledRank, Body) {
  auto ex = concur::make_executor(cluster_config(1));
  std::vector<decltype(concur::call(kill_my_rank))> calls(3, concur::call(kill_my_rank));
  (void)ex->gather_settled(calls);
  std::this_thread::sleep_for(60s);  // mpirun must end us long before this
  FAIL() << "the job outlived a killed rank";
}

TEST(ClusterOneRank, IsAConfigErrorSayingHowToLaunch) {
  try {
    (void)concur::make_executor(cluster_config(1));
    FAIL() << "cluster on one rank was accepted";
  } catch (const concur::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("at least 2 ranks"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mpirun -np"), std::string::npos) << e.what();
  }
  const auto names = concur::executor_names();
  EXPECT_EQ(std::find(names.begin(), names.end(), "cluster"), names.end());
}

TEST(ClusterWithoutMpirun, IsAConfigErrorSayingHowToLaunch) {
  try {
    (void)concur::make_executor(cluster_config(1));
    FAIL() << "cluster without mpirun was accepted";
  } catch (const concur::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not started by mpirun"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mpirun -np 3"), std::string::npos) << e.what();
  }
  // The name is known everywhere, but "all" (executor_names) leaves it out here.
  const auto known = concur::known_executor_names();
  EXPECT_NE(std::find(known.begin(), known.end(), "cluster"), known.end());
  const auto names = concur::executor_names();
  EXPECT_EQ(std::find(names.begin(), names.end(), "cluster"), names.end());
}

TEST(ClusterRankDeath, AKilledRankEndsTheJobWithinSecondsNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string cmd = std::string(CONCUR_MPIRUN) + " -np 3 --oversubscribe " +
                          CONCUR_CLUSTER_TEST + " --gtest_filter=ClusterKilledRank.* 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = pclose(pipe);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(status, 0) << out;
  EXPECT_LT(took, 40.0) << "the job hung after losing a rank:\n" << out;
  const bool names_it = out.find("process rank 1 ") != std::string::npos ||
                        out.find("process rank 2 ") != std::string::npos;
  EXPECT_TRUE(names_it) << "mpirun did not name the lost rank:\n" << out;
  EXPECT_NE(out.find("signal 9"), std::string::npos) << out;
  EXPECT_EQ(out.find("the job outlived a killed rank"), std::string::npos) << out;
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // ranks other than 0 serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
