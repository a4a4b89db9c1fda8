// SPDX-License-Identifier: BSL-1.0
// Runs concur-translate as a user would (embedded fake server, short
// latency, --json) and checks the shape of what it prints: replies in input
// order on every executor, concurrency clearly faster than sequential, and a
// failing input reported at its own position while the others succeed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <concur/fake_llm.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/run_program.hpp"

namespace {

namespace json = boost::json;

std::string run(const std::string& command) { return concur::testing::run_program(command); }

// One JSON object per line, keyed by executor; checks the common keys.
std::map<std::string, json::object> parse_runs(const std::string& out) {
  std::map<std::string, json::object> runs;
  for (const std::string& line : concur::testing::lines_of(out)) {
    json::object o = json::parse(line).as_object();
    for (const char* key :
         {"demo", "executor", "case", "wall_s", "cpu_s", "ok", "failed", "results"}) {
      EXPECT_TRUE(o.contains(key)) << key << " missing in " << line;
    }
    EXPECT_EQ(o["demo"].as_string(), "translate");
    runs[std::string(o["executor"].as_string())] = o;
  }
  return runs;
}

const std::vector<std::string> kSeed{
    "Hello, how are you today?",
    "The weather is beautiful this morning.",
    "I am learning to write concurrent programs.",
    "Could you recommend a good book to read?",
};

TEST(TranslateDemo, ConcurrentExecutorsOverlapTheCallsAndKeepInputOrder) {
  const std::string out =
      run(std::string(CONCUR_TRANSLATE_BIN) + " --executor all --latency 200ms --workers 4 --json");
  const auto runs = parse_runs(out);
  ASSERT_TRUE(runs.contains("sequential")) << out;
  ASSERT_GE(runs.size(), 4u) << out;
  const double sequential = runs.at("sequential").at("wall_s").to_number<double>();
  EXPECT_GE(sequential, 4 * 0.2 * 0.95) << "sequential waits for each of four 200 ms calls";
  for (const auto& [executor, o] : runs) {
    SCOPED_TRACE(executor);
    EXPECT_EQ(o.at("ok").to_number<int>(), 4);
    EXPECT_EQ(o.at("failed").to_number<int>(), 0);
    const auto& results = o.at("results").as_array();
    ASSERT_EQ(results.size(), kSeed.size());
    for (std::size_t i = 0; i < kSeed.size(); ++i) {
      ASSERT_TRUE(results[i].is_string()) << json::serialize(results[i]);
      EXPECT_EQ(results[i].as_string(), concur::fake_llm::reply_for(kSeed[i])) << "input " << i;
    }
    if (executor != "sequential") {
      EXPECT_LT(o.at("wall_s").to_number<double>(), 0.7 * sequential)
          << "overlapped waits should be clearly faster than one after another";
    }
  }
}

TEST(TranslateDemo, AFailedInputIsAnErrorAtItsPositionAndTheOthersSucceed) {
  char path[] = "/tmp/concur-translate-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  const std::vector<std::string> texts{"Good morning.", "This reply is broken [[fault:malformed]]",
                                       "Refused once, then fine [[fault:429:1]]", "Good night."};
  {
    std::ofstream f(path);
    for (const auto& t : texts) f << t << "\n\n";  // blank lines are not texts
  }
  const std::string out = run(std::string(CONCUR_TRANSLATE_BIN) + " --executor all --input " +
                              path + " --latency 20ms --json");
  unlink(path);
  const auto runs = parse_runs(out);
  ASSERT_GE(runs.size(), 4u) << out;
  for (const auto& [executor, o] : runs) {
    SCOPED_TRACE(executor);
    EXPECT_EQ(o.at("ok").to_number<int>(), 3);
    EXPECT_EQ(o.at("failed").to_number<int>(), 1);
    const auto& results = o.at("results").as_array();
    ASSERT_EQ(results.size(), texts.size());
    for (std::size_t i : {0u, 2u, 3u}) {
      ASSERT_TRUE(results[i].is_string()) << json::serialize(results[i]);
      EXPECT_EQ(results[i].as_string(), concur::fake_llm::reply_for(texts[i]));
    }
    ASSERT_TRUE(results[1].is_object()) << json::serialize(results[1]);
    const std::string error(results[1].at("error").as_string());
    // A worker process's ApiError (not rebuildable from a string) crosses
    // the process boundary as concur::RemoteError with the same message.
    const bool typed =
        error.find("ApiError: ") != std::string::npos ||
        (executor == "processes" && error.find("RemoteError: ") != std::string::npos);
    EXPECT_TRUE(typed) << error;
    EXPECT_NE(error.find("not JSON"), std::string::npos) << error;
  }
}

