// SPDX-License-Identifier: BSL-1.0
// concur::http and concur::llm inside registered calls, so on every executor
// including `processes`, where the exchange runs in a worker process on its
// per-thread libcurl handle: replies in order, error types that survive the
// trip back to the parent, and a task timeout that frees the worker at once.
#include <gtest/gtest.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/http.hpp>
#include <concur/llm.hpp>
#include <string>
#include <vector>

#include "support/elapsed.hpp"
#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace http = concur::http;
namespace llm = concur::llm;
namespace fl = concur::fake_llm;

namespace {

using concur::testing::seconds_since;

Task<long> status_of(std::string url) {
  http::Response r = co_await http::get(std::move(url));
  co_return r.status;
}
CONCUR_REGISTER(status_of);

Task<std::string> ask(std::string base_url, std::string prompt, int max_retries) {
  llm::ClientOptions o;
  o.base_url = std::move(base_url);
  o.max_retries = max_retries;
  o.initial_backoff = 10ms;
  o.max_backoff = 40ms;
  const llm::Client client(std::move(o));
  co_return co_await client.complete(std::move(prompt));
}
CONCUR_REGISTER(ask);

class HttpRegistered : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> ex = concur::make_executor(GetParam().config());
  fl::Server server{{.latency = fl::Latency::fixed(20ms)}};
};

TEST_P(HttpRegistered, RepliesComeBackInInputOrder) {
  std::vector<decltype(concur::call(ask, std::string(), std::string(), 0))> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(concur::call(ask, server.base_url(), "line " + std::to_string(i), 2));
  }
  auto replies = ex->gather(calls);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(replies[i], fl::reply_for("line " + std::to_string(i)));
  auto [status] = ex->gather(concur::call(status_of, server.base_url() + "/models"));
  EXPECT_EQ(status, 200);
}

TEST_P(HttpRegistered, ErrorsKeepTheirTypes) {
  EXPECT_THROW(ex->gather(concur::call(status_of, std::string("http://127.0.0.1:1/v1/models"))),
               http::ConnectionRefused);
  try {
    ex->gather(concur::call(ask, server.base_url(), std::string("[[fault:500]] no"), 0));
    ADD_FAILURE() << "no error";
  } catch (const llm::ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 500"), std::string::npos) << e.what();
  }
}

TEST_P(HttpRegistered, TaskTimeoutFreesTheLaneAtOnce) {
  std::vector<decltype(concur::call(ask, std::string(), std::string(), 0))> calls{
      concur::call(ask, server.base_url(), std::string("[[latency:10000ms]] stuck"), 0),
      concur::call(ask, server.base_url(), std::string("quick"), 0)};
  const auto t0 = std::chrono::steady_clock::now();
  // limit 1: the quick call can only start once the stuck one has let go.
  auto rs = ex->gather_settled(calls, {.limit = 1, .timeout = 300ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  ASSERT_FALSE(rs[0].ok());
  EXPECT_THROW(rs[0].value(), concur::TimeoutError);
  ASSERT_TRUE(rs[1].ok()) << rs[1].error().describe();
  EXPECT_EQ(rs[1].value(), fl::reply_for("quick"));
}

INSTANTIATE_TEST_SUITE_P(
    AllExecutors, HttpRegistered,
    ::testing::ValuesIn(concur::testing::registered_call_executor_params()),
    concur::testing::param_label<::testing::TestParamInfo<HttpRegistered::ParamType>>);

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);  // launched workers serve here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
