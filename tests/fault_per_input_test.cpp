// SPDX-License-Identifier: BSL-1.0
// The demos' like-for-like comparison under faults: with rate-based fault
// injection, the same inputs fail on every executor (the server reset
// between runs, as concur-translate does), although each executor sends the
// requests in its own order and with its own overlap.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <string>
#include <vector>

#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace fl = concur::fake_llm;
namespace llm = concur::llm;

namespace {

Task<std::string> ask(const llm::Client* client, std::string text) {
  llm::ChatRequest r;
  r.messages = {{"user", std::move(text)}};
  llm::ChatResponse reply = co_await client->chat(std::move(r));
  co_return std::move(reply.content);
}

// Per executor, which inputs failed (by input index), in executor order.
std::vector<std::vector<bool>> failures_per_executor(fl::Server& server, int max_retries) {
  llm::ClientOptions options;
  options.base_url = server.base_url();
  options.max_retries = max_retries;
  options.initial_backoff = 1ms;
  options.max_backoff = 2ms;
  llm::Client client(options);
  std::vector<decltype(concur::call(ask, &client, std::string()))> calls;
  for (int i = 0; i < 40; ++i)
    calls.push_back(concur::call(ask, &client, "text " + std::to_string(i)));
  std::vector<std::vector<bool>> out;
  for (const auto& p : concur::testing::executor_params()) {
    server.reset_stats();
    auto ex = concur::make_executor(p.config());
    std::vector<bool> failed;
    for (const auto& r : ex->gather_settled(calls)) failed.push_back(!r.ok());
    out.push_back(std::move(failed));
  }
  return out;
}

TEST(FaultPerInput, SameInputsFailOnEveryExecutor) {
  fl::Server server(
      {.latency = fl::Latency::uniform(1ms, 8ms), .faults = {.server_error = 0.3}, .seed = 7});
  const auto runs = failures_per_executor(server, /*max_retries=*/0);
  const auto labels = concur::testing::executor_params();
  const auto& first = runs.front();
  const auto n_failed = std::count(first.begin(), first.end(), true);
  EXPECT_GT(n_failed, 0);
  EXPECT_LT(n_failed, static_cast<long>(first.size()));
  for (std::size_t i = 1; i < runs.size(); ++i)
    EXPECT_EQ(runs[i], first) << labels[i].label << " failed other inputs than " << labels[0].label;
}

TEST(FaultPerInput, RetriesMeetTheSameFaultsOnEveryExecutor) {
  // Two faults in a row fail an input (max_retries 1), a 429 and a 500
  // alike. (Resets are drawn per input too, but libcurl itself re-sends a
  // request whose reused connection was reset before any reply, so how many
  // attempts the server sees then depends on connection reuse: not here.)
  fl::Server server({.latency = fl::Latency::uniform(1ms, 8ms),
                     .faults = {.too_many_requests = 0.25, .server_error = 0.25},
                     .seed = 3,
                     .retry_after = 1ms});
  const auto runs = failures_per_executor(server, /*max_retries=*/1);
  const auto labels = concur::testing::executor_params();
  const auto& first = runs.front();
  EXPECT_GT(std::count(first.begin(), first.end(), true), 0);
  for (std::size_t i = 1; i < runs.size(); ++i)
    EXPECT_EQ(runs[i], first) << labels[i].label << " failed other inputs than " << labels[0].label;
}

}  // namespace
