// SPDX-License-Identifier: BSL-1.0
// The raw form of the client: any body to any path, every reply returned as
// it came (the batch runner records 4xx bodies instead of throwing them).
#include <chrono>
#include <optional>
#include <utility>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "concur/sleep.hpp"
#include "llm/client_state.hpp"
#include "llm/retry.hpp"

namespace concur::llm {

std::string Client::url_for(std::string_view path) const {
  if (!state_) throw UsageError("concur::llm::Client: used after being moved from");
  const std::string& base = state_->options.base_url;
  if (path.empty()) return base;
  std::string p(path);
  if (p.front() != '/') p.insert(p.begin(), '/');
  // base ".../v1" + "/v1/chat/completions": the version is written once.
  const std::size_t slash = base.rfind('/');
  if (slash != std::string::npos) {
    const std::string_view version = std::string_view(base).substr(slash);  // "/v1"
    if (version.size() > 1 && p.starts_with(version) &&
        (p.size() == version.size() || p[version.size()] == '/')) {
      p.erase(0, version.size());
    }
  }
  return base + p;
}

Task<RawResponse> Client::send(RawRequest request) const {
  if (!state_) throw UsageError("concur::llm::Client: used after being moved from");
  State& s = *state_;
  const int max_retries = request.max_retries.value_or(s.options.max_retries);
  if (max_retries < 0) throw UsageError("concur::llm::Client::send: max_retries must be >= 0");
  http::Request exchange;
  exchange.method = request.method.empty() ? std::string("POST") : std::move(request.method);
  exchange.url = url_for(request.path);
  exchange.headers = s.headers;
  for (auto& h : request.headers) exchange.headers.push_back(std::move(h));
  exchange.body = std::move(request.body);
  exchange.timeout = s.options.timeout;
  exchange.connect_timeout = s.options.connect_timeout;

  for (int attempt = 1;; ++attempt) {
    if (s.limiter) {
      const auto slot = s.limiter->reserve();
      if (slot > RateLimiter::Clock::now()) co_await concur::sleep_until(slot);
    }
    std::optional<http::Response> reply;
    std::exception_ptr transport_error;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      reply = co_await http::request(exchange);
    } catch (const http::ConnectionError&) {
      transport_error = std::current_exception();
    }
    const bool retryable = transport_error != nullptr || retry::should_retry(*reply);
    if (!retryable || attempt > max_retries) {
      if (transport_error) std::rethrow_exception(transport_error);
      RawResponse r;
      r.status = reply->status;
      r.rate_limits = RateLimits::from(*reply);
      if (auto id = reply->header("x-request-id")) r.request_id = std::string(*id);
      r.headers = std::move(reply->headers);
      r.body = std::move(reply->body);
      r.attempts = attempt;
      r.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - t0);
      co_return r;
    }
    co_await concur::sleep_for(retry::backoff(s.options, attempt - 1, reply ? &*reply : nullptr));
  }
}

}  // namespace concur::llm
