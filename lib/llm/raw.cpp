// SPDX-License-Identifier: BSL-1.0
// The raw form of the client: any body to any path, every reply returned as
// it came (the batch runner records 4xx bodies instead of throwing them).
#include <exception>
#include <string>
#include <utility>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "llm/client_state.hpp"
#include "llm/retry_loop.hpp"

namespace concur::llm {

std::string Client::url_for(std::string_view path) const {
  const std::string& base = State::of(state_).options.base_url;
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
  State& s = State::of(state_);
  const int max_retries = request.max_retries.value_or(s.options.max_retries);
  if (max_retries < 0) throw UsageError("concur::llm::Client::send: max_retries must be >= 0");
  http::Request exchange =
      s.exchange(request.method.empty() ? std::string("POST") : std::move(request.method),
                 url_for(request.path));
  for (auto& h : request.headers) exchange.headers.push_back(std::move(h));
  exchange.body = std::move(request.body);

  // Every reply is returned as it came, a 2xx too unless it asks for a retry.
  Attempt a = co_await s.send_with_retries(exchange, max_retries, failed_retryably);
  if (a.connection_error) std::rethrow_exception(a.connection_error);
  http::Response& reply = *a.reply;
  RawResponse r;
  r.status = reply.status;
  r.rate_limits = RateLimits::from(reply);
  if (auto id = reply.header("x-request-id")) r.request_id = std::string(*id);
  r.headers = std::move(reply.headers);
  r.body = std::move(reply.body);
  r.attempts = a.number;
  r.elapsed = a.elapsed;
  co_return r;
}

}  // namespace concur::llm
