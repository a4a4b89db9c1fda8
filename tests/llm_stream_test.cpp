// SPDX-License-Identifier: BSL-1.0
// The client's raw form and streaming against the fake server's
// OpenAI-like limits and server-sent events, on every executor; plus the SSE
// parser, the reset-duration parser and the server's token buckets alone.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "llm/sse.hpp"
#include "support/executor_params.hpp"
#include "support/llm_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace llm = concur::llm;
namespace fl = concur::fake_llm;

namespace {

using concur::testing::fast_retries;

llm::ChatRequest request_for(std::string prompt) {
  llm::ChatRequest r;
  r.messages = {{"system", "Translate to Japanese."}, {"user", std::move(prompt)}};
  return r;
}

struct Deltas {
  std::mutex mutex;
  std::vector<std::string> pieces;
  std::vector<std::chrono::steady_clock::time_point> times;
};

Task<llm::ChatResponse> streamed(const llm::Client* c, std::string prompt, Deltas* d) {
  co_return co_await c->chat_stream(request_for(std::move(prompt)), [d](std::string_view piece) {
    std::lock_guard lock(d->mutex);
    d->pieces.emplace_back(piece);
    d->times.push_back(std::chrono::steady_clock::now());
  });
}

Task<llm::ChatResponse> plain(const llm::Client* c, std::string prompt) {
  co_return co_await c->chat(request_for(std::move(prompt)));
}

Task<llm::RawResponse> raw(const llm::Client* c, std::string path, std::string body, int retries) {
  llm::RawRequest r;
  r.path = std::move(path);
  r.body = std::move(body);
  r.max_retries = retries;
  co_return co_await c->send(std::move(r));
}

class LlmStream : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> ex = concur::make_executor(GetParam().config());
};

TEST_P(LlmStream, DeltasReassembleToTheNonStreamedReply) {
  // Pieces 30 ms apart: delivered as they arrive, the first and the last
  // delta are far apart; collected and handed over at the end, they would not.
  fl::Server server({.latency = fl::Latency::fixed(30ms), .stream_interval = 30ms});
  llm::Client client(fast_retries(server));
  Deltas deltas;
  const std::string prompt = "the quick brown fox jumps over the lazy dog";
  auto [s, p] = ex->gather(concur::call(streamed, &client, prompt, &deltas),
                           concur::call(plain, &client, prompt));
  EXPECT_EQ(s.content, p.content);
  EXPECT_EQ(s.content, fl::reply_for(prompt));
  ASSERT_GT(deltas.pieces.size(), 3u);  // it really came in pieces
  std::string joined;
  for (const auto& piece : deltas.pieces) joined += piece;
  EXPECT_EQ(joined, p.content);
  EXPECT_EQ(s.deltas, static_cast<int>(deltas.pieces.size()));
  EXPECT_GE(deltas.times.back() - deltas.times.front(), 100ms);
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.usage.total_tokens, p.usage.total_tokens);  // the include_usage chunk
  // The first token came after the latency and before the last piece.
  EXPECT_GE(s.time_to_first_token, 25ms);
  EXPECT_GT(s.time_to_first_token.count(), 0);
}

TEST_P(LlmStream, StreamRetriesA429BeforeAnyDelta) {
  fl::Server server({.retry_after = 20ms});
  llm::Client client(fast_retries(server));
  Deltas deltas;
  auto [s] =
      ex->gather(concur::call(streamed, &client, std::string("[[fault:429:1]] hi"), &deltas));
  EXPECT_EQ(s.attempts, 2);
  EXPECT_EQ(s.content, fl::reply_for("[[fault:429:1]] hi"));
}

TEST_P(LlmStream, RawFormReturnsEveryStatusWithHeaders) {
  fl::Server server({.rpm = 600, .tpm = 100000});
  llm::Client client(fast_retries(server));
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"hello"}],"seed":7,"n":1})";
  auto [ok, missing, bad] = ex->gather(
      concur::call(raw, &client, std::string("/v1/chat/completions"), body, 0),
      concur::call(raw, &client, std::string("/v1/embeddings"), body, 0),
      concur::call(raw, &client, std::string("/chat/completions"), std::string("{not json"), 0));
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find(fl::reply_for("hello")), std::string::npos);
  EXPECT_FALSE(ok.request_id.empty());
  ASSERT_TRUE(ok.rate_limits.limit_requests.has_value());
  EXPECT_EQ(*ok.rate_limits.limit_requests, 600);
  EXPECT_EQ(*ok.rate_limits.limit_tokens, 100000);
  ASSERT_TRUE(ok.rate_limits.remaining_requests.has_value());
  EXPECT_LT(*ok.rate_limits.remaining_requests, 10);  // a 1 s window of 600 RPM holds 10
  EXPECT_TRUE(ok.rate_limits.reset_requests.has_value());
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("not valid JSON"), std::string::npos);
}

