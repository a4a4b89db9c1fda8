// SPDX-License-Identifier: BSL-1.0
// concur::llm against the loopback fake server on every executor: replies in
// input order, every fault kind ending in a retried success or a named error,
// Retry-After honoured, cancellation during a backoff; plus the retry policy
// and wire format on their own.
#include <gtest/gtest.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "llm/retry.hpp"
#include "llm/wire.hpp"
#include "support/elapsed.hpp"
#include "support/executor_params.hpp"
#include "support/llm_helpers.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace llm = concur::llm;
namespace http = concur::http;
namespace fl = concur::fake_llm;

namespace {

using concur::testing::fast_retries;
using concur::testing::seconds_since;

Task<llm::ChatResponse> ask(const llm::Client* client, std::string prompt) {
  llm::ChatRequest r;
  r.messages = {{"system", "Translate to Japanese."}, {"user", std::move(prompt)}};
  r.temperature = 0.2;
  co_return co_await client->chat(std::move(r));
}

class Llm : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> ex = concur::make_executor(GetParam().config());
};

TEST_P(Llm, BatchRepliesComeBackInInputOrder) {
  fl::Server server({.latency = fl::Latency::uniform(5ms, 40ms)});
  llm::Client client(fast_retries(server));
  std::vector<decltype(concur::call(ask, &client, std::string()))> calls;
  for (int i = 0; i < 12; ++i)
    calls.push_back(concur::call(ask, &client, "text " + std::to_string(i)));
  auto replies = ex->gather(calls);
  ASSERT_EQ(replies.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(replies[i].content, fl::reply_for("text " + std::to_string(i)));
    EXPECT_EQ(replies[i].attempts, 1);
    EXPECT_EQ(replies[i].finish_reason, "stop");
    EXPECT_GT(replies[i].usage.total_tokens, 0);
  }
}

TEST_P(Llm, TooManyRequestsIsRetriedHonouringRetryAfter) {
  // The server asks for 1.2 s: longer than the backoff would wait (10 ms).
  fl::Server server({.retry_after = 1200ms});
  llm::Client client(fast_retries(server));
  const auto t0 = std::chrono::steady_clock::now();
  auto [r] = ex->gather(concur::call(ask, &client, std::string("[[fault:429:1]] busy")));
  EXPECT_GE(seconds_since(t0), 1.15);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.content, fl::reply_for("[[fault:429:1]] busy"));
  const auto stats = server.stats();
  EXPECT_EQ(stats.by_status.at(429), 1u);
  EXPECT_EQ(stats.by_status.at(200), 1u);
}

TEST_P(Llm, ServerErrorsAndResetsAreRetried) {
  fl::Server server;
  llm::Client client(fast_retries(server));
  auto [a, b] = ex->gather(concur::call(ask, &client, std::string("[[fault:500:1]] a")),
                           concur::call(ask, &client, std::string("[[fault:reset:2]] b")));
  EXPECT_EQ(a.attempts, 2);
  EXPECT_EQ(a.content, fl::reply_for("[[fault:500:1]] a"));
  // Two resets, both seen and counted by the client (libcurl no longer
  // re-sends a POST behind its back when a reused connection dies).
  EXPECT_EQ(b.attempts, 3);
  EXPECT_EQ(b.content, fl::reply_for("[[fault:reset:2]] b"));
  EXPECT_EQ(server.stats().requests, 5u) << "every request the server saw is an attempt";
}

Task<std::pair<llm::ChatResponse, llm::ChatResponse>> warm_then_ask(const llm::Client* client,
                                                                    std::string prompt) {
  llm::ChatResponse warm = co_await ask(client, "warm up the connection");
  llm::ChatResponse r = co_await ask(client, std::move(prompt));
  co_return std::make_pair(std::move(warm), std::move(r));
}

// The issue's case: a reset on a reused connection was re-sent at once by
// libcurl and reported as attempts = 1 while the server saw 2 requests.
TEST_P(Llm, AResetOnAReusedConnectionIsAnHonestlyCountedRetry) {
  fl::Server server;
  llm::Client client(fast_retries(server));
  auto [pair] =
      ex->gather(concur::call(warm_then_ask, &client, std::string("[[fault:reset:1]] c")));
  EXPECT_EQ(pair.first.attempts, 1);
  EXPECT_EQ(pair.second.attempts, 2);
  EXPECT_EQ(pair.second.content, fl::reply_for("[[fault:reset:1]] c"));
  const auto stats = server.stats();
  EXPECT_EQ(stats.requests, 3u);
  EXPECT_EQ(stats.resets, 1u);
}

