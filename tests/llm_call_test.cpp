// SPDX-License-Identifier: BSL-1.0
// concur::llm::chat_call: the chat client as a registered call, so the same
// gather of chat completions runs on every executor, `processes` included
// (its Client is built in the worker from ClientOptions, which cross), and
// the codecs that carry options, requests and replies.
#include <gtest/gtest.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm_call.hpp>
#include <string>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
namespace llm = concur::llm;
namespace fl = concur::fake_llm;

namespace {

template <class T>
T round_trip(const T& v) {
  std::string bytes;
  concur::Writer w(bytes);
  w.put(v);
  concur::Reader r(bytes);
  T out = r.get<T>();
  EXPECT_EQ(r.remaining(), 0u);
  return out;
}

TEST(LlmCodecs, EveryFieldCrosses) {
  llm::ClientOptions o;
  o.base_url = "http://127.0.0.1:9/v1";
  o.model = "m-1";
  o.api_key = "sk-test";
  o.max_retries = 5;
  o.initial_backoff = 7ms;
  o.max_backoff = 70ms;
  o.max_retry_after = 3s;
  o.timeout = 11s;
  o.connect_timeout = 2s;
  o.requests_per_minute = 120.5;
  o.headers = {{"x-a", "1"}, {"x-b", "2"}};
  const llm::ClientOptions p = round_trip(o);
  EXPECT_EQ(p.base_url, o.base_url);
  EXPECT_EQ(p.model, o.model);
  EXPECT_EQ(p.api_key, o.api_key);
  EXPECT_EQ(p.max_retries, 5);
  EXPECT_EQ(p.initial_backoff, 7ms);
  EXPECT_EQ(p.max_backoff, 70ms);
  EXPECT_EQ(p.max_retry_after, 3s);
  EXPECT_EQ(p.timeout, 11s);
  EXPECT_EQ(p.connect_timeout, 2s);
  EXPECT_EQ(p.requests_per_minute, 120.5);
  EXPECT_EQ(p.headers, o.headers);

  llm::ChatRequest q;
  q.messages = {{"system", "be brief"}, {"user", "hi"}};
  q.temperature = 0.25;
  q.model = "m-2";
  const llm::ChatRequest q2 = round_trip(q);
  ASSERT_EQ(q2.messages.size(), 2u);
  EXPECT_EQ(q2.messages[1].role, "user");
  EXPECT_EQ(q2.messages[1].content, "hi");
  EXPECT_EQ(q2.temperature, 0.25);
  EXPECT_FALSE(q2.max_tokens.has_value());
  EXPECT_EQ(q2.model, "m-2");

  llm::ChatResponse a;
  a.id = "c-1";
  a.model = "m-1";
  a.content = "こんにちは";
  a.finish_reason = "stop";
  a.usage = {3, 4, 7};
  a.attempts = 2;
  const llm::ChatResponse b = round_trip(a);
  EXPECT_EQ(b.id, "c-1");
  EXPECT_EQ(b.content, "こんにちは");
  EXPECT_EQ(b.finish_reason, "stop");
  EXPECT_EQ(b.usage.total_tokens, 7);
  EXPECT_EQ(b.attempts, 2);
}

using ChatCall = decltype(concur::call(llm::chat_call, llm::ClientOptions(), llm::ChatRequest()));

class ChatCallOn : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> ex = concur::make_executor(GetParam().config());
  fl::Server server{{.latency = fl::Latency::fixed(20ms)}};

  llm::ClientOptions options() const {
    llm::ClientOptions o;
    o.base_url = server.base_url();
    o.initial_backoff = 5ms;
    o.max_backoff = 20ms;
    return o;
  }
  static llm::ChatRequest ask(std::string prompt) {
    llm::ChatRequest q;
    q.messages.push_back({std::string("user"), std::move(prompt)});
    return q;
  }
};

// The pattern the README shows: a gather of chat_call returns Results on
// every executor (with `const Client*` arguments processes fails instead).
TEST_P(ChatCallOn, RepliesComeBackAsResultsInInputOrder) {
  std::vector<ChatCall> calls;
  for (int i = 0; i < 8; ++i) {
    calls.push_back(concur::call(llm::chat_call, options(), ask("text " + std::to_string(i))));
  }
  calls.push_back(concur::call(llm::chat_call, options(), ask("[[fault:500]] broken")));
  auto rs = ex->gather_settled(calls, {.limit = 4});
  ASSERT_EQ(rs.size(), 9u);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(rs[i].ok()) << rs[i].error().describe();
    EXPECT_EQ(rs[i].value().content, fl::reply_for("text " + std::to_string(i)));
    EXPECT_EQ(rs[i].value().finish_reason, "stop");
    EXPECT_GT(rs[i].value().usage.total_tokens, 0);
  }
  ASSERT_FALSE(rs[8].ok());
  EXPECT_THROW(rs[8].value(), llm::ApiError);  // the type survives the trip back
  EXPECT_NE(rs[8].error().describe().find("HTTP 500"), std::string::npos)
      << rs[8].error().describe();
  EXPECT_EQ(server.stats().requests, 9u + 2u);  // the 500 was retried twice
}

TEST_P(ChatCallOn, RetriesAndOptionsReachTheWorker) {
  // [[fault:429:1]]: the first attempt is refused; max_retries from the
  // options decides whether the call succeeds.
  llm::ClientOptions no_retry = options();
  no_retry.max_retries = 0;
  auto rs = ex->gather_settled(
      std::vector<ChatCall>{concur::call(llm::chat_call, options(), ask("[[fault:429:1]] a")),
                            concur::call(llm::chat_call, no_retry, ask("[[fault:429:1]] b"))});
  ASSERT_TRUE(rs[0].ok()) << rs[0].error().describe();
  EXPECT_EQ(rs[0].value().attempts, 2);
  ASSERT_FALSE(rs[1].ok());
  EXPECT_NE(rs[1].error().describe().find("429"), std::string::npos) << rs[1].error().describe();

  auto [text] = ex->gather(concur::call(llm::complete_call, options(), std::string("hello")));
  EXPECT_EQ(text, fl::reply_for("hello"));
}

TEST_P(ChatCallOn, BadOptionsAreAConfigErrorOfThatCall) {
  llm::ClientOptions bad = options();
  bad.max_retries = -1;
  auto rs =
      ex->gather_settled(std::vector<ChatCall>{concur::call(llm::chat_call, bad, ask("x")),
                                               concur::call(llm::chat_call, options(), ask("y"))});
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::ConfigError);
  ASSERT_TRUE(rs[1].ok()) << rs[1].error().describe();
}

INSTANTIATE_TEST_SUITE_P(
    AllExecutors, ChatCallOn,
    ::testing::ValuesIn(concur::testing::registered_call_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<ChatCallOn::ParamType>>);

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
