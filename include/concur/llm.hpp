// SPDX-License-Identifier: BSL-1.0
// concur::llm: an OpenAI-compatible chat-completions client (DESIGN §6).
//
// ```cpp
// #include <string>
//
// const concur::llm::Client client({.base_url = "http://127.0.0.1:8000/v1",
//                                   .model = "gpt-4o-mini"});
//
// concur::Task<std::string> translate(const concur::llm::Client& c, std::string text) {
//   // A named request, built before the co_await: GCC 12 rejects a braced
//   // temporary with string literals inside the co_await expression.
//   concur::llm::ChatRequest request{
//       .messages = {{"system", "Translate to Japanese."}, {"user", std::move(text)}}};
//   auto r = co_await c.chat(std::move(request));
//   co_return r.content;
// }
// ```
//
// A Client lives in one process. To run chat calls on the processes executor,
// gather concur::llm::chat_call (concur/llm_call.hpp): a registered call
// that takes the ClientOptions and builds its Client in the worker.
//
// Every call is a concur::http exchange, so it runs concurrently on every
// executor and is a cancellation point. Failed attempts are retried like the
// official OpenAI SDKs: on 408, 409, 429, 5xx and connection errors, up to
// `max_retries` times, waiting as the server says (`retry-after-ms`,
// `Retry-After`) or else 0.5 s doubling up to 8 s with jitter; the wait is a
// concur::sleep_for, so it is concurrent and cancellable too. A Client is
// immutable after construction (apart from its rate limiter, which is
// thread-safe): share one between tasks on any executor.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "concur/errors.hpp"
#include "concur/http.hpp"
#include "concur/task.hpp"

namespace concur::llm {

using namespace std::chrono_literals;

struct Message {
  std::string role;  ///< "system", "user", "assistant"
  std::string content;
};

struct ClientOptions {
  /// Up to and including the API version, e.g. "https://api.openai.com/v1".
  /// Empty: $OPENAI_BASE_URL, else https://api.openai.com/v1.
  std::string base_url;
  std::string model = "gpt-4o-mini";
  /// Sent as "Authorization: Bearer <key>". Empty: $OPENAI_API_KEY (if unset
  /// too, no Authorization header is sent: fine for local servers).
  std::string api_key;
  /// Retries after the first attempt (so max_retries + 1 attempts at most).
  int max_retries = 2;
  /// First backoff wait, doubled per retry up to max_backoff; jitter shortens
  /// each wait by up to 25 %.
  std::chrono::milliseconds initial_backoff = 500ms;
  std::chrono::milliseconds max_backoff = 8s;
  /// A server-requested wait longer than this is ignored in favour of backoff.
  std::chrono::milliseconds max_retry_after = 60s;
  /// Per attempt: whole exchange / connection set-up.
  std::chrono::milliseconds timeout = 600s;
  std::chrono::milliseconds connect_timeout = 10s;
  /// Client-side limit on requests started per minute (0: none). Shared by
  /// every task that uses this Client; waiting for a slot is a concur::sleep_for.
  double requests_per_minute = 0;
  /// Extra headers sent with every request.
  http::Headers headers;
};

struct ChatRequest {
  std::vector<Message> messages;
  std::optional<double> temperature;
  std::optional<int> max_tokens;
  /// Overrides ClientOptions::model for this request.
  std::string model;
};

struct Usage {
  long prompt_tokens = 0;
  long completion_tokens = 0;
  long total_tokens = 0;
};

struct ChatResponse {
  std::string id;
  std::string model;
  std::string content;  ///< choices[0].message.content
  std::string finish_reason;
  Usage usage;
  int attempts = 1;  ///< 1 + the retries this response needed
  /// chat_stream only: from the start of the attempt that answered to its
  /// first content delta (zero if no content came).
  std::chrono::microseconds time_to_first_token{0};
  /// chat_stream only: how many deltas with content arrived.
  int deltas = 0;
};

/// The rate-limit state a reply announces, as OpenAI sends it: the limits
/// (per minute), what remains of them, and when they are full again
/// (x-ratelimit-reset-* is a duration such as "1s", "6m0s" or "20ms").
struct RateLimits {
  std::optional<long> limit_requests, limit_tokens;          ///< x-ratelimit-limit-*
  std::optional<long> remaining_requests, remaining_tokens;  ///< x-ratelimit-remaining-*
  std::optional<std::chrono::milliseconds> reset_requests, reset_tokens;  ///< x-ratelimit-reset-*
  /// retry-after-ms, else Retry-After (seconds or an HTTP date).
  std::optional<std::chrono::milliseconds> retry_after;
  /// Reads them from a reply's headers (absent or unreadable ones stay empty).
  static RateLimits from(const http::Response& reply);
};

/// Parses an OpenAI reset duration ("1s", "6m0s", "1m30.5s", "20ms", "2h");
/// nullopt for anything else.
std::optional<std::chrono::milliseconds> parse_reset_duration(std::string_view text);

/// Any request to the API, sent as given (the raw form: what a Batch line holds).
struct RawRequest {
  std::string method = "POST";
  /// Relative to base_url ("/chat/completions"), or with the API version
  /// base_url already ends with ("/v1/chat/completions", as Batch lines
  /// write it): a repeated "/v1" is dropped.
  std::string path;
  /// Sent unchanged (for POST usually JSON; Content-Type application/json).
  std::string body;
  /// Overrides ClientOptions::max_retries for this request (0: the caller
  /// retries itself, e.g. to share one backoff among many requests).
  std::optional<int> max_retries;
  /// Extra headers for this request.
  http::Headers headers;
};

struct RawResponse {
  long status = 0;
  http::Headers headers;  ///< names lower-cased
  std::string body;
  std::string request_id;  ///< x-request-id (empty if absent)
  RateLimits rate_limits;
  int attempts = 1;
  std::chrono::microseconds elapsed{0};  ///< the last attempt's exchange
  bool ok() const noexcept { return status >= 200 && status < 300; }
};

/// Hears each content delta of a streamed completion (see Client::chat_stream).
using DeltaHandler = std::function<void(std::string_view delta)>;

namespace messages {
inline constexpr std::string_view kNotJson = "response body is not JSON";
inline constexpr std::string_view kBadShape = "unexpected response shape";
}  // namespace messages

/// The server answered with a non-2xx status (after any retries), or with a
/// 2xx body that is not a chat completion. Carries the OpenAI error fields
/// when the body had them ({"error":{"message","type","code"}}); for a body
/// that is not JSON, message() quotes its first 200 bytes.
class ApiError : public concur::Error {
 public:
  ApiError(const std::string& what, long status, std::string message, std::string type,
           std::string code, std::string url)
      : concur::Error(what),
        status_(status),
        message_(std::move(message)),
        type_(std::move(type)),
        code_(std::move(code)),
        url_(std::move(url)) {}
  /// Only the message: how an error raised in a worker process is rebuilt in
  /// the parent (the fields are then empty and status() is 0; what() still
  /// holds them all).
  explicit ApiError(const std::string& what) : concur::Error(what), status_(0) {}
  long status() const noexcept { return status_; }  ///< HTTP status
  const std::string& message() const noexcept { return message_; }
  const std::string& type() const noexcept { return type_; }  ///< e.g. "rate_limit_exceeded"
  const std::string& code() const noexcept { return code_; }  ///< as text; empty if absent/null
  const std::string& url() const noexcept { return url_; }

