// SPDX-License-Identifier: BSL-1.0
// The chat-completions client: one http exchange per attempt, retried as the
// OpenAI SDKs do. Waits (backoff, rate limit) are concur::sleep_until, so on
// event_loop and fibers a retrying request costs no thread, and every wait is
// a cancellation point.
#include <fmt/format.h>

#include <cstdlib>
#include <optional>
#include <utility>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "concur/registry.hpp"
#include "concur/sleep.hpp"
#include "llm/client_state.hpp"
#include "llm/rate_limiter.hpp"
#include "llm/retry.hpp"
#include "llm/wire.hpp"

// Crosses from worker processes (the processes executor) as itself.
CONCUR_REGISTER_ERROR(concur::llm::ApiError);

namespace concur::llm {

namespace {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

ConfigError bad_option(std::string_view what) {
  return ConfigError(fmt::format("concur::llm::Client: {}", what));
}

}  // namespace

Client::Client(ClientOptions options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  if (options.base_url.empty()) {
    options.base_url = env_or("OPENAI_BASE_URL", "https://api.openai.com/v1");
  }
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  if (options.api_key.empty()) options.api_key = env_or("OPENAI_API_KEY", "");
  if (options.base_url.empty()) throw bad_option("base_url is empty");
  if (options.model.empty()) throw bad_option("model is empty");
  if (options.max_retries < 0) {
    throw bad_option(fmt::format("max_retries must be >= 0, got {}", options.max_retries));
  }
  if (options.initial_backoff.count() < 0 || options.max_backoff < options.initial_backoff) {
    throw bad_option("backoff must satisfy 0 <= initial_backoff <= max_backoff");
  }
  if (options.requests_per_minute < 0) {
    throw bad_option(
        fmt::format("requests_per_minute must be >= 0, got {}", options.requests_per_minute));
  }
  s.url = options.base_url + "/chat/completions";
  s.where = "POST " + s.url;
  s.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  if (!options.api_key.empty())
    s.headers.emplace_back("Authorization", "Bearer " + options.api_key);
  for (const auto& h : options.headers) s.headers.push_back(h);
  if (options.requests_per_minute > 0) s.limiter.emplace(options.requests_per_minute);
  s.options = std::move(options);
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientOptions& Client::options() const noexcept { return state_->options; }

Task<ChatResponse> Client::chat(ChatRequest request) const {
  if (!state_) throw UsageError("concur::llm::Client: used after being moved from");
  State& s = *state_;  // the limiter is its only part that changes (thread-safely)
  if (request.messages.empty()) {
    throw UsageError("concur::llm::Client::chat: a request needs at least one message");
  }
  http::Request exchange;
  exchange.method = "POST";
  exchange.url = s.url;
  exchange.headers = s.headers;
  const std::string_view model = request.model.empty() ? s.options.model : request.model;
  exchange.body = wire::encode_request(request, model);
  exchange.timeout = s.options.timeout;
  exchange.connect_timeout = s.options.connect_timeout;

  for (int attempt = 1;; ++attempt) {
    if (s.limiter) {
      const auto slot = s.limiter->reserve();
      if (slot > RateLimiter::Clock::now()) co_await concur::sleep_until(slot);
    }
    std::optional<http::Response> reply;
    std::exception_ptr transport_error;
    try {
      reply = co_await http::request(exchange);
    } catch (const http::ConnectionError&) {
      // Refused, reset, DNS, timeout, TLS: retried like the SDKs do. Anything
      // else (cancellation, an oversized body, a bad URL) propagates.
      transport_error = std::current_exception();
    }
    if (reply && reply->ok()) {
      ChatResponse r = wire::decode_response(reply->body, reply->status, s.where, s.url);
      r.attempts = attempt;
      co_return r;
    }
    const bool retryable = transport_error != nullptr || retry::should_retry(*reply);
    if (!retryable || attempt > s.options.max_retries) {
      if (transport_error) std::rethrow_exception(transport_error);
      throw wire::error_from_reply(reply->status, reply->body, s.where, s.url, attempt);
    }
    co_await concur::sleep_for(retry::backoff(s.options, attempt - 1, reply ? &*reply : nullptr));
  }
}

Task<std::string> Client::complete(std::string prompt) const {
  ChatRequest request;
  request.messages.push_back({"user", std::move(prompt)});
  ChatResponse r = co_await chat(std::move(request));
  co_return std::move(r.content);
}

}  // namespace concur::llm
