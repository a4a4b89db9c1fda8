// SPDX-License-Identifier: BSL-1.0
// When and how long to wait before retrying a chat completion: the policy of
// the official OpenAI SDKs (openai-python's _should_retry and
// _calculate_retry_timeout), so concur behaves as users of those expect.
#pragma once

#include <chrono>
#include <optional>

#include "concur/http.hpp"
#include "concur/llm.hpp"

namespace concur::llm::retry {

/// Whether a reply with this status (and headers) is worth another attempt:
/// 408, 409, 429 and 5xx, unless the server says otherwise with
/// `x-should-retry: true|false`.
bool should_retry(const http::Response& reply);

/// The wait the server asked for: `retry-after-ms` (milliseconds), else
/// `Retry-After` (seconds, or an HTTP date). Nullopt if absent or unreadable.
std::optional<std::chrono::milliseconds> requested_wait(const http::Response& reply,
                                                        std::chrono::system_clock::time_point now);

/// The wait before retry number `retry` (0 for the first retry): the server's
/// requested wait if it has one within (0, max_retry_after], else
/// initial_backoff * 2^retry capped at max_backoff, shortened by jitter
/// (a factor drawn from [0.75, 1]). `reply` is null after a connection error.
std::chrono::milliseconds backoff(const ClientOptions& options, int retry,
                                  const http::Response* reply);

}  // namespace concur::llm::retry
