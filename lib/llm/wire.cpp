// SPDX-License-Identifier: BSL-1.0
#include "llm/wire.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace concur::llm::wire {

namespace json = boost::json;

namespace {

const json::value* find(const json::value& v, std::string_view key) {
  if (!v.is_object()) return nullptr;
  return v.get_object().if_contains(key);
}

}  // namespace

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

std::string excerpt(std::string_view body) {
  constexpr std::size_t kMax = 200;
  return std::string(body.substr(0, kMax));
}

std::string encode_request(const ChatRequest& request, std::string_view model, bool stream) {
  json::object body;
  body["model"] = model;
  json::array messages;
  messages.reserve(request.messages.size());
  for (const Message& m : request.messages) {
    messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
  }
  body["messages"] = std::move(messages);
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.max_tokens) body["max_tokens"] = *request.max_tokens;
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = json::object{{"include_usage", true}};
  }
  return json::serialize(body);
}

ChatResponse decode_response(std::string_view body, long status, const std::string& where,
                             const std::string& url) {
  const auto fail = [&](std::string_view kind, const std::string& detail) {
    return ApiError(fmt::format("{} in HTTP {} reply to {}: {}", kind, status, where, detail),
                    status, fmt::format("{}: {}", kind, detail), "invalid_response", "", url);
  };
  json::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec) throw fail(messages::kNotJson, fmt::format("'{}'", excerpt(body)));
  const json::value* choices = find(doc, "choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) {
    throw fail(messages::kBadShape, fmt::format("no choices in '{}'", excerpt(body)));
  }
  const json::value& first = choices->get_array()[0];
  const json::value* message = find(first, "message");
  const json::value* content = message != nullptr ? find(*message, "content") : nullptr;
  if (content == nullptr || !(content->is_string() || content->is_null())) {
    throw fail(messages::kBadShape,
               fmt::format("no choices[0].message.content in '{}'", excerpt(body)));
  }
  ChatResponse r;
  r.content = text_of(content);
  r.id = text_of(find(doc, "id"));
  r.model = text_of(find(doc, "model"));
  r.finish_reason = text_of(find(first, "finish_reason"));
  if (const json::value* usage = find(doc, "usage")) {
    r.usage.prompt_tokens = long_of(find(*usage, "prompt_tokens"));
    r.usage.completion_tokens = long_of(find(*usage, "completion_tokens"));
    r.usage.total_tokens = long_of(find(*usage, "total_tokens"));
  }
  return r;
}

ApiError error_from_reply(long status, std::string_view body, const std::string& where,
                          const std::string& url, int attempts) {
  const std::string tries = attempts > 1 ? fmt::format(" after {} attempts", attempts) : "";
  json::error_code ec;
  const json::value doc = json::parse(body, ec);
  const json::value* error = ec ? nullptr : find(doc, "error");
  if (error != nullptr && error->is_object()) {
    std::string message = text_of(find(*error, "message"));
    std::string type = text_of(find(*error, "type"));
    std::string code = text_of(find(*error, "code"));
    std::string what = fmt::format("HTTP {} from {}{}: {}", status, where, tries,
                                   message.empty() ? "(no message)" : message);
    if (!type.empty() || !code.empty()) what += fmt::format(" (type={}, code={})", type, code);
    return ApiError(what, status, std::move(message), std::move(type), std::move(code), url);
  }
  if (error != nullptr && error->is_string()) {  // some servers send {"error": "text"}
    std::string message(error->get_string());
    std::string what = fmt::format("HTTP {} from {}{}: {}", status, where, tries, message);
    return ApiError(what, status, std::move(message), "", "", url);
  }
  const std::string_view kind =
      ec ? messages::kNotJson : std::string_view("response body has no \"error\" object");
  std::string message = fmt::format("{}: '{}'", kind, excerpt(body));
  std::string what = fmt::format("HTTP {} from {}{}: {}", status, where, tries, message);
  return ApiError(what, status, std::move(message), "", "", url);
}

}  // namespace concur::llm::wire
