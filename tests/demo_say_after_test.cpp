// SPDX-License-Identifier: BSL-1.0
// Runs the concur-say-after binary as a user would and checks the shape of
// its timings: overlapping waits are clearly faster than awaiting in turn,
// and a blocking sleep on a shared thread is caught by the stall detector.
#include <gtest/gtest.h>

#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/run_program.hpp"

namespace {

struct Row {
  double wall_s;
  std::size_t stalls;
  std::vector<std::string> results;
};

std::string run(const std::string& command) { return concur::testing::run_program(command); }

TEST(SayAfterDemo, JsonTimingsShowTheSeedsLessons) {
  const std::string out =
      run(std::string(CONCUR_SAY_AFTER_BIN) + " --executor all --scale 0.2 --json");
  std::map<std::pair<std::string, std::string>, Row> rows;
  for (const std::string& line : concur::testing::lines_of(out)) {
    auto v = boost::json::parse(line).as_object();
    for (const char* key :
         {"demo", "executor", "case", "wall_s", "cpu_s", "ok", "failed", "results"}) {
      ASSERT_TRUE(v.contains(key)) << key << " missing in " << line;
    }
    Row r{v["wall_s"].to_number<double>(), v["stalls"].as_array().size(), {}};
    for (auto& x : v["results"].as_array()) r.results.emplace_back(x.as_string().c_str());
    EXPECT_EQ(v["failed"].to_number<int>(), 0) << line;
    rows[{std::string(v["executor"].as_string()), std::string(v["case"].as_string())}] = r;
  }
  ASSERT_FALSE(rows.empty()) << out;
  // The scaled 1 s: large enough that a loaded machine's scheduling delays
  // (tens of ms) cannot blur the 1 s differences the cases are about.
  const double one_s = 0.2;
  for (const auto& [key, row] : rows) {
    const auto& [executor, which] = key;
    SCOPED_TRACE(executor + "/" + which);
    EXPECT_EQ(row.results, (std::vector<std::string>{"hello", "world"}));
    const double in_turn = rows.at({executor, "sequential-awaits"}).wall_s;
    EXPECT_GE(in_turn, 3 * one_s * 0.95);
    if (which == "gather") {
      if (executor == "sequential") {
        EXPECT_GE(row.wall_s, 3 * one_s * 0.95);
      } else {
        EXPECT_LT(row.wall_s, in_turn - 0.5 * one_s) << "gather should beat awaiting in turn";
      }
    }
    if (which == "blocking-sleep" && (executor == "event_loop" || executor == "fibers")) {
      EXPECT_GE(row.wall_s, 3 * one_s * 0.95) << "a blocking sleep serialises a shared thread";
      EXPECT_GE(row.stalls, 1u) << "the stall detector should report the blocking task";
    }
  }
}

// The summary names the times this --scale makes, not the unscaled 2 s / 3 s,
// next to what each executor measured.
TEST(SayAfterDemo, TheSummaryStatesTheScaledExpectations) {
  const std::string out = run(std::string(CONCUR_SAY_AFTER_BIN) +
                              " --executor sequential,event_loop --case gather --scale 0.1");
  EXPECT_NE(out.find("~0.2 s on concurrent executors, 0.3 s on sequential"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("~2 s"), std::string::npos) << out;
  const auto at = out.find("measured (wall s): sequential 0.");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_NE(out.find(", event_loop 0.", at), std::string::npos) << out;
}

TEST(SayAfterDemo, UnknownExecutorIsAClearError) {
  const std::string out =
      run(std::string(CONCUR_SAY_AFTER_BIN) + " --executor fiberz 2>&1; echo exit=$?");
  EXPECT_NE(out.find("unknown executor \"fiberz\""), std::string::npos) << out;
  EXPECT_NE(out.find("event_loop"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
}

TEST(SayAfterDemo, BadConfigFlagIsAClearError) {
  const std::string out =
      run(std::string(CONCUR_SAY_AFTER_BIN) + " --workers zero 2>&1; echo exit=$?");
  EXPECT_NE(out.find("\"zero\""), std::string::npos) << out;
  EXPECT_NE(out.find("--workers"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
}

// The executors a --json run used, in order.
std::vector<std::string> executors_run(const std::string& env, const std::string& flags) {
  const std::string out = run(env + " " + std::string(CONCUR_SAY_AFTER_BIN) +
                              " --case gather --scale 0.02 --json " + flags);
  std::vector<std::string> names;
  for (const std::string& line : concur::testing::lines_of(out))
    names.emplace_back(boost::json::parse(line).at("executor").as_string());
  return names;
}

std::string toml_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  std::fputs(text.c_str(), f.get());
  return path;
}

// The README's precedence holds for the demos too: their own default
// (--executor all) is a built-in default, so the file and the environment
// beat it, and the flag beats them both.
TEST(SayAfterDemo, ExecutorPrecedenceDefaultFileEnvironmentFlag) {
  using V = std::vector<std::string>;
  const std::string file = toml_file("say_after_precedence.toml", "executor = \"sequential\"\n");
  const std::string app_file =
      toml_file("say_after_app.toml", "name = \"app\"\n[concur]\nexecutor = \"fibers\"\n");
  EXPECT_EQ(executors_run("CONCUR_EXECUTOR=event_loop", ""), V{"event_loop"});
  EXPECT_EQ(executors_run("CONCUR_CONFIG=" + file, ""), V{"sequential"});
  EXPECT_EQ(executors_run("", "--config " + app_file), V{"fibers"});
  EXPECT_EQ(executors_run("CONCUR_CONFIG=" + file + " CONCUR_EXECUTOR=thread_pool", ""),
            V{"thread_pool"});
  EXPECT_EQ(executors_run("CONCUR_EXECUTOR=thread_pool", "--executor sequential,event_loop"),
            (V{"sequential", "event_loop"}));
}

TEST(SayAfterDemo, EmptyExecutorListsAreErrors) {
  for (const char* flag : {"--executor ''", "--executor sequential,", "--executor ,sequential",
                           "--executor sequential,,event_loop"}) {
    SCOPED_TRACE(flag);
    const std::string out = run(std::string(CONCUR_SAY_AFTER_BIN) + " --case gather --scale 0.02 " +
                                flag + " 2>&1; echo exit=$?");
    EXPECT_NE(out.find("for key 'executor' (from --executor)"), std::string::npos) << out;
    EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
    EXPECT_EQ(out.find("hello"), std::string::npos) << "nothing should run: " << out;
  }
}

}  // namespace
