// SPDX-License-Identifier: BSL-1.0
// concur-batch's pieces on their own (issue 15): input lines, the duplicate
// check, output recovery (torn last line), the gate on every executor, and
// the controller's reactions to replies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "control.hpp"
#include "gate.hpp"
#include "input.hpp"
#include "output.hpp"
#include "support/executor_params.hpp"

using namespace std::chrono_literals;
namespace batch = concur::batch;
namespace json = boost::json;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("concur_batch_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(BatchInput, BatchLineBodyIsSentWithEveryField) {
  const std::string line =
      R"({"custom_id":"a1","method":"POST","url":"/v1/chat/completions","body":{"model":"m",)"
      R"("messages":[{"role":"user","content":"12345678"}],"seed":7,"n":2,"max_tokens":10,)"
      R"("tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}}})";
  const batch::Parsed p = batch::parse_line(line, 4, batch::InputFormat::batch, {});
  ASSERT_EQ(p.kind, batch::Parsed::Kind::request);
  EXPECT_EQ(p.request.custom_id, "a1");
  EXPECT_EQ(p.request.line, 4u);
  EXPECT_EQ(p.request.url, "/v1/chat/completions");
  const json::value body = json::parse(p.request.body);
  EXPECT_EQ(body, json::parse(line).at("body"));  // unchanged, field for field
  EXPECT_EQ(p.request.prompt_tokens, batch::estimate_prompt_tokens(8, 1));
  EXPECT_EQ(p.request.completion_limit, 20);  // max_tokens x n
}

TEST(BatchInput, PromptLinesBecomeChatRequests) {
  batch::PromptSettings s{.model = "gpt-x", .system = "Translate."};
  const batch::Parsed p = batch::parse_line("Hello there", 9, batch::InputFormat::prompts, s);
  ASSERT_EQ(p.kind, batch::Parsed::Kind::request);
  EXPECT_EQ(p.request.custom_id, "line-9");
  const json::value body = json::parse(p.request.body);
  EXPECT_EQ(body.at("model"), "gpt-x");
  EXPECT_EQ(body.at("messages").as_array().size(), 2u);
  EXPECT_EQ(body.at("messages").as_array()[1].at("content"), "Hello there");
}

TEST(BatchInput, MalformedLinesNameTheLineAndTheProblem) {
  const auto bad = [](const std::string& text) {
    return batch::parse_line(text, 12, batch::InputFormat::batch, {});
  };
  EXPECT_EQ(bad("{not json").kind, batch::Parsed::Kind::invalid);
  EXPECT_NE(bad("{not json").error.find("line 12: not valid JSON"), std::string::npos);
  EXPECT_NE(bad(R"({"url":"/v1/chat/completions","body":{}})").error.find("custom_id"),
            std::string::npos);
  EXPECT_NE(bad(R"({"custom_id":"x","body":{}})").error.find("url"), std::string::npos);
  EXPECT_NE(bad(R"({"custom_id":"x","url":"/v1/chat/completions"})").error.find("body"),
            std::string::npos);
  EXPECT_NE(bad(R"({"custom_id":"x","method":"PUT","url":"/v1/x","body":{}})").error.find("PUT"),
            std::string::npos);
  EXPECT_EQ(bad("   ").kind, batch::Parsed::Kind::blank);
}