// --fault-rate draws each input's faults from the input itself: with
// --executor all every executor fails the same texts (like for like).
TEST(TranslateDemo, RandomFaultsFailTheSameTextsOnEveryExecutor) {
  const std::string out =
      run(std::string(CONCUR_TRANSLATE_BIN) +
          " --executor all --count 24 --latency 2ms --fault-rate 500=0.3 --max-retries 0 --json");
  const auto runs = parse_runs(out);
  ASSERT_GE(runs.size(), 4u) << out;
  std::vector<bool> first;
  for (const auto& [executor, o] : runs) {
    SCOPED_TRACE(executor);
    std::vector<bool> failed;
    for (const auto& r : o.at("results").as_array()) failed.push_back(r.is_object());
    ASSERT_EQ(failed.size(), 24u);
    if (first.empty()) {
      first = failed;
      const auto n = std::count(first.begin(), first.end(), true);
      EXPECT_GT(n, 0) << out;
      EXPECT_LT(n, 24) << out;
    } else {
      EXPECT_EQ(failed, first) << "another executor failed other texts";
    }
  }
}

// One timeout flag, in milliseconds like the timeout_ms key.
TEST(TranslateDemo, TheTimeoutFlagIsTimeoutMs) {
  std::string out = run(std::string(CONCUR_TRANSLATE_BIN) +
                        " --executor event_loop --latency 2s --timeout-ms 100 --json");
  const auto runs = parse_runs(out);
  ASSERT_EQ(runs.size(), 1u) << out;
  const auto& o = runs.begin()->second;
  EXPECT_EQ(o.at("failed").to_number<int>(), 4) << out;
  EXPECT_LT(o.at("wall_s").to_number<double>(), 1.5) << "100 ms per text, not 2 s";
  for (const auto& r : o.at("results").as_array())
    EXPECT_NE(json::serialize(r).find("timed out"), std::string::npos) << json::serialize(r);
  out = run(std::string(CONCUR_TRANSLATE_BIN) + " --help");
  EXPECT_NE(out.find("--timeout-ms"), std::string::npos) << out;
  out = run(std::string(CONCUR_TRANSLATE_BIN) + " --timeout 5 2>&1; echo exit=$?");
  EXPECT_EQ(out.find("exit=0"), std::string::npos) << "--timeout (seconds) is gone: " << out;
}

TEST(TranslateDemo, BadInputsAreClearErrors) {
  std::string out =
      run(std::string(CONCUR_TRANSLATE_BIN) + " --input /nonexistent/texts.txt 2>&1; echo exit=$?");
  EXPECT_NE(out.find("cannot read --input '/nonexistent/texts.txt'"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
  out = run(std::string(CONCUR_TRANSLATE_BIN) + " --executor fiberz 2>&1; echo exit=$?");
  EXPECT_NE(out.find("unknown executor \"fiberz\""), std::string::npos) << out;
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
  out = run(std::string(CONCUR_TRANSLATE_BIN) + " --latency soon 2>&1; echo exit=$?");
  EXPECT_NE(out.find("bad latency 'soon'"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=2"), std::string::npos) << out;
}

// A configuration error is found before the demo prints its header: stdout
// stays empty and the exit status is 2 (issue 20: "Translating ..." came first).
TEST(TranslateDemo, AConfigErrorPrintsNothingOnStdout) {
  std::string out = run("CONCUR_WORKERS=0 " + std::string(CONCUR_TRANSLATE_BIN) +
                        " --executor sequential,thread_pool 2>/dev/null; echo exit=$?");
  EXPECT_EQ(out, "exit=2\n");
  out = run("CONCUR_WORKERS=0 " + std::string(CONCUR_TRANSLATE_BIN) +
            " --executor thread_pool 2>&1 >/dev/null");
  EXPECT_NE(out.find("CONCUR_WORKERS"), std::string::npos) << out;
}

}  // namespace

namespace {

// --stream (issue 15): the replies stream in; the first token comes before
// the whole reply (the server sends pieces 40 ms apart after its latency).
TEST(DemoTranslate, StreamShowsTimeToFirstTokenBeforeTheWholeReply) {
  const std::string out = run(std::string(CONCUR_TRANSLATE_BIN) +
                              " --stream --executor event_loop,thread_pool --latency 50ms --json");
  const auto runs = parse_runs(out);
  ASSERT_EQ(runs.size(), 2u) << out;
  for (const auto& [name, o] : runs) {
    EXPECT_EQ(o.at("ok").as_int64(), 4) << name;
    const auto& results = o.at("results").as_array();
    for (std::size_t i = 0; i < kSeed.size(); ++i)
      EXPECT_EQ(results[i].as_string(), concur::fake_llm::reply_for(kSeed[i])) << name;
    const double first = o.at("first_token_median_s").as_double();
    const double whole = o.at("whole_reply_median_s").as_double();
    EXPECT_GE(first, 0.045) << name;  // at least the latency
    EXPECT_GT(whole, first) << name;  // pieces came after the first
  }
}

}  // namespace
