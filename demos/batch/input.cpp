// SPDX-License-Identifier: BSL-1.0
#include "input.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>

namespace concur::batch {

namespace json = boost::json;

InputFormat parse_format(const std::string& text) {
  if (text == "auto") return InputFormat::automatic;
  if (text == "batch") return InputFormat::batch;
  if (text == "prompts") return InputFormat::prompts;
  throw std::invalid_argument("bad --format '" + text + "': use auto, batch or prompts");
}

std::int64_t estimate_prompt_tokens(std::size_t content_chars, std::size_t messages) {
  return static_cast<std::int64_t>((content_chars + 3) / 4 + 4 * messages + 3);
}

namespace {

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// Text characters of a message's content: a string, or text parts.
std::size_t content_chars(const json::value& content) {
  if (content.is_string()) return content.get_string().size();
  std::size_t n = 0;
  if (const auto* parts = content.if_array()) {
    for (const auto& part : *parts) {
      if (const auto* o = part.if_object()) {
        if (const auto* t = o->if_contains("text"); t != nullptr && t->is_string())
          n += t->get_string().size();
      }
    }
  }
  return n;
}

void estimate(const json::object& body, Request& r) {
  std::size_t chars = 0, messages = 0;
  if (const auto* m = body.if_contains("messages"); m != nullptr && m->is_array()) {
    for (const auto& msg : m->get_array()) {
      ++messages;
      if (const auto* o = msg.if_object())
        if (const auto* c = o->if_contains("content")) chars += content_chars(*c);
    }
  } else if (const auto* p = body.if_contains("input"); p != nullptr && p->is_string()) {
    chars = p->get_string().size();  // embeddings and the like
    messages = 1;
  }
  r.prompt_tokens = estimate_prompt_tokens(chars, messages);
  std::int64_t n = 1;
  if (const auto* nv = body.if_contains("n");
      nv != nullptr && nv->is_int64() && nv->get_int64() > 0)
    n = nv->get_int64();
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (const auto* mt = body.if_contains(key); mt != nullptr && mt->is_int64()) {
      r.completion_limit = mt->get_int64() * n;
      break;
    }
  }
}

Parsed invalid(std::size_t number, const std::string& what) {
  Parsed p;
  p.kind = Parsed::Kind::invalid;
  p.error = fmt::format("line {}: {}", number, what);
  return p;
}

}  // namespace

Parsed parse_line(const std::string& text, std::size_t number, InputFormat format,
                  const PromptSettings& prompts) {
  if (blank(text)) return {};
  Parsed p;
  p.kind = Parsed::Kind::request;
  Request& r = p.request;
  r.line = number;
  if (format == InputFormat::prompts) {
    std::string prompt = text;
    if (!prompt.empty() && prompt.back() == '\r') prompt.pop_back();
    json::array messages;
    if (!prompts.system.empty())
      messages.push_back(json::object{{"role", "system"}, {"content", prompts.system}});
    messages.push_back(json::object{{"role", "user"}, {"content", prompt}});
    json::object body{{"model", prompts.model}, {"messages", std::move(messages)}};
    estimate(body, r);
    r.body = json::serialize(body);
    r.custom_id = fmt::format("line-{}", number);
    r.url = prompts.url;
    return p;
  }
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) return invalid(number, "not valid JSON (" + ec.message() + ")");
  const auto* o = v.if_object();
  if (o == nullptr) return invalid(number, "a Batch line must be a JSON object");
  const auto* id = o->if_contains("custom_id");
  if (id == nullptr || !id->is_string() || id->get_string().empty())
    return invalid(number, "missing \"custom_id\" (a non-empty string)");
  r.custom_id = std::string(id->get_string());
  if (const auto* m = o->if_contains("method")) {
    if (!m->is_string()) return invalid(number, "\"method\" must be a string");
    r.method = std::string(m->get_string());
    if (r.method != "POST" && r.method != "GET" && r.method != "DELETE")
      return invalid(number, "\"method\" must be POST (or GET, DELETE), not '" + r.method + "'");
  }
  const auto* url = o->if_contains("url");
  if (url == nullptr || !url->is_string() || !url->get_string().starts_with("/"))
    return invalid(number, "missing \"url\" (a path such as /v1/chat/completions)");
  r.url = std::string(url->get_string());
  const auto* body = o->if_contains("body");
  if (r.method == "POST") {
    if (body == nullptr || !body->is_object())
      return invalid(number, "missing \"body\" (the request's JSON object)");
    estimate(body->get_object(), r);
    r.body = json::serialize(*body);
  }
  return p;
}

