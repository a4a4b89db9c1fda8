// SPDX-License-Identifier: BSL-1.0
// Streaming chat completions: "stream": true, the reply read as server-sent
// events while it arrives, each content delta handed to the caller at once.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "concur/sleep.hpp"
#include "llm/client_state.hpp"
#include "llm/retry.hpp"
#include "llm/sse.hpp"
#include "llm/wire.hpp"

namespace concur::llm {

namespace json = boost::json;

namespace {

std::string text_of(const json::value* v) {
  if (v == nullptr || v->is_null()) return {};
  if (v->is_string()) return std::string(v->get_string());
  return json::serialize(*v);
}

long long_of(const json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_int64()) return static_cast<long>(v->get_int64());
  if (v->is_uint64()) return static_cast<long>(v->get_uint64());
  return 0;
}

// The state of one attempt, shared with the transfer's chunk callback.
struct StreamState {
  ChatResponse reply;
  DeltaHandler* on_delta = nullptr;
  std::chrono::steady_clock::time_point start;
  bool done = false;              // data: [DONE] seen
  std::optional<ApiError> error;  // an {"error":...} event
  std::string where, url;
  std::optional<sse::Parser> parser;

  void event(std::string_view data) {
    if (data == "[DONE]") {
      done = true;
      return;
    }
    json::error_code ec;
    const json::value doc = json::parse(data, ec);
    if (ec || !doc.is_object()) {
      throw ApiError(fmt::format("{} in a stream event from {}: '{}'", messages::kNotJson, where,
                                 wire::excerpt(data)),
                     200, std::string(messages::kNotJson), "invalid_response", "", url);
    }
    const json::object& o = doc.get_object();
    if (const json::value* e = o.if_contains("error")) {
      error = wire::error_from_reply(200, data, where, url, reply.attempts);
      (void)e;
      return;
    }
    if (reply.id.empty()) reply.id = text_of(o.if_contains("id"));
    if (reply.model.empty()) reply.model = text_of(o.if_contains("model"));
    if (const json::value* usage = o.if_contains("usage"); usage != nullptr && usage->is_object()) {
      const json::object& u = usage->get_object();
      reply.usage.prompt_tokens = long_of(u.if_contains("prompt_tokens"));
      reply.usage.completion_tokens = long_of(u.if_contains("completion_tokens"));
      reply.usage.total_tokens = long_of(u.if_contains("total_tokens"));
    }
    const json::value* choices = o.if_contains("choices");
    if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) return;
    const json::value& first = choices->get_array()[0];
    if (!first.is_object()) return;
    if (const json::value* fr = first.get_object().if_contains("finish_reason");
        fr != nullptr && fr->is_string()) {
      reply.finish_reason = std::string(fr->get_string());
    }
    const json::value* delta = first.get_object().if_contains("delta");
    if (delta == nullptr || !delta->is_object()) return;
    const json::value* content = delta->get_object().if_contains("content");
    if (content == nullptr || !content->is_string() || content->get_string().empty()) return;
    const std::string_view piece(content->get_string());
    if (reply.deltas == 0) {
      reply.time_to_first_token = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - start);
    }
    ++reply.deltas;
    reply.content.append(piece);
    if (on_delta != nullptr && *on_delta) (*on_delta)(piece);
  }
};

}  // namespace

Task<ChatResponse> Client::chat_stream(ChatRequest request, DeltaHandler on_delta) const {
  if (!state_) throw UsageError("concur::llm::Client: used after being moved from");
  State& s = *state_;
  if (request.messages.empty()) {
    throw UsageError("concur::llm::Client::chat_stream: a request needs at least one message");
  }
  http::Request exchange;
  exchange.method = "POST";
  exchange.url = s.url;
  exchange.headers = s.headers;
  for (auto& [name, value] : exchange.headers) {
    if (name == "Accept") value = "text/event-stream";
  }
  const std::string_view model = request.model.empty() ? s.options.model : request.model;
  exchange.body = wire::encode_request(request, model, /*stream=*/true);
  exchange.timeout = s.options.timeout;
  exchange.connect_timeout = s.options.connect_timeout;

  for (int attempt = 1;; ++attempt) {
    if (s.limiter) {
      const auto slot = s.limiter->reserve();
      if (slot > RateLimiter::Clock::now()) co_await concur::sleep_until(slot);
    }
    auto st = std::make_shared<StreamState>();
    st->reply.attempts = attempt;
    st->on_delta = &on_delta;
    st->where = s.where;
    st->url = s.url;
    st->parser.emplace([raw = st.get()](std::string_view data) { raw->event(data); });
    st->start = std::chrono::steady_clock::now();
    exchange.on_body_chunk = [st](std::string_view bytes) { st->parser->feed(bytes); };

    std::optional<http::Response> reply;
    std::exception_ptr transport_error;
    try {
      reply = co_await http::request(exchange);
    } catch (const http::ConnectionError&) {
      transport_error = std::current_exception();
    }
    // A stream that delivered content cannot be taken back: no retry then.
    const bool delivered = st->reply.deltas > 0;
    if (reply && reply->ok()) {
      if (st->error) throw *st->error;
      if (!st->done) {
        st->parser->feed("\n\n");  // a last event without its blank line
      }
      if (st->error) throw *st->error;
      if (!st->done && st->reply.finish_reason.empty()) {
        throw ApiError(fmt::format("{} in HTTP {} reply to {}: the stream ended without "
                                   "'data: [DONE]' or a finish_reason",
                                   messages::kBadShape, reply->status, s.where),
                       reply->status, std::string(messages::kBadShape), "invalid_response", "",
                       s.url);
      }
      co_return std::move(st->reply);
    }
    const bool retryable =
        !delivered && (transport_error != nullptr || retry::should_retry(*reply));
    if (!retryable || attempt > s.options.max_retries) {
      if (transport_error) std::rethrow_exception(transport_error);
      throw wire::error_from_reply(reply->status, reply->body, s.where, s.url, attempt);
    }
    co_await concur::sleep_for(retry::backoff(s.options, attempt - 1, reply ? &*reply : nullptr));
  }
}

}  // namespace concur::llm
