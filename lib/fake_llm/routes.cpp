// SPDX-License-Identifier: BSL-1.0
// What each request to the fake server gets: routing by path and method, and
// for a chat completion the rate-limit verdict, the fault and delay drawn for
// it (chat_outcome.cpp), and the reply (JSON, an injected fault, a 429 or a
// server-sent event stream).
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "protocol.hpp"
#include "rate_limits.hpp"
#include "session.hpp"
#include "sse_stream.hpp"

namespace concur::fake_llm::detail {

void Session::route() {
  std::string_view target(req_.target().data(), req_.target().size());
  target = target.substr(0, target.find('?'));
  const auto method = req_.method();
  if (target == "/v1/chat/completions" || target == "/chat/completions") {
    if (method == http::verb::post) return chat();
    return method_not_allowed("POST");
  }
  if (target == "/stats") {
    if (method == http::verb::get) return reply(http::status::ok, stats_body(server_.snapshot()));
    return method_not_allowed("GET");
  }
  if (target == "/stats/reset" && method == http::verb::post) {
    server_.reset_stats();
    return reply(http::status::ok, R"({"reset":true})");
  }
  if (target == "/v1/models" && method == http::verb::get)
    return reply(http::status::ok, models_body());
  if (target.starts_with("/v1/models/") && method == http::verb::get)
    return reply(http::status::ok, model_body(target.substr(11)));
  reply(http::status::not_found,
        error_body(
            "Unknown request URL: " + std::string(req_.method_string()) + " " + std::string(target),
            "invalid_request_error", "unknown_url"));
}

void Session::method_not_allowed(std::string_view allowed) {
  reply(http::status::method_not_allowed,
        error_body("use " + std::string(allowed) + " for " +
                       std::string(req_.target().data(), req_.target().size()),
                   "invalid_request_error", "method_not_allowed"));
}

void Session::chat() {
  in_chat_ = true;
  server_.request_started();
  ChatRequest request;
  Markers markers;
  try {
    request = parse_chat_request(req_.body());
    markers = parse_markers(request.last_user);
  } catch (const BadRequest& e) {
    return reply(http::status::bad_request,
                 error_body(e.what(), "invalid_request_error", "invalid_request"));
  }
  rate_headers_.clear();
  if (server_.limits.enabled()) {
    const std::int64_t tokens =
        token_count(request.prompt_chars) +
        request.max_tokens.value_or(token_count(reply_for(request.last_user).size()));
    auto verdict = server_.limits.admit(tokens);
    rate_headers_ = std::move(verdict.headers);
    if (!verdict.allowed) return rate_limited(verdict, request.model);
  }
  const auto decision = server_.decide(request, markers);
  if (decision.fault == Fault::too_many_requests) return too_many_requests();
  timer_.expires_after(decision.delay);
  timer_.async_wait([self = shared_from_this(), request = std::move(request),
                     fault = decision.fault](beast::error_code ec) {
    if (!ec && self->in_chat_) self->answer(request, fault);
  });
  watch_for_hang_up(++request_seq_);
}

void Session::answer(const ChatRequest& request, Fault fault) {
  switch (fault) {
    case Fault::reset: {
      // SO_LINGER 0 makes close() send RST: the client sees "connection reset".
      beast::error_code ignored;
      stream_.socket().set_option(net::socket_base::linger(true, 0), ignored);
      in_chat_ = false;
      server_.request_reset();
      stream_.close();
      return;
    }
    case Fault::server_error:
      return reply(http::status::internal_server_error,
                   error_body("The server had an error while processing your request "
                              "(concur-fake-llm injected fault).",
                              "server_error", "internal_error"));
    case Fault::malformed:
      return reply(http::status::ok,
                   "<html><body>upstream hiccup: concur-fake-llm injected a malformed "
                   "body</body></html>");
    default:
      if (request.stream) return stream(request);
      return reply(http::status::ok,
                   completion_body(request, reply_for(request.last_user), ++server_.next_id));
  }
}

void Session::too_many_requests() {
  const auto ms = server_.opts.retry_after.count();
  prepare(http::status::too_many_requests,
          error_body("Rate limit reached for requests (concur-fake-llm injected "
                     "fault). Please try again in " +
                         std::to_string(ms) + "ms.",
                     "requests", "rate_limit_exceeded"));
  res_.set(http::field::retry_after, std::to_string((ms + 999) / 1000));
  res_.set("retry-after-ms", std::to_string(ms));
  write();
}

// Over --rpm / --tpm: OpenAI's 429, which says when the request would fit.
void Session::rate_limited(const RateVerdict& v, const std::string& model) {
  const auto ms = v.retry_after.count();
  const std::string what =
      v.limited_by == "requests" ? "requests per min (RPM)" : "tokens per min (TPM)";
  const std::string message =
      v.too_large
          ? "Request too large for " + model + " on " + what + ": Limit " +
                std::to_string(v.limit) + ", Requested " + std::to_string(v.requested) + "."
          : "Rate limit reached for " + model + " on " + what + ": Limit " +
                std::to_string(v.limit) + ", Used " + std::to_string(v.used) + ", Requested " +
                std::to_string(v.requested) + ". Please try again in " + std::to_string(ms) + "ms.";
  prepare(http::status::too_many_requests,
          error_body(message, v.limited_by, "rate_limit_exceeded"));
  if (v.too_large) {
    res_.set("x-should-retry", "false");
  } else {
    res_.set(http::field::retry_after, std::to_string((ms + 999) / 1000));
    res_.set("retry-after-ms", std::to_string(ms));
  }
  write();
}

// "stream": true: the reply as server-sent events (sse_stream.hpp).
void Session::stream(const ChatRequest& request) {
  prepare(http::status::ok, "");
  http::response<http::empty_body> header;
  header.version(version_);
  header.result(http::status::ok);
  for (const auto& field : res_) header.set(field.name_string(), field.value());
  header.set(http::field::content_type, "text/event-stream; charset=utf-8");
  header.set(http::field::cache_control, "no-cache");
  header.erase(http::field::content_length);
  header.keep_alive(keep_alive_);
  if (in_chat_) {
    in_chat_ = false;
    server_.request_answered(200);
  }
  auto events = stream_events(request, reply_for(request.last_user), ++server_.next_id);
  std::make_shared<SseStream>(
      stream_, timer_, std::move(header), std::move(events), server_.opts.stream_interval,
      [self = shared_from_this()](beast::error_code ec) { self->on_write(ec, 0); })
      ->start();
}

}  // namespace concur::fake_llm::detail