TEST_P(Llm, ExhaustedRetriesGiveTheServersError) {
  fl::Server server;
  llm::ClientOptions o = fast_retries(server);
  o.max_retries = 1;
  llm::Client client(o);
  try {
    ex->gather(concur::call(ask, &client, std::string("[[fault:500]] always")));
    ADD_FAILURE() << "no error";
  } catch (const llm::ApiError& e) {
    EXPECT_EQ(e.status(), 500);
    EXPECT_FALSE(e.message().empty());
    EXPECT_FALSE(e.type().empty());
    EXPECT_NE(std::string(e.what()).find("after 2 attempts"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(server.base_url()), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.stats().requests, 2u);
}

TEST_P(Llm, RateLimitWithoutRetriesCarriesTheErrorFields) {
  fl::Server server;
  llm::ClientOptions o = fast_retries(server);
  o.max_retries = 0;
  llm::Client client(o);
  try {
    ex->gather(concur::call(ask, &client, std::string("[[fault:429]] busy")));
    ADD_FAILURE() << "no error";
  } catch (const llm::ApiError& e) {
    EXPECT_EQ(e.status(), 429);
    EXPECT_FALSE(e.message().empty());
    EXPECT_FALSE(e.type().empty()) << e.what();
  }
  EXPECT_EQ(server.stats().requests, 1u);
}

TEST_P(Llm, MalformedReplyIsANamedErrorAndNotRetried) {
  fl::Server server;
  llm::Client client(fast_retries(server));
  try {
    ex->gather(concur::call(ask, &client, std::string("[[fault:malformed]] x")));
    ADD_FAILURE() << "no error";
  } catch (const llm::ApiError& e) {
    EXPECT_EQ(e.status(), 200);
    EXPECT_NE(std::string(e.what()).find(llm::messages::kNotJson), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.stats().requests, 1u);
}

TEST_P(Llm, SlowReplyHitsThePerAttemptTimeoutAndIsRetried) {
  fl::Server server({.slow_latency = 5000ms});
  llm::ClientOptions o = fast_retries(server);
  o.timeout = 200ms;
  o.max_retries = 1;
  llm::Client client(o);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(ex->gather(concur::call(ask, &client, std::string("[[fault:slow]] zzz"))),
               http::Timeout);
  EXPECT_LT(seconds_since(t0), 3.0);
  EXPECT_EQ(server.stats().requests, 2u);
}

TEST_P(Llm, CancellationInterruptsTheBackoff) {
  fl::Server server;
  llm::ClientOptions o = fast_retries(server);
  o.max_retries = 5;
  o.initial_backoff = 5s;
  o.max_backoff = 8s;
  llm::Client client(o);
  std::vector<decltype(concur::call(ask, &client, std::string()))> calls{
      concur::call(ask, &client, std::string("[[fault:500]] never"))};
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather_settled(calls, {.timeout = 300ms});
  EXPECT_LT(seconds_since(t0), 3.0);  // not 5 s of backoff
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
}

TEST_P(Llm, SettledBatchGivesEveryInputAnOutcome) {
  fl::Server server;
  llm::ClientOptions o = fast_retries(server);
  o.max_retries = 0;
  llm::Client client(o);
  const std::vector<std::string> prompts = {"fine", "[[fault:429]] no", "[[fault:malformed]] bad",
                                            "[[fault:reset]] gone", "also fine"};
  std::vector<decltype(concur::call(ask, &client, std::string()))> calls;
  for (const auto& p : prompts) calls.push_back(concur::call(ask, &client, p));
  auto rs = ex->gather_settled(calls);
  ASSERT_EQ(rs.size(), prompts.size());
  EXPECT_EQ(rs[0].value().content, fl::reply_for("fine"));
  EXPECT_THROW(rs[1].value(), llm::ApiError);
  EXPECT_THROW(rs[2].value(), llm::ApiError);
  EXPECT_THROW(rs[3].value(), http::ConnectionError);
  EXPECT_EQ(rs[4].value().content, fl::reply_for("also fine"));
  EXPECT_NE(rs[1].error().describe().find("429"), std::string::npos) << rs[1].error().describe();
}

INSTANTIATE_TEST_SUITE_P(AllExecutors, Llm, ::testing::ValuesIn(concur::testing::executor_params()),
                         concur::testing::param_label<::testing::TestParamInfo<Llm::ParamType>>);

// --- the retry policy -------------------------------------------------------

http::Response reply(long status, http::Headers headers = {}) {
  http::Response r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

TEST(RetryPolicy, RetriesTheStatusesTheSdksRetry) {
  for (long s : {408, 409, 429, 500, 502, 503, 504})
    EXPECT_TRUE(llm::retry::should_retry(reply(s)));
  for (long s : {400, 401, 403, 404, 422}) EXPECT_FALSE(llm::retry::should_retry(reply(s)));
  EXPECT_FALSE(llm::retry::should_retry(reply(503, {{"x-should-retry", "false"}})));
  EXPECT_TRUE(llm::retry::should_retry(reply(400, {{"x-should-retry", "true"}})));
}

TEST(RetryPolicy, BackoffDoublesFromHalfASecondUpToEightWithJitter) {
  const llm::ClientOptions o;  // defaults: 0.5 s doubling, capped at 8 s
  for (int retry = 0; retry < 8; ++retry) {
    const double full = std::min(500.0 * (1 << retry), 8000.0);
    for (int sample = 0; sample < 50; ++sample) {
      const double ms = static_cast<double>(llm::retry::backoff(o, retry, nullptr).count());
      EXPECT_GE(ms, 0.75 * full - 1) << "retry " << retry;
      EXPECT_LE(ms, full) << "retry " << retry;
    }
  }
}

TEST(RetryPolicy, HonoursRetryAfterHeaders) {
  const llm::ClientOptions o;
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(llm::retry::requested_wait(reply(429, {{"retry-after-ms", "1500"}}), now), 1500ms);
  EXPECT_EQ(llm::retry::requested_wait(reply(429, {{"retry-after", "2"}}), now), 2000ms);
  EXPECT_EQ(llm::retry::requested_wait(reply(429, {{"retry-after", "0.25"}}), now), 250ms);
  // retry-after-ms is the more precise of the two and wins.
  EXPECT_EQ(llm::retry::requested_wait(
                reply(429, {{"retry-after", "3"}, {"retry-after-ms", "2500"}}), now),
            2500ms);
  EXPECT_EQ(llm::retry::requested_wait(reply(429, {{"retry-after", "soon"}}), now), std::nullopt);
  EXPECT_EQ(llm::retry::requested_wait(reply(429), now), std::nullopt);
  // An HTTP date, 30 s after a fixed "now".
  const auto fixed_now =
      std::chrono::system_clock::from_time_t(1'700'000'000);  // 2023-11-14 22:13:20Z
  EXPECT_EQ(llm::retry::requested_wait(
                reply(503, {{"retry-after", "Tue, 14 Nov 2023 22:13:50 GMT"}}), fixed_now),
            30000ms);
  // backoff() uses a sensible request as is, ignores one over max_retry_after.
  const http::Response asks_3s = reply(429, {{"retry-after-ms", "3000"}});
  EXPECT_EQ(llm::retry::backoff(o, 0, &asks_3s), 3000ms);
  const http::Response asks_2min = reply(429, {{"retry-after", "120"}});
  EXPECT_LE(llm::retry::backoff(o, 0, &asks_2min), 500ms);
}

// --- the wire format ----------------------------------------------------------

TEST(Wire, ErrorBodyBecomesTheErrorsFields) {
  const auto e = llm::wire::error_from_reply(
      429, R"({"error":{"message":"Slow down","type":"rate_limit_exceeded","code":"rate_limit"}})",
      "POST http://h/v1/chat/completions", "http://h/v1/chat/completions", 3);
  EXPECT_EQ(e.status(), 429);
  EXPECT_EQ(e.message(), "Slow down");
  EXPECT_EQ(e.type(), "rate_limit_exceeded");
  EXPECT_EQ(e.code(), "rate_limit");
  EXPECT_EQ(e.url(), "http://h/v1/chat/completions");
  const std::string what = e.what();
  EXPECT_NE(what.find("HTTP 429"), std::string::npos) << what;
  EXPECT_NE(what.find("after 3 attempts"), std::string::npos) << what;
  EXPECT_NE(what.find("Slow down"), std::string::npos) << what;

  const auto numeric = llm::wire::error_from_reply(
      400, R"({"error":{"message":"m","type":"t","code":42}})", "POST u", "u", 1);
  EXPECT_EQ(numeric.code(), "42");
  const auto null_code = llm::wire::error_from_reply(
      400, R"({"error":{"message":"m","type":"t","code":null}})", "POST u", "u", 1);
  EXPECT_EQ(null_code.code(), "");
}

TEST(Wire, NonJsonBodyIsQuotedUpTo200Bytes) {
  const std::string body = "<html>" + std::string(194, 'a') + "TAIL" + std::string(300, 'b');
  const auto e = llm::wire::error_from_reply(502, body, "POST u", "u", 1);
  const std::string what = e.what();
  EXPECT_EQ(e.status(), 502);
  EXPECT_NE(what.find(llm::messages::kNotJson), std::string::npos) << what;
  EXPECT_NE(what.find(body.substr(0, 200)), std::string::npos) << what;
  EXPECT_EQ(what.find("TAIL"), std::string::npos) << "quoted more than 200 bytes";
}

TEST(Wire, RequestBodyHasModelMessagesAndOptionalFields) {
  llm::ChatRequest r;
  r.messages = {{"user", "say \"hi\""}};
  const std::string plain = llm::wire::encode_request(r, "m1");
  EXPECT_NE(plain.find(R"("model":"m1")"), std::string::npos) << plain;
  EXPECT_NE(plain.find(R"("content":"say \"hi\"")"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("temperature"), std::string::npos) << plain;
  r.temperature = 0.5;
  r.max_tokens = 64;
  const std::string full = llm::wire::encode_request(r, "m1");
  EXPECT_NE(full.find(R"("temperature":)"), std::string::npos) << full;
  EXPECT_NE(full.find(R"("max_tokens":64)"), std::string::npos) << full;
}

TEST(Wire, ReplyWithoutChoicesIsANamedError) {
  try {
    llm::wire::decode_response(R"({"id":"x"})", 200, "POST u", "u");
    ADD_FAILURE() << "no error";
  } catch (const llm::ApiError& e) {
    EXPECT_NE(std::string(e.what()).find(llm::messages::kBadShape), std::string::npos) << e.what();
    EXPECT_EQ(e.url(), "u");
  }
}

// --- the client's options -----------------------------------------------------

TEST(ClientOptions, ReadTheEnvironmentAndRejectBadValues) {
  ::setenv("OPENAI_API_KEY", "sk-test-123", 1);
  ::setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/", 1);
  llm::Client from_env;
  EXPECT_EQ(from_env.options().api_key, "sk-test-123");
  EXPECT_EQ(from_env.options().base_url, "http://127.0.0.1:9/v1");  // trailing '/' dropped
  ::unsetenv("OPENAI_API_KEY");
  ::unsetenv("OPENAI_BASE_URL");
  llm::Client defaults;
  EXPECT_EQ(defaults.options().base_url, "https://api.openai.com/v1");
  const auto with = [](auto change) {
    llm::ClientOptions o;
    change(o);
    return o;
  };
  EXPECT_THROW(llm::Client(with([](auto& o) { o.max_retries = -1; })), concur::ConfigError);
  EXPECT_THROW(llm::Client(with([](auto& o) { o.model = ""; })), concur::ConfigError);
  EXPECT_THROW(llm::Client(with([](auto& o) { o.requests_per_minute = -5; })), concur::ConfigError);
}

TEST(ClientOptions, RequestsPerMinuteSpacesTheStarts) {
  fl::Server server;
  llm::ClientOptions o;
  o.base_url = server.base_url();
  o.requests_per_minute = 600;  // one start every 100 ms
  llm::Client client(o);
  auto ex = concur::make_executor(concur::testing::executor_params()[1].config());  // event_loop
  std::vector<decltype(concur::call(ask, &client, std::string()))> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(concur::call(ask, &client, std::to_string(i)));
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = ex->gather(calls);
  EXPECT_GE(seconds_since(t0), 0.38);  // 4 gaps of 100 ms
  EXPECT_EQ(rs.size(), 5u);
}

}  // namespace