InputReader::InputReader(const std::string& path, InputFormat format, PromptSettings prompts)
    : in_(path, std::ios::binary), format_(format), prompts_(std::move(prompts)) {
  if (!in_) throw std::runtime_error("cannot open input file '" + path + "'");
  if (format_ == InputFormat::automatic) {
    std::ifstream peek(path, std::ios::binary);
    std::string first;
    format_ = InputFormat::prompts;
    while (std::getline(peek, first)) {
      if (blank(first)) continue;
      const auto start = first.find_first_not_of(" \t");
      format_ = first[start] == '{' ? InputFormat::batch : InputFormat::prompts;
      break;
    }
  }
}

std::optional<Parsed> InputReader::next() {
  while (std::getline(in_, text_)) {
    ++line_;
    Parsed p = parse_line(text_, line_, format_, prompts_);
    if (p.kind != Parsed::Kind::blank) return p;
  }
  return std::nullopt;
}

namespace {
std::uint64_t fnv1a(std::string_view s, std::uint64_t h) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}
std::uint64_t murmur64(std::string_view s, std::uint64_t seed) {  // MurmurHash64A
  const std::uint64_t m = 0xc6a4a7935bd1e995ULL;
  const int r = 47;
  std::uint64_t h = seed ^ (s.size() * m);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t k = 0;
    for (int j = 7; j >= 0; --j) k = (k << 8) | static_cast<unsigned char>(s[i + j]);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  std::uint64_t tail = 0;
  for (std::size_t j = s.size(); j > i; --j)
    tail = (tail << 8) | static_cast<unsigned char>(s[j - 1]);
  if (s.size() > i) {
    h ^= tail;
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}
}  // namespace

IdKey key_of(std::string_view id) {
  return {fnv1a(id, 0xcbf29ce484222325ULL), murmur64(id, 0x9E3779B97F4A7C15ULL)};
}

InputScan scan_input(const std::string& path, InputFormat format, const PromptSettings& prompts) {
  InputReader reader(path, format, prompts);
  InputScan scan;
  scan.format = reader.format();
  std::vector<std::pair<IdKey, std::size_t>> seen;  // key, line
  while (auto p = reader.next()) {
    ++scan.lines;
    if (p->kind == Parsed::Kind::invalid) {
      ++scan.invalid;
      continue;
    }
    ++scan.requests;
    seen.emplace_back(key_of(p->request.custom_id), p->request.line);
  }
  std::sort(seen.begin(), seen.end());
  for (std::size_t i = 1; i < seen.size(); ++i) {
    if (seen[i].first == seen[i - 1].first) {
      // Name the id itself: read it back from the first of the two lines.
      InputReader again(path, scan.format, prompts);
      std::string id;
      while (auto p = again.next()) {
        if (p->kind == Parsed::Kind::request && p->request.line == seen[i - 1].second) {
          id = p->request.custom_id;
          break;
        }
      }
      throw DuplicateId(fmt::format("duplicate custom_id '{}' on lines {} and {}", id,
                                    seen[i - 1].second, seen[i].second));
    }
  }
  scan.keys.reserve(seen.size());
  for (const auto& [k, line] : seen) scan.keys.push_back(k);
  return scan;
}

}  // namespace concur::batch
