// SPDX-License-Identifier: BSL-1.0
// The fake server's wire format, apart from the networking: what a request
// asks for (markers, model, last user message) and the JSON bodies it gets.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "concur/fake_llm.hpp"

namespace concur::fake_llm::detail {

enum class Fault { none, too_many_requests, server_error, reset, malformed, slow };

/// "429", "500", "reset", "malformed", "slow" (the marker spelling), or "none".
std::string_view fault_name(Fault f) noexcept;

/// What the markers in a last user message ask for.
struct Markers {
  Fault fault = Fault::none;
  /// How many requests with this exact prompt get the fault; nullopt = all.
  std::optional<int> count;
  std::optional<std::chrono::milliseconds> latency;
};

/// Finds [[fault:KIND]], [[fault:KIND:N]] and [[latency:NNms]] in `text`.
/// Unknown or malformed markers throw BadRequest (a client's mistake).
Markers parse_markers(std::string_view text);

/// A request the client got wrong: answered 400 with this message.
class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ChatRequest {
  std::string model;
  std::string last_user;                   ///< content of the last message with role "user"
  std::size_t prompt_chars = 0;            ///< all message contents, for usage figures
  bool stream = false;                     ///< "stream": true: answer with server-sent events
  bool include_usage = false;              ///< stream_options.include_usage
  std::optional<std::int64_t> max_tokens;  ///< max_tokens / max_completion_tokens
};

/// Tokens as the server counts them: a quarter of the characters, rounded up.
std::int64_t token_count(std::size_t chars);

/// Parses a chat-completions body. Throws BadRequest naming what is wrong.
ChatRequest parse_chat_request(std::string_view body);

/// An OpenAI "chat.completion" object answering `req` with `content`.
std::string completion_body(const ChatRequest& req, std::string_view content, std::uint64_t id);

/// {"error":{"message","type","code","param":null}}, OpenAI's error shape.
std::string error_body(std::string_view message, std::string_view type, std::string_view code);

/// GET /v1/models: one model, kDefaultModel.
std::string models_body();
/// GET /v1/models/{id}
std::string model_body(std::string_view id);

/// GET /stats
std::string stats_body(const Stats& s);

}  // namespace concur::fake_llm::detail
