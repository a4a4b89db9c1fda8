// SPDX-License-Identifier: BSL-1.0
#include "protocol.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <ctime>

namespace concur::fake_llm::detail {

namespace json = boost::json;

std::string_view fault_name(Fault f) noexcept {
  switch (f) {
    case Fault::too_many_requests:
      return "429";
    case Fault::server_error:
      return "500";
    case Fault::reset:
      return "reset";
    case Fault::malformed:
      return "malformed";
    case Fault::slow:
      return "slow";
    case Fault::none:
      break;
  }
  return "none";
}

namespace {

int parse_positive(std::string_view digits, std::string_view marker) {
  int n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n <= 0)
    throw BadRequest("bad marker [[" + std::string(marker) +
                     "]]: the count must be a positive integer");
  return n;
}

Fault parse_fault_kind(std::string_view kind, std::string_view marker) {
  for (Fault f : {Fault::too_many_requests, Fault::server_error, Fault::reset, Fault::malformed,
                  Fault::slow}) {
    if (kind == fault_name(f)) return f;
  }
  throw BadRequest("bad marker [[" + std::string(marker) +
                   "]]: fault kinds are 429, 500, reset, malformed, slow");
}

}  // namespace

Markers parse_markers(std::string_view text) {
  Markers m;
  std::size_t pos = 0;
  while ((pos = text.find("[[", pos)) != std::string_view::npos) {
    const std::size_t close = text.find("]]", pos + 2);
    if (close == std::string_view::npos) break;
    const std::string_view inner = text.substr(pos + 2, close - pos - 2);
    pos = close + 2;
    if (inner.starts_with("fault:")) {
      std::string_view rest = inner.substr(6);
      const std::size_t colon = rest.find(':');
      m.fault = parse_fault_kind(rest.substr(0, colon), inner);
      if (colon != std::string_view::npos) m.count = parse_positive(rest.substr(colon + 1), inner);
    } else if (inner.starts_with("latency:")) {
      std::string_view v = inner.substr(8);
      long long factor = 1;
      if (v.ends_with("ms")) {
        v.remove_suffix(2);
      } else if (v.ends_with("s")) {
        v.remove_suffix(1);
        factor = 1000;
      } else {
        throw BadRequest("bad marker [[" + std::string(inner) + "]]: write e.g. [[latency:250ms]]");
      }
      long long n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 0)
        throw BadRequest("bad marker [[" + std::string(inner) + "]]: write e.g. [[latency:250ms]]");
      m.latency = std::chrono::milliseconds(n * factor);
    }
  }
  return m;
}

namespace {

// A message's content is a string, or (newer API) an array of parts of which
// the text parts count.
std::string content_text(const json::value& content) {
  if (content.is_string()) return std::string(content.get_string());
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content.get_array()) {
      const auto* obj = part.if_object();
      if (obj == nullptr) continue;
      if (const auto* t = obj->if_contains("text"); t != nullptr && t->is_string())
        out += std::string(t->get_string());
    }
    return out;
  }
  if (content.is_null()) return out;
  throw BadRequest("'content' must be a string or an array of content parts");
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) throw BadRequest("request body is not valid JSON: " + ec.message());
  const auto* obj = v.if_object();
  if (obj == nullptr) throw BadRequest("request body must be a JSON object");
  ChatRequest req;
  req.model = std::string(kDefaultModel);
  if (const auto* model = obj->if_contains("model")) {
    if (!model->is_string()) throw BadRequest("'model' must be a string");
    req.model = std::string(model->get_string());
  }
  if (const auto* stream = obj->if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) throw BadRequest("'stream' must be a boolean");
    req.stream = stream->get_bool();
  }
  if (const auto* so = obj->if_contains("stream_options"); so && so->is_object()) {
    if (const auto* iu = so->get_object().if_contains("include_usage"); iu && iu->is_bool())
      req.include_usage = iu->get_bool();
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (const auto* mt = obj->if_contains(key); mt && !mt->is_null()) {
      if (!mt->is_int64() || mt->get_int64() < 1)
        throw BadRequest("'" + std::string(key) + "' must be a positive integer");
      req.max_tokens = mt->get_int64();
    }
  }
  const auto* messages = obj->if_contains("messages");
  if (messages == nullptr || !messages->is_array() || messages->get_array().empty())
    throw BadRequest("'messages' must be a non-empty array");
  bool have_user = false;
  for (const auto& m : messages->get_array()) {
    const auto* mo = m.if_object();
    if (mo == nullptr) throw BadRequest("each message must be an object");
    const auto* role = mo->if_contains("role");
    if (role == nullptr || !role->is_string()) throw BadRequest("each message needs a 'role'");
    std::string text;
    if (const auto* c = mo->if_contains("content")) text = content_text(*c);
    req.prompt_chars += text.size();
    if (role->get_string() == "user") {
      req.last_user = std::move(text);
      have_user = true;
    }
  }
  if (!have_user) throw BadRequest("'messages' has no message with role 'user'");
  return req;
}

namespace {

std::int64_t tokens(std::size_t chars) { return token_count(chars); }

std::string hex_id(std::uint64_t id) {
  // Mixed so consecutive ids do not look consecutive, like real ones.
  std::uint64_t x = id * 0x9E3779B97F4A7C15ULL;
  x ^= x >> 31;
  char buf[17];
  for (int i = 15; i >= 0; --i, x >>= 4) buf[i] = "0123456789abcdef"[x & 15];
  buf[16] = '\0';
  return buf;
}

}  // namespace

std::int64_t token_count(std::size_t chars) { return static_cast<std::int64_t>((chars + 3) / 4); }

std::string completion_body(const ChatRequest& req, std::string_view content, std::uint64_t id) {
  const std::int64_t prompt = tokens(req.prompt_chars);
  const std::int64_t completion = tokens(content.size());
  json::object o{
      {"id", "chatcmpl-" + hex_id(id)},
      {"object", "chat.completion"},
      {"created", static_cast<std::int64_t>(std::time(nullptr))},
      {"model", req.model},
      {"system_fingerprint", "fp_concur_fake"},
      {"choices", json::array{json::object{{"index", 0},
                                           {"message", json::object{{"role", "assistant"},
                                                                    {"content", content},
                                                                    {"refusal", nullptr}}},
                                           {"logprobs", nullptr},
                                           {"finish_reason", "stop"}}}},
      {"usage", json::object{{"prompt_tokens", prompt},
                             {"completion_tokens", completion},
                             {"total_tokens", prompt + completion}}}};
  return json::serialize(o);
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  json::object o{
      {"error",
       json::object{{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
  return json::serialize(o);
}

std::string model_body(std::string_view id) {
  json::object o{{"id", id}, {"object", "model"}, {"created", 1700000000}, {"owned_by", "concur"}};
  return json::serialize(o);
}

std::string models_body() {
  json::object o{{"object", "list"}, {"data", json::array{json::parse(model_body(kDefaultModel))}}};
  return json::serialize(o);
}

std::string stats_body(const Stats& s) {
  json::object by_status;
  for (const auto& [status, n] : s.by_status) by_status[std::to_string(status)] = n;
  json::object o{{"requests", s.requests},
                 {"in_flight", s.in_flight},
                 {"max_in_flight", s.max_in_flight},
                 {"connections", s.connections},
                 {"max_connections", s.max_connections},
                 {"resets", s.resets},
                 {"abandoned", s.abandoned},
                 {"by_status", by_status}};
  return json::serialize(o);
}

}  // namespace concur::fake_llm::detail
