// SPDX-License-Identifier: BSL-1.0
// What a Client holds, shared by the files that implement its calls (chat in
// client.cpp, the raw form in raw.cpp, streaming in stream.cpp), and the
// retry loop they all go through (retry_loop.cpp).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "concur/llm.hpp"
#include "concur/task.hpp"
#include "llm/rate_limiter.hpp"
#include "llm/retry_loop.hpp"

namespace concur::llm {

struct Client::State {
  ClientOptions options;
  std::string url;                     // {base_url}/chat/completions
  std::string where;                   // "POST <url>", for messages
  http::Headers headers;               // sent with every request
  std::optional<RateLimiter> limiter;  // the only part that changes (thread-safely)

  /// The state of `client_state`, or UsageError if its client was moved from.
  static State& of(const std::unique_ptr<State>& client_state);
  /// A `method` request to `url` with the client's headers and timeouts.
  http::Request exchange(std::string method, std::string url) const;

  /// The one retry loop of every call (chat, chat_stream, send): sends
  /// `exchange` until `retryable` says no or `max_retries` retries are spent,
  /// and returns that last attempt. Each attempt first waits for the rate
  /// limiter; a retry waits retry::backoff. Only http::ConnectionError
  /// (refused, reset, DNS, timeout, TLS) is caught, as the SDKs do; anything
  /// else (cancellation, an oversized body, a bad URL) propagates.
  /// `before_each`, if set, runs before every attempt with its number (to
  /// reset per-attempt state the exchange's callbacks write to).
  Task<Attempt> send_with_retries(http::Request& exchange, int max_retries,
                                  std::function<bool(const Attempt&)> retryable,
                                  std::function<void(int)> before_each = {});
};

}  // namespace concur::llm
