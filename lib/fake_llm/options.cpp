// SPDX-License-Identifier: BSL-1.0
// Text forms of the server's options (for command lines) and the reply rule.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "concur/fake_llm.hpp"

namespace concur::fake_llm {

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return std::string(s);
}

double parse_number(std::string_view s, std::string_view what) {
  const std::string t = trim(s);
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v))
    throw std::invalid_argument("bad " + std::string(what) + " '" + std::string(s) +
                                "': not a number");
  return v;
}

// "250ms", "1.5s" or "250" (milliseconds).
std::chrono::milliseconds parse_duration(std::string_view s) {
  std::string t = trim(s);
  double factor = 1;
  if (t.ends_with("ms")) {
    t.resize(t.size() - 2);
  } else if (t.ends_with("s")) {
    t.resize(t.size() - 1);
    factor = 1000;
  }
  const double v = parse_number(t, "duration") * factor;
  if (v < 0) throw std::invalid_argument("bad duration '" + std::string(s) + "': negative");
  return std::chrono::milliseconds(std::llround(v));
}

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

}  // namespace

Latency Latency::parse(std::string_view text) {
  const std::string_view usage =
      "; write e.g. 200ms, fixed:200ms, uniform:100ms..500ms or lognormal:1500ms,0.5";
  try {
    const std::size_t colon = text.find(':');
    const std::string kind =
        colon == std::string_view::npos ? "fixed" : trim(text.substr(0, colon));
    const std::string_view rest = colon == std::string_view::npos ? text : text.substr(colon + 1);
    if (kind == "fixed") return fixed(parse_duration(rest));
    if (kind == "uniform") {
      const std::size_t dots = rest.find("..");
      if (dots == std::string_view::npos) throw std::invalid_argument("uniform needs LOW..HIGH");
      const auto lo = parse_duration(rest.substr(0, dots));
      const auto hi = parse_duration(rest.substr(dots + 2));
      if (hi < lo) throw std::invalid_argument("uniform needs LOW <= HIGH");
      return uniform(lo, hi);
    }
    if (kind == "lognormal" || kind == "log-normal" || kind == "log_normal") {
      const std::size_t comma = rest.find(',');
      const auto median = parse_duration(rest.substr(0, comma));
      const double sigma =
          comma == std::string_view::npos ? 0.5 : parse_number(rest.substr(comma + 1), "sigma");
      if (sigma < 0 || sigma > 5) throw std::invalid_argument("sigma must be in 0..5");
      return log_normal(median, sigma);
    }
    throw std::invalid_argument("unknown kind '" + kind + "'");
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("bad latency '" + std::string(text) + "': " + e.what() +
                                std::string(usage));
  }
}

std::string Latency::describe() const {
  switch (kind) {
    case Kind::fixed:
      return "fixed:" + ms_text(base);
    case Kind::uniform:
      return "uniform:" + ms_text(base) + ".." + ms_text(upper);
    case Kind::log_normal: {
      char s[32];
      std::snprintf(s, sizeof s, "%g", sigma);
      return "lognormal:" + ms_text(base) + "," + s;
    }
  }
  return "?";
}

FaultRates FaultRates::parse(std::string_view text) {
  FaultRates r;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("bad fault rate '" + item + "': write KIND=RATE, e.g. 429=0.1");
    const std::string kind = trim(item.substr(0, eq));
    const double rate = parse_number(item.substr(eq + 1), "fault rate");
    if (rate < 0 || rate > 1)
      throw std::invalid_argument("bad fault rate '" + item + "': the rate must be in 0..1");
    if (kind == "429") {
      r.too_many_requests = rate;
    } else if (kind == "500") {
      r.server_error = rate;
    } else if (kind == "reset") {
      r.reset = rate;
    } else if (kind == "malformed") {
      r.malformed = rate;
    } else if (kind == "slow") {
      r.slow = rate;
    } else {
      throw std::invalid_argument("bad fault rate '" + item +
                                  "': kinds are 429, 500, reset, malformed, slow");
    }
  }
  if (r.total() > 1) throw std::invalid_argument("fault rates add up to more than 1");
  return r;
}

std::string reply_for(std::string_view prompt) {
  // Keeps the prompt whole so that every distinct input has a distinct reply;
  // the Japanese frame makes the translate demo read like a translation.
  return "「" + std::string(prompt) + "」の日本語訳";
}

}  // namespace concur::fake_llm
