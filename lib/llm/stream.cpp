// SPDX-License-Identifier: BSL-1.0
// Streaming chat completions: "stream": true, the reply read as server-sent
// events while it arrives, each content delta handed to the caller at once.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>

#include "concur/errors.hpp"
#include "concur/llm.hpp"
#include "llm/client_state.hpp"
#include "llm/retry_loop.hpp"
#include "llm/sse.hpp"
#include "llm/wire.hpp"

namespace concur::llm {

namespace json = boost::json;
using wire::long_of;
using wire::text_of;

namespace {

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
  State& s = State::of(state_);
  if (request.messages.empty()) {
    throw UsageError("concur::llm::Client::chat_stream: a request needs at least one message");
  }
  http::Request exchange = s.exchange("POST", s.url);
  for (auto& [name, value] : exchange.headers) {
    if (name == "Accept") value = "text/event-stream";
  }
  const std::string_view model = request.model.empty() ? s.options.model : request.model;
  exchange.body = wire::encode_request(request, model, /*stream=*/true);

  std::shared_ptr<StreamState> st;  // this attempt's
  const auto fresh_attempt = [&](int number) {
    st = std::make_shared<StreamState>();
    st->reply.attempts = number;
    st->on_delta = &on_delta;
    st->where = s.where;
    st->url = s.url;
    st->parser.emplace([raw = st.get()](std::string_view data) { raw->event(data); });
    st->start = std::chrono::steady_clock::now();
    exchange.on_body_chunk = [keep = st](std::string_view bytes) { keep->parser->feed(bytes); };
  };
  // A stream that delivered content cannot be taken back: no retry then.
  const auto retryable = [&](const Attempt& a) {
    return !(a.reply && a.reply->ok()) && st->reply.deltas == 0 && failed_retryably(a);
  };
  const Attempt a =
      co_await s.send_with_retries(exchange, s.options.max_retries, retryable, fresh_attempt);
  if (a.connection_error) std::rethrow_exception(a.connection_error);
  const http::Response& reply = *a.reply;
  if (!reply.ok()) throw wire::error_from_reply(reply.status, reply.body, s.where, s.url, a.number);
  if (st->error) throw *st->error;
  if (!st->done) {
    st->parser->feed("\n\n");  // a last event without its blank line
  }
  if (st->error) throw *st->error;
  if (!st->done && st->reply.finish_reason.empty()) {
    throw ApiError(fmt::format("{} in HTTP {} reply to {}: the stream ended without "
                               "'data: [DONE]' or a finish_reason",
                               messages::kBadShape, reply.status, s.where),
                   reply.status, std::string(messages::kBadShape), "invalid_response", "", s.url);
  }
  co_return std::move(st->reply);
}

}  // namespace concur::llm