TEST_P(LlmStream, RpmLimitAnswers429WithRetryAfterLikeOpenAI) {
  // 60 RPM over a 1 s window: one request fits, the second is refused.
  fl::Server server({.rpm = 60});
  llm::Client client(fast_retries(server));
  const std::string body = R"({"messages":[{"role":"user","content":"x"}]})";
  auto [a, b] = ex->gather(concur::call(raw, &client, std::string("/chat/completions"), body, 0),
                           concur::call(raw, &client, std::string("/chat/completions"), body, 0));
  const llm::RawResponse& refused = a.status == 429 ? a : b;
  const llm::RawResponse& served = a.status == 429 ? b : a;
  EXPECT_EQ(served.status, 200);
  ASSERT_EQ(refused.status, 429);
  ASSERT_TRUE(refused.rate_limits.retry_after.has_value());
  EXPECT_GT(*refused.rate_limits.retry_after, 0ms);
  EXPECT_LE(*refused.rate_limits.retry_after, 1000ms);
  EXPECT_EQ(*refused.rate_limits.remaining_requests, 0);
  EXPECT_NE(refused.body.find("requests per min (RPM)"), std::string::npos);
  EXPECT_NE(refused.body.find("rate_limit_exceeded"), std::string::npos);
}

TEST_P(LlmStream, TpmLimitCountsPromptAndMaxTokens) {
  // 6,000 TPM over a 1 s window holds 100 tokens: a request asking for 90
  // fits once; the next is refused on tokens; one asking for 500 never fits
  // and says so (x-should-retry: false, so even a retrying client stops).
  fl::Server server({.tpm = 6000});
  llm::Client client(fast_retries(server));
  const auto body = [](int max_tokens) {
    return R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":)" +
           std::to_string(max_tokens) + "}";
  };
  auto [first] =
      ex->gather(concur::call(raw, &client, std::string("/chat/completions"), body(90), 0));
  auto [second] =
      ex->gather(concur::call(raw, &client, std::string("/chat/completions"), body(90), 0));
  auto [huge] =
      ex->gather(concur::call(raw, &client, std::string("/chat/completions"), body(500), 2));
  EXPECT_EQ(first.status, 200);
  ASSERT_EQ(second.status, 429);
  EXPECT_NE(second.body.find("tokens per min (TPM)"), std::string::npos) << second.body;
  ASSERT_TRUE(second.rate_limits.remaining_tokens.has_value());
  EXPECT_LT(*second.rate_limits.remaining_tokens, 90);
  EXPECT_TRUE(second.rate_limits.retry_after.has_value());
  EXPECT_EQ(huge.status, 429);
  EXPECT_NE(huge.body.find("Request too large"), std::string::npos) << huge.body;
  EXPECT_EQ(huge.attempts, 1);  // x-should-retry: false
}

INSTANTIATE_TEST_SUITE_P(
    Executors, LlmStream, ::testing::ValuesIn(concur::testing::executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<LlmStream::ParamType>>);

TEST(SseParser, EventsSplitAcrossPiecesAndLineEndings) {
  std::vector<std::string> events;
  llm::sse::Parser p([&](std::string_view d) { events.emplace_back(d); });
  const std::string text =
      ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: one\ndata: two\n\nevent: x\n\ndata: "
      "[DONE]\n\n";
  for (char c : text) p.feed(std::string_view(&c, 1));  // byte by byte
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "{\"a\":1}");
  EXPECT_EQ(events[1], "one\ntwo");
  EXPECT_EQ(events[2], "[DONE]");
  EXPECT_FALSE(p.pending());
  p.feed("data: cut");
  EXPECT_TRUE(p.pending());
}

TEST(ResetDuration, ParsesOpenAIsFormats) {
  EXPECT_EQ(llm::parse_reset_duration("20ms"), 20ms);
  EXPECT_EQ(llm::parse_reset_duration("1s"), 1000ms);
  EXPECT_EQ(llm::parse_reset_duration("6m0s"), 360000ms);
  EXPECT_EQ(llm::parse_reset_duration("1m30.5s"), 90500ms);
  EXPECT_EQ(llm::parse_reset_duration("1.5"), 1500ms);
  EXPECT_FALSE(llm::parse_reset_duration("soon").has_value());
  EXPECT_FALSE(llm::parse_reset_duration("").has_value());
}

}  // namespace