TEST(BatchInput, DuplicateCustomIdNamesBothLines) {
  const std::string path = temp_path("dup.jsonl");
  std::string text;
  for (int i = 1; i <= 6; ++i) {
    const std::string id = i == 5 ? "r2" : "r" + std::to_string(i);
    text += R"({"custom_id":")" + id +
            R"(","url":"/v1/chat/completions","body":{"messages":[]}})"
            "\n";
  }
  write_file(path, text);
  try {
    batch::scan_input(path, batch::InputFormat::automatic, {});
    FAIL() << "no DuplicateId";
  } catch (const batch::DuplicateId& e) {
    EXPECT_NE(std::string(e.what()).find("'r2' on lines 2 and 5"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(BatchOutput, TornLastLineIsCutOffAndRedone) {
  const std::string path = temp_path("torn.jsonl");
  batch::Outcome a{.custom_id = "a", .status = 200, .body = R"({"x":1})"};
  batch::Outcome b{.custom_id = "b", .status = 500, .body = R"({"error":{"message":"m"}})"};
  const std::string good = batch::output_line(a) + "\n" + batch::output_line(b) + "\n";
  write_file(path, good + R"({"id":"batch_req_1","custom_id":"c","respo)");
  const batch::Recovered r = batch::recover_output(path, true);
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.lines, 2u);
  EXPECT_EQ(read_file(path), good);  // truncated to the last whole line
  EXPECT_TRUE(batch::is_done(r.done, batch::key_of("a")));
  EXPECT_TRUE(batch::is_done(r.done, batch::key_of("b")));
  EXPECT_FALSE(batch::is_done(r.done, batch::key_of("c")));
  ASSERT_EQ(r.failed_lines.size(), 1u);  // b, a 500
  // A second recovery finds nothing torn.
  EXPECT_FALSE(batch::recover_output(path, false).torn);
  std::filesystem::remove(path);
}

TEST(BatchOutput, GarbageBeforeTheLastLineIsNotResumedInto) {
  const std::string path = temp_path("garbage.jsonl");
  batch::Outcome a{.custom_id = "a", .status = 200, .body = "{}"};
  write_file(path, "hello\n" + batch::output_line(a) + "\n");
  EXPECT_THROW(batch::recover_output(path, false), std::runtime_error);
  write_file(path, batch::output_line(a) + "\n" + batch::output_line(a) + "\n");
  EXPECT_THROW(batch::recover_output(path, false), std::runtime_error);  // one id twice
  std::filesystem::remove(path);
}

TEST(BatchOutput, LinesHaveTheBatchOutputShape) {
  batch::Outcome ok{.custom_id = "a", .status = 200, .request_id = "req_1", .body = R"({"y":2})"};
  const json::value v = json::parse(batch::output_line(ok));
  EXPECT_TRUE(v.at("id").as_string().starts_with("batch_req_"));
  EXPECT_EQ(v.at("custom_id"), "a");
  EXPECT_EQ(v.at("response").at("status_code"), 200);
  EXPECT_EQ(v.at("response").at("request_id"), "req_1");
  EXPECT_EQ(v.at("response").at("body").at("y"), 2);
  EXPECT_TRUE(v.at("error").is_null());
  batch::Outcome gone{.custom_id = "b", .error_code = "connection_error", .error_message = "reset"};
  const json::value g = json::parse(batch::output_line(gone));
  EXPECT_TRUE(g.at("response").is_null());
  EXPECT_EQ(g.at("error").at("code"), "connection_error");
}

// --- the gate on every executor ----------------------------------------------

struct GateProbe {
  batch::Gate gate{3};
  std::atomic<int> inside{0}, most{0};
};

concur::Task<void> hold(GateProbe* p) {
  co_await p->gate.acquire();
  batch::Permit permit(p->gate);
  struct Inside {
    std::atomic<int>& n;
    ~Inside() { --n; }
  } counted{p->inside};
  const int now = ++p->inside;
  int seen = p->most.load();
  while (now > seen && !p->most.compare_exchange_weak(seen, now)) {
  }
  co_await concur::sleep_for(10ms);
}

class BatchGate : public ::testing::TestWithParam<concur::testing::ExecutorParam> {};

TEST_P(BatchGate, NeverLetsMoreThanTheLimitIn) {
  auto ex = concur::make_executor(GetParam().config());
  GateProbe probe;
  std::vector<decltype(concur::call(hold, &probe))> calls(12, concur::call(hold, &probe));
  auto results = ex->gather_settled(calls);
  for (const auto& r : results) EXPECT_TRUE(r.ok());
  EXPECT_LE(probe.most.load(), 3);
  EXPECT_EQ(probe.inside.load(), 0);
  EXPECT_EQ(probe.gate.in_use(), 0u);
}

TEST_P(BatchGate, WaitingIsCancelledByATimeout) {
  auto ex = concur::make_executor(GetParam().config());
  GateProbe probe;
  probe.gate.set_limit(1);
  std::vector<decltype(concur::call(hold, &probe))> calls(3, concur::call(hold, &probe));
  // 5 ms each: the first gets in and outlives its budget only in its sleep;
  // the others time out while waiting at the gate or inside: never hang.
  auto results = ex->gather_settled(calls, {.timeout = 5ms});
  EXPECT_EQ(probe.gate.in_use(), 0u);
  EXPECT_EQ(probe.inside.load(), 0);
  for (const auto& r : results) EXPECT_FALSE(r.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Executors, BatchGate, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<BatchGate::ParamType>>);

// --- the controller -----------------------------------------------------------

concur::llm::RawResponse reply(long status) {
  concur::llm::RawResponse r;
  r.status = status;
  return r;
}

TEST(BatchControl, SlowStartGrowsWhileTheLimitHoldsRequestsBack) {
  batch::Controller c({.initial_limit = 4});
  for (int i = 0; i < 4; ++i) c.on_reply(reply(200), 10, std::nullopt, c.stats().limit - 1, 100ms);
  EXPECT_EQ(c.stats().limit, 8u);
  // Far below the limit in flight: no growth.
  c.on_reply(reply(200), 10, std::nullopt, 1, 100ms);
  EXPECT_EQ(c.stats().limit, 8u);
}

TEST(BatchControl, A429CutsTheLimitOncePerRoundTripAndPausesEveryone) {
  batch::Controller c({.initial_limit = 20});
  auto r = reply(429);
  r.rate_limits.retry_after = 300ms;
  const auto before = batch::Clock::now();
  c.on_reply(r, 10, std::nullopt, 19, 50ms);
  c.on_reply(r, 10, std::nullopt, 19, 50ms);  // the same burst: no second cut
  EXPECT_EQ(c.stats().limit, 14u);            // 20 x 0.7
  EXPECT_GE(c.reserve(10), before + 300ms);   // the next send of anyone waits
}

TEST(BatchControl, AnnouncedLimitsSetThePaceAndUsageCorrectsTokens) {
  batch::Controller c({});
  auto r = reply(200);
  r.rate_limits.limit_requests = 6000;
  r.rate_limits.limit_tokens = 60000;
  c.on_reply(r, 10, concur::llm::Usage{5, 5, 10}, 0, 10ms);
  EXPECT_DOUBLE_EQ(c.stats().paced_rpm, 6000 * 0.97);
  EXPECT_DOUBLE_EQ(c.stats().paced_tpm, 60000 * 0.97);
  const auto t1 = c.reserve(1000);  // 1000 tokens at ~970 per second: the next waits ~1 s
  const auto t2 = c.reserve(10);
  EXPECT_GE(t2 - t1, 900ms);
}

TEST(BatchControl, FixedLimitNeverMoves) {
  batch::Controller c({.fixed_limit = 5});
  for (int i = 0; i < 10; ++i) c.on_reply(reply(200), 1, std::nullopt, 5, 1ms);
  c.on_reply(reply(429), 1, std::nullopt, 5, 1ms);
  EXPECT_EQ(c.stats().limit, 5u);
  EXPECT_EQ(c.gate().limit(), 5u);
}

}  // namespace