 private:
  long status_;
  std::string message_, type_, code_, url_;
};

class Client {
 public:
  /// Throws concur::ConfigError for an unusable option (e.g. max_retries < 0).
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  /// POST {base_url}/chat/completions, retrying as described above. Throws
  /// ApiError, http::Error (after retries, for transport failures), or
  /// concur::Cancelled & co. if the task stops.
  Task<ChatResponse> chat(ChatRequest request) const;
  /// One user message; returns the reply text.
  Task<std::string> complete(std::string prompt) const;

  /// The same request with "stream": true: the server sends server-sent
  /// events and `on_delta` hears each piece of content as it arrives (on the
  /// thread that runs the transfer, in order, never concurrently; see
  /// http::Request::on_body_chunk). Returns the whole reply, content
  /// reassembled, with time_to_first_token; usage comes from the final chunk
  /// (requested with stream_options.include_usage). An attempt is retried
  /// like chat() only while no delta has been delivered; a stream that breaks
  /// after that throws. An {"error":...} event throws ApiError.
  Task<ChatResponse> chat_stream(ChatRequest request, DeltaHandler on_delta) const;

  /// The raw form: sends `request` to {base_url}{path}. Retries 408, 409,
  /// 429, 5xx and connection errors as chat() does (up to
  /// RawRequest::max_retries, else ClientOptions::max_retries), then returns
  /// the last reply whatever its status; throws only for a transport failure
  /// after the retries (http::Error) or if the task stops.
  Task<RawResponse> send(RawRequest request) const;
  /// The URL `path` is sent to (the rule of RawRequest::path).
  std::string url_for(std::string_view path) const;

  const ClientOptions& options() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace concur::llm
