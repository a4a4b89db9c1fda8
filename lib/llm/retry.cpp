// SPDX-License-Identifier: BSL-1.0
#include "llm/retry.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <random>
#include <string>

namespace concur::llm::retry {

namespace {

std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

double jitter_factor() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return 1.0 - 0.25 * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

bool should_retry(const http::Response& reply) {
  if (auto hint = reply.header("x-should-retry")) {
    if (*hint == "true") return true;
    if (*hint == "false") return false;
  }
  const long s = reply.status;
  return s == 408 || s == 409 || s == 429 || s >= 500;
}

std::optional<std::chrono::milliseconds> requested_wait(const http::Response& reply,
                                                        std::chrono::system_clock::time_point now) {
  using std::chrono::milliseconds;
  if (auto ms = reply.header("retry-after-ms")) {
    if (auto v = parse_number(*ms)) return milliseconds(static_cast<long long>(std::ceil(*v)));
  }
  if (auto after = reply.header("retry-after")) {
    if (auto v = parse_number(*after)) {
      return milliseconds(static_cast<long long>(std::ceil(*v * 1000.0)));
    }
    // An HTTP date: libcurl already knows every format RFC 9110 allows.
    const std::string date(*after);
    const time_t when = curl_getdate(date.c_str(), nullptr);
    if (when != -1) {
      return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::from_time_t(when) -
                                                      now);
    }
  }
  return std::nullopt;
}

std::chrono::milliseconds backoff(const ClientOptions& options, int retry,
                                  const http::Response* reply) {
  using std::chrono::milliseconds;
  if (reply != nullptr) {
    const auto asked = requested_wait(*reply, std::chrono::system_clock::now());
    if (asked && asked->count() > 0 && *asked <= options.max_retry_after) return *asked;
  }
  const double base =
      static_cast<double>(options.initial_backoff.count()) * std::pow(2.0, std::min(retry, 30));
  const double capped = std::min(base, static_cast<double>(options.max_backoff.count()));
  return milliseconds(static_cast<long long>(capped * jitter_factor()));
}

}  // namespace concur::llm::retry
