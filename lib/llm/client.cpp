// SPDX-License-Identifier: BSL-1.0
// The chat-completions client: its options, and chat() — one http exchange
// per attempt, retried as the OpenAI SDKs do (retry_loop.cpp).
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "concur/registry.hpp"
#include "llm/client_state.hpp"
#include "llm/retry_loop.hpp"
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

Client::State& Client::State::of(const std::unique_ptr<State>& client_state) {
  if (!client_state) throw UsageError("concur::llm::Client: used after being moved from");
  return *client_state;
}

http::Request Client::State::exchange(std::string method, std::string to) const {
  http::Request r;
  r.method = std::move(method);
  r.url = std::move(to);
  r.headers = headers;
  r.timeout = options.timeout;
  r.connect_timeout = options.connect_timeout;
  return r;
}

Task<ChatResponse> Client::chat(ChatRequest request) const {
  State& s = State::of(state_);
  if (request.messages.empty()) {
    throw UsageError("concur::llm::Client::chat: a request needs at least one message");
  }
  http::Request exchange = s.exchange("POST", s.url);
  const std::string_view model = request.model.empty() ? s.options.model : request.model;
  exchange.body = wire::encode_request(request, model);

  // A 2xx reply is the answer, whatever its headers say.
  const Attempt a = co_await s.send_with_retries(
      exchange, s.options.max_retries,
      [](const Attempt& at) { return !(at.reply && at.reply->ok()) && failed_retryably(at); });
  if (a.connection_error) std::rethrow_exception(a.connection_error);
  if (!a.reply->ok()) {
    throw wire::error_from_reply(a.reply->status, a.reply->body, s.where, s.url, a.number);
  }
  ChatResponse r = wire::decode_response(a.reply->body, a.reply->status, s.where, s.url);
  r.attempts = a.number;
  co_return r;
}

Task<std::string> Client::complete(std::string prompt) const {
  ChatRequest request;
  request.messages.push_back({"user", std::move(prompt)});
  ChatResponse r = co_await chat(std::move(request));
  co_return std::move(r.content);
}

}  // namespace concur::llm
