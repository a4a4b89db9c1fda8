// SPDX-License-Identifier: BSL-1.0
// The x-ratelimit-* headers OpenAI sends with every reply, read into numbers.
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <string>

#include "concur/llm.hpp"
#include "llm/retry.hpp"

namespace concur::llm {

namespace {

std::optional<long> parse_count(std::optional<std::string_view> v) {
  if (!v) return std::nullopt;
  long n = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < 0) return std::nullopt;
  return n;
}

}  // namespace

// Go's time.Duration text, which is what OpenAI's headers hold: a sequence of
// decimal numbers each with a unit (h, m, s, ms, us, ns).
std::optional<std::chrono::milliseconds> parse_reset_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (ec != std::errc() || !std::isfinite(v) || v < 0) return std::nullopt;
    i = static_cast<std::size_t>(end - text.data());
    std::size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string_view unit = text.substr(i, j - i);
    i = j;
    if (unit == "h") {
      total_ms += v * 3'600'000;
    } else if (unit == "m") {
      total_ms += v * 60'000;
    } else if (unit == "s" || unit.empty()) {  // a bare number: seconds
      total_ms += v * 1000;
    } else if (unit == "ms") {
      total_ms += v;
    } else if (unit == "us" || unit == "µs") {
      total_ms += v / 1000;
    } else if (unit == "ns") {
      total_ms += v / 1e6;
    } else {
      return std::nullopt;
    }
  }
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(total_ms)));
}

RateLimits RateLimits::from(const http::Response& reply) {
  RateLimits r;
  r.limit_requests = parse_count(reply.header("x-ratelimit-limit-requests"));
  r.limit_tokens = parse_count(reply.header("x-ratelimit-limit-tokens"));
  r.remaining_requests = parse_count(reply.header("x-ratelimit-remaining-requests"));
  r.remaining_tokens = parse_count(reply.header("x-ratelimit-remaining-tokens"));
  if (auto v = reply.header("x-ratelimit-reset-requests"))
    r.reset_requests = parse_reset_duration(*v);
  if (auto v = reply.header("x-ratelimit-reset-tokens")) r.reset_tokens = parse_reset_duration(*v);
  r.retry_after = retry::requested_wait(reply, std::chrono::system_clock::now());
  return r;
}

}  // namespace concur::llm
